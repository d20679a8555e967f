"""The per-call media pipeline on virtual time, with real packets and prompts."""

from __future__ import annotations

import itertools
import random

import numpy as np

from media.capture import CallCapture
from media.dtmf.rfc4733 import TelephoneEventSender
from media.g711 import alaw_encode
from media.prompts.player import PlaybackFinished, Prompt
from media.prompts.tones import tone
from media.rtp.packet import RtpPacket, rtp_header
from media.sdp import SessionDescription, negotiate
from media.session import MediaSession, MediaTotals

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
)
PEER = ("127.0.0.1", 40000)


class Sink:
    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.closed = False

    def write(self, block: np.ndarray) -> None:
        self.blocks.append(block)

    def close(self) -> None:
        self.closed = True


def _session() -> tuple[MediaSession, list[tuple[bytes, tuple[str, int]]], list[str], Sink]:
    media = negotiate(
        SessionDescription.parse(OFFER),
        local_address="127.0.0.1",
        local_port=30000,
        session_id=1,
        session_version=1,
    )
    sent: list[tuple[bytes, tuple[str, int]]] = []
    digits: list[str] = []
    sink = Sink()
    session = MediaSession(
        media=media,
        send_rtp=lambda data, addr: sent.append((data, addr)),
        send_rtcp=lambda data, addr: None,
        rng=random.Random(1),
        totals=MediaTotals(),
        on_digit=lambda digit, source: digits.append(digit),
        on_playback=lambda event: None,
        capture=CallCapture([sink], flush_samples=800),
        jitter_ms=40,
    )
    return session, sent, digits, sink


def _tick(session: MediaSession, now: float, skipped: int = 0) -> None:
    """What the media clock does for one stream: send phase, then the rest."""
    session.tick(now, skipped)
    session.after_tick(now)


def test_nothing_is_sent_before_the_peer_latches() -> None:
    session, sent, _, _ = _session()
    for i in range(10):
        _tick(session, i * 0.02)
    assert sent == []  # the SDP said 192.0.2.9: never trusted before media flows
    audio = tone([1000], 200)
    for i in range(10):
        payload = alaw_encode(audio[i * 160 : (i + 1) * 160])
        session.receive_rtp(
            rtp_header(8, i == 0, 100 + i, 160 * i, 7) + payload, PEER, 1.0 + i * 0.02
        )
        _tick(session, 1.0 + i * 0.02)
    assert sent and {addr for _, addr in sent} == {PEER}
    first = RtpPacket.parse(sent[0][0])
    assert first.payload_type == 8 and first.marker


def test_strict_source_and_prompt_frames() -> None:
    session, sent, _, sink = _session()
    prompt = Prompt(tone([440], 100))
    session.player.enqueue(prompt, tag=1)
    session.receive_rtp(rtp_header(8, True, 1, 0, 7) + b"\xd5" * 160, PEER, 0.0)
    before = session.totals.dropped
    session.receive_rtp(rtp_header(8, False, 2, 160, 7) + b"\xd5" * 160, ("127.0.0.1", 1), 0.0)
    assert session.totals.dropped == before + 1
    for i in range(10):
        _tick(session, i * 0.02)
    payloads = [RtpPacket.parse(d).payload for d, _ in sent]
    assert payloads[:5] == prompt.payloads(session.codec, 160)
    assert payloads[5] == session.silence
    session.close()
    assert sink.closed and sum(len(b) for b in sink.blocks) == 10 * 160
    right = np.concatenate([b[:, 1] for b in sink.blocks])
    assert np.abs(right[:800].astype(int)).max() > 1000  # the prompt, as sent


def test_telephone_event_reports_digit_once() -> None:
    session, _, digits, _ = _session()
    sender = TelephoneEventSender()
    for n, pkt in enumerate(sender.packets("7", 120)):
        header = rtp_header(101, pkt.marker, 10 + n, 8000 + pkt.timestamp_offset, 7)
        session.receive_rtp(header + pkt.payload, PEER, n * 0.02)
    assert digits == ["7"]


def test_a_stray_stream_first_does_not_keep_the_peer_out() -> None:
    # Another call's RTP reached this freshly bound port before the caller's
    # first packet; the caller's own packets come from its SDP address
    # (192.0.2.9:4000): its digit is heard and our audio goes to it.
    session, sent, digits, _ = _session()
    stray = ("127.0.0.1", 47144)
    for i in range(5):
        session.receive_rtp(rtp_header(8, i == 0, 300 + i, 160 * i, 55) + b"\xd5" * 160, stray, 0.0)
        _tick(session, i * 0.02)
    assert {addr for _, addr in sent} == {stray}
    sent.clear()
    peer = ("192.0.2.9", 4000)
    for n, pkt in enumerate(TelephoneEventSender().packets("1", 120)):
        header = rtp_header(101, pkt.marker, 10 + n, 8000 + pkt.timestamp_offset, 7)
        session.receive_rtp(header + pkt.payload, peer, 0.1 + n * 0.02)
        _tick(session, 0.1 + n * 0.02)
    assert digits == ["1"]
    assert sent and {addr for _, addr in sent} == {peer}
    before = session.totals.dropped
    session.receive_rtp(rtp_header(8, False, 305, 800, 55) + b"\xd5" * 160, stray, 0.3)
    assert session.totals.dropped == before + 1


def test_playback_event_reaches_the_owner() -> None:
    session, _, _, _ = _session()
    finished: list[PlaybackFinished] = []
    session._on_playback = finished.append
    session.player.enqueue(Prompt(tone([440], 40)), tag="hello")
    session.receive_rtp(rtp_header(8, True, 1, 0, 7) + b"\xd5" * 160, PEER, 0.0)
    for i in range(3):
        _tick(session, i * 0.02)
    assert finished == [PlaybackFinished("hello", False)]


def test_skipped_ticks_keep_rtp_time_on_real_time() -> None:
    session, sent, _, _ = _session()
    session.receive_rtp(rtp_header(8, True, 1, 0, 7) + b"\xd5" * 160, PEER, 0.0)
    # the process stalled: the clock skipped 4 periods before the tick at 0.14
    for now, skipped in ((0.00, 0), (0.02, 0), (0.04, 0), (0.14, 4), (0.16, 0)):
        _tick(session, now, skipped)
    stamps = [RtpPacket.parse(d).timestamp for d, _ in sent]
    steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)]
    assert steps == [160, 160, 800, 160]  # 4 frames not sent: the timestamp jumps
    assert session.skipped_frames == 4
    assert RtpPacket.parse(sent[3][0]).marker  # a new talkspurt after the gap


def test_late_ticks_caught_up_do_not_jump_the_timestamp() -> None:
    session, sent, _, _ = _session()
    session.receive_rtp(rtp_header(8, True, 1, 0, 7) + b"\xd5" * 160, PEER, 0.0)
    # 30 ms late, then two catch-up ticks in quick succession: every frame is sent
    for now in (0.00, 0.02, 0.07, 0.071, 0.08, 0.10):
        _tick(session, now, 0)
    stamps = [RtpPacket.parse(d).timestamp for d, _ in sent]
    steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)]
    assert steps == [160] * 5
    assert session.skipped_frames == 0
