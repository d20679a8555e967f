"""Discrete-event simulation of a contact-center day through the real router.

:class:`Simulation` plays a :class:`acd.scenario.Scenario` on virtual time
(seconds since midnight) through :class:`acd.core.Router` - the same state
machine the engine runs - with one event loop (a heapq per second of virtual time):

* arrivals: a Poisson process per queue whose rate is constant within each
  arrival interval (the count is Poisson, the times uniform in the interval);
* every caller draws a patience; when it runs out while the call is still
  waiting or ringing, the caller hangs up (an abandon, as the router sees a
  ``Hangup`` before an answer); callers may ask for a callback instead;
* every ``Offer`` is answered after the scenario's answer delay (unless the
  router cancelled it meanwhile); the talk time (plus an optional hold) then
  runs to a ``Hangup``; wrap-up, ring-no-answer, step relaxation, overflow
  and announcements are the router's own timers, fired at
  ``router.next_deadline()``;
* agents log in and out at their shift times.

The router's records feed :class:`acd.metrics.AcdMetrics`, so the figures
are those the engine would report. Queue lengths and agent states are
sampled every ``sample_every`` seconds for the plots. Randomness comes from
one seeded ``numpy.random.Generator``: the same scenario and seed give the
same day. Event times are rounded to 1/1024 s so that the router's deadline
arithmetic is exact (see ``schedule`` in :meth:`Simulation.run`).
"""

from __future__ import annotations

import gc
import heapq
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

import numpy as np

from acd.core import Router
from acd.erlang import ErlangA
from acd.events import (
    AgentAnswer,
    AgentLogin,
    AgentLogout,
    AgentReady,
    AgentStateChanged,
    CancelOffer,
    EnqueueCall,
    Hangup,
    Hold,
    Offer,
    RequestCallback,
)
from acd.metrics import AGENT_STATES, AcdMetrics, MetricsConfig, QueueCounters
from acd.model import AcdConfig, AgentConfig, AgentState, CallState
from acd.scenario import Sampler, Scenario, ScenarioError, load_scenario

__all__ = [
    "Simulation",
    "SimulationResult",
    "load_simulation",
    "plot_result",
    "report",
    "simulate_file",
    "with_scenario_agents",
    "write_intervals_csv",
]

# event kinds, in the order they run when they fall on the same instant (Final:
# constants of the compiled build, acd.native, rather than look-ups in the module)
_LOGIN: Final = 0
_TIMER: Final = 1
_ANSWER: Final = 2
_HOLD_ON: Final = 3
_HOLD_OFF: Final = 4
_HANGUP: Final = 5
_CALLBACK: Final = 6
_ABANDON: Final = 7
_ARRIVAL: Final = 8
_READY: Final = 9
_LOGOUT: Final = 10
_SAMPLE: Final = 11
_AUTO_NOT_READY: Final = frozenset({"rna", "declined"})
_TICKS: Final = 1024.0  # virtual clock resolution: 1/1024 s
_agent_state = attrgetter("state")
_GC_THRESHOLDS = (10_000, 10, 10_000)  # while a day runs (see Simulation.run)


def with_scenario_agents(config: AcdConfig, scenario: Scenario) -> AcdConfig:
    """``config`` plus the scenario's agent groups.

    A group of one agent with no skills and no groups whose name is an agent of
    ``config`` only gives that agent a shift; any other clash is an error."""
    agents: dict[str, AgentConfig] = dict(config.agents)
    for group in scenario.agents:
        reuse = group.count == 1 and group.name in config.agents
        if reuse and not group.skills and not group.groups:
            continue
        for name in group.names():
            if name in agents:
                raise ValueError(
                    f"agent {name!r} is in both the ACD configuration and the scenario: "
                    "rename the scenario's agent group"
                )
            agents[name] = AgentConfig(
                name=name,
                skills=dict(group.skills),
                groups=frozenset(group.groups),
                wrap_up=group.wrap_up,
            )
    return replace(config, agents=agents)


