"""A real call's recording through the admin API: audited access, secure pause,
legal hold, deletion, and an audit chain that verifies (and stops verifying
once a row is tampered with)."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from tests.conftest import engine_config
from tests.peers.sipp import Sipp

FLOWS = Path(__file__).parent / "data" / "flows_sipp"
pytestmark = pytest.mark.peer


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = Engine(engine_config(tmp_path, flows_dir=FLOWS, retention="365; billing=90"))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


async def _http(engine: Engine, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    assert engine.http is not None
    url = f"http://127.0.0.1:{engine.http.port}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body) as resp,
    ):
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.read()


async def test_recording_lifecycle_is_audited_end_to_end(served: Engine) -> None:
    engine = served
    sipp = Sipp("uac_pcap", remote=f"{engine.sip.host}:{engine.sip.port}", service="5000")
    run = await sipp.start_async()
    assert engine.recorder is not None
    for _ in range(200):
        if engine.recorder.active:
            break
        await asyncio.sleep(0.02)
    (call_id,) = engine.recorder.active
    await asyncio.sleep(1.0)
    status, body = await _http(engine, "POST", f"/calls/{call_id}/recording/pause")
    assert status == 200 and body["span"]["by"] == "api", body
    await asyncio.sleep(1.0)
    status, body = await _http(engine, "POST", f"/calls/{call_id}/recording/resume")
    assert status == 200, body
    result = await run.wait(40)
    assert result.ok, result.summary()
    for _ in range(100):
        status, rows = await _http(engine, "GET", "/recordings")
        if rows and rows[0]["status"] == "complete":
            break
        await asyncio.sleep(0.05)
    (row,) = rows
    assert row["call_id"] == call_id and len(row["pauses"]) == 1

    status, meta = await _http(engine, "GET", f"/recordings/{call_id}?by=auditor:amy")
    assert status == 200 and meta["path"] == row["path"]
    status, audio = await _http(engine, "GET", f"/recordings/{call_id}/audio?by=auditor:amy")
    assert status == 200
    with wave.open(io.BytesIO(audio)) as w:
        assert w.getnchannels() == 2 and w.getnframes() / 8000 == pytest.approx(row["duration"])

    status, body = await _http(engine, "POST", f"/recordings/{call_id}/hold",
                               {"on": True, "reason": "dispute", "by": "legal:lee"})  # fmt: skip
    assert status == 200 and body["legal_hold"] is True
    status, body = await _http(engine, "DELETE", f"/recordings/{call_id}?by=dpo:dana")
    assert status == 409 and "legal hold" in body["error"]
    status, body = await _http(engine, "POST", f"/recordings/{call_id}/hold", {"on": "yes"})
    assert status == 400 and body["error"] == "on must be true (hold) or false (release)"
    status, body = await _http(engine, "POST", f"/recordings/{call_id}/hold",
                               {"on": False, "reason": "settled", "by": "legal:lee"})  # fmt: skip
    assert status == 200
    status, body = await _http(engine, "DELETE", f"/recordings/{call_id}?by=dpo:dana&reason=gdpr")
    assert status == 200 and body["deleted"] is True, body
    assert not Path(row["path"]).exists()
    status, body = await _http(engine, "GET", f"/recordings/{call_id}/audio")
    assert status == 410
    status, body = await _http(engine, "GET", "/recordings/nope")
    assert status == 404 and body["error"] == "no recording of call 'nope'"
    status, found = await _http(engine, "GET", "/history/search?q=call")
    assert all(r["external_id"] != call_id for r in found["results"])

    status, trail = await _http(engine, "GET", f"/recordings/audit?subject={call_id}")
    assert [(e["event"], e["actor"]) for e in trail] == [
        ("recording.start", "engine"),
        ("recording.pause", "api"),
        ("recording.resume", "api"),
        ("recording.finish", "engine"),
        ("recording.access", "auditor:amy"),
        ("recording.access", "auditor:amy"),
        ("recording.hold", "legal:lee"),
        ("recording.release", "legal:lee"),
        ("recording.delete", "dpo:dana"),
    ]
    status, report = await _http(engine, "GET", "/recordings/audit/verify")
    assert status == 200 and report["ok"] and report["rows"] >= 9
    status, retention = await _http(engine, "POST", "/recordings/retention/run?by=ops")
    assert status == 200 and retention["deleted"] == []

    # Someone with the database file rewrites history: the check names the row.
    db = sqlite3.connect(engine.config.data_dir / "callcore.db", isolation_level=None)
    db.execute("DROP TRIGGER audit_log_no_update")
    target = trail[4]["id"]
    db.execute("UPDATE audit_log SET actor = 'nobody' WHERE id = ?", (target,))
    db.close()
    status, report = await _http(engine, "GET", "/recordings/audit/verify")
    assert status == 409 and report["ok"] is False and report["first_bad"] == target
