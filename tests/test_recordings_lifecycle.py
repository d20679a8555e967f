"""Retention, legal hold, deletion and the hash-chained audit log, on real files."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media.capture import StreamingWavWriter
from recordings.audit import GENESIS, AuditLog, canonical, row_hash, verify_audit_chain
from recordings.history import HistoryStore
from recordings.jobs import JobQueue
from recordings.lifecycle import RecordingAdmin, RecordingAdminError
from recordings.metadata import RecordingMeta
from recordings.retention import DAY, RetentionError, decide, parse_retention
from recordings.store import RecordingStore

T0 = 1_790_000_000.0  # 2026-09-21


# ------------------------------------------------------------------- policy
def test_retention_text() -> None:
    policy = parse_retention(" 365; billing=90, support=30 ;vip=0")
    assert policy.default == 365 and dict(policy.queues) == {"billing": 90, "support": 30, "vip": 0}
    assert policy.days_for("billing") == 90 and policy.days_for(None) == 365
    assert parse_retention("").default == 0
    for text, message in [
        ("ninety", "retention 'ninety': days must be a whole number >= 0"),
        ("30; 60", "retention '60': a second default"),
        ("billing=-1", "retention 'billing=-1': days must be a whole number"),
        ("bad queue=3", "retention 'bad queue=3': 'bad queue' is not a queue name"),
        ("a=1; a=2", "retention 'a=2': queue 'a' is given twice"),
    ]:
        with pytest.raises(RetentionError, match=message):
            parse_retention(text)


def _meta(call_id: str, days_old: float, **kw: Any) -> RecordingMeta:
    base: dict[str, Any] = {
        "call_id": call_id,
        "path": f"/r/{call_id}.wav",
        "status": "complete",
        "started_at": T0 - days_old * DAY,
    }
    base.update(kw)
    return RecordingMeta(**base)


def test_decisions() -> None:
    policy = parse_retention("365; billing=90; vip=0")
    assert decide(_meta("a", 100, queue="billing"), policy, T0).delete
    assert decide(_meta("a", 100, queue="billing"), policy, T0).reason == (
        "older than 90 days (queue billing)"
    )
    assert not decide(_meta("b", 100, queue="support"), policy, T0).delete  # default 365
    assert decide(_meta("b", 400, queue="support"), policy, T0).reason == (
        "older than 365 days (default)"
    )
    kept = decide(_meta("c", 80, queue="billing"), policy, T0)
    assert not kept.delete and kept.expires_at == pytest.approx(T0 + 10 * DAY)
    assert decide(_meta("d", 9999, queue="vip"), policy, T0).reason == "kept for ever"
    assert decide(_meta("e", 9999, legal_hold=True), policy, T0).reason == "legal hold"
    assert decide(_meta("f", 9999, status="recording"), policy, T0).reason == (
        "still being recorded"
    )
    assert decide(_meta("g", 9999, status="deleted"), policy, T0).reason == "already deleted"


# -------------------------------------------------------------------- audit
def test_audit_chain_links_every_row_and_refuses_changes(tmp_path: Path) -> None:
    db = tmp_path / "callcore.db"
    log = AuditLog(db)
    first = log.append("recording.start", "c1", actor="engine", at=T0, details={"path": "x"})
    second = log.append("recording.pause", "c1", actor="agent:ann", at=T0 + 5, details={"at": 5})
    assert first.prev_hash == GENESIS and second.prev_hash == first.hash
    expected = hashlib.sha256(
        (first.hash + canonical(2, T0 + 5, "recording.pause", "c1", "agent:ann", {"at": 5}))
        .encode()
    ).hexdigest()  # fmt: skip
    assert (
        second.hash
        == expected
        == row_hash(first.hash, 2, T0 + 5, "recording.pause", "c1", "agent:ann", {"at": 5})
    )
    log.append("recording.access", "c1", actor="auditor", at=T0 + 9)
    assert verify_audit_chain(db).as_dict() == {
        "ok": True, "rows": 3, "first_bad": None, "reason": "",
    }  # fmt: skip
    raw = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only: rows cannot be changed"):
        raw.execute("UPDATE audit_log SET actor = 'nobody' WHERE id = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: rows cannot be deleted"):
        raw.execute("DELETE FROM audit_log WHERE id = 3")
    assert [e.actor for e in log.entries("c1")] == ["engine", "agent:ann", "auditor"]


def _tampered(tmp_path: Path, sql: str) -> Any:
    db = tmp_path / "callcore.db"
    log = AuditLog(db)
    for i in range(5):
        log.append("recording.access", f"c{i}", actor="auditor", at=T0 + i, details={"i": i})
    raw = sqlite3.connect(db, isolation_level=None)
    raw.execute("DROP TRIGGER audit_log_no_update")  # what someone with the file could do
    raw.execute("DROP TRIGGER audit_log_no_delete")
    raw.execute(sql)
    raw.close()
    return log.verify()


def test_a_changed_row_is_found(tmp_path: Path) -> None:
    report = _tampered(tmp_path, "UPDATE audit_log SET actor = 'someone else' WHERE id = 3")
    assert (report.ok, report.first_bad) == (False, 3)
    assert report.reason == "row 3 was changed after writing"


def test_a_changed_row_with_a_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    db = tmp_path / "callcore.db"
    _tampered(tmp_path, "SELECT 1")
    raw = sqlite3.connect(db, isolation_level=None)
    prev = raw.execute("SELECT hash FROM audit_log WHERE id = 2").fetchone()[0]
    forged = row_hash(prev, 3, T0 + 2, "recording.access", "c2", "nobody", {"i": 2})
    raw.execute("UPDATE audit_log SET actor = 'nobody', hash = ? WHERE id = 3", (forged,))
    report = AuditLog(db).verify()
    assert (report.ok, report.first_bad) == (False, 4)
    assert "does not follow the row before it" in report.reason


def test_a_removed_row_is_found(tmp_path: Path) -> None:
    report = _tampered(tmp_path, "DELETE FROM audit_log WHERE id = 2")
    assert (report.ok, report.first_bad) == (False, 3)


# ------------------------------------------------------------ one recording
def _wav(path: Path, seconds: float) -> None:
    writer = StreamingWavWriter(path)
    writer.write(np.zeros((int(seconds * 8000), 2), dtype=np.int16))
    writer.close()


def _recorded(data: Path, call_id: str, days_old: float, queue: str | None) -> dict[str, Path]:
    """A finished call as the engine leaves it: WAV, row, history, job and transcript files."""
    db = data / "callcore.db"
    started = T0 - days_old * DAY
    wav = data / "recordings" / "2026" / "09" / "21" / f"{call_id}.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    _wav(wav, 1.0)
    meta = RecordingMeta(
        call_id=call_id, path=str(wav), status="recording", started_at=started,
        caller="sip:+15551234567@pbx", called="sip:5000@engine",
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
    queue_db = JobQueue(db)
    job = queue_db.enqueue(wav, call_id, now=started)
    claimed = queue_db.claim("w1", now=started)
    assert claimed is not None and claimed.id == job
    out = data / "transcripts" / "2026" / "09" / "21" / f"{call_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".txt", ".vtt", ".srt"):
        out.with_suffix(suffix).write_text("transcript")
    queue_db.complete(job, "w1", now=started + 1, result=str(out))
    return {"wav": wav, "json": out, "txt": out.with_suffix(".txt")}


def test_delete_removes_audio_transcript_and_index_rows_together(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = data / "callcore.db"
    files = _recorded(data, "c1", 10, "billing")
    kept = _recorded(data, "c2", 10, "billing")
    admin = RecordingAdmin(data, db, AuditLog(db))
    history = HistoryStore(db)
    assert {h["external_id"] for h in history.search("card lost")} == {"c1", "c2"}

    admin.set_legal_hold("c1", True, actor="legal:lee", reason="case 42", now=T0)
    with pytest.raises(RecordingAdminError, match="under legal hold: release the hold") as info:
        admin.delete_recording("c1", actor="api", reason="request", now=T0)
    assert info.value.status == 409
    assert all(p.exists() for p in files.values())  # nothing removed
    assert {h["external_id"] for h in history.search("card lost")} == {"c1", "c2"}

    admin.set_legal_hold("c1", False, actor="legal:lee", reason="case closed", now=T0 + 1)
    result = admin.delete_recording("c1", actor="dpo:dana", reason="erasure request", now=T0 + 2)
    assert result["interactions"] == 1 and result["jobs"] == 1
    assert not any(p.exists() for p in files.values())
    assert all(p.exists() for p in kept.values())  # the other call is untouched
    assert [h["external_id"] for h in history.search("card lost")] == ["c2"]
    assert JobQueue(db).jobs()[0].call_id == "c2"
    row = RecordingStore(db).get("c1")
    assert row is not None and (row.status, row.caller, row.called) == ("deleted", "", "")
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO interactions_fts(interactions_fts) VALUES('integrity-check')")
    with pytest.raises(RecordingAdminError, match="was deleted") as gone:
        admin.access("c1", actor="auditor", what="audio", now=T0 + 3)
    assert gone.value.status == 410
    with pytest.raises(RecordingAdminError, match="no recording of call 'zz'"):
        admin.delete_recording("zz", actor="api", reason="x", now=T0)
    events = [(e.event, e.actor) for e in AuditLog(db).entries("c1")]
    assert events == [
        ("recording.hold", "legal:lee"),
        ("recording.release", "legal:lee"),
        ("recording.delete", "dpo:dana"),
    ]  # the refused deletion and the refused access left no row
    delete = AuditLog(db).entries("c1")[-1]
    assert delete.details["reason"] == "erasure request"
    assert sorted(delete.details["files"]) == sorted(
        ["c1.wav", "c1.json", "c1.txt", "c1.vtt", "c1.srt"]
    )
    assert AuditLog(db).verify().ok


def test_retention_deletes_what_is_due_and_keeps_holds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = data / "callcore.db"
    old_billing = _recorded(data, "old-billing", 100, "billing")
    new_billing = _recorded(data, "new-billing", 10, "billing")
    old_support = _recorded(data, "old-support", 100, "support")
    held = _recorded(data, "held", 500, "billing")
    admin = RecordingAdmin(data, db, AuditLog(db))
    admin.set_legal_hold("held", True, actor="legal", reason="case 7", now=T0)
    run = admin.apply_retention(parse_retention("365; billing=90"), now=T0)
    assert run.deleted == ["old-billing"] and run.held == 1 and run.failed == []
    assert not old_billing["wav"].exists()
    assert all(f["wav"].exists() for f in (new_billing, old_support, held))
    statuses = {r.call_id: r.status for r in RecordingStore(db).list()}
    assert statuses == {
        "old-billing": "deleted",
        "new-billing": "complete",
        "old-support": "complete",
        "held": "complete",
    }
    (entry,) = [e for e in AuditLog(db).entries() if e.event == "retention.run"]
    assert entry.details == {"checked": 3, "deleted": 1, "held": 1}
    assert [e.actor for e in AuditLog(db).entries("old-billing")] == ["retention"]
    assert json.loads(
        sqlite3.connect(db).execute("SELECT meta FROM recordings WHERE call_id='old-billing'")
        .fetchone()[0]
    )["deleted_reason"] == "older than 90 days (queue billing)"  # fmt: skip
