"""The shared media clock on a real asyncio loop: absolute deadlines, catch-up
of short lateness tick by tick, and a reported skip after a long stall."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

import pytest

from media.rtp.clock import MAX_CATCH_UP_PERIODS, MediaClock


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[tuple[float, int]] = []

    def tick(self, now: float, skipped: int = 0) -> None:
        self.ticks.append((now, skipped))

    def after_tick(self, now: float) -> None:
        pass


async def _run(stall_ms: float, ticks: int = 12) -> list[tuple[float, int]]:
    loop = asyncio.get_running_loop()
    clock = MediaClock(loop)
    member = Recorder()
    clock.register(member, 20)
    while len(member.ticks) < 3:
        await asyncio.sleep(0.005)
    time.sleep(stall_ms / 1000)  # block the loop, as a starved process would
    while len(member.ticks) < ticks:
        await asyncio.sleep(0.005)
    clock.close()
    return member.ticks


async def test_short_lateness_is_caught_up_without_a_skip() -> None:
    ticks = await _run(stall_ms=45)  # < MAX_CATCH_UP_PERIODS periods
    assert MAX_CATCH_UP_PERIODS * 20 > 45
    assert all(skipped == 0 for _, skipped in ticks)
    # the deadlines missed during the stall are fired back to back afterwards
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(ticks)]
    assert sum(g < 0.01 for g in gaps) >= 1


async def test_long_stall_is_skipped_and_reported() -> None:
    ticks = await _run(stall_ms=150)
    skips = [skipped for _, skipped in ticks if skipped]
    assert len(skips) == 1
    # 150 ms of stall past a deadline: at least 6 periods passed with no frame
    assert 6 <= skips[0] <= 10


async def test_every_stream_of_a_lane_sends_before_any_does_its_slower_work() -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock(loop)
    order: list[tuple[float, str, int]] = []
    done = asyncio.Event()

    class Member:
        def __init__(self, n: int) -> None:
            self.n = n

        def tick(self, now: float, skipped: int = 0) -> None:
            order.append((now, "send", self.n))

        def after_tick(self, now: float) -> None:
            order.append((now, "work", self.n))
            if len(order) >= 40:
                done.set()

    for n in range(8):  # 4 lanes for 20 ms: members n and n + 4 share lane n
        clock.register(Member(n), 20)
    await asyncio.wait_for(done.wait(), 2)
    clock.close()
    bursts: dict[float, list[tuple[str, int]]] = {}
    for now, what, n in order:
        bursts.setdefault(now, []).append((what, n))
    complete = [b for b in bursts.values() if len(b) == 4]
    assert len(complete) >= 6
    for burst in complete:
        lane = {n % 4 for _, n in burst}
        assert len(lane) == 1, burst  # a burst is one lane's two members
        (k,) = lane
        assert burst == [("send", k), ("send", k + 4), ("work", k), ("work", k + 4)]


async def test_lanes_spread_the_streams_over_the_period() -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock(loop)
    fired: dict[int, list[float]] = {}
    done = asyncio.Event()

    class Member:
        def __init__(self, n: int) -> None:
            self.n = n

        def tick(self, now: float, skipped: int = 0) -> None:
            fired.setdefault(self.n, []).append(now)
            if sum(map(len, fired.values())) >= 40:
                done.set()

        def after_tick(self, now: float) -> None:
            pass

    for n in range(4):
        clock.register(Member(n), 20)
    await asyncio.wait_for(done.wait(), 2)
    clock.close()
    # Each lane keeps a 20 ms period; lane k runs about k * 5 ms after lane 0.
    for times in fired.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert statistics.median(gaps) == pytest.approx(0.020, abs=0.002)
    firsts = sorted(times[1] for times in fired.values())
    offsets = [(t - firsts[0]) % 0.020 for t in firsts]
    assert offsets == pytest.approx([0.0, 0.005, 0.010, 0.015], abs=0.002)


class _Slow(Recorder):
    def after_tick(self, now: float) -> None:
        time.sleep(0.003)  # 3 ms of play-out work in this lane


async def test_each_lane_tick_reports_how_long_its_work_took_and_polls_once() -> None:
    loop = asyncio.get_running_loop()
    work: list[float] = []
    polls: list[float] = []
    clock = MediaClock(loop, on_work=work.append, poll=polls.append)
    member = _Slow()
    clock.register(member, 20)
    while len(member.ticks) < 5:
        await asyncio.sleep(0.005)
    clock.close()
    assert len(work) >= 5 and len(polls) == len(work)
    assert all(0.003 <= w < 0.5 for w in work), work  # the sleep is inside the measured work
    assert [now for now, _ in member.ticks[: len(polls)]] == polls[: len(member.ticks)]