@dataclass
class SimulationResult:
    """What a run produced: metrics, samples for plots, and run figures."""

    scenario: Scenario
    config: AcdConfig
    metrics: AcdMetrics
    seed: int | None
    sample_times: list[float] = field(default_factory=list)
    queue_lengths: dict[str, list[int]] = field(default_factory=dict)
    agent_states: dict[str, list[int]] = field(default_factory=dict)
    calls: int = 0
    events: int = 0
    router_inputs: int = 0
    records: int = 0
    unfinished: int = 0
    wall_s: float = 0.0
    router_s: float = 0.0
    staffed: dict[tuple[str, float], float] = field(default_factory=dict)
    """Mean logged-in agents able to serve the queue, per (queue, interval start)."""


_Event = tuple[float, int, int, Any, Any]  # (time, kind, seq, a, b): popped in this order


class _Agenda:
    """The pending events, popped in ``_Event`` order, as one heapq would.

    Events wait in buckets of one virtual second; only the current second's
    bucket is a heap. A day has tens of thousands of pending events (every
    agent's login and logout, every caller's patience and hang-up), so a
    single heap pops through ~15 levels of scattered tuples; here a pop sifts
    a heap of the ~100 events of one second. Every event of a later bucket
    is later than every event of the current one, so the order is the same."""

    __slots__ = ("current", "key", "keys", "later")

    def __init__(self) -> None:
        self.current: list[_Event] = []  # heap: the events of bucket ``key``
        self.key = -math.inf
        self.keys: list[float] = []  # heap of the keys of ``later``
        self.later: dict[float, list[_Event]] = {}

    def push(self, event: _Event) -> None:
        key = event[0] // 1.0
        if key <= self.key:
            heapq.heappush(self.current, event)
            return
        bucket = self.later.get(key)
        if bucket is None:
            self.later[key] = [event]
            heapq.heappush(self.keys, key)
        else:
            bucket.append(event)

    def pop(self) -> _Event | None:
        """The next event (``None``: none left)."""
        current = self.current
        if not current:
            if not self.keys:
                return None
            self.key = key = heapq.heappop(self.keys)
            self.current = current = self.later.pop(key)
            heapq.heapify(current)
        return heapq.heappop(current)

    def __iter__(self) -> Iterator[_Event]:
        yield from self.current
        for bucket in self.later.values():
            yield from bucket


