"""The simulator through the real router, against Erlang C and Erlang A where they hold.

Where Erlang's assumptions hold (one queue, one skill, Poisson arrivals,
exponential talk time, no wrap-up, no ring time, n agents all the time) the
simulated service level and ASA must agree with the formulas. The check is
statistical: the run is cut into batches of consecutive intervals (batch
means, the standard way to get a confidence interval from one long
autocorrelated run); the first batch is dropped as warm-up; the simulated
figure must lie within 4 standard errors of the formula (a correct simulator
fails this about once in 2,500 seeds; the seeds are fixed, so the test is
deterministic) and the standard error must be small enough for the check to
mean something.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from acd.erlang import ErlangA, ErlangC
from acd.metrics import QueueCounters
from acd.model import AcdConfig, OverflowAction, QueueConfig, Requirement, Step
from acd.naive import NaiveRouter
from acd.scenario import AgentGroup, Callbacks, Dist, HoldModel, Scenario
from acd.simulator import Simulation, SimulationResult, plot_result, report, write_intervals_csv

AHT = 180.0
LAMBDA = 100 / 1800  # 10 Erlangs


def _one_queue(threshold: float = 20.0) -> AcdConfig:
    q = QueueConfig(name="q", steps=(Step(Requirement((("s", 1),))),), sl_threshold=threshold)
    return AcdConfig(skills=("s",), queues={"q": q}, agents={})


def _long_run(agents: int, calls: int, patience: Dist | None, seed: int) -> SimulationResult:
    interval = 900.0
    intervals = math.ceil(calls / (LAMBDA * interval))
    horizon = intervals * interval
    sc = Scenario(
        name="erlang check",
        acd={},
        interval=interval,
        arrivals={"q": [LAMBDA * interval] * intervals},
        handle={"default": Dist(dist="exponential", mean=AHT)},
        patience={"default": patience},
        agents=[AgentGroup(name="a", count=agents, skills={"s": 1}, shift=(0, horizon + 86400))],
        sample_every=3600.0,
    )
    return Simulation(sc, _one_queue(), seed=seed).run()


def _batches(result: SimulationResult, batches: int) -> list[QueueCounters]:
    rows = [c for _, _, c in result.metrics.interval_rows()]
    size = len(rows) // batches
    out = []
    for b in range(1, batches):  # batch 0 is the warm-up
        total = QueueCounters()
        for c in rows[b * size : (b + 1) * size]:
            total.add(c)
        out.append(total)
    return out


def _mean_se(values: list[float]) -> tuple[float, float]:
    arr = np.array(values)
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(len(arr)))


def test_simulation_agrees_with_erlang_c() -> None:
    n = 13
    result = _long_run(agents=n, calls=80_000, patience=None, seed=20240611)
    batches = _batches(result, 31)
    sl, sl_se = _mean_se([b.sl for b in batches])
    asa, asa_se = _mean_se([b.asa for b in batches])
    model = ErlangC(LAMBDA, AHT, n)
    print(
        f"SL {sl:.4f} +- {sl_se:.4f} (Erlang C {model.service_level(20):.4f}); "
        f"ASA {asa:.2f} +- {asa_se:.2f} (Erlang C {model.asa:.2f})"
    )
    assert sl_se < 0.01 and asa_se < 2.0  # precise enough to tell a wrong simulator apart
    assert abs(sl - model.service_level(20)) < 4 * sl_se
    assert abs(asa - model.asa) < 4 * asa_se
    total = result.metrics.queue_totals("q")
    assert total.abandoned == 0 and total.answered == total.offered == result.calls
    assert total.aht == pytest.approx(AHT, rel=0.02)
    # agents were busy a / n of the time while calls came in (after the first hours)
    busy = result.metrics.agent_totals(start=36_000.0, end=result.scenario.arrivals_end)
    assert busy.occupancy == pytest.approx(10 / n, abs=0.01)


def test_simulation_agrees_with_erlang_a_for_exponential_patience() -> None:
    n, patience = 11, 120.0
    result = _long_run(
        agents=n, calls=60_000, patience=Dist(dist="exponential", mean=patience), seed=7
    )
    batches = _batches(result, 31)
    model = ErlangA(LAMBDA, AHT, patience, n)
    checks = {
        "abandon rate": ([b.abandon_rate for b in batches], model.p_abandon),
        "SL of offered (20 s)": ([b.sl_offered for b in batches], model.answered_within(20)),
        "SL2 (20 s)": (
            [b.sl2 for b in batches],
            model.answered_within(20) + model.abandoned_within(20),
        ),
        "ASA": ([b.asa for b in batches], model.asa),
    }
    for name, (values, expected) in checks.items():
        mean, se = _mean_se(values)
        print(f"{name}: {mean:.4f} +- {se:.4f} (Erlang A {expected:.4f})")
        assert se < 0.05 * expected + 0.005, name
        assert abs(mean - expected) < 4 * se, name


def _small_day(seed: int | None = 5) -> tuple[Scenario, AcdConfig]:
    billing = QueueConfig(
        name="billing",
        steps=(
            Step(Requirement((("billing", 4),)), 30.0),
            Step(Requirement((("billing", 1),))),
        ),
        wrap_up=20.0,
        max_wait=150.0,
        overflow=OverflowAction("queue", "general"),
    )
    general = QueueConfig(
        name="general", steps=(Step(Requirement()),), wrap_up=10.0, strategy="round_robin"
    )
    config = AcdConfig(
        skills=("billing",), queues={"billing": billing, "general": general}, agents={}
    )
    sc = Scenario(
        name="small day",
        seed=seed,
        acd={},
        interval=900,
        start=8 * 3600,
        arrivals={"billing": [30, 45, 60, 40], "general": [20, 25, 30, 25]},
        handle={
            "billing": Dist(dist="lognormal", mean=200, sd=120),
            "default": Dist(dist="exponential", mean=150),
        },
        patience={"default": Dist(dist="exponential", mean=180)},
        hold=HoldModel(probability=0.3, duration=Dist(dist="exponential", mean=30)),
        answer_delay=Dist(dist="fixed", value=2),
        callbacks=Callbacks(after=60, probability=0.2, connect=Dist(dist="fixed", value=10)),
        agents=[
            AgentGroup(name="expert", count=4, skills={"billing": 5}, shift=(8 * 3600, 10 * 3600)),
            AgentGroup(name="junior", count=4, skills={"billing": 2}, shift=(8 * 3600, 9.5 * 3600)),
            AgentGroup(name="desk", count=3, shift=(8.25 * 3600, 10 * 3600)),
        ],
    )
    return sc, config


def test_a_day_with_every_feature_keeps_the_books_straight(tmp_path: Path) -> None:
    sc, config = _small_day()
    result = Simulation(sc, config).run()
    m = result.metrics
    assert result.unfinished == 0
    total_answered = 0
    for q in ("billing", "general"):
        c = m.queue_totals(q)
        # every call that entered a queue left it exactly one way
        assert c.offered == c.answered + c.abandoned + c.overflowed, q
        assert c.handled == c.answered, q
        assert 0 < c.callbacks_answered <= c.callbacks_requested, q
        assert c.hold > 0 and c.wrap_up > 0, q
        total_answered += c.answered
    assert m.queue_totals("billing").overflowed > 0  # max_wait moved callers to general
    agents = m.agent_totals()
    assert agents.answered == total_answered
    assert agents.handled == total_answered
    # nobody worked outside their shift
    for agent in result.config.agents:
        assert m.agent_totals(agent, end=8 * 3600).staffed_s == 0
    text = report(result)
    assert "billing" in text and "SL2%" in text and "need" in text
    pngs = plot_result(result, tmp_path)
    assert [p.name for p in pngs] == ["service_level.png", "queue_length.png", "agents.png"]
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    csv_path = tmp_path / "intervals.csv"
    write_intervals_csv(result, csv_path)
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("queue,start,time,offered,answered")
    assert len(lines) == 1 + len(m.queue_intervals)


def test_same_seed_same_day_other_seed_other_day() -> None:
    def figures(seed: int) -> list[tuple[str, float, QueueCounters]]:
        sc, config = _small_day(seed)
        return list(Simulation(sc, config).run().metrics.interval_rows())

    assert figures(1) == figures(1)
    assert figures(1) != figures(2)


def test_the_full_scan_router_makes_the_same_day() -> None:
    from bench.acd_day import build

    sc, config = _small_day(11)
    # and the benchmark's day in small: 12 queues, 3 strategies, experts first for 10 s
    bench_sc, bench_config = build(4000, 0.9, 3)
    for scenario, cfg in ((sc, config), (bench_sc, bench_config)):
        fast = Simulation(scenario, cfg).run()
        naive = Simulation(scenario, cfg, router_factory=NaiveRouter).run()
        assert fast.calls > 250
        assert list(fast.metrics.interval_rows()) == list(naive.metrics.interval_rows())
        assert list(fast.metrics.agent_rows()) == list(naive.metrics.agent_rows())


def test_unknown_queue_in_arrivals_is_named() -> None:
    sc, config = _small_day()
    bad = sc.model_copy(update={"arrivals": {"billing": [1.0], "bilings": [2.0]}})
    with pytest.raises(ValueError, match=r"unknown queue\(s\) bilings \(known: billing, general\)"):
        Simulation(bad, config)
