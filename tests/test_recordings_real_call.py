"""A real softphone (baresip) speaks to the engine; the call's stereo recording is
queued through the recorder's hook and transcribed: the caller's words come out
on the caller side, the engine's greeting on the agent/IVR side.

The recording is the recorder's per-call stereo WAV in DATA/recordings/ (left:
what the caller sent, right: what the engine sent); the engine's recorder
already queued it (recordings.jobs), so the hook called again here must give
the same job.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from engine.app import Engine
from recordings.jobs import JobQueue
from recordings.stt import WhisperTranscriber
from recordings.textrecord import load_record
from recordings.worker import WorkerConfig, process_next, recording_finished
from tests.peers.baresip import Baresip
from tests.speech import place, say, words_of, write_wav

pytestmark = pytest.mark.peer


def _call(target: str, source: Path) -> None:
    with Baresip(source_wav=source, duration=30) as phone:
        phone.dial(target)
        phone.wait_for_event(lambda e: e.get("type") == "CALL_ESTABLISHED", 10)
        time.sleep(7.0)  # the caller's sentence ends at ~4 s, the greeting at ~3.2 s
        phone.hangup()
        phone.wait_for_event(lambda e: e.get("type") == "CALL_CLOSED", 10)


def _recording(data: Path, call_id: str) -> Path:
    for folder in ("recordings", "captures"):
        found = sorted(p for p in (data / folder).rglob("*.wav") if call_id in p.name)
        if found:
            return found[0]
    raise AssertionError(f"no recording of {call_id} under {data}")


async def test_baresip_caller_is_transcribed_on_the_caller_side(
    engine: Engine, tmp_path: Path
) -> None:
    source = write_wav(
        tmp_path / "caller.wav",
        # The embedded Whisper model heard "I want to cancel my subscription" as
        # "... my encryption" or "... time trip" at some 20 ms shifts of where the
        # call's audio starts; this sentence came out right at 40 of 40 shifts.
        place(5.0, (0.8, say("I want to cancel my internet subscription"))),
    )
    target = f"sip:ivr@{engine.sip.host}:{engine.sip.port}"
    await asyncio.to_thread(_call, target, source)
    assert engine.calls is not None
    calls = engine.calls.finished_calls
    assert len(calls) == 1
    call_id = calls[0].call_id
    await asyncio.sleep(0.5)  # the capture is closed as the call ends
    data = engine.config.data_dir
    wav = _recording(data, call_id)

    job_id = recording_finished(
        data,
        wav,
        call_id,
        now=time.time(),
        context={"metadata": {"caller": calls[0].caller, "called": calls[0].callee}},
    )
    cfg = WorkerConfig(data_dir=data, history=None)
    job = await asyncio.to_thread(
        process_next, JobQueue(data / "callcore.db"), WhisperTranscriber(), "test", cfg
    )
    assert job is not None and job.id == job_id
    assert job.status == "done", job.errors
    record = load_record(Path(job.result or ""))
    caller = [w for s in record.segments if s.speaker == "caller" for w in words_of(s.text)]
    agent = [w for s in record.segments if s.speaker == "agent" for w in words_of(s.text)]
    assert "cancel" in caller and "subscription" in caller, record.segments
    # the greeting, "Welcome to the call core demo. Please press a key." (espeak over PCMU)
    assert "welcome" in agent and "please" in agent, record.segments
    assert "subscription" not in agent and "welcome" not in caller
    assert record.metadata.channels == 2 and record.metadata.rate == 8000
    assert record.metadata.caller == calls[0].caller
    first_caller = next(s for s in record.segments if s.speaker == "caller")
    assert 0.2 <= first_caller.start <= 3.0  # spoken from 0.8 s (Whisper times are rough)
    assert np.isclose(record.metadata.duration, record.summary.duration)
