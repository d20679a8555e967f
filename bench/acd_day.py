"""A simulated day of ~1,000,000 calls through the real ACD router.

    .venv/bin/python bench/acd_day.py [--calls 1000000] [--seed 1] [--naive]
        [--staffing 1.0] [--native] [--no-progress] [--json out.json] [--digest]

The day (built in code, on virtual time): 12 queues over 6 skills, each
queue with two routing steps (expert level for 10 s, then any level), 24
hours of Poisson arrivals with a day-shaped rate, lognormal talk times
(mean 240 s), 10 s wrap-up, exponential patience (mean 180 s), 15 % of
calls on hold once, a 2 s answer delay, and agents with two skills (half
of them experts in their first) on 8-hour shifts that cover, per skill and
15 minutes, what Erlang C says 80/20 needs (times ``--staffing``). Everything goes through
``acd.core.Router`` (or ``acd.naive.NaiveRouter`` with ``--naive``) and the
router's records feed ``acd.metrics.AcdMetrics``. ``--native`` runs the
mypyc-compiled build of the router, metrics and simulator (``make
acd-native``, see :mod:`acd.native`), refused when its sources changed.

Prints: calls, router inputs, events, wall time, calls/s and events/s, the
time spent inside the router loop versus the simulator and metrics, the
day's SL/ASA/abandon figures, the CPU time of the run (wall minus CPU is
time other processes took) and the machine load before and after; ``--digest``
adds a SHA-256 of every interval row, to check that a change keeps the day.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from acd import native

if __name__ == "__main__" and "--native" in sys.argv[1:]:
    # before anything imports the Python modules the build replaces
    try:
        native.enable()
    except native.NativeBuildError as exc:
        raise SystemExit(f"acd_day.py --native: {exc}") from None

from acd.core import Router
from acd.erlang import agents_for_service_level
from acd.metrics import AcdMetrics, QueueCounters
from acd.model import AcdConfig, QueueConfig, Requirement, Step
from acd.naive import NaiveRouter
from acd.scenario import AgentGroup, Dist, HoldModel, Scenario
from acd.simulator import Simulation, summary

SKILLS = ("billing", "internet", "mobile", "tv", "sales", "retention")
AHT = 240.0 + 10.0 + 0.15 * 40.0  # talk + wrap-up + expected hold


def day_shape(hour: float) -> float:
    """Relative arrival rate at ``hour`` (night trough, two daytime peaks)."""
    am = math.exp(-(((hour - 10.5) / 2.0) ** 2))
    pm = 0.85 * math.exp(-(((hour - 15.0) / 2.2) ** 2))
    return 0.06 + max(am, pm)


def build(calls: int, agents_per_erlang: float, seed: int) -> tuple[Scenario, AcdConfig]:
    """The benchmark day: about ``calls`` calls in 24 hours."""
    rng = np.random.default_rng(seed)
    queues = {}
    for i in range(12):
        primary = SKILLS[i % len(SKILLS)]
        queues[f"q{i:02d}"] = QueueConfig(
            name=f"q{i:02d}",
            steps=(
                Step(Requirement(((primary, 4),)), 10.0),
                Step(Requirement(((primary, 1),))),
            ),
            strategy=("longest_idle", "most_skilled", "fewest_calls")[i % 3],
            wrap_up=10.0,
            ring_timeout=15.0,
            default_aht=AHT,
        )
    config = AcdConfig(skills=SKILLS, queues=queues, agents={})
    interval = 900.0
    slots = 96
    shape = np.array([day_shape((k + 0.5) / 4) for k in range(slots)])
    weights = rng.uniform(0.5, 1.5, len(queues))
    weights /= weights.sum()
    per_slot = calls * shape / shape.sum()
    arrivals = {q: (per_slot * w).round(3).tolist() for q, w in zip(queues, weights, strict=True)}
    # staff each skill for 80/20 by Erlang C per 15 minutes, covered greedily by
    # 8-hour shifts: at each slot, agents short of the need start a shift there
    skill_rate = np.zeros((len(SKILLS), slots))
    for i, w in enumerate(weights):
        skill_rate[i % len(SKILLS)] += per_slot * w / interval
    shift_slots = 32
    groups = []
    for s, skill in enumerate(SKILLS):
        need = [
            math.ceil(agents_per_erlang * agents_for_service_level(rate, AHT, 0.8, 20.0))
            for rate in skill_rate[s]
        ]
        starts = [0] * slots
        for k in range(slots):
            on = sum(starts[max(0, k - shift_slots + 1) : k + 1])
            starts[k] = max(0, need[k] - on)
        for k, count in enumerate(starts):
            if not count:
                continue
            begin = k * interval
            end = min(24 * 3600.0, begin + shift_slots * interval) + 600.0
            second = SKILLS[(s + 1 + k % 5) % len(SKILLS)]
            experts = max(1, count // 2)
            for suffix, n, level in (("x", experts, 5), ("", count - experts, 2)):
                if n:
                    groups.append(
                        AgentGroup(
                            name=f"{skill}-{k:02d}{suffix}",
                            count=n,
                            skills={skill: level, second: 2},
                            shift=(begin, end),
                        )
                    )
    scenario = Scenario(
        name=f"bench day ({calls} calls)",
        seed=seed,
        acd={},
        interval=interval,
        start=0.0,
        end=24 * 3600.0 + 3600.0,
        arrivals=arrivals,
        handle={"default": Dist(dist="lognormal", mean=240, sd=160)},
        patience={"default": Dist(dist="exponential", mean=180)},
        hold=HoldModel(probability=0.15, duration=Dist(dist="exponential", mean=40)),
        answer_delay=Dist(dist="fixed", value=2.0),
        agents=groups,
        sample_every=300.0,
    )
    return scenario, config


def day_digest(metrics: AcdMetrics) -> str:
    """SHA-256 of every queue and agent interval row (every counter, floats by repr)."""
    h = hashlib.sha256()
    for q, start, c in metrics.interval_rows():
        h.update(repr((q, start, c)).encode())
    for a, start, ac in metrics.agent_rows():
        h.update(repr((a, start, ac)).encode())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--staffing", type=float, default=1.0, help="Times the Erlang C 80/20 staffing")
    ap.add_argument("--naive", action="store_true", help="Full-scan NaiveRouter (baseline)")
    ap.add_argument(
        "--native",
        action="store_true",
        help="Run the mypyc-compiled router, metrics and simulator from build/acd-native "
        "(make acd-native); refused when their sources changed since the build",
    )
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--stub-ewt",
        action="store_true",
        help="Diagnostic: the router skips its EWT estimate (Router._ewt returns None) to "
        "measure everything else; the day's figures then have no EWT",
    )
    ap.add_argument("--json", type=Path, default=None, help="Write the figures as JSON")
    ap.add_argument(
        "--digest",
        action="store_true",
        help="Also print a SHA-256 of every queue and agent interval row (after the timed run), "
        "to check that a change leaves the day the same to the last digit",
    )
    args = ap.parse_args()
    if args.stub_ewt and args.native:
        # a Python subclass of the compiled Router cannot be made
        ap.error("--stub-ewt subclasses the Router in Python: run it without --native")

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    scenario, config = build(args.calls, args.staffing, args.seed)
    factory: type[Router] = NaiveRouter if args.naive else Router
    if args.stub_ewt:

        class NoEwt(factory):  # type: ignore[valid-type,misc]
            def _ewt(self, queue_name: str, position: int, now: float) -> float | None:
                return None

        factory = NoEwt
    sim = Simulation(
        scenario,
        config,
        router_factory=factory,
        progress=not args.no_progress,
    )
    setup = time.perf_counter() - t0
    cpu0 = time.process_time()
    result = sim.run()
    cpu = time.process_time() - cpu0
    load_after = os.getloadavg()
    fig: dict[str, Any] = dict(summary(result))
    total = QueueCounters()
    for _, _, c in result.metrics.interval_rows():
        total.add(c)
    agents = result.metrics.agent_totals()
    fig.update(
        setup_s=setup,
        agents=len(result.config.agents),
        queues=len(config.queues),
        events_per_s=result.events / result.wall_s,
        sim_and_metrics_s=result.wall_s - result.router_s,
        sl=total.sl,
        sl2=total.sl2,
        sl_offered=total.sl_offered,
        asa=total.asa,
        aht=total.aht,
        abandon_rate=total.abandon_rate,
        ewt_mae=total.ewt_mae,
        occupancy=agents.occupancy,
        unfinished=result.unfinished,
        router=("NaiveRouter" if args.naive else "Router")
        + (" (EWT stubbed out)" if args.stub_ewt else "")
        + (f" [native: {native.enabled()}]" if native.enabled() else " [pure Python]"),
        load_before=load_before,
        load_after=load_after,
        cpu_s=cpu,
        cpus=os.cpu_count(),
    )
    print(f"router            {fig['router']} ({fig['queues']} queues, {fig['agents']} agents)")
    print(
        f"calls             {result.calls:,}  (router inputs {result.router_inputs:,}, "
        f"events {result.events:,}, left in the ACD at the end {result.unfinished})"
    )
    print(
        f"wall              {result.wall_s:.1f} s  (+ {setup:.1f} s setup; CPU time of the "
        f"run {cpu:.1f} s: less than wall when other processes took the CPU)"
    )
    print(f"calls/s           {fig['calls_per_s']:,.0f}")
    print(f"events/s          {fig['events_per_s']:,.0f}")
    print(f"router loop       {result.router_s:.1f} s (router calls, effects, timer bookkeeping)")
    print(f"simulator+metrics {fig['sim_and_metrics_s']:.1f} s")
    print(
        f"day               SL {total.sl:.1%}  SL2 {total.sl2:.1%}  SL of offered "
        f"{total.sl_offered:.1%}  ASA {total.asa:.1f} s  AHT {total.aht:.0f} s  abandoned "
        f"{total.abandon_rate:.1%}  EWT MAE {total.ewt_mae:.1f} s  occupancy "
        f"{agents.occupancy:.1%}"
    )
    print(
        f"machine           {os.cpu_count()} CPUs, load average before "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
        f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}"
    )
    if args.digest:
        fig["digest"] = day_digest(result.metrics)
        print(f"digest            {fig['digest']}")
    if args.json is not None:
        args.json.write_text(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
