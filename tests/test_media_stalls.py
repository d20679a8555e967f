"""Late media ticks given their cause: the pure rule, the thread's real clocks,
and the shared clock on a real loop stalled by its own work and by a block."""

from __future__ import annotations

import asyncio
import time

from media.rtp.clock import MediaClock
from media.rtp.stalls import CAUSES, LATE_THRESHOLD, ThreadSample, ThreadTimes, classify

MS = 0.001


def _between(gap: float, cpu: float, queued: float) -> tuple[ThreadSample, ThreadSample]:
    before = ThreadSample(wall=100.0, cpu=5.0, queued=1.0)
    return before, ThreadSample(100.0 + gap, 5.0 + cpu, 1.0 + queued)


def test_the_largest_share_of_the_interval_names_the_cause() -> None:
    assert classify(*_between(20 * MS, 18 * MS, 0.0), idle_allowed=0.0) == "busy"
    assert classify(*_between(20 * MS, 3 * MS, 15 * MS), idle_allowed=0.0) == "queued"
    assert classify(*_between(20 * MS, 3 * MS, 1 * MS), idle_allowed=0.0) == "off_cpu"


def test_sleep_before_the_deadline_is_not_a_cause() -> None:
    # 20 ms between readings, 2 ms of work: slept up to the deadline 15 ms in,
    # then 3 ms unseen: the host.
    before, after = _between(20 * MS, 2 * MS, 0.0)
    assert classify(before, after, idle_allowed=15 * MS) == "off_cpu"
    # the same interval where the thread could sleep 18 ms: nothing unseen, its work
    assert classify(before, after, idle_allowed=18 * MS) == "busy"


def test_clock_readings_that_go_backwards_count_as_nothing() -> None:
    before = ThreadSample(10.0, 5.0, 1.0)
    after = ThreadSample(10.02, 4.0, 0.5)  # cpu and queue "shrank": ignored, not negative
    assert classify(before, after, idle_allowed=0.0) == "off_cpu"


def test_thread_times_read_this_threads_real_clocks() -> None:
    times = ThreadTimes()
    try:
        assert times.sees_run_queue
        a = times.sample()
        end = time.perf_counter() + 0.03
        while time.perf_counter() < end:  # work
            pass
        b = times.sample()
        time.sleep(0.03)  # blocked
        c = times.sample()
    finally:
        times.close()
    assert b.wall - a.wall >= 0.03
    assert b.cpu - a.cpu >= 0.015  # most of the spin, whatever else the machine runs
    assert c.wall - b.wall >= 0.03
    assert c.cpu - b.cpu < 0.01  # asleep: no CPU
    assert c.queued >= a.queued >= 0.0
    times.close()  # idempotent
    assert not times.sees_run_queue


async def _stall_once(stall: str, ms: float) -> dict[str, int]:
    """Run a one-stream clock with thread times, stall its loop once, return the causes."""
    loop = asyncio.get_running_loop()
    times = ThreadTimes()
    seen: list[tuple[str, float]] = []
    clock = MediaClock(
        loop, thread_times=times.sample, on_late=lambda cause, late: seen.append((cause, late))
    )

    class Member:
        ticks = 0

        def tick(self, now: float, skipped: int = 0) -> None:
            Member.ticks += 1

        def after_tick(self, now: float) -> None:
            pass

    clock.register(Member(), 20)
    try:
        while Member.ticks < 3:
            await asyncio.sleep(0.005)
        if stall == "busy":  # by CPU time: as much work however busy the machine is
            end = time.thread_time() + ms * MS
            while time.thread_time() < end:
                pass
        else:
            time.sleep(ms * MS)
        start = Member.ticks
        while Member.ticks < start + 4:
            await asyncio.sleep(0.005)
    finally:
        clock.close()
        times.close()
    assert seen, "the stall made no tick late"
    assert all(late > LATE_THRESHOLD for _, late in seen)
    assert sum(clock.late_causes.values()) == len(seen)
    return clock.late_causes


async def test_a_stall_of_the_loops_own_work_is_busy_catch_up_included() -> None:
    causes = await _stall_once("busy", 45)
    # 45 ms: the late tick and the catch-up tick behind it both had it as cause
    assert set(causes) == {"busy"}, causes


async def test_a_stall_where_the_loop_did_not_run_is_off_cpu_catch_up_included() -> None:
    causes = await _stall_once("blocked", 45)
    assert set(causes) == {"off_cpu"}, causes


def test_a_clock_without_thread_times_gives_no_causes() -> None:
    loop = asyncio.new_event_loop()
    try:
        clock = MediaClock(loop)
        clock.account(0.05)
        assert clock.late_causes == {}
    finally:
        loop.close()
    assert CAUSES == ("busy", "queued", "off_cpu")
