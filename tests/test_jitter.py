"""Jitter buffer on virtual time: reordering, duplicates, late and lost packets, resyncs."""

from __future__ import annotations

import random

import pytest

from media.rtp.jitter import MAX_SEQ_JUMP, JitterBuffer
from media.rtp.packet import RtpPacket

TICK = 0.020


def packet(seq: int, ssrc: int = 1, ts: int | None = None) -> RtpPacket:
    timestamp = 160 * seq if ts is None else ts
    return RtpPacket(
        0, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc, seq.to_bytes(4, "big", signed=True)
    )


def run(
    buffer: JitterBuffer, arrivals: list[tuple[float, RtpPacket]], ticks: int
) -> list[int | None]:
    """Tick every 20 ms from t=0: push what has arrived by then, pop one frame.

    Returns the played packets' original ``seq`` (from the payload), None for silence.
    """
    pending = sorted(arrivals, key=lambda a: a[0])
    played: list[int | None] = []
    for n in range(ticks):
        now = n * TICK
        while pending and pending[0][0] <= now:
            when, p = pending.pop(0)
            buffer.push(p, when)
        out = buffer.pop(now)
        played.append(None if out is None else int.from_bytes(out.payload, "big", signed=True))
    return played


def steady(seqs: list[int], delay: float = 0.005, start: int = 0) -> list[tuple[float, RtpPacket]]:
    """Packet ``seq`` sent at (seq - start) * 20 ms, arriving ``delay`` later."""
    return [((s - start) * TICK + delay, packet(s)) for s in seqs]


def counters(b: JitterBuffer) -> dict[str, int]:
    return {
        "late": b.late,
        "lost": b.lost,
        "duplicates": b.duplicates,
        "underruns": b.underruns,
        "overflow": b.overflow,
        "resyncs": b.resyncs,
    }


ZERO = {"late": 0, "lost": 0, "duplicates": 0, "underruns": 0, "overflow": 0, "resyncs": 0}


def test_steady_stream_plays_in_order_after_the_depth() -> None:
    b = JitterBuffer(depth_frames=3)
    played = run(b, steady(list(range(50))), 40)
    # first packet arrives at 5 ms, playout starts at 65 ms: the tick at 80 ms (the 5th)
    assert played[:4] == [None] * 4
    assert played[4:] == list(range(36))
    assert counters(b) == ZERO
    assert b.depth_seconds == pytest.approx(0.060)


def test_jitter_within_the_depth_loses_nothing() -> None:
    rng = random.Random(1)
    arrivals = [(s * TICK + rng.uniform(0.0, 0.055), packet(s)) for s in range(200)]
    b = JitterBuffer(depth_frames=3)
    played = run(b, arrivals, 200)
    first = next(i for i, p in enumerate(played) if p is not None)
    assert played[first:] == list(range(200 - first))
    assert counters(b) == ZERO


def test_reordered_pairs_are_put_back_in_order() -> None:
    arrivals = steady(list(range(40)))
    for i in range(2, 38, 4):  # swap the arrival times of packets i and i+1
        (t1, p1), (t2, p2) = arrivals[i], arrivals[i + 1]
        arrivals[i], arrivals[i + 1] = (t1, p2), (t2, p1)
    b = JitterBuffer()
    played = run(b, arrivals, 40)
    assert [p for p in played if p is not None] == list(range(36))
    assert counters(b) == ZERO


def test_reordered_first_packets_start_at_the_earliest() -> None:
    arrivals = [(0.001, packet(11)), (0.004, packet(10)), *steady(list(range(12, 30)), start=10)]
    b = JitterBuffer()
    played = run(b, arrivals, 20)
    assert [p for p in played if p is not None][:4] == [10, 11, 12, 13]
    assert counters(b) == ZERO


def test_duplicates_are_counted_and_played_once() -> None:
    arrivals = steady(list(range(30)))
    arrivals += [(t + 0.001, p) for t, p in arrivals if p.sequence_number % 5 == 0]  # queued twice
    arrivals += [(t + 0.2, p) for t, p in arrivals[:3]]  # again, long after playing
    b = JitterBuffer()
    played = run(b, arrivals, 32)
    assert [p for p in played if p is not None] == list(range(28))
    assert b.duplicates == 6 + 3
    assert (b.lost, b.late) == (0, 0)


def test_lost_packet_leaves_one_silent_frame() -> None:
    arrivals = [a for a in steady(list(range(30))) if a[1].sequence_number != 10]
    b = JitterBuffer()
    played = run(b, arrivals, 30)
    assert played[4:18] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, None, 11, 12, 13]
    assert counters(b) == {**ZERO, "lost": 1}


