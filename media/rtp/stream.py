"""Per-stream RTP state, sans I/O: what we send, what we receive, RTCP timing.

* :class:`RtpSendState` numbers outgoing packets (random SSRC, sequence and
  timestamp start, RFC 3550 §5.1) and counts them for Sender Reports.
* :class:`RtpReceiveState` latches the first source address (symmetric,
  strict RTP: later packets from any other address are refused), validates
  sequence numbers (RFC 3550 A.1: probation, dropout, misorder, cycles) and
  keeps interarrival jitter (A.8) and loss (A.3) for Receiver Reports.
* :class:`RtcpScheduler` decides when the next report is due and builds it.
"""

from __future__ import annotations

import random

from media.rtp.packet import RtpPacket, rtp_header
from media.rtp.rtcp import RR, SDES, SR, ReportBlock, RtcpPacket, ntp_timestamp

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
CLOCK_RATE = 8000

Addr = tuple[str, int]


class RtpSendState:
    """Sequence numbers, timestamps and counts of one outgoing stream."""

    def __init__(self, rng: random.Random) -> None:
        self.ssrc = rng.getrandbits(32)
        self.seq = rng.getrandbits(16)
        self.timestamp = rng.getrandbits(32)
        self.packets = 0
        self.octets = 0
        self._talkspurt = True

    def next_header(self, payload_type: int, samples: int, *, marker: bool = False) -> bytes:
        """The header for the next packet; advances sequence and timestamp.

        The first packet of the stream carries the marker bit (start of a
        talkspurt, RFC 3551 §4.1). ``samples`` is this packet's duration.
        """
        header = rtp_header(
            payload_type, marker or self._talkspurt, self.seq, self.timestamp, self.ssrc
        )
        self._talkspurt = False
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self.packets += 1
        self.octets += samples  # G.711: one octet per sample
        return header

    def rewind_timestamp(self, samples: int) -> int:
        """Timestamp of the packet ``samples`` ago (telephone-events reuse it)."""
        return (self.timestamp - samples) & 0xFFFFFFFF


class RtpReceiveState:
    """Source latching, sequence validation, jitter and loss of one incoming stream."""

    def __init__(self, clock_rate: int = CLOCK_RATE) -> None:
        self.clock_rate = clock_rate
        self.source: Addr | None = None
        self.ssrc: int | None = None
        self.dropped_wrong_source = 0
        self.received = 0
        self.jitter = 0.0
        self._transit: float | None = None
        self._reset_seq(0)
        self.probation = MIN_SEQUENTIAL
        self._expected_prior = 0
        self._received_prior = 0

    def relatch(self) -> None:
        """Accept the next source afresh (after a re-INVITE moved the peer)."""
        self.source = None
        self.ssrc = None
        self.probation = MIN_SEQUENTIAL

    def _reset_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def accept(self, packet: RtpPacket, addr: Addr, now: float) -> bool:
        """Account for a packet; False means drop it (wrong source or bad sequence)."""
        if self.source is None:
            self.source = addr
            self.ssrc = packet.ssrc
            self._reset_seq(packet.sequence_number)
            self.max_seq = (packet.sequence_number - 1) & 0xFFFF
        elif addr != self.source:
            self.dropped_wrong_source += 1
            return False
        elif packet.ssrc != self.ssrc:  # same source, new stream (SSRC change): restart
            self.ssrc = packet.ssrc
            self._reset_seq(packet.sequence_number)
            self.max_seq = (packet.sequence_number - 1) & 0xFFFF
            self.probation = MIN_SEQUENTIAL
            self._transit = None
        if not self._update_seq(packet.sequence_number):
            return False
        arrival = now * self.clock_rate
        transit = arrival - packet.timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < self.clock_rate * 10:  # ignore timestamp jumps (new talkspurt base)
                self.jitter += (d - self.jitter) / 16.0
        self._transit = transit
        return True

    def _update_seq(self, seq: int) -> bool:
        """RFC 3550 Appendix A.1, verbatim in logic."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._reset_seq(seq)
                    self.received += 1
                return True
            self.probation = MIN_SEQUENTIAL - 1
            self.max_seq = seq
            return True  # still play it: a real peer's first packets are fine
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self._reset_seq(seq)  # two sequential packets: the peer restarted
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet, counted but not advancing max_seq
        self.received += 1
        return True

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    def report_block(self) -> ReportBlock | None:
        """A reception report for RTCP, updating the interval counters (A.3)."""
        if self.ssrc is None:
            return None
        expected = self.expected
        interval_expected = expected - self._expected_prior
        interval_received = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = interval_expected - interval_received
        fraction = 0
        if interval_expected > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // interval_expected
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=min(self.lost, 0x7FFFFF),
            highest_seq=self.extended_max & 0xFFFFFFFF,
            jitter=int(self.jitter),
        )


class RtcpScheduler:
    """When to send the next report (RFC 3550 §6.2, two-party simplification).

    A minimum interval of 5 s, randomised over [0.5, 1.5] of it, the first
    report after half the minimum.
    """

    def __init__(self, rng: random.Random, interval: float = 5.0) -> None:
        self._rng = rng
        self.interval = interval
        self._next: float | None = None

    def due(self, now: float) -> bool:
        if self._next is None:
            self._next = now + self.interval * 0.5 * self._rng.uniform(0.5, 1.5)
            return False
        return now >= self._next

    def build(
        self, send: RtpSendState, recv: RtpReceiveState, now: float, *, wall: float, cname: str
    ) -> bytes:
        """A compound SR (or RR if we sent nothing) + SDES CNAME; schedules the next."""
        self._next = now + self.interval * self._rng.uniform(0.5, 1.5)
        block = recv.report_block()
        reports = [block] if block is not None else []
        if send.packets:
            first = RtcpPacket(
                SR,
                send.ssrc,
                ntp=ntp_timestamp(wall),
                rtp_timestamp=send.timestamp,
                packet_count=send.packets & 0xFFFFFFFF,
                octet_count=send.octets & 0xFFFFFFFF,
                reports=reports,
            )
        else:
            first = RtcpPacket(RR, send.ssrc, reports=reports)
        return bytes(first) + bytes(RtcpPacket(SDES, send.ssrc, cname=cname))
