"""Two media sessions bridged on virtual time: re-coding, timing, bounds, digits.

Real RTP packets (built with the engine's own header code) go into a caller
session that negotiated PCMA and an agent session that negotiated PCMU; each
tick runs the two phases as the shared media clock does (every session sends,
then every session plays out); what each session hands to its ``send_rtp``
is parsed back and decoded.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from media.bridge import AudioPipe, Bridge, transcode_table
from media.dtmf.rfc4733 import TelephoneEventReceiver
from media.g711 import PCMA, PCMU, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.prompts.tones import tone
from media.rtp.packet import RtpPacket, rtp_header
from media.sdp import SessionDescription, negotiate
from media.session import MediaSession, MediaTotals

CALLER = ("127.0.0.1", 40000)
AGENT = ("127.0.0.1", 40100)


def _offer(pt: int, name: str, te: bool) -> bytes:
    formats = f"{pt} 101" if te else f"{pt}"
    text = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio 4000 RTP/AVP {formats}\r\na=rtpmap:{pt} {name}/8000\r\n"
    )
    if te:
        text += "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    return text.encode()


class Leg:
    """A session with what it sent, and a far end feeding it packets."""

    def __init__(self, pt: int, name: str, peer: tuple[str, int], *, te: bool = True) -> None:
        media = negotiate(
            SessionDescription.parse(_offer(pt, name, te)),
            local_address="127.0.0.1",
            local_port=30000,
            session_id=1,
            session_version=1,
        )
        self.sent: list[RtpPacket] = []
        self.peer = peer
        self.pt = pt
        self.seq = 0
        self.session = MediaSession(
            media=media,
            send_rtp=lambda data, addr: self.sent.append(RtpPacket.parse(data)),
            send_rtcp=lambda data, addr: None,
            rng=random.Random(pt),
            totals=MediaTotals(),
            on_digit=lambda digit, source: None,
            on_playback=lambda event: None,
            jitter_ms=20,
        )

    def feed(self, payload: bytes, now: float) -> None:
        samples = len(payload)
        header = rtp_header(self.pt, self.seq == 0, self.seq, self.seq * samples, 0x1234 + self.pt)
        self.session.receive_rtp(header + payload, self.peer, now)
        self.seq += 1

    def audio(self) -> np.ndarray:
        decode = alaw_decode if self.pt == 8 else ulaw_decode
        frames = [decode(p.payload) for p in self.sent if p.payload_type == self.pt]
        return np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)


def _tick(legs: list[Leg], now: float) -> None:
    for leg in legs:
        leg.session.tick(now)
    for leg in legs:
        leg.session.after_tick(now)


def test_transcode_tables_are_the_g711_decode_of_one_law_encoded_in_the_other() -> None:
    every = bytes(range(256))
    u_to_a = transcode_table("PCMU", "PCMA")
    a_to_u = transcode_table("PCMA", "PCMU")
    assert u_to_a == alaw_encode(ulaw_decode(every))
    assert a_to_u == ulaw_encode(alaw_decode(every))
    # Re-coding moves a sample by less than the A-law step at its level (<= 1/16 of it).
    there = alaw_decode(every.translate(u_to_a)).astype(int)
    here = ulaw_decode(every).astype(int)
    assert np.all(np.abs(there - here) <= np.maximum(16, np.abs(here) // 16))


def test_pipe_hands_out_what_came_in_whatever_the_frame_sizes() -> None:
    pipe = AudioPipe(max_ms=80)
    data = bytes(np.random.default_rng(1).integers(0, 256, 240 * 20, dtype=np.uint8))
    out = bytearray()
    for i in range(20):  # 30 ms in, 20 ms out (SIPp's pcap against a 20 ms phone)
        pipe.push(data[i * 240 : (i + 1) * 240], PCMA)
        while (frame := pipe.pull(160, PCMA)) is not None:
            out += frame
    assert bytes(out) == data[: len(out)] and len(data) - len(out) < 160
    assert pipe.dropped == 0 and pipe.pulled == len(out)


def test_pipe_keeps_latency_bounded_by_dropping_the_oldest() -> None:
    pipe = AudioPipe(max_ms=80)
    frames = [bytes([i]) * 160 for i in range(10)]
    for frame in frames:
        pipe.push(frame, PCMU)  # nobody pulls: the other leg has not latched yet
    assert len(pipe) == 640 and pipe.dropped == 6 * 160
    assert pipe.pull(160, PCMU) == frames[6]
    assert pipe.pull(160, PCMA) == frames[7].translate(transcode_table("PCMU", "PCMA"))
    pipe.push(b"\x01" * 160, PCMA)  # the source changed codec: what was buffered goes
    assert len(pipe) == 160 and pipe.pull(160, PCMA) == b"\x01" * 160


def test_bridged_sessions_carry_each_others_audio_recoded() -> None:
    caller = Leg(8, "PCMA", CALLER)
    agent = Leg(0, "PCMU", AGENT)
    bridge = Bridge(caller.session, agent.session)
    voice = tone([440], 2000, -12.0)  # the caller
    answer = tone([1300], 2000, -12.0)  # the agent
    for i in range(100):
        now = i * 0.02
        caller.feed(alaw_encode(voice[i * 160 : (i + 1) * 160]), now)
        agent.feed(ulaw_encode(answer[i * 160 : (i + 1) * 160]), now)
        _tick([caller, agent], now)
    to_agent, to_caller = agent.audio(), caller.audio()
    assert len(to_agent) >= 90 * 160 and len(to_caller) >= 90 * 160
    # After the jitter buffer and one tick, each side hears the other, re-coded.
    for heard, said in ((to_agent, voice), (to_caller, answer)):
        start = next(i for i in range(len(heard)) if abs(int(heard[i])) > 100)
        assert start <= 4 * 160
        segment = heard[start : start + 80 * 160].astype(float)
        reference = said[: len(segment)].astype(float)
        best = max(
            np.dot(segment, np.roll(reference, k))
            / (np.linalg.norm(segment) * np.linalg.norm(reference))
            for k in range(-40, 41)
        )
        assert best > 0.99
    bridge.close()
    assert caller.session.relay_in is None and agent.session.relay_out is None
    sent = len(agent.sent)
    caller.feed(alaw_encode(voice[:160]), 2.0)
    _tick([caller, agent], 2.0)
    assert len(agent.sent) == sent + 1 and not np.any(ulaw_decode(agent.sent[-1].payload))


def test_the_players_prompt_wins_over_bridged_audio() -> None:
    caller = Leg(8, "PCMA", CALLER)
    agent = Leg(0, "PCMU", AGENT)
    Bridge(caller.session, agent.session)
    beep = tone([1000], 100, -10.0)
    agent.session.player.enqueue(beep)  # e.g. a whisper to the agent before the caller
    for i in range(12):
        caller.feed(alaw_encode(tone([440], 20, -12.0)), i * 0.02)
        agent.feed(ulaw_encode(np.zeros(160, dtype=np.int16)), i * 0.02)
        _tick([caller, agent], i * 0.02)
    heard = agent.audio()
    assert np.array_equal(heard[:800], ulaw_decode(ulaw_encode(beep)))


def test_digits_relayed_as_rfc4733_events() -> None:
    caller = Leg(8, "PCMA", CALLER)
    agent = Leg(0, "PCMU", AGENT)
    bridge = Bridge(caller.session, agent.session)
    for i in range(5):
        caller.feed(alaw_encode(np.zeros(160, dtype=np.int16)), i * 0.02)
        agent.feed(ulaw_encode(np.zeros(160, dtype=np.int16)), i * 0.02)
        _tick([caller, agent], i * 0.02)
    before = len(agent.sent)
    assert bridge.relay_digit("5")
    assert bridge.relay_digit("#")
    for i in range(5, 40):
        agent.feed(ulaw_encode(np.zeros(160, dtype=np.int16)), i * 0.02)
        _tick([caller, agent], i * 0.02)
    packets = agent.sent[before:]
    events = [p for p in packets if p.payload_type == 101]
    # 120 ms = 5 updates + 3 end packets per key, each in its own 20 ms slot.
    assert len(events) == 16 and all(p.payload_type == 101 for p in packets[:16])
    assert [p.marker for p in events] == [True] + [False] * 7 + [True] + [False] * 7
    assert (
        len({p.timestamp for p in events[:8]}) == 1 and len({p.timestamp for p in events[8:]}) == 1
    )
    assert [p.payload[1] >> 7 for p in events[:8]] == [0] * 5 + [1] * 3
    receiver = TelephoneEventReceiver()
    digits = [e.digit for p in events for e in receiver.feed(p, 0.0)]
    assert digits == ["5", "#"]
    audio_after = packets[16]
    assert audio_after.payload_type == 0 and audio_after.marker  # a new talkspurt
    seqs = [p.sequence_number for p in packets]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert bridge.digits_relayed == 2


def test_no_events_to_a_leg_without_telephone_event() -> None:
    caller = Leg(8, "PCMA", CALLER)
    agent = Leg(0, "PCMU", AGENT, te=False)
    bridge = Bridge(caller.session, agent.session)
    assert not bridge.relay_digit("5")
    with pytest.raises(ValueError, match="not a DTMF digit"):
        caller.session.send_digit("x")