def test_late_packet_is_dropped_and_moves_from_lost_to_late() -> None:
    arrivals = steady(list(range(30)))
    arrivals[10] = (10 * TICK + 0.150, packet(10))  # 150 ms late, cushion is 60 ms
    b = JitterBuffer()
    played = run(b, arrivals, 30)
    assert played[14] is None  # its turn
    assert [p for p in played if p is not None] == [s for s in range(26) if s != 10]
    assert counters(b) == {**ZERO, "late": 1}


def test_pause_then_resume_reprimes_without_loss() -> None:
    # 20 packets, 500 ms of nothing (sender paused, sequence numbers continue), 20 more
    arrivals = steady(list(range(20))) + [(s * TICK + 0.505, packet(s)) for s in range(20, 40)]
    b = JitterBuffer()
    played = run(b, arrivals, 70)
    assert [p for p in played if p is not None] == list(range(40))
    assert counters(b) == {**ZERO, "underruns": 2}  # the pause, and the end of the stream
    # packet 20 arrives at 0.905 s; it plays at the first tick >= 0.965 s
    assert played.index(20) == 49


def test_outage_restarts_at_the_first_packet_back() -> None:
    # packets 10..24 never arrive; 25 on arrive on time
    arrivals = [a for a in steady(list(range(40))) if not 10 <= a[1].sequence_number < 25]
    b = JitterBuffer()
    played = run(b, arrivals, 50)
    assert [p for p in played if p is not None] == [*range(10), *range(25, 40)]
    assert counters(b) == {**ZERO, "underruns": 2, "lost": 15}  # the outage and the end


def test_ssrc_change_resyncs_to_the_new_stream() -> None:
    arrivals = steady(list(range(20)))
    arrivals += [(0.405 + i * TICK, packet(5000 + i, ssrc=2)) for i in range(20)]
    b = JitterBuffer()
    played = run(b, arrivals, 50)
    out = [p for p in played if p is not None]
    assert out[:16] == list(range(16))
    assert out[-10:] == list(range(5010, 5020))
    assert b.resyncs == 1
    assert b.lost == 0


def test_sequence_jump_resyncs() -> None:
    arrivals = steady(list(range(20))) + [
        (0.405 + i * TICK, packet(20 + MAX_SEQ_JUMP + 1 + i)) for i in range(20)
    ]
    b = JitterBuffer()
    played = run(b, arrivals, 50)
    out = [p for p in played if p is not None]
    assert out[-5:] == list(range(20 + MAX_SEQ_JUMP + 16, 20 + MAX_SEQ_JUMP + 21))
    assert (b.resyncs, b.lost) == (1, 0)


def test_timestamp_jump_resyncs_but_small_ones_do_not() -> None:
    # contiguous sequence numbers, timeline jumps 5 s at packet 20 (media switch, no pause)
    arrivals = steady(list(range(20))) + [
        (s * TICK + 0.005, packet(s, ts=160 * s + 40000)) for s in range(20, 40)
    ]
    b = JitterBuffer()
    run(b, arrivals, 45)
    assert b.resyncs == 1
    small = steady(list(range(20))) + [
        (s * TICK + 0.005, packet(s, ts=160 * s + 4000))
        for s in range(20, 40)  # 0.5 s
    ]
    b = JitterBuffer()
    played = run(b, small, 45)
    assert b.resyncs == 0
    assert [p for p in played if p is not None] == list(range(40))


def test_sequence_wrap() -> None:
    seqs = list(range(65520, 65536)) + list(range(0, 20))
    arrivals = [(i * TICK + 0.005, packet(s, ts=160 * i)) for i, s in enumerate(seqs)]
    b = JitterBuffer()
    played = run(b, arrivals, 40)
    assert [p for p in played if p is not None] == seqs[:36]
    assert counters(b) == ZERO


def test_fast_sender_overflows_instead_of_growing_latency() -> None:
    # sender clock 5 % fast: a packet every 19 ms
    arrivals = [(s * 0.019 + 0.005, packet(s)) for s in range(600)]
    b = JitterBuffer(depth_frames=3)
    played = run(b, arrivals, 560)
    assert b.overflow > 0
    assert len(b) <= b.max_frames
    out = [p for p in played if p is not None]
    assert out == sorted(out)  # still in order
    assert b.lost == 0 and b.late == 0


def test_nothing_before_the_first_packet() -> None:
    b = JitterBuffer()
    assert [b.pop(t * TICK) for t in range(10)] == [None] * 10
    assert counters(b) == ZERO


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^jitter buffer depth must be at least 1 frame, got 0$"):
        JitterBuffer(depth_frames=0)
    with pytest.raises(ValueError, match=r"^samples per frame must be positive, got 0$"):
        JitterBuffer(samples_per_frame=0)
    with pytest.raises(ValueError, match=r"^max_frames \(2\) must be at least depth_frames \(3\)$"):
        JitterBuffer(depth_frames=3, max_frames=2)
