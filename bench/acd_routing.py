"""ACD routing decision latency: indexed Router vs full-scan NaiveRouter.

    .venv/bin/python bench/acd_routing.py [--agents 10000] [--skills 200]
        [--waiting 5000] [--events 3000] [--seed 1] [--json out.json]

The center: ``--skills`` skills, one queue per skill (billing-style steps:
level >= 4 for 30 s, >= 2 for 60 s, then >= 1), a two-skill queue for every
fourth skill, and group queues (anyone in a group of 200 agents);
strategies rotate through longest_idle, most_skilled, fewest_calls,
least_talk_time and round_robin (ring_all on the small two-skill queues).
Agents have 3-6 skills (popularity skewed: the first quarter of the skills
is the busiest), levels 1-5, one group each. Wrap-up is 0, so a finished
call makes its agent available at once.

Setup (not timed): every agent logs in ready; callers arrive (90 % on the
busy quarter) and take agents until ``--waiting`` callers wait with no
qualified agent free. Calls offered are answered. The indexed router's
state is then copied into the naive one with ``snapshot``/``restore``.

Timed phase: ``--events`` inputs from a seeded driver that reacts to the
indexed router's effects, with the clock advancing ``--dt`` per input
(default 0.005 s: the run stays before the steps relax at 30 s, so the
center stays as set up; ``--dt 0.05`` adds the mass step relaxation): a call ends (its agent becomes
available and takes the best waiting call: the *agent path*), a caller
arrives (a busy queue: no free agent qualifies; a quiet queue: the
strategy picks among hundreds: the *call path*), a waiting caller hangs
up, an agent toggles not_ready/ready, offers are answered; due timers run
through ``on_timer`` (*timer path*). The same inputs then go to the naive
router, which must return exactly the same effects (offers, their
explanations, state changes, announcements...) for every input.

Printed: per path, the count and the latency p50/p99 (microseconds) of
each router's ``handle``/``on_timer`` call, and the naive/indexed ratio.
Paths: ``agent>offer`` an agent became available and took a waiting call,
``agent>idle`` none they qualify for, ``call>offer`` a caller arrived and
the strategy chose an agent, ``call>wait`` no free agent qualifies (the
full scan looks at every available agent to find that out), ``timer``
due timers (mostly routing steps relaxing), ``other`` answers, abandons,
not_ready (no decision). ``decisions`` pools the first five.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # type: ignore[import-untyped]

from acd.core import Router
from acd.events import (
    AgentAnswer,
    AgentLogin,
    AgentNotReady,
    AgentReady,
    AgentStateChanged,
    CancelOffer,
    Effect,
    EnqueueCall,
    Hangup,
    Input,
    Offer,
    Overflow,
)
from acd.model import (
    AcdConfig,
    AgentConfig,
    AgentState,
    QueueConfig,
    Requirement,
    Step,
)
from acd.naive import NaiveRouter

STRATEGIES = ["longest_idle", "most_skilled", "fewest_calls", "least_talk_time", "round_robin"]


def build_config(agents: int, skills: int, seed: int) -> AcdConfig:
    """The synthetic center described in the module docstring."""
    rng = random.Random(seed)
    names = [f"s{i:03d}" for i in range(skills)]
    busy = max(1, skills // 4)
    weights = [4.0 if i < busy else 1.0 for i in range(skills)]
    groups = [f"g{i:02d}" for i in range(max(1, agents // 200))]
    queues: dict[str, QueueConfig] = {}
    for i, skill in enumerate(names):
        queues[f"q_{skill}"] = QueueConfig(
            name=f"q_{skill}",
            steps=(
                Step(Requirement(((skill, 4),)), 30.0),
                Step(Requirement(((skill, 2),)), 60.0),
                Step(Requirement(((skill, 1),))),
            ),
            strategy=STRATEGIES[i % len(STRATEGIES)],
            ring_timeout=20.0,
        )
        if i % 4 == 0:
            other = names[(i * 7 + 3) % skills]
            if other != skill:
                queues[f"q_{skill}_{other}"] = QueueConfig(
                    name=f"q_{skill}_{other}",
                    steps=(Step(Requirement(((skill, 3), (other, 2)))),),
                    strategy="ring_all" if i % 40 == 0 else STRATEGIES[(i // 4) % 5],
                    ring_timeout=20.0,
                )
    for i, group in enumerate(groups[:10]):
        queues[f"q_{group}"] = QueueConfig(
            name=f"q_{group}",
            steps=(Step(Requirement((), frozenset({group}))),),
            strategy=STRATEGIES[i % len(STRATEGIES)],
            ring_timeout=20.0,
        )
    agent_configs: dict[str, AgentConfig] = {}
    for a in range(agents):
        count = rng.randint(3, 6)
        chosen: set[str] = set()
        while len(chosen) < count:
            chosen.add(rng.choices(names, weights)[0])
        agent_configs[f"agent{a:05d}"] = AgentConfig(
            f"agent{a:05d}",
            {skill: rng.randint(1, 5) for skill in sorted(chosen)},
            frozenset({groups[a % len(groups)]}),
        )
    return AcdConfig(tuple(names), queues, agent_configs)


@dataclass
class Driver:
    """Generates inputs from the indexed router's effects (seeded)."""

    router: Router
    config: AcdConfig
    rng: random.Random
    now: float = 0.0
    next_call: int = 0
    offers: dict[str, str] = field(default_factory=dict)  # call -> agent
    answered: list[str] = field(default_factory=list)
    waiting: set[str] = field(default_factory=set)
    busy_queues: list[str] = field(default_factory=list)
    quiet_queues: list[str] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        skills = self.config.skills
        busy = {f"q_{s}" for s in skills[: max(1, len(skills) // 4)]}
        for name in self.config.queues:
            (self.busy_queues if name in busy else self.quiet_queues).append(name)

    def track(self, event: Input | None, effects: list[Effect]) -> None:
        if isinstance(event, EnqueueCall):
            self.waiting.add(event.call)
        elif isinstance(event, Hangup):
            self.waiting.discard(event.call)
            self.offers.pop(event.call, None)
        elif isinstance(event, AgentAnswer):
            self.offers.pop(event.call, None)
            self.answered.append(event.call)
        for effect in effects:
            if isinstance(effect, Offer):
                self.offers[effect.call] = effect.agent
                self.waiting.discard(effect.call)
            elif isinstance(effect, CancelOffer):
                if self.offers.get(effect.call) == effect.agent:
                    del self.offers[effect.call]
                    self.waiting.add(effect.call)
            elif isinstance(effect, Overflow) and effect.moved_to is None:
                self.waiting.discard(effect.call)
                self.offers.pop(effect.call, None)

    def arrival(self, busy: bool) -> EnqueueCall:
        self.next_call += 1
        queues = self.busy_queues if busy else self.quiet_queues
        return EnqueueCall(self.now, f"call{self.next_call}", self.rng.choice(queues))

    def pending_answer(self) -> AgentAnswer | None:
        if not self.offers:
            return None
        call = next(iter(self.offers))
        return AgentAnswer(self.now, self.offers[call], call)

    def next_event(self) -> Input:
        """One input of the timed mix."""
        answer = self.pending_answer()
        if answer is not None and self.rng.random() < 0.8:
            return answer
        roll = self.rng.random()
        if roll < 0.35 and self.answered:
            call = self.answered.pop(self.rng.randrange(len(self.answered)))
            return Hangup(self.now, call)  # agent path
        if roll < 0.65:
            return self.arrival(busy=self.rng.random() < 0.6)  # call path
        if roll < 0.75 and self.waiting:
            call = self.rng.choice(list(self.waiting))
            return Hangup(self.now, call)  # abandon
        if roll < 0.87 and self.not_ready:
            return AgentReady(self.now, self.not_ready.pop())  # agent path
        agent = f"agent{self.rng.randrange(len(self.config.agents)):05d}"
        if self.router.agent(agent).state is AgentState.AVAILABLE:
            self.not_ready.append(agent)
            return AgentNotReady(self.now, agent, "break")
        return self.arrival(busy=False)


def path_of(event: Input | float | None, effects: list[Effect]) -> str:
    """Which decision the input asked for, and whether it ended in an offer."""
    offered = any(isinstance(e, Offer) for e in effects)
    if event is None or isinstance(event, float):
        return "timer"
    if isinstance(event, EnqueueCall):
        return "call>offer" if offered else "call>wait"
    if isinstance(event, AgentReady) or (
        isinstance(event, Hangup)
        and any(isinstance(e, AgentStateChanged) and e.new is AgentState.AVAILABLE for e in effects)
    ):
        return "agent>offer" if offered else "agent>idle"
    return "other"


def setup(args: argparse.Namespace, config: AcdConfig) -> tuple[Router, Driver]:
    router = Router(config)
    driver = Driver(router, config, random.Random(args.seed + 1))
    for name in tqdm(config.agents, desc="agents log in", unit="agent", mininterval=2):
        router.handle(AgentLogin(0.0, name))
    bar = tqdm(total=args.waiting, desc="callers queue up", unit="waiting", mininterval=2)
    while len(driver.waiting) < args.waiting:
        event = driver.arrival(busy=driver.rng.random() < 0.9)
        driver.track(event, router.handle(event))
        while (answer := driver.pending_answer()) is not None:
            driver.track(answer, router.handle(answer))
        bar.update(len(driver.waiting) - bar.n)
    bar.close()
    router.drain_records()
    return router, driver


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--skills", type=int, default=200)
    parser.add_argument("--waiting", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--dt",
        type=float,
        default=0.005,
        help="virtual seconds between inputs (0.005: 3000 inputs "
        "in 15 s, before the first routing step relaxes at 30 s)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    t0 = time.perf_counter()
    config = build_config(args.agents, args.skills, args.seed)
    router, driver = setup(args, config)
    setup_s = time.perf_counter() - t0
    snapshot = router.snapshot()
    available = sum(1 for a in router.agents() if a.state is AgentState.AVAILABLE)
    print(
        f"center: {len(config.agents)} agents, {len(config.skills)} skills, "
        f"{len(config.queues)} queues; {len(driver.waiting)} callers waiting, "
        f"{len(driver.answered)} on calls, {available} agents available "
        f"(setup {setup_s:.1f}s)"
    )

    t0 = time.perf_counter()
    naive = NaiveRouter(config)
    settle = naive.restore(snapshot)
    assert settle == [], "the snapshot was not settled: restore made decisions"
    restore_s = time.perf_counter() - t0
    print(f"naive router restored from the snapshot in {restore_s:.1f}s")

    # timed phase on the indexed router, driven by its own effects
    log: list[tuple[Input | float, list[Effect]]] = []  # a float: on_timer(that time)
    fast: dict[str, list[float]] = {}
    gc.collect()
    for _ in tqdm(range(args.events), desc="indexed", unit="input", mininterval=2):
        driver.now += args.dt
        deadline = router.next_deadline()
        if deadline is not None and deadline <= driver.now:
            start = time.perf_counter_ns()
            effects = router.on_timer(driver.now)
            fast.setdefault("timer", []).append((time.perf_counter_ns() - start) / 1000)
            log.append((driver.now, effects))
            driver.track(None, effects)
        event = driver.next_event()
        start = time.perf_counter_ns()
        effects = router.handle(event)
        elapsed = (time.perf_counter_ns() - start) / 1000
        fast.setdefault(path_of(event, effects), []).append(elapsed)
        log.append((event, effects))
        driver.track(event, effects)

    # the same inputs through the naive router: identical effects required
    slow: dict[str, list[float]] = {}
    offers = 0
    gc.collect()
    for event, expected in tqdm(log, desc="naive", unit="input", mininterval=2):
        start = time.perf_counter_ns()
        if isinstance(event, float):
            got = naive.on_timer(event)
        else:
            got = naive.handle(event)
        elapsed = (time.perf_counter_ns() - start) / 1000
        slow.setdefault(path_of(event, got), []).append(elapsed)
        if got != expected:
            print(f"DIFFERENT DECISIONS for {event!r}:\n  indexed {expected}\n  naive   {got}")
            return 1
        offers += sum(1 for e in got if isinstance(e, Offer))
    print(f"identical decisions: {len(log)} inputs, {offers} offers, same effects from both")
    available = sum(1 for a in router.agents() if a.state is AgentState.AVAILABLE)
    print(
        f"at the end: {len(driver.waiting)} callers waiting, {available} agents available, "
        f"virtual time {driver.now:.1f}s"
    )

    rows = []
    paths = ("agent>offer", "agent>idle", "call>offer", "call>wait", "timer")
    for path in (*paths, "other"):
        a, b = fast.get(path, []), slow.get(path, [])
        if not a:
            continue
        rows.append(
            {
                "path": path,
                "n": len(a),
                "indexed_p50_us": percentile(a, 50),
                "indexed_p99_us": percentile(a, 99),
                "naive_p50_us": percentile(b, 50),
                "naive_p99_us": percentile(b, 99),
            }
        )
    decisions_a = [v for p in paths for v in fast.get(p, [])]
    decisions_b = [v for p in paths for v in slow.get(p, [])]
    rows.append(
        {
            "path": "decisions",
            "n": len(decisions_a),
            "indexed_p50_us": percentile(decisions_a, 50),
            "indexed_p99_us": percentile(decisions_a, 99),
            "naive_p50_us": percentile(decisions_b, 50),
            "naive_p99_us": percentile(decisions_b, 99),
        }
    )
    print()
    print(
        f"{'path':<10}{'n':>6}  {'indexed p50':>12}{'p99':>10}  {'naive p50':>12}{'p99':>10}"
        f"  {'ratio p50':>10}{'p99':>8}"
    )
    for row in rows:
        r50 = row["naive_p50_us"] / row["indexed_p50_us"]
        r99 = row["naive_p99_us"] / row["indexed_p99_us"]
        row["ratio_p50"], row["ratio_p99"] = r50, r99
        print(
            f"{row['path']:<12}{row['n']:>6}  {row['indexed_p50_us']:>10.0f}us"
            f"{row['indexed_p99_us']:>8.0f}us  {row['naive_p50_us']:>10.0f}us"
            f"{row['naive_p99_us']:>8.0f}us  {r50:>9.1f}x{r99:>7.1f}x"
        )
    total_a = sum(sum(v) for v in fast.values())
    total_b = sum(sum(v) for v in slow.values())
    print(
        f"\ntotal time in the routers: indexed {total_a / 1e6:.2f}s, naive {total_b / 1e6:.2f}s "
        f"({total_b / total_a:.1f}x); mean decision {statistics.fmean(decisions_a):.0f}us "
        f"vs {statistics.fmean(decisions_b):.0f}us"
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
