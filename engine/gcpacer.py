"""Garbage collection paced by the media clock.

CPython's automatic collector runs when a generation's allocation count passes
its threshold, wherever the interpreter happens to be: in the middle of the
20 ms send burst of 300 calls. Measured on this machine (bench/media_load.py,
gc.callbacks timing): with the young threshold raised to 50,000 each young
collection took 11-26 ms and the send jitter p99 was 26-29 ms at 300 calls;
with the default 700 the collections are short but so frequent that ticks ran
up to 100 ms late.

A full collection traverses every tracked object: ~30 ms with 300 calls up.
It took ~300 ms while every ended call left its objects in reference cycles
(old objects, so only a full collection freed them: a minute of ended calls
at once); calls now let go of those references when they end
(tests/test_engine_no_cycles.py).

So the engine collects *itself*, right after every stream has sent its frame
(the clock's after-send hook): the young generation as soon as a little
garbage has accrued (a short collection), and a full collection only every
minute. The automatic collector stays on with high thresholds, as a safety net
for a process without calls.

There are no middle (generation 1) collections by default. Measured at 300
calls (per-tick timing in the clock, ``gc.collect``'s return value): each one
took 2-4 ms in steady state and up to 16 ms while calls were set up, made a
lane tick run past the next lane's start, and freed nothing (0 objects: ended
calls leave no cycles). What a middle collection would have freed waits for
the minute's full collection, which traverses the middle generation anyway,
so it costs no more than before.

:func:`plan` is the pure policy (counts and ticks in, generation out);
:class:`GcPacer` is the shell that reads ``gc.get_count()`` and collects.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

#: Young objects (container allocations minus frees) that trigger a gen-0 collection.
YOUNG_LIMIT = 1_000
#: Gen-0 collections between gen-1 collections; 0: none (see the module docstring).
MIDDLE_EVERY = 0
#: Lane bursts between full collections (the clock's 20 ms period has 4 lanes:
#: 12,000 x 5 ms = 1 minute).
FULL_EVERY_TICKS = 12_000
#: The safety-net thresholds of the automatic collector while the pacer runs.
SAFETY_THRESHOLDS = (50_000, 50, 1_000)


@dataclass(frozen=True)
class GcPolicy:
    young_limit: int = YOUNG_LIMIT
    middle_every: int = MIDDLE_EVERY
    full_every_ticks: int = FULL_EVERY_TICKS


def plan(counts: tuple[int, int, int], ticks_since_full: int, policy: GcPolicy) -> int | None:
    """Which generation to collect now (0, 1, 2), or None.

    ``counts`` is ``gc.get_count()``: allocations since the last gen-0
    collection, gen-0 collections since the last gen-1, gen-1 collections
    since the last gen-2.
    """
    if ticks_since_full >= policy.full_every_ticks:
        return 2
    if counts[0] < policy.young_limit:
        return None
    if policy.middle_every and counts[1] + 1 >= policy.middle_every:
        return 1
    return 0


class GcPacer:
    """Collects garbage from the media clock's after-send hook."""

    def __init__(self, policy: GcPolicy | None = None) -> None:
        self.policy = policy or GcPolicy()
        self.ticks_since_full = 0
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]

    def install(self) -> None:
        """Freeze start-up objects and put the automatic collector on its safety net."""
        gc.collect()
        gc.freeze()
        gc.set_threshold(*SAFETY_THRESHOLDS)

    def __call__(self) -> None:
        """One clock period has been sent: collect if the policy says so."""
        self.ticks_since_full += 1
        generation = plan(gc.get_count(), self.ticks_since_full, self.policy)
        if generation is None:
            return
        started = time.perf_counter()
        gc.collect(generation)
        spent = time.perf_counter() - started
        if generation == 2:
            self.ticks_since_full = 0
        self.collections[generation] += 1
        self.seconds[generation] += spent
        self.longest[generation] = max(self.longest[generation], spent)