class Simulation:
    """One simulated day (see the module docstring).

    ``config``: the ACD configuration (the scenario's agents are added);
    ``router_factory``: builds the router (``acd.naive.NaiveRouter`` works too);
    ``progress``: a tqdm bar over simulated time.
    """

    def __init__(
        self,
        scenario: Scenario,
        config: AcdConfig,
        *,
        seed: int | None = None,
        router_factory: Callable[[AcdConfig], Router] = Router,
        metrics_config: MetricsConfig | None = None,
        progress: bool = False,
    ) -> None:
        self.scenario = scenario
        self.config = with_scenario_agents(config, scenario)
        unknown = sorted(set(scenario.arrivals) - set(self.config.queues))
        if unknown:
            known = ", ".join(sorted(self.config.queues))
            raise ValueError(f"arrivals for unknown queue(s) {', '.join(unknown)} (known: {known})")
        self.seed = scenario.seed if seed is None else seed
        self.rng = np.random.default_rng(self.seed)
        self.router = router_factory(self.config)
        threshold = scenario.sl_threshold
        self.metrics = AcdMetrics(
            metrics_config
            or MetricsConfig(
                interval=scenario.interval,
                default_sl_threshold=threshold if threshold is not None else 20.0,
                sl_threshold={q: c.sl_threshold for q, c in self.config.queues.items()},
            )
        )
        self.progress = progress
        rng = self.rng
        self._talk = {q: Sampler(scenario.handle_for(q), rng) for q in self.config.queues}
        self._patience = {
            q: (Sampler(d, rng) if (d := scenario.patience_for(q)) is not None else None)
            for q in self.config.queues
        }
        self._answer_delay = Sampler(scenario.answer_delay, rng)
        ready = scenario.ready_after
        self._ready_after = Sampler(ready, rng) if ready is not None else None
        hold = scenario.hold
        self._hold = Sampler(hold.duration, rng) if hold is not None else None
        cb = scenario.callbacks
        self._connect = Sampler(cb.connect, rng) if cb is not None else None
        self._uniform: list[float] = []

    def _u(self) -> float:
        if not self._uniform:
            self._uniform = self.rng.random(4096).tolist()
        return self._uniform.pop()

    def _arrival_times(self, queue: str) -> list[float]:
        sc = self.scenario
        out: list[float] = []
        for i, mean in enumerate(sc.arrivals[queue]):
            count = int(self.rng.poisson(mean))
            if count:
                start = sc.start + i * sc.interval
                out.extend(np.sort(start + self.rng.random(count) * sc.interval).tolist())
        out.reverse()  # pop() from the end gives the next arrival
        return out

    def run(self) -> SimulationResult:
        """Play the day; returns the figures (the router and metrics stay inspectable).

        While it runs, the garbage collector's thresholds are raised (and put
        back after): a day allocates tens of millions of short-lived records,
        effects and heap entries, all freed by reference counting, and with the
        default thresholds the collector's passes over the growing live data
        (agents, calls, metrics intervals) took a fifth of the run
        (bench/acd_day.py, 100k calls: 13.8 s -> 10.0 s)."""
        thresholds = gc.get_threshold()
        gc.set_threshold(*_GC_THRESHOLDS)
        try:
            return self._run()
        finally:
            gc.set_threshold(*thresholds)

    def _run(self) -> SimulationResult:
        sc = self.scenario
        router = self.router
        metrics = self.metrics
        result = SimulationResult(sc, self.config, metrics, self.seed)
        queues = list(self.config.queues)
        result.queue_lengths = {q: [] for q in queues}
        result.agent_states = {s: [] for s in AGENT_STATES}
        agenda = _Agenda()
        seq = 0

        def schedule(when: float, kind: int, a: Any = None, b: Any = None) -> None:
            # Virtual time ticks in 1/1024 s: sums of tick times and whole-second (or
            # binary-fraction) durations are then exact, so a router deadline such as
            # entered_at + 20 minus entered_at gives exactly 20 again.
            nonlocal seq
            seq += 1
            agenda.push((round(when * _TICKS) / _TICKS, kind, seq, a, b))

        arrivals: dict[str, list[float]] = {}
        for q in sc.arrivals:
            times = self._arrival_times(q)
            if times:
                arrivals[q] = times
                schedule(times.pop(), _ARRIVAL, q)
        for group in sc.agents:
            for name in group.names():
                schedule(group.shift[0], _LOGIN, name)
                schedule(group.shift[1], _LOGOUT, name)
        end = sc.day_end
        t0 = min([sc.start, *(g.shift[0] for g in sc.agents)])
        schedule(t0, _SAMPLE)

        pending: dict[tuple[str, str], int] = {}  # (call, agent) -> offer token
        token = 0
        timer_at = math.inf
        answer_delay = self._answer_delay
        ready_after = self._ready_after
        talk = self._talk
        patience = self._patience
        hold_p = sc.hold.probability if sc.hold is not None else 0.0
        hold_d = self._hold
        cb = sc.callbacks
        connect = self._connect
        calls = 0
        events = 0
        inputs = 0
        router_s = 0.0
        clock = time.perf_counter
        wall0 = clock()

        bar = None
        if self.progress:
            from tqdm import tqdm  # type: ignore[import-untyped]

            bar = tqdm(total=round(end - t0), unit="s", desc=f"simulating {sc.name}")
        shown = t0

        # The loop below is the benchmark's hot path: the effects are applied
        # inline, the agenda's pop is inline and the frequent events schedule
        # with the same arithmetic as ``schedule`` (same order, same seq, same
        # draws: the same day).
        answered_state = CallState.ANSWERED
        waiting_state = CallState.WAITING
        not_ready_state = AgentState.NOT_READY
        inf = math.inf
        heappop = heapq.heappop
        heapify = heapq.heapify
        keys = agenda.keys
        later = agenda.later
        current = agenda.current
        while True:
            if current:  # agenda.pop(), inline
                event = heappop(current)
            elif keys:
                agenda.key = key = heappop(keys)
                agenda.current = current = later.pop(key)
                heapify(current)
                event = heappop(current)
            else:
                break
            now, kind, _, a, b = event
            events += 1
            r0 = clock()
            if kind == _ANSWER:
                if pending.pop(a, None) != b:
                    continue
                call_id, agent = a
                effects = router.handle(AgentAnswer(now, agent, call_id))
                inputs += 1
                call = router.call(call_id)
                if call is not None and call.state is answered_state:
                    duration = talk[call.queue]()
                    if call.callback is not None and connect is not None:
                        duration += connect()
                    if hold_p and self._u() < hold_p:
                        assert hold_d is not None
                        on = now + self._u() * duration
                        length = hold_d()
                        schedule(on, _HOLD_ON, call_id)
                        schedule(on + length, _HOLD_OFF, call_id)
                        duration += length
                    seq += 1
                    agenda.push(
                        (round((now + duration) * _TICKS) / _TICKS, _HANGUP, seq, call_id, None)
                    )
            elif kind == _TIMER:
                if now != timer_at:
                    continue
                timer_at = inf
                effects = router.on_timer(now)
            elif kind == _ARRIVAL:
                calls += 1
                call_id = f"c{calls}"
                effects = router.handle(EnqueueCall(now, call_id, a))
                inputs += 1
                times = arrivals[a]
                if times:
                    seq += 1
                    agenda.push((round(times.pop() * _TICKS) / _TICKS, _ARRIVAL, seq, a, None))
                p = patience[a]
                if p is not None:
                    seq += 1
                    agenda.push(
                        (round((now + p()) * _TICKS) / _TICKS, _ABANDON, seq, call_id, None)
                    )
                if cb is not None and cb.probability and self._u() < cb.probability:
                    schedule(now + cb.after, _CALLBACK, call_id)
            elif kind == _ABANDON:
                call = router.call(a)
                if call is None or call.state is answered_state or call.callback is not None:
                    continue
                effects = router.handle(Hangup(now, a))
                inputs += 1
            elif kind == _HANGUP:
                effects = router.handle(Hangup(now, a))
                inputs += 1
            elif kind == _CALLBACK:
                call = router.call(a)
                if call is None or call.state is not waiting_state or call.callback is not None:
                    continue
                effects = router.handle(RequestCallback(now, a, f"+1555{a}"))
                inputs += 1
            elif kind in (_HOLD_ON, _HOLD_OFF):
                effects = router.handle(Hold(now, a, kind == _HOLD_ON))
                inputs += 1
            elif kind == _LOGIN:
                effects = router.handle(AgentLogin(now, a))
                inputs += 1
            elif kind == _LOGOUT:
                effects = router.handle(AgentLogout(now, a))
                inputs += 1
            elif kind == _READY:
                if router.agent(a).state is not not_ready_state:
                    continue
                effects = router.handle(AgentReady(now, a))
                inputs += 1
            else:  # _SAMPLE
                effects = router.on_timer(now)
                self._sample(now, result)
                if bar is not None:
                    bar.set_postfix(calls=calls, refresh=False)
                    bar.update(round(min(now, end) - shown))
                    shown = float(round(min(now, end)))
                if now + sc.sample_every <= end or any(k != _SAMPLE for _, k, *_ in agenda):
                    schedule(now + sc.sample_every, _SAMPLE)
            for e in effects:
                if isinstance(e, AgentStateChanged):
                    if (
                        ready_after is not None
                        and e.new is not_ready_state
                        and e.reason in _AUTO_NOT_READY
                    ):
                        schedule(now + ready_after(), _READY, e.agent)
                elif isinstance(e, Offer):
                    token += 1
                    offered = (e.call, e.agent)
                    pending[offered] = token
                    seq += 1
                    agenda.push(
                        (
                            round((now + answer_delay()) * _TICKS) / _TICKS,
                            _ANSWER,
                            seq,
                            offered,
                            token,
                        )
                    )
                elif isinstance(e, CancelOffer):
                    pending.pop((e.call, e.agent), None)
                # CallbackAccepted, Overflow: the router keeps the call (or dropped
                # it); abandons check its state
            # a deadline earlier than the timer event already pending (else None)
            deadline = router.next_deadline(timer_at)
            if deadline is not None:
                timer_at = deadline
                seq += 1
                agenda.push((deadline, _TIMER, seq, None, None))  # the router's own time, as is
            router_s += clock() - r0
            if not events & 2047:  # the records of the last ~2,000 events to the metrics
                metrics.feed_all(router.drain_records())
        metrics.feed_all(router.drain_records())
        if bar is not None:
            bar.close()
        result.calls = calls
        result.events = events
        result.router_inputs = inputs
        result.unfinished = len(router.calls())
        result.wall_s = clock() - wall0
        result.router_s = router_s
        return result

    def _sample(self, now: float, result: SimulationResult) -> None:
        router = self.router
        result.sample_times.append(now)
        for q, series in result.queue_lengths.items():
            series.append(router.waiting(q))
        counts = dict.fromkeys(AGENT_STATES, 0)
        for state, count in Counter(map(_agent_state, router.agents())).items():
            name = str(state)
            counts["not_ready" if name not in counts else name] += count
        for s, series in result.agent_states.items():
            series.append(counts[s])
        start = self.metrics.interval_start(now)
        share = self.scenario.sample_every / self.scenario.interval
        for q in result.queue_lengths:
            key = (q, start)
            result.staffed[key] = result.staffed.get(key, 0.0) + router.staffed(q) * share


