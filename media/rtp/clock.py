"""One shared media clock for every outgoing stream in the process.

No thread and no timer per call: each packetisation time (20 ms, 30 ms) has
a few *lanes*, schedules that wake up on absolute deadlines (``epoch + lane
offset + n * ptime``, so lateness never accumulates into drift) and call
their streams' ``tick(now)``. The lanes of a ptime are spread evenly over
the period (every ``LANE_SPACING``: 4 lanes at 0, 5, 10, 15 ms for 20 ms) and
a new stream joins the lane with the fewest streams, where it stays.

Why lanes: a stream's packet leaves at its lane's deadline plus the time the
streams ahead of it in the burst take to send. With one burst of 300
streams that offset spans ~4 ms and moves as calls come and go, which is
send jitter (bench/media_load.py: p99 6.4-7.8 ms at 300 calls with one
burst). With four lanes a burst is a quarter as long, and the loop gets
back to incoming packets between bursts.
If the loop falls more than a few periods behind (a stall), the schedule skips
forward rather than bursting packets, and tells every member how many periods
it skipped (``tick(now, skipped)``) so streams can jump their RTP timestamps by
exactly that much. A shorter lateness is caught up tick by tick (no skip): the
members then send every frame, so their timestamps must not jump.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Protocol

import structlog

from media.rtp.stalls import LATE_THRESHOLD, ThreadSample, classify

log = structlog.get_logger("media.rtp.clock")

#: After this many periods of lateness the schedule jumps instead of catching up.
MAX_CATCH_UP_PERIODS = 3
#: Distance between the lanes of one ptime (seconds): 20 ms -> 4 lanes, 30 ms -> 6.
LANE_SPACING = 0.005


class Ticking(Protocol):
    """Anything driven by the media clock."""

    def tick(self, now: float, skipped: int = 0) -> None:
        """Send this period's frame (keep it short: every stream waits on it)."""

    def after_tick(self, now: float) -> None:
        """Everything else of the period, run after all members have sent."""


class _Schedule:
    """One lane: the streams of one ptime that send at ``offset`` into the period."""

    def __init__(self, clock: MediaClock, period: float, offset: float) -> None:
        self.clock = clock
        self.period = period
        self.offset = offset
        self.members: dict[int, Ticking] = {}
        self.handle: asyncio.TimerHandle | None = None
        self.next_at = 0.0
        self.late_ticks = 0

    def start(self, loop: asyncio.AbstractEventLoop, epoch: float) -> None:
        """Start on the lane's grid ``epoch + offset + n * period``: its next point."""
        now = loop.time()
        base = epoch + self.offset
        self.next_at = base + math.ceil((now - base) / self.period) * self.period
        self.handle = loop.call_at(self.next_at, self._fire)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _fire(self) -> None:
        started = self.clock.work_clock()
        loop = self.clock.loop
        now = loop.time()
        lateness = now - self.next_at
        self.clock.account(lateness)
        skipped = 0
        if lateness > self.period * MAX_CATCH_UP_PERIODS:
            self.late_ticks += 1
            skipped = int(lateness / self.period)  # deadlines passed with no frame
            self.next_at = now
        members = list(self.members.values())
        # Two phases: every stream sends first (a short, regular burst), then
        # each does its slower work (play-out, capture, DTMF, RTCP).
        for member in members:
            try:
                member.tick(now, skipped)
            except Exception:  # one broken call must never stop the clock of the others
                log.exception("media.clock.tick_failed", member=repr(member))
        try:
            self.clock.after_send()
        except Exception:
            log.exception("media.clock.after_send_failed")
        try:
            self.clock.poll(now)  # received RTP of every call (media.rtp.poller)
        except Exception:
            log.exception("media.clock.poll_failed")
        for member in members:
            try:
                member.after_tick(now)
            except Exception:
                log.exception("media.clock.after_tick_failed", member=repr(member))
        self.clock.ticks += 1
        self.clock.on_lateness(lateness)
        self.clock.on_work(self.clock.work_clock() - started)
        self.next_at += self.period
        self.handle = loop.call_at(self.next_at, self._fire)


