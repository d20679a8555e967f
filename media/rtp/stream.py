"""Per-stream RTP state, sans I/O: what we send, what we receive, when to report.

* :class:`RtpSendState` numbers outgoing packets: SSRC, first sequence number
  and first timestamp are random (RFC 3550 §5.1) from the ``random.Random``
  passed in; it counts packets and octets for Sender Reports.
* :class:`RtpReceiveState` latches the first source address (symmetric,
  strict RTP: later packets from any other address are dropped and counted,
  until :meth:`RtpReceiveState.relatch`), except that the address the peer's
  SDP announced always takes the latch over (a stray stream that reached the
  port first never keeps the real peer out), and keeps, per SSRC, the
  RFC 3550 Appendix A state: sequence validation (A.1: probation, dropout,
  misorder, cycles), loss (A.3) and interarrival jitter (A.8).
* :class:`RtcpScheduler` says when the next report is due (RFC 3550 §6.2,
  simplified for two parties) and builds the compound SR/RR + SDES.

Nothing here reads a clock: ``now`` is monotonic seconds from the caller,
``wall`` (Unix seconds) is passed in where an NTP timestamp is written.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass

from media.rtp.packet import RTP_FIXED_HEADER, RtpPacket, rtp_header
from media.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle32,
    serialize_compound,
)

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "RtcpScheduler",
    "RtpReceiveState",
    "RtpSendState",
    "SourceStats",
]

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
MAX_SOURCES = 4
"""SSRCs tracked at once per stream (audio, telephone-event, a restarted sender...)."""

Addr = tuple[str, int]
_pack_header = RTP_FIXED_HEADER.pack


class RtpSendState:
    """Sequence number, timestamp and counters of one outgoing stream.

    ``next_header`` returns the 12-byte header for the next packet and
    advances: sequence by one, timestamp by the packet's ``samples``. The
    first packet carries the marker bit (start of a talkspurt, RFC 3551
    §4.1); so does the first one after :meth:`start_talkspurt`.
    """

    def __init__(self, rng: random.Random, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.ssrc = rng.getrandbits(32)
        self.seq = rng.getrandbits(16)
        """Sequence number of the next packet."""
        self.timestamp = rng.getrandbits(32)
        """RTP timestamp of the next packet."""
        self.packets = 0
        self.octets = 0
        self._marker_due = True
        self._last_time: float | None = None
        self._last_timestamp = 0

    def start_talkspurt(self) -> None:
        """Set the marker bit on the next packet (after a pause in sending)."""
        self._marker_due = True

    def next_header(
        self,
        payload_type: int,
        samples: int,
        marker: bool = False,
        *,
        octets: int | None = None,
        now: float | None = None,
    ) -> bytes:
        """The header of the next packet, which carries ``samples`` of audio.

        ``octets`` is the payload size for the SR octet count (default
        ``samples``: G.711 is one byte per sample). ``now``, when given,
        anchors the RTP timestamp to time for the SR (see :meth:`rtp_time`).
        """
        seq = self.seq
        timestamp = self.timestamp
        header = rtp_header(payload_type, marker or self._marker_due, seq, timestamp, self.ssrc)
        self._marker_due = False
        self.seq = (seq + 1) & 0xFFFF
        self.timestamp = (timestamp + samples) & 0xFFFFFFFF
        self.packets += 1
        self.octets += samples if octets is None else octets
        if now is not None:
            self._last_time = now
            self._last_timestamp = timestamp
        return header

    def audio_header(self, payload_type: int, samples: int, now: float) -> bytes:
        """:meth:`next_header` for an audio frame of G.711 (``samples`` octets)
        sent at ``now``, without its options: the per-packet send path."""
        seq = self.seq
        timestamp = self.timestamp
        if self._marker_due:
            self._marker_due = False
            header = _pack_header(0x80, 0x80 | payload_type, seq, timestamp, self.ssrc)
        else:
            header = _pack_header(0x80, payload_type, seq, timestamp, self.ssrc)
        self.seq = (seq + 1) & 0xFFFF
        self.timestamp = (timestamp + samples) & 0xFFFFFFFF
        self.packets += 1
        self.octets += samples
        self._last_time = now
        self._last_timestamp = timestamp
        return header

    def event_header(
        self, payload_type: int, event_timestamp: int, marker: bool, samples: int, octets: int = 4
    ) -> bytes:
        """The header of a telephone-event packet (RFC 4733).

        It takes the next sequence number but carries ``event_timestamp`` (the
        start of the event); the stream's own timestamp still advances by
        ``samples`` so audio after the event continues in time.
        """
        header = rtp_header(payload_type, marker, self.seq, event_timestamp & 0xFFFFFFFF, self.ssrc)
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self.packets += 1
        self.octets += octets
        return header

    def rtp_time(self, now: float) -> int:
        """The RTP timestamp that corresponds to ``now`` (for the SR).

        Extrapolated from the last packet sent with ``now=``; without one,
        the timestamp of the next packet.
        """
        if self._last_time is None:
            return self.timestamp
        elapsed = round((now - self._last_time) * self.clock_rate)
        return (self._last_timestamp + elapsed) & 0xFFFFFFFF


@dataclass(slots=True)
class SourceStats:
    """RFC 3550 Appendix A state of one SSRC heard on a stream."""

    ssrc: int
    max_seq: int = 0
    cycles: int = 0
    base_seq: int = 0
    bad_seq: int = RTP_SEQ_MOD + 1
    probation: int = MIN_SEQUENTIAL
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    last_timestamp: int | None = None
    """RTP timestamp of the last packet that updated the jitter."""
    last_arrival: float | None = None
    """Its arrival time (seconds)."""
    jitter: float = 0.0
    """Interarrival jitter in timestamp units (A.8)."""
    lsr: int = 0
    """Middle 32 bits of the NTP time in this source's last SR."""
    sr_arrival: float | None = None
    heard_since_report: bool = False

    def init_seq(self, seq: int) -> None:
        """A.1 ``init_seq``."""
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def update_seq(self, seq: int) -> bool:
        """A.1 ``update_seq``: True when the packet is valid (count it, play it)."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self.init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:  # in order, with a permissible gap
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:  # a very large jump
            if seq == self.bad_seq:  # two sequential packets: the sender restarted
                self.init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet
        self.received += 1
        return True

    @property
    def extended_max(self) -> int:
        """Highest sequence number received, extended with the wrap count."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """A.3: packets expected since the (re)start of validation."""
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """A.3 cumulative loss (negative when duplicates outnumber losses)."""
        return self.expected - self.received


class RtpReceiveState:
    """Source latching and RFC 3550 reception statistics of one incoming stream.

    Call :meth:`accept` for every parsed packet. Counters: ``accepted``,
    ``dropped_wrong_source`` (strict RTP), ``dropped_invalid`` (A.1: still
    on probation, or a jump the sender has not confirmed), ``switched``
    (times the latch moved to ``signalled``).

    ``signalled`` is the address the peer's SDP gave for its media. Behind
    a NAT the peer's packets come from elsewhere, so the first source
    latches whatever it is; but a packet from ``signalled`` itself always
    takes the latch over: otherwise whatever reaches a freshly bound port
    first (late packets of the port's previous call, another call's stream
    sent to a reused port, a scanner) would keep the peer's own media out
    for the whole call. Asterisk's strict RTP does the same ("switching to
    RTP target address as source").
    """

    def __init__(self, clock_rate: int = 8000, signalled: Addr | None = None) -> None:
        self.clock_rate = clock_rate
        self.signalled = signalled
        """The media address of the peer's SDP (None: unknown)."""
        self.source: Addr | None = None
        """The latched peer address (send here for symmetric RTP)."""
        self.switched = 0
        """Times a packet from ``signalled`` took the latch from another source."""
        self.sources: OrderedDict[int, SourceStats] = OrderedDict()
        """SSRC -> statistics, most recently heard last (at most MAX_SOURCES)."""
        self.accepted = 0
        self.dropped_wrong_source = 0
        self.dropped_invalid = 0

    def relatch(self) -> None:
        """Let the next packet's address latch afresh (after a re-INVITE moved the peer)."""
        self.source = None

    def accept(self, packet: RtpPacket, addr: Addr, now: float) -> bool:
        """Account for one packet; False means drop it (wrong source or invalid sequence).

        The first packet after construction or :meth:`relatch` latches its
        address; a packet from ``signalled`` moves the latch there (see the
        class docstring). Packets from the latched address are validated per
        SSRC (RFC 3550 A.1): a new SSRC's first packet is on probation and is
        not delivered, the second in sequence is. Valid packets update
        jitter, except those repeating the previous timestamp (RFC 4733
        updates).
        """
        if self.source is None:
            self.source = addr
        elif addr != self.source:
            if addr != self.signalled:
                self.dropped_wrong_source += 1
                return False
            self.source = addr
            self.switched += 1
        ssrc = packet.ssrc
        stats = self.sources.get(ssrc)
        seq = packet.sequence_number
        if stats is None:
            stats = SourceStats(ssrc)
            stats.init_seq(seq)
            stats.max_seq = (seq - 1) & 0xFFFF
            self.sources[ssrc] = stats
            if len(self.sources) > MAX_SOURCES:
                self.sources.popitem(last=False)
        else:
            self.sources.move_to_end(ssrc)
        if not stats.update_seq(seq):
            self.dropped_invalid += 1
            return False
        stats.heard_since_report = True
        self.accepted += 1
        timestamp = packet.timestamp
        last = stats.last_timestamp
        if timestamp != last:
            if last is not None and stats.last_arrival is not None:
                # A.8 D(i, j) = (Rj - Ri) - (Sj - Si), Sj - Si taken modulo 2**32
                sent = (timestamp - last) & 0xFFFFFFFF
                if sent & 0x80000000:
                    sent -= 0x100000000
                d = abs((now - stats.last_arrival) * self.clock_rate - sent)
                stats.jitter += (d - stats.jitter) / 16.0
            stats.last_timestamp = timestamp
            stats.last_arrival = now
        return True

    def on_sender_report(self, report: SenderReport, now: float) -> None:
        """Remember a received SR so our next report carries LSR/DLSR for it."""
        stats = self.sources.get(report.ssrc)
        if stats is not None:
            stats.lsr = ntp_middle32(report.ntp_timestamp)
            stats.sr_arrival = now

    def report_blocks(self, now: float) -> list[ReportBlock]:
        """Reception reports for the sources heard since the last call (A.3 intervals)."""
        blocks: list[ReportBlock] = []
        for stats in self.sources.values():
            if not stats.heard_since_report:
                continue
            stats.heard_since_report = False
            expected = stats.expected
            expected_interval = expected - stats.expected_prior
            received_interval = stats.received - stats.received_prior
            stats.expected_prior = expected
            stats.received_prior = stats.received
            lost_interval = expected_interval - received_interval
            fraction = 0
            if expected_interval > 0 and lost_interval > 0:
                fraction = (lost_interval << 8) // expected_interval
            dlsr = 0
            if stats.sr_arrival is not None:
                dlsr = min(int((now - stats.sr_arrival) * 65536), 0xFFFFFFFF)
            blocks.append(
                ReportBlock(
                    ssrc=stats.ssrc,
                    fraction_lost=min(fraction, 255),
                    packets_lost=stats.lost,
                    highest_seq=stats.extended_max & 0xFFFFFFFF,
                    jitter=int(stats.jitter),
                    lsr=stats.lsr,
                    dlsr=dlsr,
                )
            )
        return blocks


