"""A recording survives ``kill -9`` of the engine process.

The engine runs as its users start it (``python -m ivr serve``); a SIPp caller
speaks (espeak-ng sentences in RTP) into a flow that waits for a key. The
engine is killed with SIGKILL mid-call, then started again on the same data
folder. Before it takes calls it has repaired the WAV: the file reads with
two independent readers, its header matches its length, its length is within
1 s of the time the call was up before the kill, its left channel holds the
caller's speech, the recording's row is ``recovered``, the call is in its
caller's history timeline, and it is queued for transcription.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from recordings.history import HistoryStore
from recordings.jobs import JobQueue
from recordings.store import RecordingStore
from recordings.wavfile import inspect_wav
from tests.conftest import ROOT
from tests.peers.ports import free_port, free_tcp_port
from tests.peers.sipp import Sipp
from tests.rtp_pcap import rtp_packets, write_pcap
from tests.speech import say
from tests.test_engine_sipp import _best_correlation

SCENARIOS = Path(__file__).parent / "scenarios"
RATE = 8000
pytestmark = pytest.mark.peer

FLOW = """\
flow: main
start: menu
nodes:
  menu:
    type: menu
    prompt: Please press a key.
    options: {"1": bye}
    timeout: 60
    retries: 0
    no_input: bye
  bye: {type: hangup, prompt: Goodbye.}
"""


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status, resp.read()


async def _serve(
    data: Path, flows: Path, sip_port: int, http_port: int, log: Path
) -> asyncio.subprocess.Process:
    out = log.open("ab")
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
        str(data),
        "--flows",
        str(flows),
        "--rtp-ports",
        "43000-44000",
        cwd=ROOT,
        stdout=out,
        stderr=asyncio.subprocess.STDOUT,
    )
    out.close()
    for _ in range(300):
        try:
            status, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/health")
            if status == 200:
                return proc
        except OSError:
            await asyncio.sleep(0.1)
    proc.kill()
    await proc.wait()
    raise AssertionError(f"engine did not become healthy:\n{log.read_text(errors='replace')}")


async def _active(http_port: int) -> int:
    _, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/health")
    return int(json.loads(body)["calls_active"])


async def test_kill_9_mid_call_leaves_a_repaired_playable_recording(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    (flows / "routes.yaml").write_text("default: main\n")
    data = tmp_path / "data"
    log = tmp_path / "engine.log"
    speech = say(
        "This call is being recorded. The engine will be killed in the middle of it, "
        "and the recording must survive the crash with at most one second lost. "
        "One two three four five six seven eight nine ten.",
        speed=140,
    )
    audio = np.concatenate([speech, np.zeros(RATE * 30, dtype=np.int16)])
    run_dir = tmp_path / "sipp"
    run_dir.mkdir()
    write_pcap(run_dir / "flow_caller.pcap", rtp_packets(audio, "PCMU"))

    sip_port, http_port = free_port("udp"), free_tcp_port()
    proc = await _serve(data, flows, sip_port, http_port, log)
    sipp = Sipp(
        SCENARIOS / "uac_flow_rfc4733.xml",
        remote=f"127.0.0.1:{sip_port}",
        timeout=120,
        run_dir=run_dir,
        extra_args=["-key", "caller", "15550001"],
    )
    handle = None
    try:
        invited = time.time()
        handle = await sipp.start_async()
        for _ in range(100):
            if await _active(http_port) == 1:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the call never became active")
        active = time.time()
        await asyncio.sleep(6.0)
        killed = time.time()
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        wavs = list((data / "recordings").rglob("*.wav"))
        assert len(wavs) == 1, wavs
        rows = RecordingStore(data / "callcore.db").list()
        assert [r.status for r in rows] == ["recording"]  # what the crash left

        proc = await _serve(data, flows, free_port("udp"), http_port, log)  # repairs first
        path = wavs[0]
        layout = inspect_wav(path.read_bytes()[:64], path.stat().st_size)
        assert layout.consistent
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, RATE, 2)
            stereo = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
        rate, other = wavfile.read(path)
        assert rate == RATE and other.shape == stereo.shape
        seconds = len(stereo) / RATE
        up_at_least, up_at_most = killed - active, killed - invited
        print(f"recording {seconds:.3f} s, call up {up_at_least:.3f}..{up_at_most:.3f} s")
        assert up_at_least - 1.0 <= seconds <= up_at_most + 0.1, (seconds, up_at_least, up_at_most)
        # The caller's speech is on the left channel, up to the kill.
        assert _best_correlation(speech[RATE : 4 * RATE], stereo[:, 0]) > 0.9

        (row,) = RecordingStore(data / "callcore.db").list()
        assert (row.status, row.disposition) == ("recovered", "recovered")
        assert row.path == str(path) and abs(row.duration - seconds) < 0.01
        assert row.caller.startswith("sip:15550001@")
        history = HistoryStore(data / "callcore.db")
        contact = history.find(row.caller)
        assert contact is not None
        (voice,) = history.timeline(contact)["interactions"]
        assert (voice["channel"], voice["external_id"]) == ("voice", row.call_id)
        assert voice["meta"]["status"] == "recovered" and voice["meta"]["recording"] == row.path
        jobs = JobQueue(data / "callcore.db").jobs()
        assert [(j.recording, j.call_id) for j in jobs] == [(str(path), row.call_id)]
        recovered = [
            json.loads(line)
            for line in log.read_text().splitlines()
            if '"recording.recovered"' in line
        ]
        assert len(recovered) == 1 and recovered[0]["call_id"] == row.call_id
        print("header repaired:", recovered[0]["header_repaired"])
    finally:
        if handle is not None:
            await handle.stop()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)


def test_a_damaged_database_is_named_not_a_traceback(tmp_path: Path) -> None:
    data, flows = tmp_path / "data", tmp_path / "flows"
    data.mkdir()
    flows.mkdir()  # no flows: the history store is the first to open the database
    (data / "callcore.db").write_bytes(b"not sqlite " * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "ivr", "serve", "--data", str(data), "--flows", str(flows),
         "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"Error: cannot start: {data / 'callcore.db'}: cannot open the history tables" in (
        proc.stderr
    )
    assert "Move the damaged database aside" in proc.stderr
    assert (data / "callcore.db").read_bytes() == b"not sqlite " * 100
