"""Secure pause (PCI DSS) on real calls: key presses never reach the recording.

* A flow pauses the recording, gathers a card number, resumes: a SIPp caller
  keys the number as in-band tones (PCMU, no telephone-event) inside the
  pause and one more key after it. The flow gets every digit (it checks the
  number), the recording's audio holds no tone inside the pause (Goertzel
  finds only the key pressed after it) and silence on both channels there;
  the metadata row, the call's digit log and the transcription context
  show the card digits masked; speech after the resume is recorded.
* An agent (baresip) bridged by the ACD pauses through the API (by agent
  name) and the call is resumed by call id: while paused the caller's RFC
  4733 key is not relayed, its in-band key tone and speech reach the agent
  as silence; after it both kinds of key and the speech get through. The
  API's refusals (409, 404, 400) name the problem.
"""

from __future__ import annotations

import asyncio
import struct
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.app import Engine
from media.dtmf.inband import InbandDtmfDetector
from media.dtmf.rfc4733 import TelephoneEventSender
from media.g711 import alaw_encode
from media.prompts.tones import dtmf_tone
from recordings.jobs import JobQueue
from recordings.metadata import RecordingMeta
from recordings.store import RecordingStore
from tests.conftest import engine_config, recordings_finished
from tests.peers.baresip import read_wav
from tests.peers.sipp import Sipp
from tests.rtp_pcap import rtp_packets, write_pcap
from tests.speech import place, say
from tests.test_acd_real_calls import Desk, _until, desk_factory  # noqa: F401 (fixture)
from tests.test_engine_sipp import _best_correlation

SCENARIOS = Path(__file__).parent / "scenarios"
RATE = 8000
pytestmark = pytest.mark.peer

PAY_FLOW = """\
flow: pay
start: intro
nodes:
  intro: {type: say, text: Payment line., next: secure}
  secure: {type: recording, action: pause, reason: card number, next: card}
  card:
    type: gather
    prompt: Enter your card number, then the hash key.
    variable: card
    max_length: 16
    timeout: 15
    next: unsecure
    no_input: unsecure
  unsecure: {type: recording, action: resume, next: check}
  check: {type: if, condition: "card == '4111'", then: confirm, else: bad}
  confirm:
    type: menu
    prompt: Press 1 to confirm.
    options: {"1": done}
    timeout: 15
    retries: 0
    no_input: done
  done:
    type: gather
    prompt: Thank you.
    variable: rest
    timeout: 30
    next: bye
    no_input: bye
  bad: {type: hangup, prompt: Wrong card.}
  bye: {type: hangup}
"""


def goertzel_digits(pcm: np.ndarray) -> list[tuple[float, str]]:
    """(time, digit) of every key press in ``pcm`` (the engine's Goertzel detector,
    fed 100 ms at a time as the media session does)."""
    detector = InbandDtmfDetector()
    found = []
    step = RATE // 10
    for i in range(0, len(pcm), step):
        found += [((i + step) / RATE, d) for d in detector.feed(pcm[i : i + step])]
    return found


def _keys(digits: str, at: float) -> tuple[float, np.ndarray]:
    parts = []
    for digit in digits:
        parts += [dtmf_tone(digit, 80), np.zeros(int(0.17 * RATE), dtype=np.int16)]
    return at, np.concatenate(parts)


@pytest.fixture
async def pay_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "pay.yaml").write_text(PAY_FLOW)
    (flows / "routes.yaml").write_text("default: pay\n")
    eng = Engine(engine_config(tmp_path, flows_dir=flows))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


