"""The engine as its users start it: ``python -m ivr serve`` in its own process.

* /health and /metrics answer;
* SIGTERM with a call in progress sends BYE to the caller (a SIPp scenario that
  never hangs up itself completes only if the BYE arrives) and exits 0;
* a port that is already taken is reported by address, with exit code 1;
* ``--realtime`` puts the event loop thread (only) on SCHED_RR.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from engine.realtime import apply_realtime
from tests.conftest import FLOWS, ROOT
from tests.peers.ports import free_port, free_tcp_port
from tests.peers.sipp import Sipp

SCENARIOS = Path(__file__).parent / "scenarios"
pytestmark = pytest.mark.peer


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status, resp.read()


async def _start(tmp_path: Path, *extra: str) -> tuple[asyncio.subprocess.Process, int, int]:
    sip_port = free_port("udp")
    http_port = free_tcp_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ivr",
        "--json-logs",
        "serve",
        "--sip",
        f"127.0.0.1:{sip_port}",
        "--http",
        f"127.0.0.1:{http_port}",
        "--data",
        str(tmp_path / "data"),
        "--flows",
        str(FLOWS),
        "--rtp-ports",
        "41000-42000",
        *extra,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    for _ in range(100):
        try:
            status, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/health")
            if status == 200:
                return proc, sip_port, http_port
        except OSError:
            await asyncio.sleep(0.1)
    proc.kill()
    out = (await proc.communicate())[0].decode(errors="replace")
    raise AssertionError(f"engine did not become healthy:\n{out}")


async def _one_call_active(http_port: int) -> dict[str, object]:
    """/health once it shows one call in progress."""
    for _ in range(100):
        _, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/health")
        health: dict[str, object] = json.loads(body)
        if health["calls_active"] == 1:
            return health
        await asyncio.sleep(0.1)
    raise AssertionError("the call never became active")


async def test_sigterm_hangs_up_calls_and_exits(tmp_path: Path) -> None:
    proc, sip_port, http_port = await _start(tmp_path)
    try:
        sipp = Sipp(SCENARIOS / "uac_wait_bye.xml", remote=f"127.0.0.1:{sip_port}", timeout=30)
        handle = await sipp.start_async()
        await _one_call_active(http_port)
        _, metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/metrics")
        assert b"callcore_calls_active 1.0" in metrics
        assert b'callcore_rtp_packets_total{kind="out"}' in metrics
        for cause in (b"busy", b"queued", b"off_cpu"):  # late media ticks, by cause
            assert b'callcore_media_late_ticks_total{cause="' + cause + b'"}' in metrics
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
        result = await handle.wait(20)
        assert result.ok, result.summary()
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ivr",
            "serve",
            "--sip",
            f"127.0.0.1:{port}",
            "--http",
            f"127.0.0.1:{free_tcp_port()}",
            "--data",
            str(tmp_path / "data"),
            "--flows",
            str(FLOWS),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out = (await asyncio.wait_for(proc.communicate(), 20))[0].decode(errors="replace")
    assert proc.returncode == 1
    assert f"127.0.0.1:{port}" in out and "in use" in out.lower(), out
    assert "Traceback" not in out


def _policy(tid: int) -> int:
    return os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK


async def test_realtime_raises_the_media_loop_and_nothing_else(tmp_path: Path) -> None:
    proc, sip_port, http_port = await _start(tmp_path, "--realtime", "7")
    try:
        # A call makes the engine use its helper threads and storage process.
        sipp = Sipp(SCENARIOS / "uac_wait_bye.xml", remote=f"127.0.0.1:{sip_port}", timeout=30)
        handle = await sipp.start_async()
        health = await _one_call_active(http_port)
        threads = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task")]
        children = [
            int(c)
            for t in threads
            for c in Path(f"/proc/{proc.pid}/task/{t}/children").read_text().split()
        ]
        # The storage process and the transcription workers run niced: their
        # wake-ups must not take the CPU from the media loop.
        own = os.getpriority(os.PRIO_PROCESS, proc.pid)
        cmdlines = {c: Path(f"/proc/{c}/cmdline").read_bytes() for c in children}
        niced = {
            c: os.getpriority(os.PRIO_PROCESS, c)
            for c, line in cmdlines.items()
            if b"recordings.storage_child" in line or b"spawn_main" in line
        }
        assert any(b"recordings.storage_child" in line for line in cmdlines.values()), cmdlines
        assert set(niced.values()) == {min(19, own + 10)}, (own, niced)
        if os.geteuid() == 0:  # CI and this machine: allowed
            assert health["media_scheduling"] == "rr"
            assert _policy(proc.pid) == os.SCHED_RR  # the main thread runs the loop
            assert os.sched_getparam(proc.pid).sched_priority == 7
            others = [t for t in threads if t != proc.pid]
            assert others, "the engine runs helper threads"
            assert all(_policy(t) == os.SCHED_OTHER for t in others), others
            assert children, "the recording storage process runs"
            assert all(_policy(c) == os.SCHED_OTHER for c in children), children
        else:  # refused: the engine runs on, normally scheduled, and says how to allow it
            assert health["media_scheduling"] == "other"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert (await handle.wait(20)).ok
        out = (await proc.stdout.read()).decode() if proc.stdout else ""
        if os.geteuid() != 0:
            assert "engine.realtime_refused" in out and "CAP_SYS_NICE" in out
        else:
            assert "engine.realtime" in out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_realtime_priority_out_of_range_is_explained() -> None:
    assert apply_realtime(0) == "real-time priority 0 is out of range: use 1-99"
    assert apply_realtime(100) == "real-time priority 100 is out of range: use 1-99"