class RtcpScheduler:
    """When to send the next report, and what (RFC 3550 §6.2-6.4, two parties).

    The interval is ``min_interval`` (5 s) times a uniform random factor in
    [0.5, 1.5) from the ``rng`` passed in; the first report comes after half
    of that (§6.2: half the minimum at start). With two participants the
    bandwidth-based interval is always below the 5 s minimum, so the
    membership-dependent terms of §6.3 (and reconsideration) do not apply.
    The timer starts at the first :meth:`due` or :meth:`start` call.
    """

    def __init__(self, rng: random.Random, min_interval: float = 5.0) -> None:
        self._rng = rng
        self.min_interval = min_interval
        self._next: float | None = None

    def interval(self) -> float:
        """One randomised interval in seconds."""
        return self.min_interval * self._rng.uniform(0.5, 1.5)

    def start(self, now: float) -> None:
        """Arm the timer for the first report (half an interval from ``now``)."""
        self._next = now + self.interval() / 2

    def next_deadline(self) -> float | None:
        """When the next report is due, or None before :meth:`start`."""
        return self._next

    def due(self, now: float) -> bool:
        """True when a report should be sent now (then call :meth:`build`)."""
        if self._next is None:
            self.start(now)
            return False
        return now >= self._next

    def build(
        self,
        send: RtpSendState,
        recv: RtpReceiveState,
        now: float,
        *,
        cname: str,
        wall: float | None = None,
        bye: bool = False,
    ) -> bytes:
        """A compound report and schedule the next one.

        SR when we have sent RTP (else RR), with a reception report for each
        source heard since the last report, then SDES CNAME, then BYE when
        ``bye``. ``wall`` is Unix time for the SR's NTP field; without it the
        NTP timestamp is 0 (RFC 3550 §6.4.1 allows this) and the peer cannot
        compute round-trip time.
        """
        self._next = now + self.interval()
        reports = recv.report_blocks(now)[:31]
        first: RtcpPacket
        if send.packets:
            first = SenderReport(
                ssrc=send.ssrc,
                ntp_timestamp=ntp_from_unix(wall) if wall is not None else 0,
                rtp_timestamp=send.rtp_time(now),
                packet_count=send.packets & 0xFFFFFFFF,
                octet_count=send.octets & 0xFFFFFFFF,
                reports=reports,
            )
        else:
            first = ReceiverReport(send.ssrc, reports)
        packets: list[RtcpPacket] = [first, SourceDescription.with_cname(send.ssrc, cname)]
        if bye:
            packets.append(Bye([send.ssrc]))
        return serialize_compound(packets)