async def _row(engine: Engine) -> RecordingMeta:
    # The storage process marks the row complete, then tells its listeners
    # (transcription queue, history): wait for the whole operation.
    await recordings_finished(engine)
    store = RecordingStore(engine.config.data_dir / "callcore.db")
    for _ in range(100):
        rows = store.list()
        if rows and rows[0].status == "complete":
            return rows[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no finished recording: {store.list()}")


async def test_flow_pause_keeps_card_digits_out_of_recording_and_records(
    pay_engine: Engine, tmp_path: Path
) -> None:
    engine = pay_engine
    after = say("Thank you, that was my card number. Goodbye now.")
    audio = place(13.0, _keys("4111#", 5.0), _keys("1", 8.5), (9.6, after))
    assert [d for _, d in goertzel_digits(audio)] == list("4111#1")  # what the caller keys
    run_dir = tmp_path / "sipp"
    run_dir.mkdir()
    write_pcap(run_dir / "inband.pcap", rtp_packets(audio, "PCMU"))
    sipp = Sipp(
        SCENARIOS / "uac_inband.xml",
        remote=f"{engine.sip.host}:{engine.sip.port}",
        pause_ms=13_500,
        timeout=60,
        run_dir=run_dir,
    )
    result = await sipp.run_async()
    assert result.ok, result.summary()
    row = await _row(engine)

    # The flow had the digits: it matched the card number and took the menu key.
    nodes = [s["node"] for s in row.flow_path]
    assert nodes == ["intro", "secure", "card", "unsecure", "check", "confirm", "done"]
    # One pause span, by the flow, from the end of the intro to just after "#".
    (span,) = row.pauses
    assert (span["by"], span["reason"]) == ("flow", "card number")
    card_at = next(s["at"] for s in row.flow_path if s["node"] == "card")
    confirm_at = next(s["at"] for s in row.flow_path if s["node"] == "confirm")
    assert abs(span["start"] - card_at) < 0.1 and 0.3 < span["start"] < 4.5
    assert 6.0 < span["end"] < confirm_at + 0.3, (span, confirm_at)

    with wave.open(row.path) as w:
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    left = stereo[:, 0]
    # Goertzel finds the key pressed after the pause, and nothing inside it.
    heard = goertzel_digits(left)
    assert [d for _, d in heard] == ["1"], heard
    assert heard[0][0] > span["end"]
    inside = stereo[int(span["start"] * RATE) : int(span["end"] * RATE)]
    assert len(inside) > 4 * RATE and not inside.any()  # silence, both channels
    # Before and after the span the recording is live: prompts right, speech left.
    assert np.abs(stereo[: int(span["start"] * RATE), 1]).max() > 1000
    assert _best_correlation(after[: 2 * RATE], left[int(span["end"] * RATE) :]) > 0.9

    # The records: masked inside the span, the menu key as it was.
    assert [(d["digit"], d["masked"], d["source"]) for d in row.dtmf] == [
        *[("*", True, "inband")] * 5,
        ("1", False, "inband"),
    ]
    assert engine.calls is not None
    (info,) = engine.calls.finished_calls
    assert "".join(d for _, d, _ in info.digits) == "*****1"
    (job,) = JobQueue(engine.config.data_dir / "callcore.db").jobs()
    assert [d["digit"] for d in job.context["dtmf"]] == list("*****1")
    assert job.context["pauses"] == [
        {"start": span["start"], "end": span["end"], "reason": "card number"}
    ]


# --------------------------------------------------------------- agent leg
def _caller_packets(
    audio: np.ndarray, events: list[tuple[float, str]], ptime: int = 20
) -> list[tuple[float, bytes]]:
    """PCMA RTP of ``audio``, with RFC 4733 key presses (payload type 101, 120 ms
    each) in place of the audio from each ``(time, digit)`` on."""
    samples = 8 * ptime
    slots: dict[int, tuple[bool, int, bytes]] = {}
    for at, digit in events:
        first = int(at * 1000) // ptime
        for k, packet in enumerate(TelephoneEventSender(ptime).packets(digit, 120)):
            slots[first + k] = (packet.marker, first * samples, packet.payload)
    out = []
    for i in range(len(audio) // samples):
        if i in slots:
            marker, stamp, payload = slots[i]
            header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 101, i, stamp, 0x51)
        else:
            payload = alaw_encode(audio[i * samples : (i + 1) * samples])
            header = struct.pack("!BBHII", 0x80, 8, i, i * samples, 0x51)
        out.append((i * ptime / 1000, header + payload))
    return out


async def test_agent_hears_no_keys_and_gets_no_events_while_paused(
    desk_factory: Callable[..., Any],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    desk: Desk = await desk_factory()
    acd = desk.acd
    await desk.state("ann", "ready")
    before = say("Hello, I would like to pay my bill by card please.")
    during = say("My card number is four one one one, and the code is seven.")
    after = say("Thank you, that is all for today, goodbye.")
    audio = place(
        25.0,
        (3.0, before),
        (10.0, dtmf_tone("3", 120)),
        (12.0, during[: int(2.5 * RATE)]),
        (19.0, dtmf_tone("7", 120)),
        (20.0, after),
    )
    run_dir = tmp_path / "caller"
    run_dir.mkdir()
    write_pcap(run_dir / "caller.pcap", _caller_packets(audio, [(11.0, "2"), (18.0, "9")]))
    assert desk.engine.sip is not None
    sipp = Sipp(
        SCENARIOS / "uac_events_bye.xml",
        remote=f"127.0.0.1:{desk.engine.sip.port}",
        service="6000",
        pause_ms=25_500,
        timeout=60,
        run_dir=run_dir,
    )
    run = await sipp.start_async()
    call_id = await _until(lambda: next(iter(acd.answered), None), 15, "the caller bridged")

    async def position() -> float:
        status, body = await desk.http("GET", f"/calls/{call_id}/recording")
        assert status == 200, body
        return float(body["seconds"])

    assert await position() < 7.5, "bridged too late for the test's timeline"
    while await position() < 8.0:
        await asyncio.sleep(0.02)
    status, body = await desk.http("POST", "/acd/agents/ann/recording/pause", {"reason": "card"})
    assert status == 200 and body["span"]["by"] == "agent:ann", body
    # Refusals name the problem; the pause in force is untouched.
    status, body = await desk.http("POST", f"/calls/{call_id}/recording/pause")
    assert status == 409 and "already paused (by agent:ann)" in body["error"]
    status, body = await desk.http("POST", "/calls/nope/recording/resume")
    assert status == 404 and body["error"] == "no call 'nope' is being recorded"
    status, body = await desk.http("POST", "/acd/agents/zed/recording/pause")
    assert status == 404 and body["error"] == "agent 'zed' is not on a call"
    status, body = await desk.http("POST", f"/calls/{call_id}/recording/resume", [1])
    assert status == 400 and body["error"] == "body must be a JSON object"
    while await position() < 16.0:
        await asyncio.sleep(0.02)
    status, body = await desk.http("POST", f"/calls/{call_id}/recording/resume")
    assert status == 200 and body["paused"] is False, body
    result = await run.wait(40)
    assert result.ok, result.summary()
    await asyncio.to_thread(desk.agent.wait_for_event, "CALL_CLOSED", 10)
    await asyncio.sleep(0.5)

    # The agent's phone: only the key pressed after the pause, as an event and as audio.
    keys = [e.get("param") for e in desk.agent.events if e.get("type") == "CALL_DTMF_START"]
    assert keys == ["9"], keys
    assert desk.agent.received_wav is not None
    heard, _ = read_wav(desk.agent.received_wav)
    assert [d for _, d in goertzel_digits(heard)] == ["7"]
    assert _best_correlation(before[: 2 * RATE], heard) > 0.9
    assert _best_correlation(after[: 2 * RATE], heard) > 0.9
    assert _best_correlation(during[: 2 * RATE], heard) < 0.3  # silence instead

    # The recording and its row: the same pause, silence inside it, digits masked.
    row = await _row(desk.engine)
    (span,) = row.pauses
    assert (span["by"], span["reason"]) == ("agent:ann", "card")
    assert 7.9 < span["start"] < 8.5 and 16.0 < span["end"] < 16.6, span
    with wave.open(row.path) as w:
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert not stereo[int(span["start"] * RATE) : int(span["end"] * RATE)].any()
    assert [d for _, d in goertzel_digits(stereo[:, 0])] == ["7"]
    assert [(d["digit"], d["masked"]) for d in row.dtmf] == [("*", True), ("9", False)]
    assert (row.agent, row.queue, row.disposition) == ("ann", "help", "agent")
