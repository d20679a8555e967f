"""Real calls are recorded: stereo WAV by date, and a metadata row from the flow driver.

* SIPp (uac_pcap) into a flow menu: the WAV is in ``recordings/YYYY/MM/DD/``,
  its left channel holds the speech of SIPp's g711a.pcap (what the caller
  sent), its right channel the menu prompt (what the engine sent); the row
  names the flow, its version digest, the path of nodes with times, the
  digit, the disposition; the recording is queued for transcription with
  that context.
* baresip (a real softphone) speaking espeak-ng sentences into the greeting
  application: left correlates with what baresip says it sent, right with
  the greeting, which baresip says it received.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from engine.app import Engine
from ivr.actions import SayText
from media.prompts.audio import load_audio
from recordings.jobs import JobQueue
from recordings.metadata import RecordingMeta
from recordings.store import RecordingStore
from tests.conftest import engine_config, recordings_finished
from tests.peers.baresip import Baresip, read_wav
from tests.peers.sipp import Sipp
from tests.speech import say, write_wav
from tests.test_engine_sipp import _best_correlation, _pcap_audio

FLOWS = Path(__file__).parent / "data" / "flows_sipp"
RATE = 8000
pytestmark = pytest.mark.peer


@pytest.fixture
async def flow_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = Engine(engine_config(tmp_path, flows_dir=FLOWS))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


def _stereo(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, RATE, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)


async def _finished_row(engine: Engine) -> RecordingMeta:
    # The storage process marks the row complete, then tells its listeners
    # (transcription queue, history): wait for the whole operation.
    await recordings_finished(engine)
    store = RecordingStore(engine.config.data_dir / "callcore.db")
    for _ in range(100):
        rows = store.list()
        if rows and rows[0].status != "recording":
            assert len(rows) == 1, rows
            return rows[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no finished recording row: {store.list()}")


async def test_sipp_call_into_a_flow_is_recorded_with_its_metadata(flow_engine: Engine) -> None:
    engine = flow_engine
    before = time.time()
    sipp = Sipp("uac_pcap", remote=f"{engine.sip.host}:{engine.sip.port}", service="5000")
    result = await sipp.run_async()
    assert result.ok, result.summary()
    row = await _finished_row(engine)
    day = datetime.fromtimestamp(row.started_at, UTC)
    path = Path(row.path)
    assert path.parent == engine.config.data_dir / "recordings" / f"{day:%Y/%m/%d}"
    assert path.name.endswith(".wav") and path.exists()
    assert before <= row.started_at <= time.time()
    stereo = _stereo(path)
    assert row.duration == pytest.approx(len(stereo) / RATE, abs=0.001)
    assert row.ended_at == pytest.approx(row.started_at + row.duration, abs=0.01)
    # uac_pcap: 7 s of speech, 8 s pause, digit 1, BYE while "You chose A" plays.
    assert 8.0 <= row.duration <= 20.0, row.duration
    assert _best_correlation(_pcap_audio()[: RATE * 5], stereo[:, 0]) > 0.9
    prompt = await engine.flow_app.prompts.speech(  # type: ignore[union-attr]
        SayText("Press 1 for A, or 2 for B.", "en")
    )
    assert _best_correlation(prompt.audio, stereo[:, 1]) > 0.9
    # What the caller sent is not in what it heard, and the other way round.
    assert _best_correlation(prompt.audio, stereo[:, 0]) < 0.3

    assert row.status == "complete" and row.caller.startswith("sip:sipp@")
    assert row.called.startswith("sip:5000@")
    assert row.flow == "menu" and row.flow_outcome == "caller_hangup"
    assert row.flow_version and len(row.flow_version) >= 12
    recent = engine.recent_calls(1)[0]["flow"]
    assert row.flow_version == recent["digest"]
    assert [s["node"] for s in row.flow_path] == ["menu", "a"]
    menu_at, a_at = (s["at"] for s in row.flow_path)
    assert -0.5 <= menu_at <= 0.5 and 7.0 <= a_at <= 16.0  # the digit comes ~8 s in
    assert [(d["digit"], d["source"], d["masked"]) for d in row.dtmf] == [("1", "rfc4733", False)]
    assert a_at - 1.0 <= row.dtmf[0]["at"] <= a_at
    assert row.disposition == "caller_hangup" and row.end_reason == "bye"
    assert row.queue is None and row.agent is None and row.pauses == []

    (job,) = JobQueue(engine.config.data_dir / "callcore.db").jobs()
    assert (job.recording, job.call_id) == (row.path, row.call_id)
    assert [s["node"] for s in job.context["ivr_path"]] == ["menu", "a"]
    assert job.context["metadata"]["outcome"] == "caller_hangup"


def _baresip_call(target: str, source: Path) -> tuple[np.ndarray, np.ndarray]:
    with Baresip(source_wav=source, duration=20) as phone:
        phone.dial(target)
        phone.wait_for_event(lambda e: e.get("type") == "CALL_ESTABLISHED", 10)
        time.sleep(6.0)
        phone.hangup()
        phone.wait_for_event(lambda e: e.get("type") == "CALL_CLOSED", 10)
        time.sleep(0.5)
        assert phone.sent_wav is not None and phone.received_wav is not None, phone.log
        sent, _ = read_wav(phone.sent_wav)
        heard, _ = read_wav(phone.received_wav)
    return np.asarray(sent), np.asarray(heard)


async def test_baresip_call_is_recorded_left_caller_right_engine(
    engine: Engine, tmp_path: Path
) -> None:
    speech = say("Hello, this is a softphone speaking into the recorder. Testing, one two three.")
    lead = np.zeros(RATE // 2, dtype=np.int16)
    source = write_wav(tmp_path / "speech.wav", np.concatenate([lead, speech]))
    target = f"sip:ivr@{engine.sip.host}:{engine.sip.port}"
    sent, heard = await asyncio.to_thread(_baresip_call, target, source)
    row = await _finished_row(engine)
    assert row.disposition == "ended" and row.flow is None  # the greeting application
    stereo = _stereo(Path(row.path))
    greeting = load_audio(engine.config.flows_dir / "prompts" / "greeting.wav")
    # The softphone's own dumps: it sent the speech and heard the greeting...
    assert _best_correlation(speech[: 3 * RATE], sent) > 0.9
    assert _best_correlation(greeting, heard) > 0.8
    # ...and the recording has them on the right sides.
    assert _best_correlation(speech[: 3 * RATE], stereo[:, 0]) > 0.9
    assert _best_correlation(greeting, stereo[:, 1]) > 0.9
    assert _best_correlation(greeting, stereo[:, 0]) < 0.3
    assert 5.0 <= row.duration <= 8.0, row.duration
