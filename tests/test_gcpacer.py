"""GC pacing policy (pure) and the pacer on the real collector."""

from __future__ import annotations

import gc

from engine.gcpacer import GcPacer, GcPolicy, plan

POLICY = GcPolicy(young_limit=100, middle_every=5, full_every_ticks=50)


def test_nothing_to_collect_below_the_young_limit() -> None:
    assert plan((99, 0, 0), 1, POLICY) is None


def test_young_then_middle_then_full() -> None:
    assert plan((100, 0, 0), 1, POLICY) == 0
    assert plan((100, 3, 0), 1, POLICY) == 0
    assert plan((100, 4, 0), 1, POLICY) == 1  # the 5th young collection is a middle one
    assert plan((0, 0, 0), 50, POLICY) == 2  # a full collection is due by time alone


def test_pacer_collects_cycles_from_the_clock_hook() -> None:
    pacer = GcPacer(GcPolicy(young_limit=10, middle_every=3, full_every_ticks=1_000_000))
    before = gc.get_threshold()
    gc.disable()  # only the pacer collects in this test
    try:

        class Node:
            def __init__(self) -> None:
                self.me = self

        collected_before = sum(s["collected"] for s in gc.get_stats())
        for _ in range(50):
            for _ in range(20):
                Node()  # unreachable cycles: only a collection frees them
            pacer()
        collected = sum(s["collected"] for s in gc.get_stats()) - collected_before
    finally:
        gc.enable()
        gc.set_threshold(*before)
    assert pacer.collections[0] > 0 and pacer.collections[1] > 0
    assert pacer.collections[2] == 0
    assert collected >= 50 * 20 * 0.9  # the cycles were freed by the pacer's collections
    assert all(s >= 0 for s in pacer.seconds)


def test_the_default_policy_has_no_middle_collections() -> None:
    """Middle collections froze the media clock for 2-16 ms at 300 calls and freed
    nothing (engine/gcpacer.py): by default only young and full ones run."""
    policy = GcPolicy()
    assert plan((policy.young_limit, 1_000, 0), 1, policy) == 0
    assert plan((policy.young_limit, 2, 0), 1, policy) == 0
    assert plan((0, 0, 0), policy.full_every_ticks, policy) == 2
