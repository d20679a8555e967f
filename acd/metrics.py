"""ACD metrics: real-time queue/agent figures and 15-minute historical intervals.

:class:`AcdMetrics` is a pure aggregator. It is fed the ACD's events in time
order (one method per event, each taking the event time ``at``; :meth:`feed`
maps the router's records onto them) and never reads a clock. It keeps

* per queue and interval: :class:`QueueCounters` (offered, answered, abandoned,
  short abandons, overflows, transfers, callbacks, waits, talk/hold/wrap-up,
  EWT error), from which SL, SL2, ASA, AHT, abandon rate and EWT error derive;
* per agent and interval: :class:`AgentCounters` (offers, answers, misses,
  handled calls, talk/hold/wrap-up, transfers, seconds in each state), from
  which AHT and occupancy derive;
* the live state: callers waiting per queue (and since when), calls in
  service, each agent's state and since when. :meth:`snapshot` reads it.

Attribution (stated once, used everywhere): a call's queue figures (offered,
answered, abandoned, waits, SL, its talk/hold/wrap-up and EWT error) belong to
the interval in which it entered that queue, as workforce planning counts
arrivals; an overflowed call counts as offered in both queues and as
``overflowed`` in the first. Agent figures belong to the interval in which
they happened; state time is split at interval boundaries.

Service level follows Asterisk app_queue exactly (asterisk/asterisk
``apps/app_queue.c``, ``__queues_show``: ``sl = callscompletedinsl /
callscompleted``, ``sl2 = (callsabandonedinsl + callscompletedinsl) /
(callsabandoned + callscompleted)``; the same definitions are written in
``configs/samples/queues.conf.sample`` under ``servicelevel``):

* ``sl``  = answered within threshold / answered  (Asterisk "SL",
  AMI ``ServicelevelPerf``);
* ``sl2`` = (answered within + abandoned within) / (answered + abandoned)
  (Asterisk "SL2", AMI ``ServicelevelPerf2``);
* ``sl_offered`` = answered within / (answered + abandoned): the stricter
  reading where every abandon counts against the target (what Erlang A's
  ``answered_within`` predicts).

"Within" means a wait ``<= threshold`` seconds, as app_queue compares
``(now - qe->start) <= servicelevel``. A short abandon is a caller who hung up
after waiting less than ``short_abandon`` seconds (default 5); short abandons
are counted in ``abandoned`` too, and ``abandon_rate_excluding_short`` leaves
them out of both sides.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from acd import records as rec
from acd.records import Record

__all__ = [
    "AGENT_STATES",
    "AcdMetrics",
    "AgentCounters",
    "AgentSnapshot",
    "CallInService",
    "MetricsConfig",
    "QueueCounters",
    "QueueSnapshot",
    "Snapshot",
    "WaitingCall",
]

AGENT_STATES = ("available", "reserved", "on_call", "wrap_up", "not_ready", "offline")
"""Agent states the time accounting knows. ``reserved`` is an offer ringing the
agent; ``on_call`` covers talk and hold. Other names the router uses are
folded onto these by :data:`STATE_ALIASES` (unknown ones count as ``not_ready``)."""

STATE_ALIASES: Mapping[str, str] = {
    "available": "available",
    "idle": "available",
    "ready": "available",
    "waiting": "available",
    "reserved": "reserved",
    "ringing": "reserved",
    "offered": "reserved",
    "on_call": "on_call",
    "busy": "on_call",
    "talking": "on_call",
    "in_call": "on_call",
    "hold": "on_call",
    "on_hold": "on_call",
    "wrap_up": "wrap_up",
    "wrapup": "wrap_up",
    "acw": "wrap_up",
    "not_ready": "not_ready",
    "paused": "not_ready",
    "break": "not_ready",
    "away": "not_ready",
    "offline": "offline",
    "logged_out": "offline",
    "logged_off": "offline",
}

MISSED_OFFER_REASONS = frozenset({"rna", "declined"})
"""call_requeued reasons that count as an offer the agent missed (no answer, rejected)."""


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


@dataclass(slots=True, init=False)
class QueueCounters:
    """Counters of one queue over one interval (or any sum of intervals)."""

    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    abandoned_in_sl: int = 0
    short_abandons: int = 0
    overflowed: int = 0
    handled: int = 0
    transfers: int = 0
    callbacks_requested: int = 0
    callbacks_answered: int = 0
    wait_answered: float = 0.0
    wait_abandoned: float = 0.0
    max_wait: float = 0.0
    talk: float = 0.0
    hold: float = 0.0
    wrap_up: float = 0.0
    ewt_samples: int = 0
    ewt_abs_error: float = 0.0
    ewt_error: float = 0.0
    announce_samples: int = 0
    announce_abs_error: float = 0.0

    def __init__(
        self,
        offered: int = 0,
        answered: int = 0,
        answered_in_sl: int = 0,
        abandoned: int = 0,
        abandoned_in_sl: int = 0,
        short_abandons: int = 0,
        overflowed: int = 0,
        handled: int = 0,
        transfers: int = 0,
        callbacks_requested: int = 0,
        callbacks_answered: int = 0,
        wait_answered: float = 0.0,
        wait_abandoned: float = 0.0,
        max_wait: float = 0.0,
        talk: float = 0.0,
        hold: float = 0.0,
        wrap_up: float = 0.0,
        ewt_samples: int = 0,
        ewt_abs_error: float = 0.0,
        ewt_error: float = 0.0,
        announce_samples: int = 0,
        announce_abs_error: float = 0.0,
    ) -> None:
        self.offered = offered
        self.answered = answered
        self.answered_in_sl = answered_in_sl
        self.abandoned = abandoned
        self.abandoned_in_sl = abandoned_in_sl
        self.short_abandons = short_abandons
        self.overflowed = overflowed
        self.handled = handled
        self.transfers = transfers
        self.callbacks_requested = callbacks_requested
        self.callbacks_answered = callbacks_answered
        self.wait_answered = wait_answered
        self.wait_abandoned = wait_abandoned
        self.max_wait = max_wait
        self.talk = talk
        self.hold = hold
        self.wrap_up = wrap_up
        self.ewt_samples = ewt_samples
        self.ewt_abs_error = ewt_abs_error
        self.ewt_error = ewt_error
        self.announce_samples = announce_samples
        self.announce_abs_error = announce_abs_error

    # -- derived figures (NaN when the denominator is 0) ------------------
    @property
    def sl(self) -> float:
        """Asterisk SL: answered within the threshold / answered."""
        return _ratio(self.answered_in_sl, self.answered)

    @property
    def sl2(self) -> float:
        """Asterisk SL2: (answered within + abandoned within) / (answered + abandoned)."""
        return _ratio(self.answered_in_sl + self.abandoned_in_sl, self.answered + self.abandoned)

    @property
    def sl_offered(self) -> float:
        """Answered within the threshold / (answered + abandoned)."""
        return _ratio(self.answered_in_sl, self.answered + self.abandoned)

    @property
    def asa(self) -> float:
        """Average speed of answer (s): mean wait of the answered calls."""
        return _ratio(self.wait_answered, self.answered)

    @property
    def average_abandon_time(self) -> float:
        """Mean wait (s) of the callers who abandoned."""
        return _ratio(self.wait_abandoned, self.abandoned)

    @property
    def aht(self) -> float:
        """Average handle time (s): (talk + hold + wrap-up) / handled calls."""
        return _ratio(self.talk + self.hold + self.wrap_up, self.handled)

    @property
    def abandon_rate(self) -> float:
        """Abandoned / offered."""
        return _ratio(self.abandoned, self.offered)

    @property
    def abandon_rate_excluding_short(self) -> float:
        """(Abandoned - short abandons) / (offered - short abandons)."""
        return _ratio(self.abandoned - self.short_abandons, self.offered - self.short_abandons)

    @property
    def ewt_mae(self) -> float:
        """Mean absolute error (s) of the EWT given at entry vs the wait answered callers had."""
        return _ratio(self.ewt_abs_error, self.ewt_samples)

    @property
    def ewt_bias(self) -> float:
        """Mean signed error (s) of the EWT (> 0: the estimate was too long)."""
        return _ratio(self.ewt_error, self.ewt_samples)

    @property
    def announce_mae(self) -> float:
        """Mean absolute error (s) of announced waits vs the rest of the wait that followed."""
        return _ratio(self.announce_abs_error, self.announce_samples)

    def add(self, other: QueueCounters) -> None:
        """Add ``other`` into these counters (``max_wait`` takes the larger)."""
        for f in fields(self):
            name = f.name
            if name == "max_wait":
                self.max_wait = max(self.max_wait, other.max_wait)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True, init=False)
class AgentCounters:
    """Counters of one agent over one interval (or any sum of intervals)."""

    offered: int = 0
    answered: int = 0
    missed: int = 0
    handled: int = 0
    transfers: int = 0
    talk: float = 0.0
    hold: float = 0.0
    wrap_up: float = 0.0
    available_s: float = 0.0
    reserved_s: float = 0.0
    on_call_s: float = 0.0
    wrap_up_s: float = 0.0
    not_ready_s: float = 0.0

    def __init__(
        self,
        offered: int = 0,
        answered: int = 0,
        missed: int = 0,
        handled: int = 0,
        transfers: int = 0,
        talk: float = 0.0,
        hold: float = 0.0,
        wrap_up: float = 0.0,
        available_s: float = 0.0,
        reserved_s: float = 0.0,
        on_call_s: float = 0.0,
        wrap_up_s: float = 0.0,
        not_ready_s: float = 0.0,
    ) -> None:
        self.offered = offered
        self.answered = answered
        self.missed = missed
        self.handled = handled
        self.transfers = transfers
        self.talk = talk
        self.hold = hold
        self.wrap_up = wrap_up
        self.available_s = available_s
        self.reserved_s = reserved_s
        self.on_call_s = on_call_s
        self.wrap_up_s = wrap_up_s
        self.not_ready_s = not_ready_s

    @property
    def aht(self) -> float:
        """Average handle time (s) of the calls this agent finished."""
        return _ratio(self.talk + self.hold + self.wrap_up, self.handled)

    @property
    def staffed_s(self) -> float:
        """Seconds logged in (every state but offline)."""
        return (
            self.available_s + self.reserved_s + self.on_call_s + self.wrap_up_s + self.not_ready_s
        )

    @property
    def occupancy(self) -> float:
        """Busy / (busy + available): busy is ringing, on a call or in wrap-up
        (not-ready time is staffed but neither)."""
        busy = self.reserved_s + self.on_call_s + self.wrap_up_s
        return _ratio(busy, busy + self.available_s)

    def add(self, other: AgentCounters) -> None:
        """Add ``other`` into these counters."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """How figures are cut.

    ``interval``: length of a historical interval in seconds (900 = 15 min).
    ``sl_threshold``: service-level threshold (s) per queue; ``default_sl_threshold``
    for queues not listed. ``short_abandon``: waits below this (s) are short
    abandons. ``day_offset``: seconds added to the event clock before cutting days
    (the site's UTC offset when the clock is Unix time).
    """

    interval: float = 900.0
    default_sl_threshold: float = 20.0
    sl_threshold: Mapping[str, float] = field(default_factory=dict)
    short_abandon: float = 5.0
    day_offset: float = 0.0

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {self.interval}")
        if self.default_sl_threshold < 0 or self.short_abandon < 0:
            raise ValueError("service-level threshold and short-abandon limit must be >= 0 s")
        for q, t in self.sl_threshold.items():
            if t < 0:
                raise ValueError(f"service-level threshold of queue {q!r} must be >= 0 s, got {t}")

    def threshold(self, queue: str) -> float:
        """The SL threshold of ``queue``."""
        return self.sl_threshold.get(queue, self.default_sl_threshold)


@dataclass(slots=True, init=False)
class WaitingCall:
    """A caller waiting in ``queue`` since ``since`` (entry interval ``start``).

    ``row``: the counters of (queue, start), as marked changed in dirty epoch
    ``row_epoch`` (a shortcut past the interval table; ``None`` after a load)."""

    queue: str
    since: float
    start: float  # interval start of the queue entry
    ewt: float | None
    callback: bool = False
    row: QueueCounters | None = field(default=None, repr=False, compare=False)
    row_epoch: int = field(default=-1, repr=False, compare=False)

    def __init__(
        self,
        queue: str,
        since: float,
        start: float,
        ewt: float | None,
        callback: bool = False,
        row: QueueCounters | None = None,
        row_epoch: int = -1,
    ) -> None:
        self.queue = queue
        self.since = since
        self.start = start
        self.ewt = ewt
        self.callback = callback
        self.row = row
        self.row_epoch = row_epoch


@dataclass(slots=True, init=False)
class CallInService:
    """An answered call of ``queue`` (entry interval ``start``) held by ``agent``
    (``row``, ``row_epoch``: as for :class:`WaitingCall`)."""

    queue: str
    start: float
    agent: str
    callback: bool
    row: QueueCounters | None = field(default=None, repr=False, compare=False)
    row_epoch: int = field(default=-1, repr=False, compare=False)

    def __init__(
        self,
        queue: str,
        start: float,
        agent: str,
        callback: bool,
        row: QueueCounters | None = None,
        row_epoch: int = -1,
    ) -> None:
        self.queue = queue
        self.start = start
        self.agent = agent
        self.callback = callback
        self.row = row
        self.row_epoch = row_epoch


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """Live figures of one queue at ``now``; ``today`` sums today's intervals."""

    queue: str
    waiting: int
    longest_wait: float
    ewt: float | None
    today: QueueCounters


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """One agent's state at ``now``."""

    agent: str
    state: str
    since: float
    call_id: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Real-time view: queues, agents by state, and the agents themselves."""

    now: float
    queues: dict[str, QueueSnapshot]
    agents_by_state: dict[str, int]
    agents: dict[str, AgentSnapshot]


class AcdMetrics:
    """Pure aggregator of ACD events into live state and historical intervals."""

    def __init__(self, config: MetricsConfig | None = None) -> None:
        self.config = config or MetricsConfig()
        self.queue_intervals: dict[tuple[str, float], QueueCounters] = {}
        self.agent_intervals: dict[tuple[str, float], AgentCounters] = {}
        self.waiting: dict[str, WaitingCall] = {}
        self.queue_waiting: dict[str, dict[str, float]] = {}
        self.in_service: dict[str, CallInService] = {}
        self.agent_state: dict[str, tuple[str, float]] = {}
        self.agent_booked: dict[str, float] = {}
        self.agent_call: dict[str, str] = {}
        self.last_ewt: dict[str, float] = {}
        self.announced_at: dict[str, tuple[float, float]] = {}
        self._handlers = self._handler_table()
        self._size = self.config.interval
        self.dirty_queues: set[tuple[str, float]] = set()
        """(queue, interval start) of the queue rows changed since the store last saved."""
        self.dirty_agents: set[tuple[str, float]] = set()
        """(agent, interval start) of the agent rows changed since the store last saved."""
        self._dirty_epoch = 0
        self._queue_current: dict[str, tuple[float, int, QueueCounters, float]] = {}
        """Per queue, the row calls entering now count in: (interval number,
        dirty epoch, counters, interval start)."""
        self._agent_current: dict[str, tuple[float, float, int, AgentCounters]] = {}
        """Per agent, the row last used (see _a): (interval number ``at // interval``,
        end of that interval, dirty epoch, counters)."""

    # ------------------------------------------------------------ helpers
    @property
    def dirty(self) -> set[tuple[str, str, float]]:
        """Every changed row as (``"queue"``/``"agent"``, name, interval start)."""
        return {("queue", q, s) for q, s in self.dirty_queues} | {
            ("agent", a, s) for a, s in self.dirty_agents
        }

    def clear_dirty(self) -> None:
        """Forget which rows changed (after the store saved them)."""
        self.dirty_queues.clear()
        self.dirty_agents.clear()
        self._dirty_epoch += 1

    def interval_start(self, at: float) -> float:
        """Start of the interval holding time ``at``."""
        size = self._size
        return (at // size) * size  # exact floor of the true quotient (as _a and _book)

    def day_start(self, at: float) -> float:
        """Start (on the event clock) of the day holding ``at``."""
        off = self.config.day_offset
        return math.floor((at + off) / 86400.0) * 86400.0 - off

    def _q(self, queue: str, start: float) -> QueueCounters:
        key = (queue, start)
        c = self.queue_intervals.get(key)
        if c is None:
            c = self.queue_intervals[key] = QueueCounters()
        self.dirty_queues.add(key)
        return c

    def _a(self, agent: str, at: float) -> AgentCounters:
        size = self._size
        number = at // size
        # most calls hit the agent's current interval: its counters are kept
        # per agent so the large (agent, interval) table and the dirty set
        # (which has the row since the last clear_dirty) are not touched again
        current = self._agent_current.get(agent)
        if current is not None and current[0] == number and current[2] == self._dirty_epoch:
            return current[3]
        key = (agent, number * size)  # (at // size) * size: the interval's start
        c = self.agent_intervals.get(key)
        if c is None:
            c = self.agent_intervals[key] = AgentCounters()
        self.dirty_agents.add(key)
        self._agent_current[agent] = (number, (number + 1) * size, self._dirty_epoch, c)
        return c

    # ------------------------------------------------------------- events
    def enqueued(self, call_id: str, queue: str, at: float, ewt: float | None = None) -> None:
        """A caller entered ``queue``; ``ewt`` is the wait the router predicted then."""
        size = self._size
        number = at // size
        epoch = self._dirty_epoch
        current = self._queue_current.get(queue)
        if current is not None and current[0] == number and current[1] == epoch:
            c = current[2]
            start = current[3]
        else:
            start = number * size  # interval_start(at)
            c = self._q(queue, start)
            self._queue_current[queue] = (number, epoch, c, start)
        c.offered += 1
        self.waiting[call_id] = WaitingCall(queue, at, start, ewt, False, c, epoch)
        waiting = self.queue_waiting.get(queue)
        if waiting is None:
            waiting = self.queue_waiting[queue] = {}
        waiting[call_id] = at
        if ewt is not None:
            self.last_ewt[queue] = ewt

    def _leave(self, call_id: str, what: str) -> WaitingCall:
        w = self.waiting.pop(call_id, None)
        if w is None:
            raise KeyError(f"{what} for call {call_id!r}, which is not waiting in any queue")
        self.queue_waiting[w.queue].pop(call_id, None)
        return w

    def offered(self, call_id: str, agent: str, at: float) -> None:
        """The router offered (rang) ``call_id`` to ``agent``."""
        self._a(agent, at).offered += 1

    def offer_missed(self, call_id: str, agent: str, at: float) -> None:
        """The offer to ``agent`` ended without an answer (rejected, timed out)."""
        self._a(agent, at).missed += 1

    def answered(
        self,
        call_id: str,
        agent: str,
        at: float,
        wait: float | None = None,
        threshold: float | None = None,
        callback: bool = False,
    ) -> None:
        """``agent`` answered ``call_id``: its wait ends (``callback``: a call-back).

        ``wait`` (default: since it entered the queue) and ``threshold`` (default:
        the configured SL threshold of the queue) come from the router's record."""
        w = self._leave(call_id, "answer")
        epoch = self._dirty_epoch
        c = w.row  # the row of (queue, start), still marked changed in this epoch
        if c is None or w.row_epoch != epoch:
            c = self._q(w.queue, w.start)
        if wait is None:
            wait = at - w.since
        if threshold is None:
            threshold = self.config.threshold(w.queue)
        c.answered += 1
        c.wait_answered += wait
        if wait > c.max_wait:
            c.max_wait = wait
        if wait <= threshold:
            c.answered_in_sl += 1
        if w.callback or callback:
            c.callbacks_answered += 1
        announced = self.announced_at.pop(call_id, None)
        if announced is not None:
            c.announce_samples += 1
            c.announce_abs_error += abs(announced[1] - (at - announced[0]))
        if w.ewt is not None:
            err = w.ewt - wait
            c.ewt_samples += 1
            c.ewt_error += err
            c.ewt_abs_error += abs(err)
        self._a(agent, at).answered += 1
        self.in_service[call_id] = CallInService(w.queue, w.start, agent, w.callback, c, epoch)
        self.agent_call[agent] = call_id

    def abandoned(
        self, call_id: str, at: float, wait: float | None = None, threshold: float | None = None
    ) -> None:
        """The caller hung up while waiting (``wait``/``threshold`` as for :meth:`answered`)."""
        w = self._leave(call_id, "abandon")
        self.announced_at.pop(call_id, None)
        c = self._q(w.queue, w.start)
        if wait is None:
            wait = at - w.since
        if threshold is None:
            threshold = self.config.threshold(w.queue)
        c.abandoned += 1
        c.wait_abandoned += wait
        if wait > c.max_wait:
            c.max_wait = wait
        if wait <= threshold:
            c.abandoned_in_sl += 1
        if wait < self.config.short_abandon:
            c.short_abandons += 1

    def overflowed(self, call_id: str, at: float, to_queue: str | None = None) -> None:
        """The call left its queue for another (``to_queue``) or a flow exit (None)."""
        w = self._leave(call_id, "overflow")
        self.announced_at.pop(call_id, None)
        c = self._q(w.queue, w.start)
        c.overflowed += 1
        wait = at - w.since
        if wait > c.max_wait:
            c.max_wait = wait
        if to_queue is not None:
            self.enqueued(call_id, to_queue, at)
            self.waiting[call_id].callback = w.callback

    def announced(self, call_id: str, at: float, ewt: float | None) -> None:
        """The caller heard an estimated wait of ``ewt`` s; the last one is scored on answer."""
        if ewt is not None and call_id in self.waiting:
            self.announced_at[call_id] = (at, ewt)

    def callback_requested(self, call_id: str, at: float) -> None:
        """The waiting caller asked to be called back; the call keeps its place and entry time."""
        w = self.waiting.get(call_id)
        if w is None:
            raise KeyError(f"callback request for call {call_id!r}, which is not waiting")
        w.callback = True
        self._q(w.queue, w.start).callbacks_requested += 1

    def transferred(self, call_id: str, agent: str, at: float) -> None:
        """``agent`` transferred the call out (counted on the call's queue and on the agent)."""
        s = self.in_service.get(call_id)
        if s is not None:
            self._q(s.queue, s.start).transfers += 1
        self._a(agent, at).transfers += 1

    def completed(
        self,
        call_id: str,
        agent: str,
        at: float,
        talk: float,
        hold: float = 0.0,
        wrap_up: float = 0.0,
    ) -> None:
        """``agent`` finished the call (wrap-up done): its handle time is known."""
        if min(talk, hold, wrap_up) < 0:
            raise ValueError(
                f"call {call_id!r}: talk, hold and wrap-up must be >= 0 s, "
                f"got {talk}, {hold}, {wrap_up}"
            )
        s = self.in_service.pop(call_id, None)
        if s is not None:
            c = s.row  # the row of (queue, start), still marked changed in this epoch
            if c is None or s.row_epoch != self._dirty_epoch:
                c = self._q(s.queue, s.start)
            c.handled += 1
            c.talk += talk
            c.hold += hold
            c.wrap_up += wrap_up
        a = self._a(agent, at)
        a.handled += 1
        a.talk += talk
        a.hold += hold
        a.wrap_up += wrap_up
        if self.agent_call.get(agent) == call_id:
            del self.agent_call[agent]

    def agent_state_changed(self, agent: str, state: str, at: float) -> None:
        """``agent`` entered ``state`` at ``at`` (time in the previous state is booked)."""
        new = STATE_ALIASES.get(state, "not_ready")
        old = self.agent_state.get(agent)
        if old is not None:
            self._book(agent, old[0], self.agent_booked[agent], at)
        self.agent_state[agent] = (new, at)
        self.agent_booked[agent] = at

    def _book(self, agent: str, state: str, since: float, until: float) -> None:
        if state == "offline" or until <= since:
            return
        size = self._size
        t = since
        while t < until:  # the interval of t, as _a cuts it, then the next
            end = min(until, (t // size + 1) * size)
            c = self._a(agent, t)
            seconds = end - t
            if state == "available":
                c.available_s += seconds
            elif state == "on_call":
                c.on_call_s += seconds
            elif state == "reserved":
                c.reserved_s += seconds
            elif state == "wrap_up":
                c.wrap_up_s += seconds
            else:
                c.not_ready_s += seconds
            t = end

    # ------------------------------------------------------------ records
    def feed(self, record: Record) -> None:
        """Apply one of the router's records (:mod:`acd.records`); unknown kinds are ignored."""
        handler = self._handlers.get(type(record))
        if handler is not None:
            handler(record)

    def feed_all(self, records: Iterable[Record]) -> None:
        """Apply records in order.

        Agent state changes (half the records) and offers are applied here,
        inline (the same arithmetic as :meth:`agent_state_changed` and
        :meth:`offered`): when the time to book falls in the agent's current
        interval row it is one addition. Enqueued, answered and completed
        calls go straight to their method (the others through the table)."""
        handlers = self._handlers
        state_record = rec.AgentStateRecord
        offered_record = rec.CallOffered
        enqueued_record = rec.CallEnqueued
        answered_record = rec.CallAnswered
        completed_record = rec.CallCompleted
        aliases = STATE_ALIASES
        agent_state = self.agent_state
        agent_booked = self.agent_booked
        current = self._agent_current
        size = self._size
        epoch = self._dirty_epoch
        for record in records:
            kind = type(record)
            if kind is state_record:
                r0: rec.AgentStateRecord = record  # type: ignore[assignment]
                agent = r0.agent
                at = r0.t
                old = agent_state.get(agent)
                if old is not None:
                    state = old[0]
                    since = agent_booked[agent]
                    if state != "offline" and at > since:
                        row = current.get(agent)
                        if (
                            row is not None
                            and at <= row[1]
                            and since // size == row[0]
                            and row[2] == epoch
                        ):  # self._book(agent, state, since, at) in one row
                            c = row[3]
                            if state == "available":
                                c.available_s += at - since
                            elif state == "on_call":
                                c.on_call_s += at - since
                            elif state == "reserved":
                                c.reserved_s += at - since
                            elif state == "wrap_up":
                                c.wrap_up_s += at - since
                            else:
                                c.not_ready_s += at - since
                        else:
                            self._book(agent, state, since, at)
                agent_state[agent] = (aliases.get(r0.new, "not_ready"), at)
                agent_booked[agent] = at
            elif kind is offered_record:
                r4: rec.CallOffered = record  # type: ignore[assignment]
                agent = r4.agent
                at = r4.t
                row = current.get(agent)
                if row is not None and at // size == row[0] and row[2] == epoch:
                    row[3].offered += 1
                else:
                    self._a(agent, at).offered += 1
            elif kind is enqueued_record:
                r1: rec.CallEnqueued = record  # type: ignore[assignment]
                self.enqueued(r1.call, r1.queue, r1.t, r1.ewt)
            elif kind is answered_record:
                r2: rec.CallAnswered = record  # type: ignore[assignment]
                self.answered(r2.call, r2.agent, r2.t, r2.wait, r2.sl_threshold, r2.callback)
            elif kind is completed_record:
                r3: rec.CallCompleted = record  # type: ignore[assignment]
                self.completed(r3.call, r3.agent, r3.t, r3.talk, r3.hold, r3.wrap_up)
            else:
                handler = handlers.get(kind)
                if handler is not None:
                    handler(record)

    def _handler_table(self) -> dict[type, Callable[[Any], None]]:
        def enqueued(r: rec.CallEnqueued) -> None:
            self.enqueued(r.call, r.queue, r.t, r.ewt)

        def offered(r: rec.CallOffered) -> None:
            self.offered(r.call, r.agent, r.t)

        def requeued(r: rec.CallRequeued) -> None:
            if r.reason in MISSED_OFFER_REASONS:
                self.offer_missed(r.call, r.agent, r.t)

        def answered(r: rec.CallAnswered) -> None:
            self.answered(r.call, r.agent, r.t, r.wait, r.sl_threshold, r.callback)

        def abandoned(r: rec.CallAbandoned) -> None:
            self.abandoned(r.call, r.t, r.wait, r.sl_threshold)

        def overflowed(r: rec.CallOverflowed) -> None:
            self.overflowed(r.call, r.t)  # the call_enqueued that follows a move re-enters it

        def completed(r: rec.CallCompleted) -> None:
            self.completed(r.call, r.agent, r.t, r.talk, r.hold, r.wrap_up)

        def callback(r: rec.CallbackRequested) -> None:
            self.callback_requested(r.call, r.t)

        def announced(r: rec.Announced) -> None:
            self.announced(r.call, r.t, r.ewt)

        def agent_state(r: rec.AgentStateRecord) -> None:
            self.agent_state_changed(r.agent, r.new, r.t)

        return {
            rec.CallEnqueued: enqueued,
            rec.CallOffered: offered,
            rec.CallRequeued: requeued,
            rec.CallAnswered: answered,
            rec.CallAbandoned: abandoned,
            rec.CallOverflowed: overflowed,
            rec.CallCompleted: completed,
            rec.CallbackRequested: callback,
            rec.Announced: announced,
            rec.AgentStateRecord: agent_state,
        }

    def flush(self, now: float) -> None:
        """Book every agent's time in its current state up to ``now``."""
        for agent, (state, _since) in self.agent_state.items():
            booked = self.agent_booked[agent]
            if now > booked:
                self._book(agent, state, booked, now)
                self.agent_booked[agent] = now

    # ------------------------------------------------------------- reads
    def queue_totals(
        self, queue: str | None = None, start: float = -math.inf, end: float = math.inf
    ) -> QueueCounters:
        """Sum of the intervals of ``queue`` (all queues when None) starting in [start, end)."""
        total = QueueCounters()
        for (q, s), c in self.queue_intervals.items():
            if (queue is None or q == queue) and start <= s < end:
                total.add(c)
        return total

    def agent_totals(
        self, agent: str | None = None, start: float = -math.inf, end: float = math.inf
    ) -> AgentCounters:
        """Sum of the intervals of ``agent`` (all agents when None) starting in [start, end)."""
        total = AgentCounters()
        for (a, s), c in self.agent_intervals.items():
            if (agent is None or a == agent) and start <= s < end:
                total.add(c)
        return total

    def queues(self) -> list[str]:
        """Every queue seen, sorted."""
        return sorted({q for q, _ in self.queue_intervals} | set(self.queue_waiting))

    def interval_rows(self) -> Iterable[tuple[str, float, QueueCounters]]:
        """``(queue, interval start, counters)`` sorted by start then queue."""
        for q, s in sorted(self.queue_intervals, key=lambda k: (k[1], k[0])):
            yield q, s, self.queue_intervals[(q, s)]

    def agent_rows(self) -> Iterable[tuple[str, float, AgentCounters]]:
        """``(agent, interval start, counters)`` sorted by start then agent."""
        for a, s in sorted(self.agent_intervals, key=lambda k: (k[1], k[0])):
            yield a, s, self.agent_intervals[(a, s)]

    def snapshot(self, now: float) -> Snapshot:
        """Live figures at ``now``: waiting, longest wait, EWT and today's totals per queue;
        agents by state. Books agent time up to ``now`` first (see :meth:`flush`)."""
        self.flush(now)
        day = self.day_start(now)
        queues: dict[str, QueueSnapshot] = {}
        for q in self.queues():
            waiting = self.queue_waiting.get(q, {})
            oldest = min(waiting.values(), default=None)
            queues[q] = QueueSnapshot(
                queue=q,
                waiting=len(waiting),
                longest_wait=0.0 if oldest is None else now - oldest,
                ewt=self.last_ewt.get(q),
                today=self.queue_totals(q, day, day + 86400.0),
            )
        by_state = dict.fromkeys(AGENT_STATES, 0)
        agents: dict[str, AgentSnapshot] = {}
        for agent, (state, since) in sorted(self.agent_state.items()):
            by_state[state] += 1
            agents[agent] = AgentSnapshot(agent, state, since, self.agent_call.get(agent))
        return Snapshot(now, queues, by_state, agents)
