"""Scenario files: times of day, distributions, samplers, and errors with file:line:column."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from acd.scenario import Dist, Sampler, ScenarioError, clock, load_scenario, parse_scenario

GOOD = """\
name: test day
seed: 3
acd: {skills: [billing], queues: {billing: {skills: {billing: 1}}}}
interval: 900
start: "08:00"
arrivals:
  billing: [10, 20, 0]
handle:
  default: {dist: lognormal, mean: 240, sd: 120}
patience:
  default: {dist: exponential, mean: 100}
  billing: null
agents:
  - {name: bill, count: 3, skills: {billing: 3}, shift: ["08:00", "16:30"]}
  - {name: solo, skills: {billing: 1}, shift: [28800, "12:00"]}
"""


def test_a_good_scenario_reads_with_its_defaults() -> None:
    sc, _doc = parse_scenario(GOOD)
    assert sc.start == 8 * 3600
    assert sc.arrivals_end == 8 * 3600 + 3 * 900
    assert sc.day_end == 16.5 * 3600  # last logout
    assert sc.expected_calls() == 30
    assert [n for g in sc.agents for n in g.names()] == ["bill-01", "bill-02", "bill-03", "solo"]
    assert sc.patience_for("billing") is None  # never hangs up
    assert sc.patience_for("other") == Dist(dist="exponential", mean=100)
    assert sc.handle_for("billing").expected == 240
    assert sc.answer_delay.expected == 0


@pytest.mark.parametrize(
    ("text", "value"),
    [("08:30", 30600.0), ("8:05:30", 29130.0), (3600, 3600.0), ("24:00", 86400.0)],
)
def test_clock(text: object, value: float) -> None:
    assert clock(text) == value


@pytest.mark.parametrize("text", ["8h30", "08:60", True, "49:00"])
def test_clock_rejects(text: object) -> None:
    with pytest.raises(ValueError, match=r"time of day|outside"):
        clock(text)


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (
            ("dist: lognormal, mean: 240, sd: 120", "dist: lognormal, mean: 240"),
            "9:12",
            "handle.default: Value error|lognormal needs mean and sd",
        ),
        (
            ('shift: ["08:00", "16:30"]', 'shift: ["08:00", "8h"]'),
            "14:67",
            "agents.0.shift.1: .*not a time of day",
        ),
        (
            ("billing: [10, 20, 0]", "billing: [10, -1, 0]"),
            "7:17",
            "arrivals.billing.1: Input should be greater than or equal to 0",
        ),
        (("interval: 900", "intervall: 900"), "4:1", "intervall: unknown setting"),
        (
            ("skills: {billing: 3}", "skills: {billing: 7}"),
            "14:5",
            "agents.0: skill 'billing' level must be 1-5",
        ),
        (
            ("- {name: solo,", "- {name: bill, count: 2,"),
            "14:3",
            "agents: agent 'bill-01' is defined twice",
        ),
    ],
)
def test_errors_say_where_and_what(change: tuple[str, str], where: str, message: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, Path("day.yaml"))
    problems = "\n".join(info.value.problems)
    print(problems)
    assert problems.startswith(f"day.yaml:{where}: "), problems
    assert re.search(message, problems), problems


def test_missing_handle_time_names_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        GOOD.replace(
            "  default: {dist: lognormal, mean: 240, sd: 120}\n", "  x: {dist: fixed, value: 1}\n"
        )
    )
    with pytest.raises(ScenarioError, match="no handle time for queue 'billing'"):
        load_scenario(path)


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"s.yaml:\d+:\d+: error: invalid YAML"):
        load_scenario(path)


def test_samplers_have_the_asked_mean_and_spread() -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    logn = Sampler(Dist(dist="lognormal", mean=240, sd=120), rng)
    xs = np.array([logn() for _ in range(n)])
    # standard error of the mean: 120 / sqrt(n) = 0.27 s; allow 5 of them
    assert abs(xs.mean() - 240) < 5 * 120 / math.sqrt(n)
    assert xs.std() == pytest.approx(120, rel=0.03)
    expo = Sampler(Dist(dist="exponential", mean=50), rng)
    ys = np.array([expo() for _ in range(n)])
    assert abs(ys.mean() - 50) < 5 * 50 / math.sqrt(n)
    assert Sampler(Dist(dist="fixed", value=3), rng)() == 3.0
    # same seed, same draws
    a = Sampler(Dist(dist="exponential", mean=5), np.random.default_rng(9))
    b = Sampler(Dist(dist="exponential", mean=5), np.random.default_rng(9))
    assert [a() for _ in range(10)] == [b() for _ in range(10)]
