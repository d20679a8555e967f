"""The ACD on Prometheus ``/metrics``.

Two kinds of series, both on the engine's own registry:

* read at scrape time from the router and the metrics aggregator
  (:class:`_AcdCollector`), so they are exact at the moment of the scrape:

  ===========================================  =====================================
  ``callcore_acd_waiting{queue}``              callers waiting now (callbacks included)
  ``callcore_acd_callbacks_waiting{queue}``    of which callbacks (caller off the line)
  ``callcore_acd_longest_wait_seconds{queue}`` the longest wait among them
  ``callcore_acd_ewt_seconds{queue}``          EWT of a caller joining now (absent: no
                                               agent serves the queue)
  ``callcore_acd_agents{state}``               agents by state (available, reserved,
                                               on_call, wrap_up, not_ready, offline)
  ``callcore_acd_queue_agents{queue,state}``   the same per queue (members)
  ``callcore_acd_service_level{queue}``        today's SL (Asterisk app_queue: answered
                                               within the threshold / answered; NaN
                                               before the first answer)
  ``callcore_acd_service_level2{queue}``       today's SL2 ((answered + abandoned within)
                                               / (answered + abandoned))
  ``callcore_acd_service_level_target{queue}`` the goal (0.8) and
  ``callcore_acd_service_level_seconds{queue}`` its threshold
  ``callcore_acd_asa_seconds{queue}``          today's average speed of answer
  ``callcore_acd_aht_seconds{queue}``          rolling AHT the EWT uses
  ``callcore_acd_calls_total{queue,outcome}``  every call since the database began:
                                               offered, answered, answered_in_sl,
                                               abandoned, abandoned_in_sl,
                                               short_abandoned, overflowed, completed,
                                               callback_requested, callback_answered
  ===========================================  =====================================

  The ``callcore_acd_calls_total`` counters start from the totals saved in
  the engine's database, so they keep counting across restarts.

* fed by the router's records as they are drained (:meth:`AcdPrometheus.feed`)
  and by the callback legs (:meth:`AcdPrometheus.callback`):

  ``callcore_acd_answer_wait_seconds{queue}`` and
  ``callcore_acd_abandon_wait_seconds{queue}`` (histograms of waits),
  ``callcore_acd_ewt_error_seconds{queue}`` (histogram of predicted minus
  actual wait of every answered call that had a prediction: > 0 the estimate
  was too long; its buckets go below zero, so Prometheus gives it no
  ``_sum``), ``callcore_acd_ewt_abs_error_seconds{queue}`` (the absolute
  error: ``_sum / _count`` is the mean absolute error),
  ``callcore_acd_ewt_unpredicted_total{queue}`` (answered
  calls that joined with no estimate), ``callcore_acd_callbacks_total{queue,
  event}`` (``offered``: the offer was played to a caller; ``requested``;
  ``attempted``: a customer leg was dialled; ``connected``; ``failed``;
  ``given_up``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from acd.metrics import AGENT_STATES, AcdMetrics, QueueCounters
from acd.model import AgentState, Call, CallState
from acd.records import (
    CallAbandoned,
    CallAnswered,
    CallbackRequested,
    CallCompleted,
    CallEnqueued,
    CallOverflowed,
    Record,
)

if TYPE_CHECKING:
    from engine.acd_runtime import AcdRuntime

__all__ = ["CALLBACK_EVENTS", "CALL_OUTCOMES", "AcdPrometheus", "day_totals"]

CALL_OUTCOMES = (
    "offered",
    "answered",
    "answered_in_sl",
    "abandoned",
    "abandoned_in_sl",
    "short_abandoned",
    "overflowed",
    "completed",
    "callback_requested",
    "callback_answered",
)
CALLBACK_EVENTS = ("offered", "requested", "attempted", "connected", "failed", "given_up")
WAIT_BUCKETS = (5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
EWT_ERROR_BUCKETS = (
    *(-300.0, -120.0, -60.0, -30.0, -15.0, -5.0),
    *(0.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0),
)


def _state(state: AgentState) -> str:
    value = state.value
    return value if value in AGENT_STATES else "not_ready"


def day_totals(metrics: AcdMetrics, queue: str, day: float) -> QueueCounters:
    """Sum of ``queue``'s intervals starting in the day that starts at ``day``
    (direct lookups of that day's intervals, however long the history)."""
    total = QueueCounters()
    size = metrics.config.interval
    first = metrics.interval_start(day)
    if first < day:
        first += size
    n = 0
    while (start := first + n * size) < day + 86400.0:
        counters = metrics.queue_intervals.get((queue, start))
        if counters is not None:
            total.add(counters)
        n += 1
    return total


def _totals_of(c: QueueCounters) -> dict[str, float]:
    return {
        "offered": c.offered,
        "answered": c.answered,
        "answered_in_sl": c.answered_in_sl,
        "abandoned": c.abandoned,
        "abandoned_in_sl": c.abandoned_in_sl,
        "short_abandoned": c.short_abandons,
        "overflowed": c.overflowed,
        "completed": c.handled,
        "callback_requested": c.callbacks_requested,
        "callback_answered": c.callbacks_answered,
    }


class AcdPrometheus:
    """The ACD's series on ``registry`` (see the module docstring); attach the
    runtime with :meth:`attach` for the scrape-time figures."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.acd: AcdRuntime | None = None
        self.short_abandon = 5.0
        self.totals: dict[tuple[str, str], float] = {}
        """(queue, outcome) -> calls since the database began."""
        self.answer_wait = Histogram(
            "callcore_acd_answer_wait_seconds",
            "Wait of each answered call in its queue",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.abandon_wait = Histogram(
            "callcore_acd_abandon_wait_seconds",
            "Wait of each caller who hung up before an agent answered",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.ewt_error = Histogram(
            "callcore_acd_ewt_error_seconds",
            "EWT given when the caller joined minus the wait they had, per answered call"
            " (> 0: the estimate was too long)",
            ["queue"],
            buckets=EWT_ERROR_BUCKETS,
            registry=registry,
        )
        self.ewt_abs_error = Histogram(
            "callcore_acd_ewt_abs_error_seconds",
            "How far off the EWT given when the caller joined was, per answered call"
            " (sum / count: the mean absolute error)",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.ewt_unpredicted = Counter(
            "callcore_acd_ewt_unpredicted_total",
            "Answered calls that joined with no wait estimate (no agent served the queue)",
            ["queue"],
            registry=registry,
        )
        self.callbacks = Counter(
            "callcore_acd_callbacks_total",
            "Callbacks: offered (the offer was played), requested, attempted (customer leg"
            " dialled), connected, failed, given_up",
            ["queue", "event"],
            registry=registry,
        )
        registry.register(_AcdCollector(self))

    def attach(self, acd: AcdRuntime) -> None:
        """Read the live figures of ``acd``; the call counters start from its saved totals."""
        self.acd = acd
        self.short_abandon = acd.metrics.config.short_abandon
        self.totals.clear()
        for queue in acd.metrics.queues():
            for outcome, value in _totals_of(acd.metrics.queue_totals(queue)).items():
                self.totals[(queue, outcome)] = value

    def _count(self, queue: str, outcome: str) -> None:
        key = (queue, outcome)
        self.totals[key] = self.totals.get(key, 0) + 1

    def feed(self, records: Iterable[Record]) -> None:
        """Count the router's new records (in the order drained)."""
        for r in records:
            if isinstance(r, CallEnqueued):
                self._count(r.queue, "offered")
            elif isinstance(r, CallAnswered):
                self._count(r.queue, "answered")
                if r.wait <= r.sl_threshold:
                    self._count(r.queue, "answered_in_sl")
                if r.callback:
                    self._count(r.queue, "callback_answered")
                self.answer_wait.labels(r.queue).observe(r.wait)
                if r.ewt is None:
                    self.ewt_unpredicted.labels(r.queue).inc()
                else:
                    self.ewt_error.labels(r.queue).observe(r.ewt - r.wait)
                    self.ewt_abs_error.labels(r.queue).observe(abs(r.ewt - r.wait))
            elif isinstance(r, CallAbandoned):
                self._count(r.queue, "abandoned")
                if r.wait <= r.sl_threshold:
                    self._count(r.queue, "abandoned_in_sl")
                if r.wait < self.short_abandon:
                    self._count(r.queue, "short_abandoned")
                self.abandon_wait.labels(r.queue).observe(r.wait)
            elif isinstance(r, CallOverflowed):
                self._count(r.queue, "overflowed")
            elif isinstance(r, CallCompleted):
                self._count(r.queue, "completed")
            elif isinstance(r, CallbackRequested):
                self._count(r.queue, "callback_requested")

    def callback(self, queue: str, event: str) -> None:
        """One callback ``event`` (see :data:`CALLBACK_EVENTS`) in ``queue``."""
        self.callbacks.labels(queue, event).inc()


class _AcdCollector:
    """The scrape-time series (see the module docstring)."""

    def __init__(self, owner: AcdPrometheus) -> None:
        self.owner = owner

    def describe(self) -> list[Metric]:
        return []  # names vary with the queues: collected, not described

    def collect(self) -> Iterator[Metric]:
        acd = self.owner.acd
        if acd is None or acd.clock is None:
            return
        router = acd.router
        now = acd.now()
        day = acd.metrics.day_start(now)
        g = GaugeMetricFamily
        waiting = g(
            "callcore_acd_waiting", "Callers waiting now (callbacks included)", labels=["queue"]
        )
        callbacks = g(
            "callcore_acd_callbacks_waiting",
            "Callbacks waiting their turn (the caller is off the line)",
            labels=["queue"],
        )
        longest = g(
            "callcore_acd_longest_wait_seconds",
            "Longest wait among the callers waiting now",
            labels=["queue"],
        )
        ewt = g(
            "callcore_acd_ewt_seconds",
            "Estimated wait of a caller joining the queue now",
            labels=["queue"],
        )
        sl = g(
            "callcore_acd_service_level",
            "Today's service level, Asterisk SL: answered within the threshold / answered",
            labels=["queue"],
        )
        sl2 = g(
            "callcore_acd_service_level2",
            "Today's Asterisk SL2: (answered + abandoned within the threshold) /"
            " (answered + abandoned)",
            labels=["queue"],
        )
        target = g("callcore_acd_service_level_target", "Service level goal", labels=["queue"])
        threshold = g(
            "callcore_acd_service_level_seconds", "Service level threshold", labels=["queue"]
        )
        asa = g("callcore_acd_asa_seconds", "Today's average speed of answer", labels=["queue"])
        aht = g("callcore_acd_aht_seconds", "Rolling average handle time", labels=["queue"])
        queue_agents = g(
            "callcore_acd_queue_agents", "Queue members by state", labels=["queue", "state"]
        )
        lines: dict[str, list[Call]] = {}
        for call in router.calls():
            if call.state is CallState.WAITING:
                lines.setdefault(call.queue, []).append(call)
        for name, queue in router.config.queues.items():
            line = lines.get(name, [])
            waiting.add_metric([name], len(line))
            callbacks.add_metric([name], sum(1 for c in line if c.callback is not None))
            longest.add_metric([name], max((now - c.entered_at for c in line), default=0.0))
            estimate = router.queue_estimate(name, now)
            if estimate is not None and math.isfinite(estimate):
                ewt.add_metric([name], estimate)
            today = day_totals(acd.metrics, name, day)
            sl.add_metric([name], today.sl)
            sl2.add_metric([name], today.sl2)
            asa.add_metric([name], today.asa)
            target.add_metric([name], queue.sl_target)
            threshold.add_metric([name], queue.sl_threshold)
            aht.add_metric([name], router.aht(name))
            by_state = dict.fromkeys(AGENT_STATES, 0)
            for agent in router.members(name):
                by_state[_state(agent.state)] += 1
            for state, count in by_state.items():
                queue_agents.add_metric([name, state], count)
        agents = g("callcore_acd_agents", "Agents by state", labels=["state"])
        by_state = dict.fromkeys(AGENT_STATES, 0)
        for agent in router.agents():
            by_state[_state(agent.state)] += 1
        for state, count in by_state.items():
            agents.add_metric([state], count)
        totals = CounterMetricFamily(
            "callcore_acd_calls",
            "ACD calls by queue and outcome since the database began: " + ", ".join(CALL_OUTCOMES),
            labels=["queue", "outcome"],
        )
        for (name, outcome), value in sorted(self.owner.totals.items()):
            totals.add_metric([name, outcome], value)
        yield from (waiting, callbacks, longest, ewt, sl, sl2, target, threshold, asa, aht)
        yield from (queue_agents, agents, totals)
