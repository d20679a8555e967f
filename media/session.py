"""The media pipeline of one call, driven by the shared media clock.

RTP is symmetric (RFC 4961): we send to the address the peer's RTP comes
from, and nothing before the first packet arrives (see ``destination``).

Receive path (per datagram): parse the RTP header, enforce the latched source
(strict RTP; packets from the address of the peer's SDP take the latch over),
route telephone-events to the RFC 4733 receiver and audio to the jitter
buffer. Send path (per tick): take the next pre-encoded prompt payload
from the player, or comfort silence, and send it with the next header.

Received and sent payloads are collected as bytes and decoded in batches, one
numpy call each: every ``DECODE_EVERY`` ticks (100 ms) when the in-band DTMF
detector listens (no telephone-event was negotiated), else every
``CAPTURE_EVERY`` ticks (500 ms) for the capture, which gets them still coded
when its sinks take that (the recorder decodes in its storage process). Batching keeps the per-tick
cost to a few list and byte operations, so hundreds of calls fit on one core.

Secure pause (PCI DSS): between :meth:`MediaSession.pause_capture` and
:meth:`MediaSession.resume_capture` (plus the jitter buffer's depth, for the
audio still in it) the capture gets silence on both channels and a bridged
agent gets silence instead of the caller's audio, so in-band key tones
reach neither; the IVR still hears the caller (it may be collecting a card
number). ``captured_samples`` is the capture's position, for pause spans.

The session does no I/O of its own: it is handed ``send_rtp``/``send_rtcp``
callables and ``now``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from media.capture import CallCapture
from media.dtmf.inband import InbandDtmfDetector
from media.dtmf.rfc4733 import EventPacket, TelephoneEventReceiver, TelephoneEventSender
from media.g711 import Codec, codec_by_name
from media.prompts.player import PlaybackFinished, Player
from media.rtp.jitter import JitterBuffer
from media.rtp.packet import RtpPacket, RtpParseError
from media.rtp.rtcp import RtcpParseError, SenderReport, parse_compound
from media.rtp.stream import RtcpScheduler, RtpReceiveState, RtpSendState
from media.sdp import NegotiatedMedia

if TYPE_CHECKING:
    from media.bridge import AudioPipe

Addr = tuple[str, int]

#: Received payloads are decoded every this many ticks when in-band DTMF is listened for.
DECODE_EVERY = 5
#: Otherwise received and sent payloads are decoded for the capture in batches this long
#: (500 ms: a killed engine loses at most that much of a call's recording).
CAPTURE_EVERY = 25

SENDING = frozenset({"sendrecv", "sendonly"})
RECEIVING = frozenset({"sendrecv", "recvonly"})


@dataclass
class MediaTotals:
    """Process-wide RTP counters, owned by the engine and read by /metrics."""

    packets_in: int = 0
    packets_out: int = 0
    late: int = 0
    lost: int = 0
    dropped: int = 0
    malformed: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0


DigitHandler = Callable[[str, str], None]
PlaybackHandler = Callable[[PlaybackFinished], None]


class MediaSession:
    """RTP in and out for one call (see module docstring)."""

    def __init__(
        self,
        *,
        media: NegotiatedMedia,
        send_rtp: Callable[[bytes, Addr], None],
        send_rtcp: Callable[[bytes, Addr], None],
        rng: random.Random,
        totals: MediaTotals,
        on_digit: DigitHandler,
        on_playback: PlaybackHandler,
        capture: CallCapture | None = None,
        jitter_ms: int = 60,
        cname: str = "callcore",
        wall_offset: float = 0.0,
    ) -> None:
        self._send_rtp = send_rtp
        self._send_rtcp = send_rtcp
        self._rng = rng
        self.totals = totals
        self._on_digit = on_digit
        self._on_playback = on_playback
        self.capture = capture
        self.jitter_ms = jitter_ms
        self.cname = cname
        self.wall_offset = wall_offset
        self.player = Player()
        self.send_state = RtpSendState(rng)
        self.recv_state = RtpReceiveState()
        self.rtcp = RtcpScheduler(rng)
        self.te_receiver = TelephoneEventReceiver()
        self.inband: InbandDtmfDetector | None = None
        self.digits_muted = False
        self._rx: list[bytes] = []
        self._rx_fifo = bytearray()
        self.skipped_frames = 0
        self._tx: list[bytes] = []
        self._last_lost = 0
        self._last_late = 0
        self.closed = False
        self.relay_in: AudioPipe | None = None
        """Audio to send when the player is idle (set by a :class:`media.bridge.Bridge`)."""
        self.relay_out: AudioPipe | None = None
        """Where each played-out received frame goes (set by a bridge)."""
        self._events_out: deque[EventPacket] = deque()
        self._event_timestamp = 0
        self.digits_sent = 0
        self.captured_samples = 0
        """Samples handed towards the capture so far (the recording's position)."""
        self._paused = False
        self._pause_tail = 0
        self._masks: list[bool] = []
        self.apply(media)

    # ------------------------------------------------------------------ setup
    def apply(self, media: NegotiatedMedia) -> None:
        """(Re)configure from an offer/answer: codec, ptime, peer, direction."""
        if getattr(self, "_rx", None):
            self._decode_batch()  # what is pending was coded with the old codec
        codec: Codec = codec_by_name(media.codec)
        changed_peer = getattr(self, "remote", None) != (media.remote_address, media.remote_port)
        self.media = media
        self.codec = codec
        self.payload_type = media.payload_type
        self.ptime = media.ptime
        self.samples = 8 * media.ptime
        self.remote: Addr = (media.remote_address, media.remote_port)
        self.recv_state.signalled = self.remote  # the peer's own packets always latch
        self.direction = media.direction
        self.te_pt = media.telephone_event_pt
        self.silence = codec.encode(np.zeros(self.samples, dtype=np.int16))
        self.jitter = JitterBuffer(
            depth_frames=max(1, self.jitter_ms // self.ptime), samples_per_frame=self.samples
        )
        # In-band detection only for calls that cannot send telephone-events.
        self.inband = InbandDtmfDetector() if self.te_pt is None else None
        self._batch = DECODE_EVERY if self.inband is not None else CAPTURE_EVERY
        if changed_peer:
            self.recv_state.relatch()

    # ---------------------------------------------------------- receive path
    def receive_rtp(self, data: bytes, addr: Addr, now: float) -> None:
        """One datagram from the RTP socket."""
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError:
            self.totals.malformed += 1
            return
        if not self.recv_state.accept(packet, addr, now):
            self.totals.dropped += 1
            return
        self.totals.packets_in += 1
        pt = packet.payload_type
        if pt == self.te_pt:
            for event in self.te_receiver.feed(packet, now):
                self._digit(event.digit, "rfc4733")
        elif pt == self.payload_type and self.direction in RECEIVING:
            self.jitter.push(packet, now)

    def receive_rtcp(self, data: bytes, addr: Addr, now: float) -> None:
        """One datagram from the RTCP socket: Sender Reports feed our LSR/DLSR."""
        try:
            packets = parse_compound(data)
        except RtcpParseError:
            self.totals.malformed += 1
            return
        self.totals.rtcp_in += 1
        for packet in packets:
            if isinstance(packet, SenderReport):
                self.recv_state.on_sender_report(packet, now)

    def inject_digit(self, digit: str, source: str) -> None:
        """A digit that arrived outside RTP (SIP INFO)."""
        self._digit(digit, source)

    def send_digit(self, digit: str, duration_ms: int = 120) -> bool:
        """Queue ``digit`` as RFC 4733 telephone-events, sent from the next tick
        in place of audio; False when the peer negotiated no telephone-event.
        Raises ValueError for a character that is not a DTMF digit."""
        if self.te_pt is None or self.closed:
            return False
        self._events_out.extend(TelephoneEventSender(self.ptime).packets(digit, duration_ms))
        self.digits_sent += 1
        return True

    # ---------------------------------------------------------- secure pause
    @property
    def capture_paused(self) -> bool:
        """True while the capture and a bridged agent get silence (see module docstring)."""
        return self._paused or self._pause_tail > 0

    def pause_capture(self) -> None:
        """Start a secure pause: from the next frame on, silence to capture and agent."""
        self._paused = True
        self._pause_tail = 0

    def resume_capture(self) -> None:
        """End the pause once the audio still in the jitter buffer has played out."""
        if self._paused:
            self._paused = False
            self._pause_tail = max(1, self.jitter_ms // self.ptime) + 1

    def _digit(self, digit: str, source: str) -> None:
        if self.digits_muted:
            return
        self._on_digit(digit, source)

    def destination(self) -> Addr | None:
        """Where our RTP goes: the address the peer's RTP comes from (symmetric RTP).

        Until the first packet latches a source nothing is sent, so an SDP
        naming an address we cannot verify (NAT, or a forged offer) never
        receives a packet from us. Only a peer that said it will not send
        (its SDP recvonly: we are sendonly) is trusted on its SDP address.
        """
        source = self.recv_state.source
        if source is not None:
            return source
        if self.direction == "sendonly":
            return self.remote
        return None

    # -------------------------------------------------------------- the tick
    def tick(self, now: float, skipped: int = 0) -> None:
        """Called by the media clock every ``ptime``: send one frame (see after_tick).

        ``skipped`` is how many periods the clock skipped before this tick (the
        process was starved): the RTP timestamp jumps by those frames, so our
        stream stays on real time and the far end sees a gap, not a sender
        whose clock runs slow. Late ticks the clock catches up (no skip) send
        every frame, so the timestamp never jumps for them: jumping there too
        would run our RTP clock ahead of real time.
        """
        if self.closed:
            return
        send_state = self.send_state
        if skipped > 0:
            send_state.timestamp = (send_state.timestamp + skipped * self.samples) & 0xFFFFFFFF
            send_state.start_talkspurt()
            self.skipped_frames += skipped
        dest = self.recv_state.source  # self.destination(), written out: every packet
        if dest is None and self.direction == "sendonly":
            dest = self.remote
        payload = None
        if dest is not None:  # nothing is played into the void before media flows
            player = self.player
            payload = player.next_payload(self.codec, self.samples)
            if player.has_events:
                for event in player.drain_events():
                    self._on_playback(event)
            if payload is None and self.relay_in is not None:
                payload = self.relay_in.pull(self.samples, self.codec)
        sent = payload if payload is not None else self.silence
        if dest is not None and self.direction in SENDING:
            if self._events_out:
                self._send_event(dest)
                self._tx.append(self.silence)
                return
            header = send_state.audio_header(self.payload_type, self.samples, now)
            self._send_rtp(header + sent, dest)
            self.totals.packets_out += 1
        else:
            sent = self.silence
        self._tx.append(sent)

    def _send_event(self, dest: Addr) -> None:
        """One telephone-event packet (RFC 4733) in this tick's slot."""
        packet = self._events_out.popleft()
        assert self.te_pt is not None
        if packet.marker:  # a new key press starts at the stream's current time
            self._event_timestamp = self.send_state.timestamp
        header = self.send_state.event_header(
            self.te_pt,
            self._event_timestamp + packet.timestamp_offset,
            packet.marker,
            self.samples,
        )
        self._send_rtp(header + packet.payload, dest)
        self.totals.packets_out += 1
        if not self._events_out:
            self.send_state.start_talkspurt()  # audio resumes: marker bit

    def after_tick(self, now: float) -> None:
        """Second phase of a clock tick, run once every stream has sent its frame.

        Play-out from the jitter buffer, capture, in-band DTMF and RTCP happen
        here, so the send phase of all streams stays short and regular (the
        cost of this phase never delays another call's packet).
        """
        if self.closed:
            return
        # Play out by samples, not packets: the peer's packets may be longer or
        # shorter than our ptime (SIPp's g711a.pcap sends 30 ms into a 20 ms call).
        fifo = self._rx_fifo
        while len(fifo) < self.samples:
            packet = self.jitter.pop(now)
            if packet is None:
                break
            fifo += packet.payload
        if len(fifo) >= self.samples:
            received = bytes(fifo[: self.samples])
            del fifo[: self.samples]
            if len(fifo) > 8 * self.samples:  # the sender's clock runs fast: hold latency
                del fifo[: len(fifo) - 2 * self.samples]
        else:
            received = self.silence
        masked = self._paused or self._pause_tail > 0
        if self._pause_tail > 0 and not self._paused:
            self._pause_tail -= 1
        if self.relay_out is not None:
            self.relay_out.push(self.silence if masked else received, self.codec)
        self._rx.append(received)
        self._masks.append(masked)
        if self.capture is not None:
            self.captured_samples += self.samples
        if len(self._rx) >= self._batch:
            self._decode_batch()
        if self.rtcp.due(now):
            self._send_report(now)

    def _decode_batch(self) -> None:
        capture = self.capture
        coded = capture is not None and not capture.wants_pcm  # the recorder decodes itself
        rx_bytes = b"".join(self._rx)
        self._rx.clear()
        rx = None
        if self.inband is not None or (capture is not None and not coded):
            rx = self.codec.decode(rx_bytes)
        if self.inband is not None and rx is not None:
            for digit in self.inband.feed(rx):
                self._digit(digit, "inband")
        masks, self._masks = self._masks, []
        if capture is not None:
            tx_bytes = b"".join(self._tx)
            if coded:
                silent = _masked_spans(len(rx_bytes), masks) if any(masks) else ()
                capture.add_coded(self.codec.name, rx_bytes, tx_bytes, silent)
            else:
                assert rx is not None
                tx = self.codec.decode(tx_bytes)
                if any(masks):
                    rx, tx = _masked(rx, masks), _masked(tx, masks)
                capture.add(rx, tx)
        self._tx.clear()
        lost, late = self.jitter.lost, self.jitter.late
        self.totals.lost += lost - self._last_lost
        self.totals.late += late - self._last_late
        self._last_lost, self._last_late = lost, late

    def _send_report(self, now: float) -> None:
        report = self.rtcp.build(
            self.send_state, self.recv_state, now, wall=now + self.wall_offset, cname=self.cname
        )
        dest = self.destination()
        if dest is not None:
            self._send_rtcp(report, (dest[0], self.remote[1] + 1))
        self.totals.rtcp_out += 1

    def close(self) -> None:
        """Flush what is pending to the capture and stop (idempotent)."""
        if self.closed:
            return
        if self._rx:
            self._decode_batch()
        self.closed = True
        if self.capture is not None:
            self.capture.close()
        # Let go of what points back at the call (the capture's sink, the
        # application's callbacks): a session is old when its call ends, so a
        # reference cycle through it would wait for a full garbage collection,
        # and a minute of ended calls freed at once stalls the media clock
        # (300 ms for 1,500 calls, measured). Without the cycles the call's
        # objects go when the call does.
        self.capture = None
        self._on_digit = _ignore_digit
        self._on_playback = _ignore_playback


def _ignore_digit(_digit: str, _source: str) -> None:
    return None


def _ignore_playback(_event: PlaybackFinished) -> None:
    return None


def _masked(pcm: np.ndarray, masks: list[bool]) -> np.ndarray:
    """``pcm`` (one frame per mask, equal frames) with the masked frames zeroed."""
    out = pcm.copy()
    step = len(pcm) // len(masks) if masks else 0
    for i, masked in enumerate(masks):
        if masked:
            out[i * step : (i + 1) * step] = 0
    if masks and masks[-1] and step:
        out[len(masks) * step :] = 0
    return out


def _masked_spans(length: int, masks: list[bool]) -> tuple[tuple[int, int], ...]:
    """The sample ranges :func:`_masked` zeroes, for a capture that decodes later."""
    step = length // len(masks) if masks else 0
    spans: list[tuple[int, int]] = []
    for i, masked in enumerate(masks):
        if not masked:
            continue
        start, end = i * step, (i + 1) * step
        if i == len(masks) - 1:
            end = length
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return tuple(spans)
