"""Transcription workers: real processes, a real SQLite queue, real WAVs of espeak-ng speech."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from recordings.jobs import Job, JobQueue
from recordings.textrecord import load_record
from recordings.worker import TranscriptionWorkers, WorkerConfig, recording_finished
from tests.speech import place, say, words_of, write_wav


class JsonlHistory:
    """A history store for the test: one JSON line per attached transcript, in a file."""

    def __init__(self, db_path: Path) -> None:
        self.file = db_path.parent / "history.jsonl"

    def attach_transcript(self, call_id: str, text_record: dict[str, Any]) -> None:
        with self.file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"call_id": call_id, "record": text_record}) + "\n")


def _wait(queue: JobQueue, job_id: int, statuses: set[str], timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = queue.get(job_id)
        if job.status in statuses or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


SENTENCES = [
    "I want to cancel my subscription",
    "Thank you for calling, how can I help you today",
    "I would like to speak to an agent",
    "Please stay on the line",
    "I need to change my delivery address",
    "Can you send me the invoice by email",
    "The package never arrived at my house",
    "Is there a fee for early termination",
    "I paid the bill last Monday",
    "Have a nice day, goodbye",
    "Please transfer me to the billing department",
    "My order number is seven four two",
]


def _call_wav(path: Path) -> Path:
    caller = place(9.0, (0.3, say("I want to cancel my subscription")))
    agent = place(9.0, (4.0, say("Thank you for calling, how can I help you today")))
    return write_wav(path, np.stack((caller, agent), axis=1))


def test_workers_transcribe_queued_calls_and_fail_bad_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rec_dir = data / "recordings"
    rec_dir.mkdir(parents=True)
    good = _call_wav(rec_dir / "call-1.wav")
    bad = rec_dir / "call-2.wav"
    bad.write_bytes(b"RIFF....WAVEgarbage")
    context = {
        "metadata": {"caller": "1001", "called": "5000", "started_at": "2025-03-04T10:00:00+00:00"},
        "dtmf": [{"at": 2.0, "digit": "3", "source": "rfc4733"}],
    }
    now = time.time()
    good_id = recording_finished(data, good, "call-1", now=now, context=context)
    assert recording_finished(data, good, "call-1", now=now) == good_id  # hook fired twice
    queue = JobQueue(data / "callcore.db", max_attempts=2)
    bad_id = queue.enqueue(bad, "call-2", now=now)
    cfg = WorkerConfig(
        data_dir=data, backoff=0.5, poll=0.2, history="tests.test_recordings_worker:JsonlHistory"
    )
    with TranscriptionWorkers(cfg, processes=2) as workers:
        assert workers.alive() == 2
        for pid in workers.pids:  # niced below the engine
            assert os.getpriority(os.PRIO_PROCESS, pid) >= os.getpriority(os.PRIO_PROCESS, 0) + 10
        done = _wait(queue, good_id, {"done", "failed"}, 120)
        failed = _wait(queue, bad_id, {"failed"}, 60)
    assert done.status == "done", done.errors
    out = Path(done.result or "")
    assert out.parent.parent.parent.parent == data / "transcripts"
    record = load_record(out)
    caller = [w for s in record.segments if s.speaker == "caller" for w in words_of(s.text)]
    agent = [w for s in record.segments if s.speaker == "agent" for w in words_of(s.text)]
    assert "cancel" in caller and "subscription" in caller
    assert "thank" in agent and "calling" in agent
    assert record.metadata.caller == "1001" and record.metadata.recording == str(good)
    assert record.dtmf[0].digit == "3" and record.summary.first_speaker == "caller"
    assert record.transcription.backend.startswith("faster-whisper")
    for suffix in (".txt", ".vtt", ".srt"):
        assert out.with_suffix(suffix).stat().st_size > 0
    assert "caller: " in out.with_suffix(".txt").read_text()
    history = [json.loads(line) for line in (data / "history.jsonl").read_text().splitlines()]
    assert [h["call_id"] for h in history] == ["call-1"]
    assert history[0]["record"]["segments"] == json.loads(record.to_json())["segments"]
    # the corrupt file: retried, then failed, with the file named in every error
    assert failed.status == "failed" and failed.attempts == 2
    assert len(failed.errors) == 2
    assert all("WavError" in e and "call-2.wav" in e for e in failed.errors)


def test_a_killed_worker_job_is_taken_over_after_its_lease(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # three minutes of two people talking: long enough to be killed mid-transcription
    parts = [(i * 7.0, say(text)) for i, text in enumerate(SENTENCES * 2)]
    caller = place(180.0, *parts[0::2])
    agent = place(180.0, *parts[1::2])
    wav = write_wav(data / "long.wav", np.stack((caller, agent), axis=1))
    queue = JobQueue(data / "callcore.db")
    job_id = recording_finished(data, wav, "long-call", now=time.time())
    cfg = WorkerConfig(data_dir=data, lease=3.0, poll=0.2, history=None)
    first = TranscriptionWorkers(cfg, processes=1, name="doomed").start()
    try:
        running = _wait(queue, job_id, {"running", "done"}, 60)
        assert running.status == "running"
        os.kill(first.pids[0], signal.SIGKILL)  # dies mid-transcription
    finally:
        first.stop(timeout=5)
    assert queue.get(job_id).status == "running"  # still leased to the dead worker
    with TranscriptionWorkers(cfg, processes=1, name="rescuer"):
        done = _wait(queue, job_id, {"done", "failed"}, 180)
    assert done.status == "done", done.errors
    assert done.attempts == 2
    assert "doomed" in done.errors[0] and "expired" in done.errors[0]
    record = load_record(Path(done.result or ""))
    caller_words = {w for s in record.segments if s.speaker == "caller" for w in words_of(s.text)}
    agent_words = {w for s in record.segments if s.speaker == "agent" for w in words_of(s.text)}
    assert {"subscription", "agent", "package", "bill"} <= caller_words, caller_words
    assert {"calling", "line", "invoice", "goodbye"} <= agent_words, agent_words
    assert not {"subscription", "package"} & agent_words
    assert not {"invoice", "goodbye"} & caller_words


def test_transcript_lands_in_the_real_history_store(tmp_path: Path) -> None:
    from recordings.history import HistoryStore
    from recordings.stt import WhisperTranscriber
    from recordings.worker import find_history, process_next

    data = tmp_path / "data"
    data.mkdir()
    wav = _call_wav(data / "call-h.wav")
    context = {"metadata": {"caller": "+14155550123", "started_at": "2025-03-04T10:00:00+00:00"}}
    recording_finished(data, wav, "call-h", now=time.time(), context=context)
    cfg = WorkerConfig(data_dir=data)  # history="auto": recordings.history.open_history
    history = find_history(cfg.history, cfg.db_path)
    assert isinstance(history, HistoryStore)
    job = process_next(JobQueue(cfg.db_path), WhisperTranscriber(), "w", cfg, history=history)
    assert job is not None and job.status == "done", job and job.errors
    hits = HistoryStore(cfg.db_path).search("subscription")
    assert [h["external_id"] for h in hits] == ["call-h"]
    assert hits[0]["channel"] == "voice" and "[subscription]" in hits[0]["snippet"].lower()
