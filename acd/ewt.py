"""Estimated wait time (EWT) per caller, and how to say it.

Method (position-based, from current staffing and recent handle times):

* AHT of a queue is the mean handle time (talk + hold + wrap-up) of its
  last ``window`` completed calls (:class:`HandleTimes`); until a queue has
  one, its configured ``default_aht``.
* The agents *serving* the queue are those logged in, able to take one of
  its steps and not in not_ready (available, ringing, on a call or in
  wrap-up). Each frees up in ``r_i`` seconds: 0 when available, the full
  AHT when ringing, ``max(0, AHT - time since answer)`` on a call or in
  wrap-up.
* Agent i then frees up again every AHT: releases happen at
  ``r_i + j * AHT``. The caller at position ``p`` (1 = next) is served at
  the p-th release: with the ``r`` sorted and ``n`` agents,
  ``EWT = r[(p - 1) mod n] + ((p - 1) div n) * AHT``.
  With one agent and nobody busy this is the textbook ``(p - 1) * AHT``;
  with many agents it tends to ``(p / n) * AHT`` minus the time already
  spent on the calls in progress.
* No agent serving: no estimate (``None``); the announcement gives the
  position only.

Known limits, visible in the EWT error metric: an agent serving several
queues is counted whole in each; position counts only this queue's
callers (higher-priority callers of other queues can still pass first);
abandonment ahead of the caller is ignored (the estimate is pessimistic
when many abandon).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from typing import Any

__all__ = ["HandleTimes", "ServingAgents", "announcement_text", "estimate_wait", "wait_text"]


class HandleTimes:
    """Rolling mean handle time per queue over the last ``window`` calls."""

    def __init__(self, window: int = 100) -> None:
        if window < 1:
            raise ValueError("window must be at least 1 call")
        self.window = window
        self._samples: dict[str, deque[float]] = {}
        self._sums: dict[str, float] = {}

    def add(self, queue: str, handle: float) -> None:
        """One completed call of ``queue`` took ``handle`` seconds."""
        samples = self._samples.get(queue)
        if samples is None:
            samples = self._samples[queue] = deque()
            self._sums[queue] = 0.0
        samples.append(handle)
        self._sums[queue] += handle
        if len(samples) > self.window:
            self._sums[queue] -= samples.popleft()

    def aht(self, queue: str, default: float) -> float:
        """The queue's rolling AHT, or ``default`` before its first call."""
        samples = self._samples.get(queue)
        if not samples:
            return default
        return max(0.0, self._sums[queue] / len(samples))

    def snapshot(self) -> dict[str, list[float]]:
        """JSON-able samples per queue."""
        return {queue: list(samples) for queue, samples in self._samples.items()}

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the samples with a :meth:`snapshot`."""
        self._samples.clear()
        self._sums.clear()
        for queue, samples in data.items():
            for handle in samples[-self.window :]:
                self.add(str(queue), float(handle))


class ServingAgents:
    """The agents serving one queue, kept so that an estimate costs a
    lookup instead of a pass over them: how many are available, how many
    ringing, and the answer times of those on a call or in wrap-up (the
    earliest answered frees up first). Gives the same value as
    :func:`estimate_wait` over the same agents.

    ``busy`` holds the answer times only (an estimate needs the k-th
    earliest, not whose it is), as a plain list kept sorted with ``bisect``:
    C-level search and memmove over floats, cheaper than a SortedList's
    bookkeeping for the agents of a queue; answers come in time order, so
    most additions append."""

    __slots__ = ("available", "busy", "reserved")

    def __init__(self) -> None:
        self.available = 0
        self.reserved = 0
        self.busy: list[float] = []  # sorted busy_since of the agents on a call or wrapping up

    def __len__(self) -> int:
        return self.available + self.reserved + len(self.busy)

    def add_busy(self, since: float) -> None:
        """An agent went on a call answered at ``since``."""
        busy = self.busy
        if not busy or since >= busy[-1]:
            busy.append(since)  # where insort puts it (after any equal time), without the search
        else:
            insort(busy, since)

    def remove_busy(self, since: float) -> None:
        """An agent whose call was answered at ``since`` is no longer on it
        or in its wrap-up (any one of equal times: they estimate the same)."""
        busy = self.busy
        index = bisect_left(busy, since)
        if index == len(busy) or busy[index] != since:
            raise ValueError(f"no busy agent answered at {since}")
        del busy[index]

    def estimate(self, position: int, now: float, aht: float) -> float | None:
        """EWT of the caller at ``position`` (see the module docstring)."""
        available = self.available
        busy = self.busy
        n = available + self.reserved + len(busy)
        if n == 0:
            return None
        rounds, k = divmod(position - 1, n)
        if k < available:
            nth = 0.0
        elif k < available + len(busy):
            busy_since = busy[k - available]
            nth = max(0.0, aht - (now - busy_since))
        else:
            nth = aht
        return nth + rounds * aht


def estimate_wait(position: int, free_in: Iterable[float], aht: float) -> float | None:
    """The wait of the caller at ``position`` (1 = next) when the serving
    agents free up in ``free_in`` seconds (0 = available now) and then
    every ``aht`` seconds; ``None`` with no agent."""
    if position < 1:
        raise ValueError(f"position starts at 1, got {position}")
    values = free_in if isinstance(free_in, list) else list(free_in)
    n = len(values)
    if n == 0:
        return None
    rounds, k = divmod(position - 1, n)
    nth = heapq.nsmallest(k + 1, values)[-1] if k + 1 < n else max(values)
    return max(0.0, nth) + rounds * aht


def wait_text(ewt: float | None, round_to: float = 60.0) -> str:
    """ "less than 2 minutes": the wait rounded *up* to the next multiple of
    ``round_to`` seconds (strictly above the estimate), in minutes when
    that is a whole number of minutes, else seconds. ``None``: empty."""
    if ewt is None:
        return ""
    if round_to <= 0:
        raise ValueError("round_to must be positive")
    bound = (math.floor(max(0.0, ewt) / round_to) + 1) * round_to
    if bound % 60 == 0:
        minutes = int(bound // 60)
        return f"less than {minutes} minute{'s' if minutes != 1 else ''}"
    seconds = math.ceil(bound)
    return f"less than {seconds} second{'s' if seconds != 1 else ''}"


def announcement_text(position: int | None, ewt: float | None, round_to: float = 60.0) -> str:
    """ "You are number 3 in line. Your wait is less than 2 minutes." (either
    sentence left out when its value is ``None``)."""
    parts = []
    if position is not None:
        parts.append(
            "You are next in line." if position == 1 else f"You are number {position} in line."
        )
    if ewt is not None:
        parts.append(f"Your wait is {wait_text(ewt, round_to)}.")
    return " ".join(parts)
