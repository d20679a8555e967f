"""Retention per queue in flows/queues.yaml: checked with file:line:column, hot reloaded,
applied by the engine's sweep on real files, a real SQLite history and its search index."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from acd.config import parse_config
from engine.app import Engine
from media.capture import StreamingWavWriter
from recordings.audit import AuditLog
from recordings.history import HistoryStore
from recordings.jobs import JobQueue
from recordings.lifecycle import RecordingAdmin
from recordings.metadata import RecordingMeta
from recordings.retention import DAY, RetentionPolicy, override_policy
from recordings.retention_config import RetentionSettings, check_retention_text
from recordings.store import RecordingStore
from tests.conftest import engine_config

QUEUES = """\
skills: [billing, support]
defaults:
  wrap_up: 5
  retention: {days: 365}
queues:
  billing:
    skills: {billing: 1}
    retention: {days: 30}
  support:
    skills: {support: 1}
agents:
  ana: {skills: {billing: 1, support: 1}}
"""

FLOW = """\
flow: main
start: bye
nodes:
  bye: {type: hangup, prompt: Goodbye.}
"""


def _pos(text: str, line_part: str, token: str) -> str:
    """``LINE:COLUMN`` (1-based) of ``token`` on the line holding ``line_part``."""
    for number, line in enumerate(text.splitlines(), 1):
        if line_part in line:
            return f"{number}:{line.index(token) + 1}"
    raise AssertionError(f"{line_part!r} not in the text")


# ------------------------------------------------------------------ reading
def test_retention_is_read_beside_the_queues_and_the_acd_accepts_it() -> None:
    policy, diags = check_retention_text(QUEUES)
    assert diags == [] and policy == RetentionPolicy(365, {"billing": 30})
    assert policy.days_for("billing") == 30 and policy.days_for("support") == 365
    assert policy.days_for(None) == 365  # calls that never reached a queue
    config, warnings = parse_config(QUEUES)  # the ACD's own loader lets the key through
    assert sorted(config.queues) == ["billing", "support"] and warnings == []
    none, _ = check_retention_text("queues: {billing: {}}\n")
    assert none == RetentionPolicy(0, {})  # no retention written: kept for ever


def test_bad_retention_is_refused_with_file_line_and_column() -> None:
    text = QUEUES.replace("retention: {days: 365}", "retention: {days: 1.5}").replace(
        "    skills: {support: 1}\n",
        "    skills: {support: 1}\n    retention: {dayz: 3}\n",
    )
    text = text.replace("retention: {days: 30}", "retention: {days: -1}").replace(
        "agents:\n", "  sales:\n    retention: 90\n  vip:\n    retention: {days: 99999}\nagents:\n"
    )
    text = text.replace("skills: [billing, support]", "skills: [billing, support, sales]")
    policy, diags = check_retention_text(text, Path("flows/queues.yaml"))
    assert policy is None
    assert [str(d) for d in diags] == [
        f"flows/queues.yaml:{_pos(text, 'retention: {days: 1.5', '1.5')}: error: defaults"
        " retention days must be a whole number, not a number 1.5 (fix: write e.g."
        " `days: 90` (0 keeps for ever))",
        f"flows/queues.yaml:{_pos(text, 'days: -1', '-1')}: error: queue 'billing' retention"
        " days must be 0 to 36600, not -1 (fix: write the days to keep recordings, e.g. 90;"
        " 0 keeps them for ever)",
        f"flows/queues.yaml:{_pos(text, 'dayz', '{')}: error: queue 'support' retention has"
        " no `days` (fix: write `retention: {days: 90}` (0 keeps for ever))",
        f"flows/queues.yaml:{_pos(text, 'dayz', 'dayz')}: error: unknown key 'dayz' in queue"
        " 'support' retention (fix: did you mean 'days'?)",
        f"flows/queues.yaml:{_pos(text, 'retention: 90', '90')}: error: queue 'sales'"
        " retention must be a mapping, not a number (fix: write `retention: {days: 90}`"
        " (0 keeps for ever))",
        f"flows/queues.yaml:{_pos(text, '99999', '99999')}: error: queue 'vip' retention"
        " days must be 0 to 36600, not 99999 (fix: write the days to keep recordings, e.g."
        " 90; 0 keeps them for ever)",
    ]
    broken, (syntax,) = check_retention_text("queues:\n  billing: {retention: {days: 3}\n")
    assert broken is None and syntax.is_error and syntax.line >= 2


def test_the_environment_overrides_the_file() -> None:
    base = RetentionPolicy(365, {"billing": 30, "support": 60})
    assert override_policy(base, "") == base
    assert override_policy(base, "90; vip=0; billing=10") == RetentionPolicy(
        90, {"billing": 10, "support": 60, "vip": 0}
    )
    assert override_policy(base, "support=7") == RetentionPolicy(365, {"billing": 30, "support": 7})
    settings = RetentionSettings(override="billing=5")
    assert settings.load(QUEUES)
    assert settings.policy == RetentionPolicy(365, {"billing": 5})
    assert settings.file_policy == RetentionPolicy(365, {"billing": 30})
    assert not settings.load(QUEUES)  # the same text again: nothing to do
    assert not settings.load(QUEUES.replace("days: 30", "days: x"))
    assert settings.policy == RetentionPolicy(365, {"billing": 5}) and settings.errors
    assert settings.load(None) and settings.policy == RetentionPolicy(0, {"billing": 5})


# ------------------------------------------------------ the engine's sweep
def _wav(path: Path, seconds: float) -> None:
    writer = StreamingWavWriter(path)
    writer.write(np.zeros((int(seconds * 8000), 2), dtype=np.int16))
    writer.close()


def _recorded(data: Path, call_id: str, started: float, queue: str | None) -> list[Path]:
    """A finished call as the engine leaves it: WAV, row, history with its transcript,
    a done transcription job and the transcript files. Returns its files."""
    db = data / "callcore.db"
    wav = data / "recordings" / "old" / f"{call_id}.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    _wav(wav, 1.0)
    meta = RecordingMeta(
        call_id=call_id, path=str(wav), status="recording", started_at=started,
        caller="sip:+14155550123@pbx", called="sip:5000@engine",
    )  # fmt: skip
    store = RecordingStore(db)
    store.start(meta)
    meta.status, meta.duration, meta.queue, meta.disposition = "complete", 1.0, queue, "agent"
    meta.ended_at = started + 1
    store.finish(meta)
    history = HistoryStore(db)
    history.record_call(meta)
    history.attach_transcript(
        call_id, {"segments": [{"speaker": "caller", "text": f"my card is lost {call_id}"}]}
    )
    jobs = JobQueue(db)
    job = jobs.enqueue(wav, call_id, now=started)
    assert jobs.claim("w1", now=started) is not None
    out = data / "transcripts" / "old" / f"{call_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".txt", ".vtt", ".srt"):
        out.with_suffix(suffix).write_text("transcript")
    jobs.complete(job, "w1", now=started + 1, result=str(out))
    return [wav, *(out.with_suffix(s) for s in (".json", ".txt", ".vtt", ".srt"))]


async def _http(engine: Engine, method: str, path: str) -> tuple[int, Any]:
    assert engine.http is not None
    url = f"http://127.0.0.1:{engine.http.port}{path}"
    async with aiohttp.ClientSession() as session, session.request(method, url) as resp:
        return resp.status, await resp.json()


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _found(db: Path, call_id: str) -> bool:
    return any(h["external_id"] == call_id for h in HistoryStore(db).search(f"lost {call_id}"))


async def test_the_sweep_follows_queues_yaml_and_its_hot_reloads(tmp_path: Path) -> None:
    flows, data = tmp_path / "flows", tmp_path / "data"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    (flows / "routes.yaml").write_text("default: main\n")
    (flows / "queues.yaml").write_text(QUEUES)
    db = data / "callcore.db"
    now = time.time()
    files = {
        "billing-old": _recorded(data, "billing-old", now - 40 * DAY, "billing"),
        "billing-held": _recorded(data, "billing-held", now - 40 * DAY, "billing"),
        "billing-new": _recorded(data, "billing-new", now - 5 * DAY, "billing"),
        "support-old": _recorded(data, "support-old", now - 40 * DAY, "support"),
        "noqueue-ancient": _recorded(data, "noqueue-ancient", now - 400 * DAY, None),
    }
    RecordingAdmin(data, db, AuditLog(db)).set_legal_hold(
        "billing-held", True, actor="legal", reason="case 7", now=now
    )
    assert all(_found(db, c) for c in files)

    def status(call_id: str) -> str:
        row = RecordingStore(db).get(call_id)
        assert row is not None
        return row.status

    eng = Engine(engine_config(tmp_path, flows_dir=flows, data_dir=data, transcribe_workers=0))
    await eng.start()
    try:
        # the pass at start-up: billing keeps 30 days, everything else 365
        await _until(lambda: status("billing-old") == "deleted", 20, "the start-up pass")
        await _until(lambda: status("noqueue-ancient") == "deleted", 5, "the start-up pass")
        gone = {"billing-old", "noqueue-ancient"}
        for call_id, paths in files.items():
            assert all(p.exists() != (call_id in gone) for p in paths), call_id
            assert _found(db, call_id) != (call_id in gone), call_id
        assert {j.call_id for j in JobQueue(db).jobs()} == set(files) - gone
        code, body = await _http(eng, "GET", "/recordings/retention")
        assert code == 200 and body["default_days"] == 365 and body["queues"] == {"billing": 30}
        assert body["errors"] is None and body["file"] == str(flows / "queues.yaml")

        # support gets 20 days: saved, hot reloaded, applied without a restart
        (flows / "queues.yaml").write_text(
            QUEUES.replace("{support: 1}\n", "{support: 1}\n    retention: {days: 20}\n")
        )
        await _until(lambda: status("support-old") == "deleted", 20, "the hot-reloaded policy")
        assert not any(p.exists() for p in files["support-old"])
        assert not _found(db, "support-old")
        code, body = await _http(eng, "GET", "/recordings/retention")
        assert body["queues"] == {"billing": 30, "support": 20}

        # bad values are refused with file:line:column; the policy in force stays
        bad = QUEUES.replace("retention: {days: 30}", "retention: {days: -3}").replace(
            "{support: 1}\n", "{support: 1}\n    retention: {days: 20}\n"
        )
        (flows / "queues.yaml").write_text(bad)
        deadline = time.monotonic() + 20
        while (await _http(eng, "GET", "/recordings/retention"))[1]["errors"] is None:
            assert time.monotonic() < deadline, "the bad queues.yaml was never seen"
            await asyncio.sleep(0.1)
        code, body = await _http(eng, "GET", "/recordings/retention")
        assert body["errors"] == [
            f"{flows / 'queues.yaml'}:{_pos(bad, 'days: -3', '-3')}: error: queue 'billing'"
            " retention days must be 0 to 36600, not -3 (fix: write the days to keep"
            " recordings, e.g. 90; 0 keeps them for ever)"
        ]
        assert body["queues"] == {"billing": 30, "support": 20} and body["default_days"] == 365
        code, run = await _http(eng, "POST", "/recordings/retention/run")
        assert code == 200 and run["deleted"] == [] and run["held"] == 1
        for call_id in ("billing-held", "billing-new"):
            assert status(call_id) == "complete" and all(p.exists() for p in files[call_id])
            assert _found(db, call_id)
    finally:
        await eng.stop()
    events = [(e.event, e.subject) for e in AuditLog(db).entries() if e.event != "retention.run"]
    deleted = {subject for event, subject in events if event == "recording.delete"}
    assert deleted == {"billing-old", "noqueue-ancient", "support-old"}