# ---------------------------------------------------------------- report


def _pct(x: float) -> str:
    return "   -" if math.isnan(x) else f"{100 * x:4.0f}"


def _sec(x: float) -> str:
    return "    -" if math.isnan(x) else f"{x:5.0f}"


def _hhmm(t: float) -> str:
    s = round(t)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


def _erlang_need(
    counters: QueueCounters,
    interval: float,
    patience_mean: float | None,
    threshold: float,
    target: float,
) -> str:
    """Agents Erlang A (C when patience is infinite) says the interval needed for its target."""
    if counters.offered == 0 or counters.handled == 0:
        return "   -"
    lam = counters.offered / interval
    aht = counters.aht
    pat = math.inf if patience_mean is None else patience_mean
    lo = 0
    hi = max(1, math.ceil(lam * aht)) + 1
    while ErlangA(lam, aht, pat, hi).answered_within(threshold) < target:
        hi *= 2
        if hi > 100_000:
            return "   ?"
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ErlangA(lam, aht, pat, mid).answered_within(threshold) >= target:
            hi = mid
        else:
            lo = mid
    return f"{hi:4d}"


def report(result: SimulationResult, *, per_interval: bool = True) -> str:
    """The per-interval and per-queue figures as a text table."""
    sc = result.scenario
    m = result.metrics
    lines: list[str] = []
    head = (
        f"{'time':5} {'queue':12} {'offd':>5} {'answ':>5} {'aban':>5} {'short':>5} "
        f"{'ovfl':>4} {'SL%':>4} {'SL2%':>4} {'ASA':>5} {'AHT':>5} {'maxW':>5} "
        f"{'EWTe':>5} {'staff':>5} {'need':>4}"
    )
    by_queue: dict[str, QueueCounters] = {}
    if per_interval:
        lines.append(head)
    for q, start, c in m.interval_rows():
        by_queue.setdefault(q, QueueCounters()).add(c)
        if not per_interval:
            continue
        qc = result.config.queues[q]
        pat = sc.patience_for(q)
        need = _erlang_need(
            c,
            m.config.interval,
            None if pat is None else pat.expected,
            qc.sl_threshold,
            qc.sl_target,
        )
        if pat is not None and pat.dist != "exponential":
            need = need.strip() + "~"  # Erlang A assumes exponential patience
        staffed = result.staffed.get((q, start), math.nan)
        lines.append(
            f"{_hhmm(start):5} {q[:12]:12} {c.offered:5d} {c.answered:5d} {c.abandoned:5d} "
            f"{c.short_abandons:5d} {c.overflowed:4d} {_pct(c.sl)} {_pct(c.sl2)} {_sec(c.asa)} "
            f"{_sec(c.aht)} {_sec(c.max_wait)} {_sec(c.ewt_mae)} "
            f"{'    -' if math.isnan(staffed) else f'{staffed:5.1f}'} {need:>4}"
        )
    lines.append("")
    lines.append(
        f"{'queue':12} {'offered':>7} {'answered':>8} {'aband':>6} {'short':>5} {'ovfl':>5} "
        f"{'SL%':>4} {'SL2%':>4} {'SLoff%':>6} {'ASA':>5} {'AHT':>5} {'aband%':>6} "
        f"{'EWT MAE':>7} {'cb req':>6} {'cb ans':>6}"
    )
    total = QueueCounters()
    for q in sorted(by_queue):
        c = by_queue[q]
        total.add(c)
        lines.append(_queue_line(q, c))
    if len(by_queue) > 1:
        lines.append(_queue_line("all", total))
    agents = m.agent_totals()
    lines.append("")
    lines.append(
        f"agents: {len(result.config.agents)}, answered {agents.answered}, missed offers "
        f"{agents.missed}, occupancy {_pct(agents.occupancy).strip()} %, AHT "
        f"{_sec(agents.aht).strip()} s"
    )
    lines.append(
        f"run: {result.calls} calls, {result.events} events, {result.router_inputs} router "
        f"inputs, {result.unfinished} calls still in the ACD at the end, "
        f"{result.wall_s:.2f} s wall ({result.router_s:.2f} s in the router loop)"
    )
    return "\n".join(lines)


