"""Estimated wait: the position formula, the rolling AHT and the spoken rounding."""

from __future__ import annotations

import pytest

from acd.ewt import HandleTimes, ServingAgents, announcement_text, estimate_wait, wait_text


def test_one_agent_on_a_fresh_call_means_a_full_aht_per_caller_ahead() -> None:
    assert estimate_wait(1, [120.0], 120.0) == 120.0
    assert estimate_wait(3, [120.0], 120.0) == 360.0


def test_many_agents_the_caller_waits_for_the_p_th_release() -> None:
    # two free now, one frees in 30 s, one in 90 s; AHT 100
    free = [0.0, 90.0, 0.0, 30.0]
    assert [estimate_wait(p, free, 100.0) for p in range(1, 8)] == [
        0.0,
        0.0,
        30.0,
        90.0,
        100.0,  # second round: the first free agent again after one AHT
        100.0,
        130.0,
    ]


def test_no_serving_agent_gives_no_estimate_and_position_starts_at_one() -> None:
    assert estimate_wait(1, [], 100.0) is None
    with pytest.raises(ValueError, match="position starts at 1"):
        estimate_wait(0, [1.0], 100.0)


def test_serving_tallies_agree_with_the_formula() -> None:
    serving = ServingAgents()
    serving.available = 2
    serving.reserved = 1
    serving.add_busy(50.0)  # answered at 50 s
    serving.add_busy(10.0)  # and at 10 s
    assert serving.busy == [10.0, 50.0]
    serving.add_busy(30.0)
    serving.remove_busy(30.0)
    with pytest.raises(ValueError, match="no busy agent answered at 30"):
        serving.remove_busy(30.0)
    now, aht = 60.0, 100.0
    free = [0.0, 0.0, aht, aht - 10.0, max(0.0, aht - 50.0)]
    for position in range(1, 12):
        assert serving.estimate(position, now, aht) == estimate_wait(position, free, aht)
    assert ServingAgents().estimate(1, now, aht) is None


def test_rolling_aht_keeps_the_last_window_of_calls_per_queue() -> None:
    times = HandleTimes(window=3)
    assert times.aht("q", 180.0) == 180.0
    for handle in (100.0, 200.0, 300.0, 400.0):
        times.add("q", handle)
    assert times.aht("q", 180.0) == 300.0
    copy = HandleTimes(window=3)
    copy.restore(times.snapshot())
    assert copy.aht("q", 0.0) == 300.0 and copy.aht("other", 7.0) == 7.0


@pytest.mark.parametrize(
    ("seconds", "round_to", "text"),
    [
        (0.0, 60.0, "less than 1 minute"),
        (59.9, 60.0, "less than 1 minute"),
        (60.0, 60.0, "less than 2 minutes"),
        (130.0, 60.0, "less than 3 minutes"),
        (130.0, 300.0, "less than 5 minutes"),
        (301.0, 300.0, "less than 10 minutes"),
        (20.0, 30.0, "less than 30 seconds"),
        (40.0, 30.0, "less than 1 minute"),
        (None, 60.0, ""),
    ],
)
def test_wait_text_rounds_up_strictly(seconds: float | None, round_to: float, text: str) -> None:
    assert wait_text(seconds, round_to) == text


def test_announcement_text() -> None:
    assert announcement_text(1, 10.0) == "You are next in line. Your wait is less than 1 minute."
    assert announcement_text(4, None) == "You are number 4 in line."
    assert announcement_text(None, 200.0) == "Your wait is less than 4 minutes."
