"""The engine's worker supervisor: back-off, exits in words, a model that does not load.

The end-to-end behaviour (a real engine process, a SIPp call, SIGKILL) is in
tests/test_recordings_engine_workers.py; here a real worker process whose vosk
model is damaged dies at every start and is started again with back-off.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from recordings.supervisor import Backoff, WorkerSupervisor, describe_exit
from recordings.worker import LOAD_FAILED, WorkerConfig


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(base=1.0, cap=300.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 9, 10, 50)] == [
        1.0, 2.0, 4.0, 8.0, 256.0, 300.0, 300.0,
    ]  # fmt: skip


def test_exits_in_words() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(LOAD_FAILED) == "exit code 3 (the model did not load)"
    assert describe_exit(None) == "still running"


async def test_a_missing_model_starts_no_worker_and_says_how_to_fix_it(tmp_path: Path) -> None:
    cfg = WorkerConfig(data_dir=tmp_path, backend="vosk", model_dir=tmp_path / "nowhere")
    supervisor = WorkerSupervisor(cfg, 2)
    await supervisor.start()
    assert supervisor.pids == [] and supervisor.alive() == 0
    assert supervisor.error == (
        f"vosk model {tmp_path / 'nowhere'}: no such folder; set CALLCORE_VOSK_MODEL to a model"
    )
    await supervisor.stop()


async def test_a_worker_that_cannot_load_its_model_is_restarted_with_backoff(
    tmp_path: Path,
) -> None:
    model = tmp_path / "broken-model"  # looks like a vosk model, does not load
    (model / "am").mkdir(parents=True)
    (model / "am" / "final.mdl").write_bytes(b"not a model")
    data = tmp_path / "data"
    registry = CollectorRegistry()
    supervisor = WorkerSupervisor(
        WorkerConfig(data_dir=data, backend="vosk", model_dir=model, nice=0),
        1,
        registry=registry,
        backoff=Backoff(base=0.5, cap=1.0),
        poll=0.1,
    )
    await supervisor.start()
    try:
        deadline = time.monotonic() + 90
        while supervisor.restarts < 2:
            assert time.monotonic() < deadline, supervisor.status()
            await asyncio.sleep(0.1)
        status = supervisor.status()
        assert status["last_exit"] == {0: "exit code 3 (the model did not load)"}
        assert len(supervisor._slots[0].pids) >= 3  # three processes, one after the other
        assert "failed to load" in (supervisor._slots[0].last_error or "")
        text = generate_latest(registry).decode()
        assert "callcore_transcription_worker_restarts_total 2.0" in text or (
            "callcore_transcription_worker_restarts_total 3.0" in text
        )
    finally:
        await supervisor.stop(grace=1.0)
    assert supervisor.pids == [] and supervisor.alive() == 0


def test_commands_refuse_a_missing_model_with_the_fix(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "CALLCORE_VOSK_MODEL": ""}
    ivr = [sys.executable, "-m", "ivr"]
    serve = subprocess.run(
        [*ivr, "serve", "--data", str(tmp_path / "d"), "--flows", str(tmp_path),
         "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0", "--transcribe-backend", "vosk"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert serve.returncode == 1 and "Traceback" not in serve.stderr, serve.stderr
    assert "Error: cannot start the transcription workers: vosk backend: no model folder" in (
        serve.stderr
    )
    assert "(or run without them: --transcribe-workers 0)" in serve.stderr
    workers = subprocess.run(
        [*ivr, "transcribe-workers", "--data", str(tmp_path / "d"), "--backend", "vosk",
         "--model", str(tmp_path / "nowhere")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert workers.returncode == 1 and "Traceback" not in workers.stderr, workers.stderr
    assert f"Error: vosk model {tmp_path / 'nowhere'}: no such folder" in workers.stderr
    bad = subprocess.run(
        [*ivr, "serve", "--data", str(tmp_path / "d"), "--flows", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
        env={**env, "CALLCORE_TRANSCRIBE_WORKERS": "-1"},
    )  # fmt: skip
    assert bad.returncode == 1 and "CALLCORE_TRANSCRIBE_WORKERS=-1: give 0 (none) or more" in (
        bad.stderr
    )
