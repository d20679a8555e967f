"""A fixed-depth receive jitter buffer, sans I/O.

Packets are pushed as they arrive (``push(packet, now)``) and popped once per
media tick (``pop(now)``) in sequence order, one frame of
``samples_per_frame`` each. Playout starts ``depth_frames`` frame durations
after the first packet arrived, which absorbs that much arrival jitter and
reordering; packets that arrive before their turn are reordered, at no cost.

``pop`` returns None when there is nothing to play:

* priming: the cushion is still filling (after the start or a resync);
* gap: this frame's packet is missing but later ones are queued. It is
  counted in ``lost`` and skipped; if it turns up after all, it is dropped
  and moved from ``lost`` to ``late``;
* underrun: nothing is queued at all (the peer paused, or a delay spike
  longer than the cushion). Counted in ``underruns``; the buffer waits, and
  re-primes when packets come back, restarting at the first one that
  arrives (packets skipped that way count as ``lost``).

Other counters: ``duplicates`` (a sequence number already queued or
played), ``overflow`` (queued packets dropped because the queue grew past
``max_frames``, i.e. the sender's clock runs faster than ours), ``resyncs``.

Resync (flush the queue, start again from the packet at hand, re-prime)
happens on an SSRC change, a sequence jump of more than ``MAX_SEQ_JUMP``
forward or ``MAX_MISORDER`` back, or a timestamp that jumps more than
``max_ts_jump`` seconds away from what the sequence numbers predict (a new
timeline: the sender restarted, or a media switch behind an SBC).
"""

from __future__ import annotations

from collections import OrderedDict

from media.rtp.packet import RtpPacket

__all__ = ["MAX_MISORDER", "MAX_SEQ_JUMP", "JitterBuffer"]

MAX_SEQ_JUMP = 500
"""Sequence numbers ahead of the playout point beyond which the sender has restarted."""
MAX_MISORDER = 100
"""Sequence numbers behind the playout point beyond which the sender has restarted."""
_SKIPPED_MEMORY = 256


def _signed16(value: int) -> int:
    value &= 0xFFFF
    return value - 0x10000 if value & 0x8000 else value


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - 0x100000000 if value & 0x80000000 else value