def _queue_line(q: str, c: QueueCounters) -> str:
    return (
        f"{q[:12]:12} {c.offered:7d} {c.answered:8d} {c.abandoned:6d} {c.short_abandons:5d} "
        f"{c.overflowed:5d} {_pct(c.sl)} {_pct(c.sl2)} {_pct(c.sl_offered):>6} {_sec(c.asa)} "
        f"{_sec(c.aht)} {_pct(c.abandon_rate):>6} {_sec(c.ewt_mae):>7} "
        f"{c.callbacks_requested:6d} {c.callbacks_answered:6d}"
    )


def write_intervals_csv(result: SimulationResult, path: Path) -> None:
    """One row per queue and interval with the counters and derived figures."""
    import csv
    from dataclasses import fields as dc_fields

    names = [f.name for f in dc_fields(QueueCounters)]
    derived = ["sl", "sl2", "sl_offered", "asa", "aht", "abandon_rate", "ewt_mae"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["queue", "start", "time", *names, *derived, "staffed"])
        for q, start, c in result.metrics.interval_rows():
            w.writerow(
                [q, start, _hhmm(start)]
                + [getattr(c, n) for n in names]
                + [_fmt(getattr(c, n)) for n in derived]
                + [_fmt(result.staffed.get((q, start), math.nan))]
            )


