"""``ivr serve`` runs the transcription workers itself: a real engine process, a SIPp
caller speaking espeak-ng sentences, the engine's own worker process.

* With only ``ivr serve`` running, the caller's words reach the text record, the
  caller's history timeline and the full-text search (HTTP API), and
  ``/metrics`` counts the job; Ctrl-C (SIGINT to the engine's process group)
  stops the engine and every process it started (workers, the recording
  storage process, multiprocessing's helper) is gone.
* A worker killed with SIGKILL mid-job is reaped, logged, started again after
  its back-off; its job goes back to the queue at once and completes (second
  attempt, the first one's error names the signal); when the engine itself is
  killed with SIGKILL, its workers go too (no orphans transcribing on).
* SIGTERM while a worker is busy: after the shutdown grace the worker is
  terminated, the engine exits 0, nothing is left running, and the job is
  queued again without the interrupted attempt counting.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recordings.jobs import Job, JobQueue
from recordings.textrecord import load_record
from tests.conftest import ROOT
from tests.peers.ports import free_port, free_tcp_port
from tests.peers.sipp import Sipp
from tests.rtp_pcap import rtp_packets, write_pcap
from tests.speech import place, say, words_of, write_wav
from tests.test_recordings_worker import SENTENCES

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
    timeout: 7
    retries: 0
    no_input: bye
  bye: {type: hangup, prompt: Goodbye.}
"""


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read()


async def _json(http_port: int, path: str) -> Any:
    _, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}{path}")
    return json.loads(body)


async def _metric(http_port: int, name: str) -> float | None:
    _, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/metrics")
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", body.decode(), re.M)
    return float(found.group(1)) if found else None


async def _serve(
    data: Path, flows: Path, log: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, int, int]:
    """``python -m ivr serve`` in a session of its own (a process group, as in a terminal)."""
    sip_port, http_port = free_port("udp"), free_tcp_port()
    out = log.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr", "--json-logs", "serve",
        "--sip", f"127.0.0.1:{sip_port}", "--http", f"127.0.0.1:{http_port}",
        "--data", str(data), "--flows", str(flows), "--rtp-ports", "45000-46000", *extra,
        cwd=ROOT, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out.close()
    for _ in range(300):
        try:
            status, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/health")
            if status == 200:
                return proc, sip_port, http_port
        except OSError:
            await asyncio.sleep(0.1)
    proc.kill()
    await proc.wait()
    raise AssertionError(f"engine did not become healthy:\n{log.read_text(errors='replace')}")


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children of each of its threads, recursively)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for kid in map(int, kids):
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
    return found


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (dead, waiting for its parent to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = re.search(r"^State:\s+(\S)", status, re.M)
    return state is not None and state.group(1) not in ("Z", "X")


async def _all_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = {p for p in pids if _running(p)}
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.1)


