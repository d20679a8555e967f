"""A fixed-depth receive jitter buffer, sans I/O.

Packets are pushed as they arrive and popped once per media tick in sequence
order. Playout starts ``depth`` frames after the first packet, which absorbs
that much arrival jitter and reordering. Counters:

* ``late``: arrived after its turn to play had passed (dropped),
* ``lost``: its turn came, it was missing, and later packets had arrived,
* ``duplicates``: the same sequence number twice,
* ``underruns``: nothing to play and nothing queued (silence from the peer).

A sequence jump beyond ``MAX_JUMP`` or an SSRC change resynchronises. If the
sender's clock runs fast and the queue grows past twice the depth, the oldest
frames are dropped (``overflow``) to hold latency.
"""

from __future__ import annotations

from media.rtp.packet import RtpPacket

MAX_JUMP = 500


class JitterBuffer:
    """See module docstring. ``pop`` returns None for a gap or an underrun."""

    def __init__(self, depth_frames: int = 3, samples_per_frame: int = 160) -> None:
        if depth_frames < 1:
            raise ValueError(f"jitter buffer depth must be >= 1 frame, got {depth_frames}")
        self.depth = depth_frames
        self.samples_per_frame = samples_per_frame
        self._queue: dict[int, RtpPacket] = {}
        self._next_seq: int | None = None
        self._ssrc: int | None = None
        self._priming = 0
        self._starved = False
        self.late = 0
        self.lost = 0
        self.duplicates = 0
        self.underruns = 0
        self.overflow = 0
        self.resyncs = 0

    def __len__(self) -> int:
        return len(self._queue)

    def _resync(self, packet: RtpPacket) -> None:
        self._queue.clear()
        self._next_seq = packet.sequence_number
        self._ssrc = packet.ssrc
        self._priming = self.depth

    def push(self, packet: RtpPacket, now: float) -> None:
        """Queue one received packet (``now`` kept for the adaptive variant)."""
        if self._next_seq is None or packet.ssrc != self._ssrc:
            if self._next_seq is not None:
                self.resyncs += 1
            self._resync(packet)
        assert self._next_seq is not None
        offset = (packet.sequence_number - self._next_seq) & 0xFFFF
        if offset >= 0x8000:  # behind the playout point
            if 0x10000 - offset > MAX_JUMP:
                self.resyncs += 1
                self._resync(packet)
                offset = 0
            else:
                self.late += 1
                return
        elif offset > MAX_JUMP:
            self.resyncs += 1
            self._resync(packet)
            offset = 0
        seq = packet.sequence_number
        if self._starved:  # first packet after the peer paused: rebuild the cushion
            self._starved = False
            self._priming = self.depth - 1
        if seq in self._queue:
            self.duplicates += 1
            return
        self._queue[seq] = packet
        while len(self._queue) > 2 * self.depth + 1:  # sender faster than us: hold latency
            self._advance_missing_or_drop()

    def _advance_missing_or_drop(self) -> None:
        assert self._next_seq is not None
        if self._queue.pop(self._next_seq, None) is not None:
            self.overflow += 1
        else:
            self.lost += 1
        self._next_seq = (self._next_seq + 1) & 0xFFFF

    def pop(self, now: float) -> RtpPacket | None:
        """The packet to play this tick, or None (priming, gap or underrun)."""
        if self._next_seq is None:
            return None
        if self._priming:
            self._priming -= 1
            return None
        packet = self._queue.pop(self._next_seq, None)
        if packet is None:
            if not self._queue:
                self.underruns += 1
                self._starved = True
                return None  # the peer paused: wait where we are, lose nothing
            self.lost += 1
        self._next_seq = (self._next_seq + 1) & 0xFFFF
        return packet