def _fmt(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.6g}"


def plot_result(result: SimulationResult, out: Path) -> list[Path]:
    """PNG plots: service level per interval, queue length and agent states over the day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    m = result.metrics
    written: list[Path] = []
    hours = [t / 3600 for t in result.sample_times]

    fig, ax = plt.subplots(figsize=(10, 4.5))
    targets: dict[float, float] = {}
    for q in m.queues():
        rows = [(s, c) for qq, s, c in m.interval_rows() if qq == q and c.answered + c.abandoned]
        if not rows:
            continue
        xs = [(s + m.config.interval / 2) / 3600 for s, _ in rows]
        ax.plot(xs, [100 * c.sl_offered for _, c in rows], marker="o", ms=3, label=q)
        qc = result.config.queues[q]
        targets[qc.sl_threshold] = qc.sl_target
    for threshold, target in targets.items():
        ax.axhline(100 * target, ls="--", lw=1, color="grey")
        ax.text(
            ax.get_xlim()[0],
            100 * target + 1,
            f"target {target:.0%} in {threshold:g} s",
            fontsize=8,
            color="grey",
        )
    ax.set_ylim(0, 105)
    ax.set_xlabel("hour of day")
    ax.set_ylabel("answered within threshold / (answered + abandoned), %")
    ax.set_title(
        f"{result.scenario.name}: service level per {m.config.interval / 60:g}-min interval"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=4)
    path = out / "service_level.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for q, series in result.queue_lengths.items():
        if any(series):
            ax.step(hours, series, where="post", label=q, lw=1)
    ax.set_xlabel("hour of day")
    ax.set_ylabel("callers waiting")
    ax.set_title(
        f"{result.scenario.name}: queue length (sampled every {result.scenario.sample_every:g} s)"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=4)
    path = out / "queue_length.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(10, 4.5))
    states = [s for s in AGENT_STATES if s != "offline" and any(result.agent_states[s])]
    ax.stackplot(hours, [result.agent_states[s] for s in states], labels=states, step="post")
    ax.set_xlabel("hour of day")
    ax.set_ylabel("agents")
    ax.set_title(f"{result.scenario.name}: agents by state")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    path = out / "agents.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def summary(result: SimulationResult) -> Mapping[str, float]:
    """Run figures for benchmarks: calls, events, wall time, calls per second."""
    wall = result.wall_s or math.nan
    return {
        "calls": result.calls,
        "events": result.events,
        "router_inputs": result.router_inputs,
        "wall_s": result.wall_s,
        "router_loop_s": result.router_s,
        "calls_per_s": result.calls / wall,
    }


# ------------------------------------------------------------- from files


def acd_config_for(scenario: Scenario, scenario_file: Path) -> AcdConfig:
    """The scenario's ACD configuration: ``acd:`` is a queues file (relative to the
    scenario) or an inline mapping in the same format (see :mod:`acd.config`)."""
    from acd.config import load_config, parse_config

    if isinstance(scenario.acd, str):
        path = (scenario_file.parent / scenario.acd).resolve()
        if not path.is_file():
            raise ScenarioError(
                [
                    f"{scenario_file}: acd: {scenario.acd!r} is not a file (looked for {path}); "
                    "give the queues file's path relative to the scenario"
                ]
            )
        config, _warnings = load_config(path)
        return config
    import io

    from ruamel.yaml import YAML

    buf = io.StringIO()
    YAML(typ="safe", pure=True).dump(scenario.acd, buf)
    config, _warnings = parse_config(buf.getvalue(), Path(f"{scenario_file} (acd: mapping)"))
    return config


def load_simulation(path: Path, *, seed: int | None = None, progress: bool = False) -> Simulation:
    """A :class:`Simulation` of the scenario file at ``path``.

    Raises :class:`acd.scenario.ScenarioError` or :class:`acd.config.AcdConfigError`
    (every problem with its file:line:column), or ValueError for clashes."""
    scenario, _doc = load_scenario(path)
    config = acd_config_for(scenario, path)
    return Simulation(scenario, config, seed=seed, progress=progress)


def simulate_file(
    path: Path,
    out: Path,
    *,
    seed: int | None = None,
    progress: bool = False,
    per_interval: bool = True,
) -> tuple[SimulationResult, str, list[Path]]:
    """Run the scenario at ``path``; write plots, ``intervals.csv`` and the metrics
    database (``acd_metrics.db``, as the engine stores them) under ``out``.
    Returns the result, the printed report and the files written."""
    from acd.store import MetricsStore

    sim = load_simulation(path, seed=seed, progress=progress)
    result = sim.run()
    out.mkdir(parents=True, exist_ok=True)
    written = plot_result(result, out)
    csv_path = out / "intervals.csv"
    write_intervals_csv(result, csv_path)
    written.append(csv_path)
    db_path = out / "acd_metrics.db"
    with MetricsStore(db_path) as store:
        store.save(result.metrics)
    written.append(db_path)
    text = f"{result.scenario.name} (seed {result.seed})\n" + report(
        result, per_interval=per_interval
    )
    return result, text, written