async def _job(db: Path, statuses: set[str], timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        jobs = await asyncio.to_thread(JobQueue(db).jobs)
        if jobs and jobs[0].status in statuses:
            return jobs[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no job in {statuses} after {timeout} s: {jobs}")
        await asyncio.sleep(0.1)


def _long_call(data: Path, seconds: float) -> tuple[Path, int]:
    """A stereo WAV of two people talking for ``seconds``, queued as the recorder does."""
    parts = [(i * 5.0, say(text)) for i, text in enumerate(SENTENCES * 4) if i * 5.0 < seconds]
    stereo = np.stack((place(seconds, *parts[0::2]), place(seconds, *parts[1::2])), axis=1)
    wav = write_wav(data / "long-call.wav", stereo)
    return wav, JobQueue(data / "callcore.db").enqueue(wav, "long-call", now=time.time())


def _log_events(log: Path, event: str) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if f'"{event}"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


async def test_serve_alone_transcribes_a_call_into_the_history(tmp_path: Path) -> None:
    flows, data, log = tmp_path / "flows", tmp_path / "data", tmp_path / "engine.log"
    flows.mkdir()
    (flows / "main.yaml").write_text(FLOW)
    (flows / "routes.yaml").write_text("default: main\n")
    # Whisper tiny.en hears this sentence's key words wherever it starts in the
    # recording (probed over 10 offsets); "I want to cancel my subscription"
    # came out as "... my encryption" or "... my time trip" at some offsets.
    speech = say("My internet is not working today")
    audio = place(12.0, (0.5, speech))
    run_dir = tmp_path / "sipp"
    run_dir.mkdir()
    write_pcap(run_dir / "flow_caller.pcap", rtp_packets(audio, "PCMU"))

    proc, sip_port, http_port = await _serve(data, flows, log, "--transcribe-workers", "1")
    try:
        health = await _json(http_port, "/health")
        workers = health["transcription"]
        assert workers["processes"] == 1 and len(workers["pids"]) == 1, health
        (worker_pid,) = workers["pids"]
        # niced below the engine: the calls' media keeps the CPU
        assert os.getpriority(os.PRIO_PROCESS, worker_pid) >= (
            os.getpriority(os.PRIO_PROCESS, proc.pid) + 10
        )
        sipp = Sipp(
            SCENARIOS / "uac_flow_rfc4733.xml",
            remote=f"127.0.0.1:{sip_port}",
            timeout=60,
            run_dir=run_dir,
            extra_args=["-key", "caller", "+14155550123"],
        )
        result = await sipp.run_async()  # the flow says goodbye and hangs up after ~10 s
        assert result.ok, result
        job = await _job(data / "callcore.db", {"done", "failed"}, 120)
        assert job.status == "done", job.errors
        assert job.worker is None and job.attempts == 1

        # the text record
        record = load_record(Path(job.result or ""))
        caller = [w for s in record.segments if s.speaker == "caller" for w in words_of(s.text)]
        agent = [w for s in record.segments if s.speaker == "agent" for w in words_of(s.text)]
        assert "internet" in caller and "working" in caller, record.segments
        # the IVR side: "Please press a key." then "Goodbye." (espeak-ng over PCMU)
        assert {"please", "key"} <= set(agent) and "internet" not in agent, record.segments
        assert record.call_id == job.call_id and record.metadata.channels == 2

        # the full-text search and the caller's timeline, over HTTP
        found = await _json(http_port, "/history/search?q=" + urllib.parse.quote("internet"))
        (hit,) = found["results"]
        assert (hit["channel"], hit["external_id"]) == ("voice", job.call_id)
        assert "[internet]" in hit["snippet"].lower()
        timeline = await _json(http_port, f"/history/contacts/{hit['contact_id']}/timeline")
        (voice,) = timeline["interactions"]
        assert voice["external_id"] == job.call_id and "internet" in voice["body"].lower()
        assert voice["meta"]["transcript"]["backend"].startswith("faster-whisper")
        assert "+14155550123" in json.dumps(timeline["contact"])

        # QA reads the transcript over HTTP, in each format; the access is audited
        quoted = urllib.parse.quote(job.call_id)
        base = f"http://127.0.0.1:{http_port}/recordings/{quoted}"
        status, vtt = await asyncio.to_thread(_get, base + "/transcript?format=vtt&by=qa-lee")
        assert status == 200 and vtt.startswith(b"WEBVTT") and b"internet" in vtt.lower()
        as_json = await _json(
            http_port, f"/recordings/{urllib.parse.quote(job.call_id)}/transcript"
        )
        assert as_json["call_id"] == job.call_id and as_json["segments"]
        for fmt, marker in (("srt", b"-->"), ("txt", b"internet")):
            status, body = await asyncio.to_thread(_get, f"{base}/transcript?format={fmt}")
            assert status == 200 and marker in body.lower(), (fmt, body[:200])
        with pytest.raises(urllib.error.HTTPError) as bad:
            await asyncio.to_thread(_get, base + "/transcript?format=doc")
        assert bad.value.code == 400 and b"json, txt, vtt, srt" in bad.value.read()
        audit = await _json(
            http_port, f"/recordings/audit?subject={urllib.parse.quote(job.call_id)}"
        )
        assert any(
            e["event"] == "recording.access"
            and e["details"] == {"what": "transcript"}
            and e["actor"] == "qa-lee"
            for e in audit
        ), audit

        # /metrics: the queue as the supervisor last counted it (every 2 s)
        deadline = time.monotonic() + 10
        while await _metric(http_port, 'callcore_transcription_jobs{status="done"}') != 1.0:
            assert time.monotonic() < deadline, "the done job never reached /metrics"
            await asyncio.sleep(0.5)
        assert await _metric(http_port, "callcore_transcription_queue_depth") == 0.0
        assert await _metric(http_port, 'callcore_transcription_jobs{status="failed"}') == 0.0
        assert await _metric(http_port, "callcore_transcription_workers") == 1.0
        assert await _metric(http_port, "callcore_transcription_worker_restarts_total") == 0.0

        # Ctrl-C in the engine's terminal: SIGINT to its whole process group
        children = _descendants(proc.pid)
        assert worker_pid in children
        os.killpg(proc.pid, signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        left = await _all_gone(children, 10)
        assert not left, f"processes left behind by the engine: {left}"
        (stopped,) = _log_events(log, "transcription.workers_stopped")
        assert stopped["terminated"] == 0  # the idle worker exited when asked
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_killed_worker_is_restarted_and_its_job_completes(tmp_path: Path) -> None:
    flows, data, log = tmp_path / "flows", tmp_path / "data", tmp_path / "engine.log"
    flows.mkdir()
    data.mkdir()
    # a minute of two people talking: long enough to be killed mid-transcription
    _, job_id = _long_call(data, 60.0)
    db = data / "callcore.db"

    proc, _, http_port = await _serve(data, flows, log, "--transcribe-workers", "1")
    try:
        running = await _job(db, {"running", "done"}, 90)
        assert running.status == "running", "finished before it could be killed"
        (first_pid,) = (await _json(http_port, "/health"))["transcription"]["pids"]
        os.kill(first_pid, signal.SIGKILL)  # dies mid-transcription

        deadline = time.monotonic() + 30
        while True:
            state = (await _json(http_port, "/health"))["transcription"]
            if state["restarts"] == 1 and state["alive"] == 1:
                break
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.2)
        (second_pid,) = state["pids"]
        assert second_pid != first_pid and not _running(first_pid)
        assert state["last_exit"] == {"0": "killed by SIGKILL"}

        done = await _job(db, {"done", "failed"}, 240)
        assert done.id == job_id and done.status == "done", done.errors
        assert done.attempts == 2  # the killed attempt counts, the lease was not waited for
        assert "died: killed by SIGKILL" in done.errors[0], done.errors
        record = load_record(Path(done.result or ""))
        caller = {w for s in record.segments if s.speaker == "caller" for w in words_of(s.text)}
        agent = {w for s in record.segments if s.speaker == "agent" for w in words_of(s.text)}
        assert {"subscription", "agent", "package"} <= caller, caller
        assert {"calling", "line", "invoice"} <= agent, agent

        (died,) = _log_events(log, "transcription.worker_died")
        assert died["pid"] == first_pid and died["exit"] == "killed by SIGKILL"
        assert died["jobs_requeued"] == [job_id] and died["restart_in"] == 1.0
        (restarted,) = _log_events(log, "transcription.worker_restarted")
        assert restarted["pid"] == second_pid
        deadline = time.monotonic() + 10
        while await _metric(http_port, "callcore_transcription_worker_restarts_total") != 1.0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.5)

        # the engine killed outright: its workers do not outlive it
        children = _descendants(proc.pid)
        assert second_pid in children
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        left = await _all_gone(children, 10)
        assert not left, f"processes left behind by the killed engine: {left}"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigterm_mid_job_stops_the_worker_and_gives_the_job_back(tmp_path: Path) -> None:
    flows, data, log = tmp_path / "flows", tmp_path / "data", tmp_path / "engine.log"
    flows.mkdir()
    data.mkdir()
    _, job_id = _long_call(data, 240.0)  # four minutes: still busy when the engine stops
    db = data / "callcore.db"
    proc, _, _ = await _serve(
        data, flows, log, "--transcribe-workers", "1", env={"CALLCORE_SHUTDOWN_GRACE": "0.5"}
    )
    try:
        running = await _job(db, {"running", "done"}, 90)
        assert running.status == "running", "finished before the engine was stopped"
        children = _descendants(proc.pid)
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        took = time.monotonic() - stopping
        left = await _all_gone(children, 10)
        assert not left, f"processes left behind by the engine: {left}"
        job = JobQueue(db).get(job_id)
        # given back: queued for the next start, the interrupted attempt not counted
        assert (job.status, job.attempts, job.worker) == ("queued", 0, None), job
        assert "stopped with the engine mid-job" in (job.last_error or ""), job.errors
        (terminated,) = _log_events(log, "transcription.worker_terminated")
        assert terminated["pid"] in children
        print(f"engine stopped in {took:.2f} s with its worker mid-job")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
