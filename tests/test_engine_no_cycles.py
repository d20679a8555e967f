"""A finished call leaves no reference cycles behind.

Every object of a call is old by the time the call ends (it has survived the
young collections), so a cycle through it is freed only by a full garbage
collection. With a minute of ended calls a full collection took ~300 ms at
300 concurrent calls (bench/media_load.py, three levels in one engine): a
stall of every stream. So the engine lets go of the references that point
back at a call when it ends, and its objects go by reference counting. This
test runs real calls (SIPp uac_pcap through the shipped flows, recorded, and
a call cancelled while ringing) and then asks the collector what it found.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from engine.app import Engine
from tests.conftest import engine_config, engine_garbage_cycles, recordings_finished
from tests.peers.sipp import Sipp

SHARED_PEERS = Path(__file__).resolve().parents[2] / "shared" / "peers"


async def test_ended_calls_leave_no_cycles_of_engine_objects(tmp_path: Path) -> None:
    eng = Engine(engine_config(tmp_path, ring_seconds=1.0))
    await eng.start()
    try:
        gc.collect()
        remote = f"{eng.sip.host}:{eng.sip.port}"
        calls = Sipp("uac_pcap", remote=remote, calls=3, rate=3, limit=3, timeout=60)
        cancel = Sipp(SHARED_PEERS / "uac_cancel.xml", remote=remote, timeout=30)
        results = await asyncio.gather(calls.run_async(), cancel.run_async())
        assert all(r.ok for r in results), [r.summary() for r in results]
        await recordings_finished(eng)
        assert eng.calls is not None and not eng.calls.legs
        await asyncio.sleep(0.5)  # the last transports close on later loop passes
        found = engine_garbage_cycles()
        assert not found, f"cycles of ended calls, freed only by a full collection: {found}"
        assert eng.calls is not None and len(eng.calls.finished_calls) == 4
    finally:
        await eng.stop()