class MediaClock:
    """Drives registered streams every ``ptime`` on the running asyncio loop.

    ``register(obj, ptime_ms)`` returns a key for ``unregister``. Streams of the
    same ptime share its lanes (the least busy lane takes a new stream); a
    lane runs only while it has members.
    ``on_lateness`` (optional) receives each tick's lateness in seconds, for the
    ``callcore_media_tick_lateness_seconds`` histogram; ``after_send``
    (optional) runs after every lane's burst of sends; ``poll(now)``
    (optional) right after it, before the members' slower work: the engine
    reads every call's received RTP there (:class:`media.rtp.poller.RtpPoller`).
    ``on_work`` (optional) receives how long each lane tick's work took, for
    ``callcore_media_tick_work_seconds``: a lane whose work nears the lane
    spacing makes the next lane late.
    ``thread_times`` (optional, :meth:`media.rtp.stalls.ThreadTimes.sample`)
    is read once per tick; with it, every tick later than
    :data:`media.rtp.stalls.LATE_THRESHOLD` is given a cause (``busy``,
    ``queued``, ``off_cpu``: see :mod:`media.rtp.stalls`) and passed to
    ``on_late(cause, lateness)``, for ``callcore_media_late_ticks_total``.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_lateness: Callable[[float], None] | None = None,
        after_send: Callable[[], None] | None = None,
        poll: Callable[[float], object] | None = None,
        on_work: Callable[[float], None] | None = None,
        work_clock: Callable[[], float] = time.perf_counter,
        thread_times: Callable[[], ThreadSample] | None = None,
        on_late: Callable[[str, float], None] | None = None,
    ) -> None:
        self.loop = loop
        self._lanes: dict[int, list[_Schedule]] = {}
        self._epochs: dict[int, float] = {}
        self._next_key = 0
        self._keys: dict[int, _Schedule] = {}
        self.ticks = 0
        self.on_lateness: Callable[[float], None] = on_lateness or (lambda _late: None)
        #: Called right after each lane's streams have sent their frames,
        #: before their slower work: the engine collects garbage there.
        self.after_send: Callable[[], None] = after_send or (lambda: None)
        #: Reads received RTP (after the sends, before play-out), with the tick's ``now``.
        self.poll: Callable[[float], object] = poll or (lambda _now: None)
        #: Seconds each lane's tick took, sends to slower work (``work_clock`` measures
        #: them: the loop's own clock has millisecond steps under uvloop).
        self.on_work: Callable[[float], None] = on_work or (lambda _seconds: None)
        self.work_clock = work_clock
        self.thread_times = thread_times
        self.on_late: Callable[[str, float], None] = on_late or (lambda _cause, _late: None)
        #: Late ticks by cause since start (with ``thread_times``).
        self.late_causes: dict[str, int] = {}
        self._last_sample: ThreadSample | None = None
        self._stall_cause: str | None = None  # the cause of the stall being caught up

    def account(self, lateness: float) -> None:
        """Read the loop thread's clocks for a tick firing ``lateness`` s late;
        give a late tick its cause.

        The interval since the previous reading (the previous tick of any
        lane) may hold sleep up to this tick's deadline, which is not a
        cause. A tick whose deadline had passed before that reading was
        late for the same reason as the previous one (catching up after one
        stall), so it inherits that cause.
        """
        if self.thread_times is None:
            return
        sample = self.thread_times()
        last = self._last_sample
        self._last_sample = sample
        if lateness <= LATE_THRESHOLD:
            self._stall_cause = None
            return
        if last is None:
            return
        gap = sample.wall - last.wall
        cause = self._stall_cause
        if cause is None or lateness <= gap:  # a new stall, not the catch-up of the last
            cause = classify(last, sample, idle_allowed=gap - lateness)
        self._stall_cause = cause
        self.late_causes[cause] = self.late_causes.get(cause, 0) + 1
        self.on_late(cause, lateness)

    def register(self, member: Ticking, ptime_ms: int) -> int:
        """Start calling ``member.tick(now, skipped)`` every ``ptime_ms``; returns its key."""
        lanes = self._lanes.get(ptime_ms)
        if lanes is None:
            period = ptime_ms / 1000.0
            count = max(1, round(period / LANE_SPACING))
            lanes = self._lanes[ptime_ms] = [
                _Schedule(self, period, i * period / count) for i in range(count)
            ]
            self._epochs[ptime_ms] = self.loop.time()
        schedule = min(lanes, key=lambda lane: len(lane.members))  # first of the least busy
        if not schedule.members:
            schedule.start(self.loop, self._epochs[ptime_ms])
        self._next_key += 1
        schedule.members[self._next_key] = member
        self._keys[self._next_key] = schedule
        return self._next_key

    def unregister(self, key: int) -> None:
        """Stop driving the member registered under ``key`` (idempotent)."""
        schedule = self._keys.pop(key, None)
        if schedule is None:
            return
        schedule.members.pop(key, None)
        if not schedule.members:
            schedule.stop()

    def members(self) -> int:
        """How many streams the clock drives now."""
        return len(self._keys)

    def close(self) -> None:
        """Stop every schedule."""
        for lanes in self._lanes.values():
            for schedule in lanes:
                schedule.stop()
                schedule.members.clear()
        self._keys.clear()