class JitterBuffer:
    """Reorders one RTP stream and hands out one packet per tick (see module docstring).

    ``depth_frames`` frames of ``samples_per_frame`` at ``clock_rate`` make the
    target delay (3 x 160 at 8 kHz = 60 ms). ``max_frames`` (default
    ``2 * depth_frames + 2``) caps the queue.
    """

    def __init__(
        self,
        depth_frames: int = 3,
        samples_per_frame: int = 160,
        *,
        clock_rate: int = 8000,
        max_frames: int | None = None,
        max_ts_jump: float = 1.0,
    ) -> None:
        if depth_frames < 1:
            raise ValueError(f"jitter buffer depth must be at least 1 frame, got {depth_frames}")
        if samples_per_frame < 1:
            raise ValueError(f"samples per frame must be positive, got {samples_per_frame}")
        self.depth_frames = depth_frames
        self.samples_per_frame = samples_per_frame
        self.clock_rate = clock_rate
        self.max_frames = 2 * depth_frames + 2 if max_frames is None else max_frames
        if self.max_frames < depth_frames:
            raise ValueError(
                f"max_frames ({self.max_frames}) must be at least depth_frames ({depth_frames})"
            )
        self.depth_seconds = depth_frames * samples_per_frame / clock_rate
        self._max_ts_jump = round(max_ts_jump * clock_rate)
        self._queue: dict[int, RtpPacket] = {}
        self._skipped: OrderedDict[int, None] = OrderedDict()
        self._ssrc: int | None = None
        self._next_seq = 0
        self._ref_seq = 0
        self._ref_ts = 0
        self._play_at: float | None = None  # None: nothing received yet
        self._playing = False
        self._starved = False
        self.late = 0
        self.lost = 0
        self.duplicates = 0
        self.underruns = 0
        self.overflow = 0
        self.resyncs = 0

    def __len__(self) -> int:
        """Packets queued."""
        return len(self._queue)

    # ------------------------------------------------------------------ push
    def push(self, packet: RtpPacket, now: float) -> None:
        """Queue one received packet that arrived at ``now`` (seconds)."""
        seq = packet.sequence_number
        if self._play_at is None:
            self._restart(packet, now)
            return
        if packet.ssrc != self._ssrc:
            self._resync(packet, now)
            return
        offset = _signed16(seq - self._next_seq)
        if offset < 0:
            self._behind(packet, offset, now)
            return
        if offset > MAX_SEQ_JUMP or self._timestamp_jumped(packet):
            self._resync(packet, now)
            return
        if seq in self._queue:
            self.duplicates += 1
            return
        if self._starved:  # first packet after an underrun: restart here, re-prime
            self._starved = False
            self._skip_to(seq)
            self._play_at = now + self.depth_seconds
            self._playing = False
        self._queue[seq] = packet
        if _signed16(seq - self._ref_seq) > 0:
            self._ref_seq, self._ref_ts = seq, packet.timestamp
        while len(self._queue) > self.max_frames:
            self._drop_oldest()

    def _behind(self, packet: RtpPacket, offset: int, now: float) -> None:
        seq = packet.sequence_number
        if offset < -MAX_MISORDER:
            self._resync(packet, now)
        elif not self._playing and -offset <= self.depth_frames:
            # still priming: an earlier packet moves the start back (reordered first packets)
            self._next_seq = seq
            self._queue[seq] = packet
        elif seq in self._skipped:
            del self._skipped[seq]
            self.lost -= 1
            self.late += 1
        else:
            self.duplicates += 1  # already played (or dropped by overflow)

    def _timestamp_jumped(self, packet: RtpPacket) -> bool:
        expected = self._ref_ts + _signed16(packet.sequence_number - self._ref_seq) * (
            self.samples_per_frame
        )
        return abs(_signed32(packet.timestamp - expected)) > self._max_ts_jump

    def _restart(self, packet: RtpPacket, now: float) -> None:
        self._queue.clear()
        self._skipped.clear()
        self._ssrc = packet.ssrc
        self._next_seq = self._ref_seq = packet.sequence_number
        self._ref_ts = packet.timestamp
        self._queue[packet.sequence_number] = packet
        self._play_at = now + self.depth_seconds
        self._playing = False
        self._starved = False

    def _resync(self, packet: RtpPacket, now: float) -> None:
        self.resyncs += 1
        self._restart(packet, now)

    def _skip_to(self, seq: int) -> None:
        """Count the frames from the playout point up to ``seq`` as lost."""
        while self._next_seq != seq:
            self._mark_lost(self._next_seq)
            self._next_seq = (self._next_seq + 1) & 0xFFFF

    def _mark_lost(self, seq: int) -> None:
        self.lost += 1
        self._skipped[seq] = None
        if len(self._skipped) > _SKIPPED_MEMORY:
            self._skipped.popitem(last=False)

    def _drop_oldest(self) -> None:
        seq = self._next_seq
        if self._queue.pop(seq, None) is not None:
            self.overflow += 1
        else:
            self._mark_lost(seq)
        self._next_seq = (seq + 1) & 0xFFFF

    # ------------------------------------------------------------------- pop
    def pop(self, now: float) -> RtpPacket | None:
        """The packet to play this tick, or None (priming, gap or underrun)."""
        if self._play_at is None or now < self._play_at or self._starved:
            return None
        self._playing = True
        seq = self._next_seq
        packet = self._queue.pop(seq, None)
        if packet is None:
            if not self._queue:
                self.underruns += 1
                self._starved = True
                return None
            self._mark_lost(seq)
        self._next_seq = (seq + 1) & 0xFFFF
        return packet
