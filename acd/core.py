"""The ACD router: a pure state machine driven by inputs that carry ``now``.

    router = Router(config)                   # acd.config.load_config(path)
    effects = router.handle(EnqueueCall(now, "c1", "billing"))
    deadline = router.next_deadline()         # arm one timer for this
    effects = router.on_timer(deadline)       # ring-no-answer, wrap-up, leases...
    records = router.drain_records()          # acd.records, for metrics

No I/O, no clock, no asyncio: the runtime turns effects (acd.events) into
SIP actions and prompts, and feeds back what happened. ``handle`` runs
every timer due by the input's ``now`` first, so a driver that only calls
``handle`` still sees timers fire in order; time must not go backwards.

The policy, and the rule this module keeps after every input:

    No waiting call has an available agent that meets its step in force.

* Fairness across queues: calls are served by ``Call.rank`` (highest
  priority, then earliest first entry into the ACD) globally. When an
  agent becomes available they get the best-ranked waiting call they
  qualify for; a callback ranks exactly like the caller it replaces.
* When a call starts waiting (arrives, is requeued after ring-no-answer,
  or a routing step relaxes its requirement) the queue's strategy picks
  among the available agents that qualify; by the rule above none of them
  qualifies for any other waiting call, so no better-ranked call is passed over.
* Ring-no-answer: the agent goes not_ready (``rna``) and the call goes back
  to its place (its rank keeps the original enqueue time, so it is at the
  head of the callers who came after it).

:class:`acd.naive.NaiveRouter` is this same machine deciding by full scans.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from heapq import heappush
from typing import Any, Final

from acd import rebuild
from acd.events import (
    AcdError,
    AgentAnswer,
    AgentDecline,
    AgentLogin,
    AgentLogout,
    AgentNotReady,
    AgentReady,
    AgentStateChanged,
    Announce,
    CallbackAccepted,
    CallbackRefused,
    CancelOffer,
    Effect,
    EndWrapUp,
    EnqueueCall,
    Hangup,
    Heartbeat,
    Hold,
    Input,
    Offer,
    Overflow,
    RequestCallback,
)
from acd.ewt import HandleTimes, ServingAgents, announcement_text
from acd.explain import Explanation
from acd.index import IndexedMatcher
from acd.matching import Entry, Matcher
from acd.model import (
    AcdConfig,
    Agent,
    AgentState,
    Call,
    CallState,
    OverflowAction,
    QueueConfig,
)
from acd.persist import restore_router, snapshot_router
from acd.records import (
    AgentStateRecord,
    Announced,
    CallAbandoned,
    CallAnswered,
    CallbackRequested,
    CallCompleted,
    CallEnqueued,
    CallOffered,
    CallOverflowed,
    CallRequeued,
    Record,
)
from acd.strategies import StrategyRegistry
from acd.timers import ANNOUNCE as _ANNOUNCE
from acd.timers import LEASE as _LEASE
from acd.timers import MAX_WAIT as _MAX_WAIT
from acd.timers import NO_AGENTS as _NO_AGENTS
from acd.timers import RING as _RING
from acd.timers import STEP as _STEP
from acd.timers import WRAP as _WRAP

__all__ = ["Router", "check_config"]

# Final: the compiled build (acd.native) keeps them in C statics, not the module's dict
_AVAILABLE: Final = AgentState.AVAILABLE
_OFFLINE: Final = AgentState.OFFLINE
_RESERVED: Final = AgentState.RESERVED
_ON_CALL: Final = AgentState.ON_CALL
_WRAP_UP: Final = AgentState.WRAP_UP
# the state names records carry (AgentStateRecord.old/new)
_S_AVAILABLE: Final[str] = _AVAILABLE._value_
_S_RESERVED: Final[str] = _RESERVED._value_
_S_ON_CALL: Final[str] = _ON_CALL._value_
_S_WRAP_UP: Final[str] = _WRAP_UP._value_
_WAITING: Final = CallState.WAITING
_RINGING: Final = CallState.RINGING
_ANSWERED: Final = CallState.ANSWERED


Rank = tuple[int, float, int]
"""``Call.rank``: (-priority, first entry into the ACD, arrival order)."""


def _remove(line: list[Rank], rank: Rank) -> None:
    """Take ``rank`` out of the sorted ``line`` (ValueError if it is not there)."""
    index = bisect_left(line, rank)
    if index == len(line) or line[index] != rank:
        raise ValueError(f"{rank} is not in the line")
    del line[index]


def check_config(config: AcdConfig, strategies: StrategyRegistry) -> None:
    """Raise :class:`AcdError` if the Router cannot run ``config`` (the
    file loader, :mod:`acd.config`, reports these with file positions)."""
    for name, queue in config.queues.items():
        where = f"queue {name!r}"
        if queue.name != name:
            raise AcdError(f"{where} is filed under another name ({queue.name!r})")
        if not queue.steps:
            raise AcdError(f"{where} has no routing step")
        for index, step in enumerate(queue.steps[:-1]):
            if step.duration is None or step.duration <= 0:
                raise AcdError(f"{where} step {index + 1} needs a positive duration")
        if queue.strategy not in strategies:
            raise AcdError(f"{where}: unknown strategy {queue.strategy!r}")
        if queue.overflow.kind == "queue" and queue.overflow.target not in config.queues:
            raise AcdError(f"{where} overflows to unknown queue {queue.overflow.target!r}")
        if queue.ring_timeout <= 0:
            raise AcdError(f"{where}: ring_timeout must be positive")
        if queue.wrap_up < 0 or (queue.max_wait is not None and queue.max_wait < 0):
            raise AcdError(f"{where}: wrap_up and max_wait cannot be negative")
    for name, agent in config.agents.items():
        if agent.name != name:
            raise AcdError(f"agent {name!r} is filed under another name ({agent.name!r})")
        for skill, level in agent.skills.items():
            if not 1 <= level <= 5:
                raise AcdError(f"agent {name!r}: level of {skill!r} must be 1-5, not {level}")


class Router:
    """Skill-based ACD (see the module docstring for the policy).

    ``strategies``: the strategy registry (default: the built-ins);
    ``candidates``: how many agents an explanation lists (chosen + runners-up);
    ``aht_window``: completed calls in the rolling AHT of each queue.
    """

    def __init__(
        self,
        config: AcdConfig,
        *,
        strategies: StrategyRegistry | None = None,
        candidates: int = 3,
        aht_window: int = 100,
    ) -> None:
        self._strategies = strategies if strategies is not None else StrategyRegistry()
        check_config(config, self._strategies)
        self.config = config
        self.records: list[Record] = []
        self._candidates = max(1, candidates)
        self._now = -math.inf
        self._seq = 0
        self._tseq = 0
        self._timers: list[tuple[float, int, str, Any, Any]] = []
        """The timer heap: (when, seq, kind, owner (Agent or Call), token)."""
        self._agents: dict[str, Agent] = {}
        self._by_index: list[Agent] = []
        self._calls: dict[str, Call] = {}
        self._lines: dict[str, list[Rank]] = {}
        """Per queue: the ranks of its waiting calls, a plain list kept sorted
        with ``bisect`` (a line holds at most a few thousand calls: one C-level
        search and memmove beat a SortedList's Python-level bookkeeping)."""
        self._in_queue: dict[str, int] = {}
        self._queue_agents: dict[str, list[int]] = {}
        self._agent_queues: dict[int, tuple[str, ...]] = {}
        self._staffed: dict[str, int] = {}
        self._serving: dict[str, ServingAgents] = {}
        """Per queue; queues served by the same agents share one tally."""
        self._agent_pools: dict[int, tuple[ServingAgents, ...]] = {}
        """The distinct serving tallies each agent (by index) counts in."""
        self._in_matcher: set[str] = set()
        """Available agents the matcher knows (an agent who takes a call the
        moment they become available never enters it)."""
        self._rr: dict[str, Entry] = {}
        self._handle_times = HandleTimes(aht_window)
        self._matcher: Matcher = self._make_matcher()
        self._call_ids: dict[int, str] = {}
        rebuild.install(self, config)

    def _make_matcher(self) -> Matcher:
        """The decision engine (overridden by acd.naive.NaiveRouter)."""
        return IndexedMatcher()

    # ---------------------------------------------------------- public API
    def handle(self, event: Input) -> list[Effect]:
        """Apply one input (after the timers due by ``event.now``)."""
        out: list[Effect] = []
        now = event.now
        timers = self._timers
        if now < self._now or (timers and timers[0][0] <= now):
            self._advance(now, out)
        else:  # nothing due: _advance would only move the clock
            self._now = now
        # by exact type, the frequent ones first (a chain of ``is`` costs no
        # more than a table look-up, and compiled it is a direct call)
        kind = type(event)
        if kind is EnqueueCall:
            self._on_enqueue(event, out)  # type: ignore[arg-type]
        elif kind is AgentAnswer:
            self._on_answer(event, out)  # type: ignore[arg-type]
        elif kind is Hangup:
            self._on_hangup(event, out)  # type: ignore[arg-type]
        elif kind is Hold:
            self._on_hold(event, out)  # type: ignore[arg-type]
        elif kind is AgentLogin:
            self._on_login(event, out)  # type: ignore[arg-type]
        elif kind is AgentLogout:
            self._on_logout(event, out)  # type: ignore[arg-type]
        elif kind is AgentReady:
            self._on_ready(event, out)  # type: ignore[arg-type]
        elif kind is AgentNotReady:
            self._on_not_ready(event, out)  # type: ignore[arg-type]
        elif kind is RequestCallback:
            self._on_callback(event, out)  # type: ignore[arg-type]
        elif kind is Heartbeat:
            self._on_heartbeat(event, out)  # type: ignore[arg-type]
        elif kind is AgentDecline:
            self._on_decline(event, out)  # type: ignore[arg-type]
        elif kind is EndWrapUp:
            self._on_end_wrap_up(event, out)  # type: ignore[arg-type]
        else:
            raise AcdError(f"not an ACD input: {event!r}")
        return out

    def on_timer(self, now: float) -> list[Effect]:
        """Run every timer due by ``now``."""
        out: list[Effect] = []
        self._advance(now, out)
        return out

    def next_deadline(self, before: float | None = None) -> float | None:
        """When :meth:`on_timer` next has work (``None``: no timer).

        ``before``: only a deadline earlier than this is wanted (``None``
        otherwise), as for a driver that has a wake-up armed at ``before``
        already; that is answered without looking at the timers when none
        of them is due before it."""
        timers = self._timers
        if not timers or (before is not None and timers[0][0] >= before):
            return None
        while timers:
            when, seq, kind, owner, token = timers[0]
            if self._timer_valid(kind, owner, seq, token, when):
                return when if before is None or when < before else None
            heapq.heappop(timers)
        return None

    def drain_records(self) -> list[Record]:
        """The records appended since the last drain (and forget them)."""
        records, self.records = self.records, []
        return records

    def agent(self, name: str) -> Agent:
        """The agent's runtime state (read only)."""
        try:
            return self._agents[name]
        except KeyError:
            raise AcdError(f"unknown agent {name!r}: add it to the configuration") from None

    def agents(self) -> list[Agent]:
        """Every configured agent, in configuration order (read only)."""
        return list(self._by_index)

    def call(self, call_id: str) -> Call | None:
        """The call's state, ``None`` once it left the ACD (read only)."""
        return self._calls.get(call_id)

    def calls(self) -> list[Call]:
        """Every call in the ACD (read only)."""
        return list(self._calls.values())

    def position(self, call_id: str) -> int | None:
        """1 = next in its queue; ``None`` when not waiting."""
        call = self._calls.get(call_id)
        if call is None or call.state is not _WAITING:
            return None
        return bisect_left(self._lines[call.queue], call.rank) + 1

    def estimate(self, call_id: str, now: float) -> float | None:
        """Estimated remaining wait of a waiting call (see acd.ewt)."""
        position = self.position(call_id)
        if position is None:
            return None
        return self._ewt(self._calls[call_id].queue, position, now)

    def queue_estimate(self, queue: str, now: float) -> float | None:
        """Estimated wait of a caller joining ``queue`` at ``now`` (behind
        everyone waiting there); ``None`` when no agent serves the queue."""
        return self._ewt(queue, self.waiting(queue) + 1, now)

    def members(self, queue: str) -> list[Agent]:
        """The agents able to take one of the queue's steps (read only)."""
        agents = self._by_index
        return [agents[index] for index in self._queue_agents[queue]]

    def staffed(self, queue: str) -> int:
        """Logged-in agents able to take one of the queue's steps."""
        return self._staffed[queue]

    def waiting(self, queue: str) -> int:
        """Calls waiting in the queue (callbacks included, ringing not)."""
        return len(self._lines[queue])

    def aht(self, queue: str) -> float:
        """The queue's rolling average handle time (seconds)."""
        return self._handle_times.aht(queue, self.config.queues[queue].default_aht)

    # --------------------------------------------------------------- time
    def _advance(self, now: float, out: list[Effect]) -> None:
        if now < self._now:
            raise AcdError(f"time went backwards: {now} after {self._now}")
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, seq, kind, owner, token = heapq.heappop(timers)
            # the two most frequent kinds checked as _timer_valid does, inline
            if kind == _WRAP:
                agent: Agent = owner
                if (
                    agent.timers.get(_WRAP) == seq
                    and agent.state is _WRAP_UP
                    and agent.wrap_until == when
                ):
                    self._now = when
                    self._finish_wrap_up(agent, when, out)
            elif kind == _RING:
                call: Call = owner
                if (
                    call.timers.get(_RING) == seq
                    and call.state is _RINGING
                    and call.offer_seq == token
                ):
                    self._now = when
                    self._fire(kind, call, token, when, out)
            elif self._timer_valid(kind, owner, seq, token, when):
                self._now = when
                self._fire(kind, owner, token, when, out)
        self._now = now

    def _schedule(self, when: float, kind: str, owner: Agent | Call, token: Any = None) -> None:
        """Arm ``owner``'s timer of ``kind`` (replacing the one armed before)."""
        self._tseq = seq = self._tseq + 1
        owner.timers[kind] = seq
        heapq.heappush(self._timers, (when, seq, kind, owner, token))

    def _timer_valid(self, kind: str, owner: Any, seq: int, token: Any, when: float) -> bool:
        """Still armed (not replaced) and still meant. Only conditions that
        never become true again may be checked here: ``next_deadline``
        drops entries that fail, so the answer must not depend on when it
        is asked. A call that left the ACD and a forgotten agent have
        their ``timers`` cleared, so none of their entries is armed."""
        if kind in (_WRAP, _LEASE):
            agent: Agent = owner
            if agent.timers.get(kind) != seq:
                return False
            if kind == _WRAP:
                return agent.state is _WRAP_UP and agent.wrap_until == when
            return agent.state is not _OFFLINE and agent.lease_until == when
        call: Call = owner
        if call.timers.get(kind) != seq:
            return False
        state = call.state
        if state is _ANSWERED:
            return False
        if kind == _RING:
            return state is _RINGING and call.offer_seq == token
        if kind == _STEP:
            return call.step_until == when and token == (call.queue, call.step)
        if kind == _MAX_WAIT:
            return call.callback is None and call.max_wait_at == when
        if kind == _ANNOUNCE:
            return call.callback is None and call.next_announce == when
        return call.no_agents_until == when  # _NO_AGENTS

    def _fire(self, kind: str, owner: Any, token: Any, now: float, out: list[Effect]) -> None:
        if kind == _WRAP:
            self._finish_wrap_up(owner, now, out)
        elif kind == _STEP:
            self._next_step(owner, now, out)
        elif kind == _RING:
            call = owner
            for name in list(call.ringing):
                self._withdraw(call, self._agents[name], now, "rna", AgentState.NOT_READY, out)
        elif kind == _LEASE:
            self._lease_expired(owner, now, out)
        elif kind == _MAX_WAIT:
            call = owner
            call.max_wait_at = None
            if call.state is _WAITING:
                self._overflow(call, "max_wait", now, out)
            else:
                call.expired = True
        elif kind == _ANNOUNCE:
            call = owner
            announce = self.config.queues[call.queue].announce
            call.next_announce = None
            if announce is not None and announce.every is not None:
                call.next_announce = now + announce.every
                self._schedule(call.next_announce, _ANNOUNCE, call)
            if call.state is _WAITING:
                self._announce(call, now, out)
        else:  # _NO_AGENTS
            call = owner
            call.no_agents_until = None
            if self._staffed[call.queue] == 0 and call.state is _WAITING:
                self._overflow(call, "no_agents", now, out)

    # ------------------------------------------------------------- inputs
    def _on_enqueue(self, event: EnqueueCall, out: list[Effect]) -> None:
        if event.call in self._calls:
            queue = self._calls[event.call].queue
            raise AcdError(f"call {event.call!r} is already in the ACD (queue {queue!r})")
        if event.queue not in self.config.queues:
            known = ", ".join(sorted(self.config.queues))
            raise AcdError(f"unknown queue {event.queue!r} (known: {known})")
        self._seq = seq = self._seq + 1
        now = event.now
        # positional: a keyword call of the 30-field dataclass costs 2.5 times as much
        call = Call(
            event.call,  # id
            event.queue,  # queue
            seq,  # seq
            0,  # priority
            event.priority,  # own_priority
            now,  # enqueued_at
            now,  # entered_at
            dict(event.skills),  # skills
            event.max_wait,  # max_wait
        )
        call.callback = event.callback
        self._calls[call.id] = call
        self._enter(call, event.queue, event.now, None, out)
        if call.callback is not None:  # a callback waits silently, with no max wait
            call.next_announce = None
            call.max_wait_at = None

    def _on_hangup(self, event: Hangup, out: list[Effect]) -> None:
        call = self._calls.get(event.call)
        if call is None:
            return
        now = event.now
        state = call.state
        if state is _ANSWERED:
            self._end_answered(call, now, out)
            return
        queue_name = call.queue
        queue = self.config.queues[queue_name]
        position = (
            bisect_left(self._lines[queue_name], call.rank) + 1 if state is _WAITING else None
        )
        ringing = state is _RINGING
        self._leave(call)
        call_id = call.id
        self.records.append(
            CallAbandoned(
                now,
                call_id,
                queue_name,
                now - call.entered_at,
                now - call.enqueued_at,
                position,
                call.ewt,
                queue.sl_threshold,
                queue.sl_target,
                ringing,
                call.callback is not None,
            )
        )
        del self._calls[call_id]
        call.timers.clear()
        if ringing:
            for name in call.ringing:
                agent = self._agents[name]
                out.append(CancelOffer(call_id, name, "abandoned"))
                agent.call = None
                self._release(agent, now, out)

    def _on_callback(self, event: RequestCallback, out: list[Effect]) -> None:
        call = self._calls.get(event.call)
        if call is None:
            return
        if call.state is not _WAITING:
            out.append(CallbackRefused(call.id, "not_waiting"))
            return
        position = self.position(call.id) or 0
        if call.callback is None:
            self._record(
                CallbackRequested(
                    event.now, call.id, call.queue, event.now - call.entered_at, position
                )
            )
        call.callback = event.number
        call.next_announce = None
        call.max_wait_at = None
        out.append(CallbackAccepted(call.id, call.queue, position))

    def _on_login(self, event: AgentLogin, out: list[Effect]) -> None:
        agent = self.agent(event.agent)
        now = event.now
        lease = event.lease if event.lease is not None else agent.config.lease
        if lease is not None:
            agent.lease_until = now + lease
            self._schedule(agent.lease_until, _LEASE, agent)
        if agent.state is not _OFFLINE:
            return
        if agent.call is not None:  # still on the call they had when their lease expired
            self._set_state(agent, AgentState.ON_CALL, now, "login", out)
            if not event.ready:
                agent.pending = (AgentState.NOT_READY, "login")
            return
        if event.ready:
            self._set_state(agent, _AVAILABLE, now, "login", out)
            self._dispatch_agent(agent, now, out)
        else:
            self._set_state(agent, AgentState.NOT_READY, now, "login", out)

    def _on_logout(self, event: AgentLogout, out: list[Effect]) -> None:
        self._agent_away(self.agent(event.agent), event.now, _OFFLINE, "logout", out)

    def _on_not_ready(self, event: AgentNotReady, out: list[Effect]) -> None:
        agent = self.agent(event.agent)
        if agent.state is _OFFLINE:
            return
        self._agent_away(agent, event.now, AgentState.NOT_READY, event.reason, out)

    def _on_ready(self, event: AgentReady, out: list[Effect]) -> None:
        agent = self.agent(event.agent)
        if agent.state is AgentState.NOT_READY:
            self._set_state(agent, _AVAILABLE, event.now, "ready", out)
            self._dispatch_agent(agent, event.now, out)
        elif agent.state in (AgentState.ON_CALL, AgentState.WRAP_UP):
            agent.pending = None

    def _on_heartbeat(self, event: Heartbeat, out: list[Effect]) -> None:
        agent = self.agent(event.agent)
        ttl = event.ttl if event.ttl is not None else agent.config.lease
        if agent.state is _OFFLINE or ttl is None:
            return
        agent.lease_until = event.now + ttl
        self._schedule(agent.lease_until, _LEASE, agent)

    def _on_answer(self, event: AgentAnswer, out: list[Effect]) -> None:
        agent = self._agents.get(event.agent)
        if agent is None:
            agent = self.agent(event.agent)  # raises: unknown agent
        call = self._calls.get(event.call)
        if call is None or call.state is not _RINGING:
            return
        name = agent.config.name
        ringing = call.ringing
        if name not in ringing:
            return
        now = event.now
        others = [other for other in ringing if other != name] if len(ringing) > 1 else ()
        queue_name = call.queue
        queue = self.config.queues[queue_name]
        call.state = _ANSWERED
        call.ringing = []
        call.ring_until = None
        call.agent = name
        call.answered_at = now
        self._in_queue[queue_name] -= 1
        agent.busy_since = now
        records = self.records
        if agent.state is _RESERVED:  # _set_state(agent, _ON_CALL, now, None, out), specialized
            records.append(
                AgentStateRecord(now, name, _S_RESERVED, _S_ON_CALL, agent.state_since, None)
            )
            pools = self._agent_pools.get(agent.index)
            if pools:
                for pool in pools:
                    pool.reserved -= 1
                    busy = pool.busy  # pool.add_busy(now), inline: answers come in time order
                    if not busy or now >= busy[-1]:
                        busy.append(now)
                    else:
                        insort(busy, now)
            agent.state = _ON_CALL
            agent.state_since = now
            agent.reason = None
            out.append(AgentStateChanged(name, _RESERVED, _ON_CALL, None, now))
        else:
            self._set_state(agent, _ON_CALL, now, None, out)
        call_id = call.id
        records.append(
            CallAnswered(
                now,
                call_id,
                queue_name,
                name,
                now - call.entered_at,
                now - call.enqueued_at,
                call.ewt,
                queue.sl_threshold,
                queue.sl_target,
                call.callback is not None,
            )
        )
        for other_name in others:
            other = self._agents[other_name]
            out.append(CancelOffer(call_id, other_name, "answered_elsewhere"))
            other.call = None
            self._release(other, now, out)

    def _on_decline(self, event: AgentDecline, out: list[Effect]) -> None:
        agent = self.agent(event.agent)
        call = self._calls.get(event.call)
        if call is None or call.state is not _RINGING or agent.name not in call.ringing:
            return
        self._withdraw(call, agent, event.now, "declined", AgentState.NOT_READY, out)

    def _on_hold(self, event: Hold, out: list[Effect]) -> None:
        call = self._calls.get(event.call)
        if call is None or call.state is not _ANSWERED:
            return
        if event.on and call.hold_since is None:
            call.hold_since = event.now
        elif not event.on and call.hold_since is not None:
            call.hold_time += event.now - call.hold_since
            call.hold_since = None

    def _on_end_wrap_up(self, event: EndWrapUp, out: list[Effect]) -> None:
        agent = self.agent(event.agent)
        if agent.state is AgentState.WRAP_UP:
            self._finish_wrap_up(agent, event.now, out)

    # ------------------------------------------------------ agent states
    def _set_state(
        self, agent: Agent, new: AgentState, now: float, reason: str | None, out: list[Effect]
    ) -> None:
        old = agent.state
        if old is new and agent.reason == reason:
            return
        name = agent.config.name
        if old is _AVAILABLE:
            in_matcher = self._in_matcher
            if name in in_matcher:
                in_matcher.discard(name)
                self._matcher.remove_agent(agent)
        # _value_: the plain string, without the enum's value property
        self.records.append(
            AgentStateRecord(now, name, old._value_, new._value_, agent.state_since, reason)
        )
        if old is not new:
            old_busy = old is _ON_CALL or old is _WRAP_UP
            new_busy = new is _ON_CALL or new is _WRAP_UP
            if not (old_busy and new_busy):
                pools = self._agent_pools.get(agent.index)
                if pools:  # self._serve(agent, old, -1); self._serve(agent, new, 1), inline
                    if old is _AVAILABLE:
                        for pool in pools:
                            pool.available -= 1
                    elif old is _RESERVED:
                        for pool in pools:
                            pool.reserved -= 1
                    elif old_busy:
                        since = agent.busy_since
                        for pool in pools:
                            pool.remove_busy(since)
                    if new is _AVAILABLE:
                        for pool in pools:
                            pool.available += 1
                    elif new is _RESERVED:
                        for pool in pools:
                            pool.reserved += 1
                    elif new_busy:
                        since = agent.busy_since
                        for pool in pools:
                            pool.add_busy(since)
        agent.state = new
        agent.state_since = now
        agent.reason = reason
        out.append(AgentStateChanged(name, old, new, reason, now))
        if new is _AVAILABLE and old is not _AVAILABLE:
            agent.idle_since = now  # into the matcher in _dispatch_agent, if no call takes them
        if old is _OFFLINE:
            if new is not _OFFLINE:
                for queue in self._agent_queues.get(agent.index, ()):
                    self._staffed[queue] += 1
        elif new is _OFFLINE:
            agent.lease_until = None
            for queue in self._agent_queues.get(agent.index, ()):
                self._staffed[queue] -= 1
                if self._staffed[queue] == 0:
                    self._queue_empty(queue, now, out)

    def _agent_away(
        self, agent: Agent, now: float, state: AgentState, reason: str, out: list[Effect]
    ) -> None:
        """not_ready or logout: now, or after the current call."""
        if agent.state in (AgentState.ON_CALL, AgentState.WRAP_UP):
            agent.pending = (state, reason)
        elif agent.state is AgentState.RESERVED:
            call = self._calls[agent.call or ""]
            cause = "agent_offline" if state is _OFFLINE else "agent_not_ready"
            self._withdraw(call, agent, now, cause, state, out, reason)
        elif agent.state is not _OFFLINE:
            self._set_state(agent, state, now, reason, out)
            if agent.removed and state is _OFFLINE:
                self._forget_agent(agent)

    def _release(self, agent: Agent, now: float, out: list[Effect]) -> None:
        """The agent's offer or call is over: pending state, or available."""
        if agent.removed:
            self._set_state(agent, _OFFLINE, now, "removed", out)
            self._forget_agent(agent)
        elif agent.pending is not None:
            state, reason = agent.pending
            agent.pending = None
            self._set_state(agent, state, now, reason, out)
        elif agent.state is not _OFFLINE:
            self._set_state(agent, _AVAILABLE, now, None, out)
            self._dispatch_agent(agent, now, out)

    def _lease_expired(self, agent: Agent, now: float, out: list[Effect]) -> None:
        agent.lease_until = None
        if agent.state is AgentState.RESERVED:
            call = self._calls[agent.call or ""]
            self._withdraw(call, agent, now, "lease_expired", _OFFLINE, out, "lease_expired")
        elif agent.state is AgentState.WRAP_UP:
            agent.pending = (_OFFLINE, "lease_expired")
            self._finish_wrap_up(agent, now, out)
        else:  # the call of an on_call agent goes on; it completes without wrap-up
            self._set_state(agent, _OFFLINE, now, "lease_expired", out)

    def _forget_agent(self, agent: Agent) -> None:
        self._agents.pop(agent.name, None)
        agent.timers.clear()

    # ------------------------------------------------------ call flow
    def _enter(
        self, call: Call, queue_name: str, now: float, from_queue: str | None, out: list[Effect]
    ) -> None:
        """The call joins ``queue_name`` (arrival, or moved by overflow)."""
        queue = self.config.queues[queue_name]
        call.queue = queue_name
        call.entered_at = now
        call.visited = (*call.visited, queue_name)
        call.priority = priority = queue.priority + call.own_priority
        call.state = _WAITING
        call.expired = False
        call.no_agents_until = None
        callback = call.callback
        max_wait = (
            call.max_wait if from_queue is None and call.max_wait is not None else queue.max_wait
        )
        call.max_wait_at = None if max_wait is None or callback else now + max_wait
        # the first step (self._set_step(call, now) when joining, inline)
        steps = queue.steps
        first = steps[0]
        call.step = 0
        skills = call.skills
        call.requirement = first.requirement.merged(skills) if skills else first.requirement
        if len(steps) > 1 and first.duration is not None:
            call.step_until = until = now + (0.0 + first.duration)
            self._tseq = tseq = self._tseq + 1  # self._schedule(until, _STEP, ...), inline
            call.timers[_STEP] = tseq
            heappush(self._timers, (until, tseq, _STEP, call, (queue_name, 0)))
        else:
            call.step_until = None
        rank = (-priority, call.enqueued_at, call.seq)  # call.rank
        position = bisect_left(self._lines[queue_name], rank) + 1
        call.ewt = ewt = self._ewt(queue_name, position, now)
        self.records.append(
            CallEnqueued(
                now,
                call.id,
                queue_name,
                priority,
                call.enqueued_at,
                position,
                ewt,
                from_queue,
            )
        )
        in_queue = self._in_queue
        in_queue[queue_name] += 1
        if queue.max_length is not None and in_queue[queue_name] > queue.max_length:
            self._overflow(call, "max_length", now, out)
            return
        if (
            self._staffed[queue_name] <= 0  # else self._no_agents returns False at once
            and callback is None
            and self._no_agents(call, queue, now, out)
        ):
            return
        if call.max_wait_at is not None:
            self._schedule(call.max_wait_at, _MAX_WAIT, call)
        if not self._dispatch_call(call, now, "call_arrived", out, queued=False):
            self._wait(call)
        announce = queue.announce
        call.next_announce = None
        if announce is not None and call.callback is None and call.state is not _ANSWERED:
            if announce.first <= 0:
                if call.state is _WAITING:
                    self._announce(call, now, out)
                if announce.every is not None:
                    call.next_announce = now + announce.every
            else:
                call.next_announce = now + announce.first
            if call.next_announce is not None:
                self._schedule(call.next_announce, _ANNOUNCE, call)

    def _set_step(self, call: Call, now: float, step: int | None = None) -> None:
        """Put ``step`` (default: the one in force for the call's time in
        queue) in force and arm its end (the call is not re-indexed)."""
        queue = self.config.queues[call.queue]
        if step is None:
            steps = queue.steps
            if now == call.entered_at and len(steps) > 1:  # joining: queue.step_at(0.0)
                first = steps[0].duration
                step, ends = 0, (None if first is None else 0.0 + first)
            else:
                step, ends = queue.step_at(now - call.entered_at)
        else:
            ends = queue.step_end(step)
        call.step = step
        call.requirement = queue.steps[step].requirement.merged(call.skills)
        call.step_until = None if ends is None else call.entered_at + ends
        if call.step_until is not None:
            self._schedule(call.step_until, _STEP, call, (call.queue, step))

    def _next_step(self, call: Call, now: float, out: list[Effect]) -> None:
        waiting = call.state is _WAITING
        if waiting:
            self._matcher.remove_call(call)
        # the next step by index: recomputing it from the wait could land on
        # the same step again when float rounding puts the wait just short of its end
        self._set_step(call, now, min(call.step + 1, len(self.config.queues[call.queue].steps) - 1))
        if waiting:
            if self._dispatch_call(call, now, "step_relaxed", out, queued=False):
                _remove(self._lines[call.queue], call.rank)  # offered: out of its line too
                self._call_ids.pop(call.seq, None)
            else:
                self._matcher.add_call(call)

    def _no_agents(self, call: Call, queue: QueueConfig, now: float, out: list[Effect]) -> bool:
        """Apply the queue's no-agents policy; True if the call overflowed."""
        if self._staffed[queue.name] > 0 or call.callback is not None:
            return False
        policy = queue.no_agents
        if policy.mode == "overflow":
            self._overflow(call, "no_agents", now, out)
            return True
        if policy.mode == "after" and call.no_agents_until is None:
            call.no_agents_until = now + policy.after
            self._schedule(call.no_agents_until, _NO_AGENTS, call)
        return False

    def _queue_empty(self, queue_name: str, now: float, out: list[Effect]) -> None:
        """The last agent able to serve the queue logged out."""
        queue = self.config.queues[queue_name]
        if queue.no_agents.mode == "join":
            return
        line = self._lines[queue_name]
        for rank in list(line):
            call = self._calls[self._call_ids[rank[2]]]
            if call.callback is not None:
                continue
            call.no_agents_until = None
            self._no_agents(call, queue, now, out)

    def _wait(self, call: Call) -> None:
        call.state = _WAITING
        self._matcher.add_call(call)
        seq = call.seq
        insort(self._lines[call.queue], (-call.priority, call.enqueued_at, seq))  # call.rank
        self._call_ids[seq] = call.id

    def _leave(self, call: Call) -> None:
        """The call stops being in its queue (abandoned, overflowed)."""
        if call.seq in self._call_ids:
            self._unwait(call)
        in_queue = self._in_queue
        if call.queue in in_queue:
            in_queue[call.queue] -= 1

    def _unwait(self, call: Call) -> None:
        self._matcher.remove_call(call)
        seq = call.seq
        _remove(self._lines[call.queue], (-call.priority, call.enqueued_at, seq))  # call.rank
        self._call_ids.pop(seq, None)

    def _overflow(self, call: Call, reason: str, now: float, out: list[Effect]) -> None:
        queue = self.config.queues.get(call.queue)
        action = queue.overflow if queue is not None else OverflowAction()
        self._overflow_with(call, action, reason, now, out)

    def _overflow_with(
        self, call: Call, action: OverflowAction, reason: str, now: float, out: list[Effect]
    ) -> None:
        self._leave(call)
        moved_to = None
        if (
            action.kind == "queue"
            and action.target in self.config.queues
            and action.target not in call.visited
        ):
            moved_to = action.target
        self._record(
            CallOverflowed(
                now,
                call.id,
                call.queue,
                now - call.entered_at,
                reason,
                action.kind,
                action.target,
                moved_to,
            )
        )
        out.append(Overflow(call.id, call.queue, reason, action, moved_to))
        if moved_to is None:
            del self._calls[call.id]
            call.timers.clear()
        else:
            self._enter(call, moved_to, now, call.queue, out)

    def _withdraw(
        self,
        call: Call,
        agent: Agent,
        now: float,
        cause: str,
        state: AgentState,
        out: list[Effect],
        reason: str | None = None,
    ) -> None:
        """The offer to ``agent`` failed (``cause``): the agent goes to
        ``state``; once nobody rings any more the call is back in line."""
        call.ringing.remove(agent.name)
        agent.call = None
        out.append(CancelOffer(call.id, agent.name, cause))
        self._record(CallRequeued(now, call.id, call.queue, agent.name, cause))
        self._set_state(agent, state, now, reason if reason is not None else cause, out)
        if agent.removed and state is _OFFLINE:
            self._forget_agent(agent)
        if not call.ringing:
            self._requeue(call, now, out)

    def _requeue(self, call: Call, now: float, out: list[Effect]) -> None:
        """Back in line at its place (rank unchanged), or overflow."""
        call.ring_until = None
        if call.expired:
            self._overflow(call, "max_wait", now, out)
            return
        if self._no_agents(call, self.config.queues[call.queue], now, out):
            return
        call.state = _WAITING
        if not self._dispatch_call(call, now, "requeued", out, queued=False):
            self._wait(call)

    def _end_answered(self, call: Call, now: float, out: list[Effect]) -> None:
        agent = self._agents.get(call.agent or "")
        if call.hold_since is not None:
            call.hold_time += now - call.hold_since
            call.hold_since = None
        answered = call.answered_at if call.answered_at is not None else now
        hold = call.hold_time
        talk = max(0.0, now - answered - hold)
        del self._calls[call.id]
        call.timers.clear()
        if agent is None:
            return
        agent.wrap_info = (call.id, call.queue, talk, hold, call.callback is not None)
        wrap = agent.config.wrap_up
        if wrap is None:
            queue = self.config.queues.get(call.queue)
            wrap = queue.wrap_up if queue is not None else 0.0
        if agent.state is _ON_CALL and wrap > 0:
            # _set_state(agent, _WRAP_UP, now, None, out), specialized: busy either way
            name = agent.config.name
            self.records.append(
                AgentStateRecord(now, name, _S_ON_CALL, _S_WRAP_UP, agent.state_since, None)
            )
            agent.state = _WRAP_UP
            agent.state_since = now
            agent.reason = None
            out.append(AgentStateChanged(name, _ON_CALL, _WRAP_UP, None, now))
            agent.wrap_until = until = now + wrap
            self._tseq = tseq = self._tseq + 1  # self._schedule(until, _WRAP, agent), inline
            agent.timers[_WRAP] = tseq
            heappush(self._timers, (until, tseq, _WRAP, agent, None))
        else:
            self._finish_wrap_up(agent, now, out)

    def _finish_wrap_up(self, agent: Agent, now: float, out: list[Effect]) -> None:
        info = agent.wrap_info
        state = agent.state
        wrap = now - agent.state_since if state is _WRAP_UP else 0.0
        agent.wrap_until = None
        agent.wrap_info = None
        agent.call = None
        if info is not None:
            call_id, queue, talk, hold, callback = info
            handle = talk + hold + wrap
            self.records.append(
                CallCompleted(
                    now, call_id, queue, agent.config.name, talk, hold, wrap, handle, callback
                )
            )
            self._handle_times.add(queue, handle)
            agent.calls_handled += 1
            agent.talk_time += talk
        if state is _OFFLINE:
            if agent.removed:
                self._forget_agent(agent)
            return
        # self._release(agent, now, out), inline
        if agent.removed:
            self._set_state(agent, _OFFLINE, now, "removed", out)
            self._forget_agent(agent)
        elif agent.pending is not None:
            pending, reason = agent.pending
            agent.pending = None
            self._set_state(agent, pending, now, reason, out)
        elif state is _WRAP_UP or state is _ON_CALL:
            # _set_state(agent, _AVAILABLE, now, None, out), specialized
            name = agent.config.name
            self.records.append(
                AgentStateRecord(now, name, state._value_, _S_AVAILABLE, agent.state_since, None)
            )
            pools = self._agent_pools.get(agent.index)
            if pools:
                since = agent.busy_since
                for pool in pools:
                    pool.remove_busy(since)
                    pool.available += 1
            agent.state = _AVAILABLE
            agent.state_since = now
            agent.reason = None
            out.append(AgentStateChanged(name, state, _AVAILABLE, None, now))
            agent.idle_since = now
            self._dispatch_agent(agent, now, out)
        else:
            self._set_state(agent, _AVAILABLE, now, None, out)
            self._dispatch_agent(agent, now, out)

    # ---------------------------------------------------------- decisions
    def _dispatch_call(
        self, call: Call, now: float, trigger: str, out: list[Effect], queued: bool = True
    ) -> bool:
        """The call starts waiting: offer it to the strategy's choice; True
        if offered. ``queued``: the call is in its line and the matcher
        (else the caller puts it there when this returns False, which
        spares adding a call that is offered at once and removing it again)."""
        queue_name = call.queue
        strategy = self._strategies.get(self.config.queues[queue_name].strategy)
        rotate = strategy.rotate
        ring_all = strategy.ring_all
        requirement = call.requirement
        found = self._matcher.agents_for(
            requirement,
            strategy,
            self._rr.get(queue_name) if rotate else None,
            None if ring_all else self._candidates,
        )
        if not found:
            return False
        chosen = len(found) if ring_all else 1
        # what the explanation needs, as it is now (it formats it when asked)
        considered = tuple([(a.config, now - a.idle_since, entry[0]) for a, entry in found])
        why = Explanation(
            trigger,
            queue_name,
            strategy.name,
            call.step,
            requirement,
            call.priority,
            now - call.enqueued_at,
            considered,
            chosen,
            None,
        )
        if rotate:
            self._rr[queue_name] = found[0][1]
        if chosen == 1:
            self._offer(call, [found[0][0]], why, now, out, queued)
        else:
            self._offer(call, [agent for agent, _ in found[:chosen]], why, now, out, queued)
        return True

    def _dispatch_agent(self, agent: Agent, now: float, out: list[Effect]) -> None:
        """The agent became available: offer them the best call they can take."""
        call, eligible = self._matcher.call_for(agent)
        if call is None:
            self._in_matcher.add(agent.config.name)
            self._matcher.add_agent(agent)
            return
        queue_name = call.queue
        strategy = self._strategies.get(self.config.queues[queue_name].strategy)
        key = strategy.key(agent)
        why = Explanation(
            "agent_available",
            queue_name,
            strategy.name,
            call.step,
            call.requirement,
            call.priority,
            now - call.enqueued_at,
            ((agent.config, now - agent.idle_since, key),),
            1,
            eligible,
        )
        if strategy.rotate:
            self._rr[queue_name] = (key, agent.index)
        self._offer(call, [agent], why, now, out)

    def _offer(
        self,
        call: Call,
        agents: list[Agent],
        why: Explanation,
        now: float,
        out: list[Effect],
        queued: bool = True,
    ) -> None:
        if queued:
            self._unwait(call)
        call.state = _RINGING
        call.offer_seq = offer_seq = call.offer_seq + 1
        call.ringing = [agent.config.name for agent in agents]
        queue_name = call.queue
        call.ring_until = until = now + self.config.queues[queue_name].ring_timeout
        self._tseq = tseq = self._tseq + 1  # self._schedule(until, _RING, ...), inline
        call.timers[_RING] = tseq
        heappush(self._timers, (until, tseq, _RING, call, offer_seq))
        call_id = call.id
        callback = call.callback
        wait = now - call.entered_at
        step = call.step
        strategy = why.strategy
        trigger = why.trigger
        records = self.records
        for agent in agents:
            name = agent.config.name
            out.append(Offer(call_id, name, queue_name, callback, why))
            agent.call = call_id
            if agent.state is _AVAILABLE:  # _set_state(agent, _RESERVED, ...), specialized
                in_matcher = self._in_matcher
                if name in in_matcher:
                    in_matcher.discard(name)
                    self._matcher.remove_agent(agent)
                records.append(
                    AgentStateRecord(now, name, _S_AVAILABLE, _S_RESERVED, agent.state_since, None)
                )
                pools = self._agent_pools.get(agent.index)
                if pools:
                    for pool in pools:
                        pool.available -= 1
                        pool.reserved += 1
                agent.state = _RESERVED
                agent.state_since = now
                agent.reason = None
                out.append(AgentStateChanged(name, _AVAILABLE, _RESERVED, None, now))
            else:
                self._set_state(agent, _RESERVED, now, None, out)
            records.append(
                CallOffered(now, call_id, queue_name, name, wait, step, strategy, trigger)
            )

    # ------------------------------------------------------ announcements
    def _announce(self, call: Call, now: float, out: list[Effect]) -> None:
        announce = self.config.queues[call.queue].announce
        if announce is None:
            return
        position = bisect_left(self._lines[call.queue], call.rank) + 1
        ewt = self._ewt(call.queue, position, now) if announce.ewt else None
        self._record(Announced(now, call.id, call.queue, position, ewt))
        shown = position if announce.position else None
        text = announcement_text(shown, ewt, announce.round_to)
        out.append(Announce(call.id, call.queue, shown, ewt, text))

    def _ewt(self, queue_name: str, position: int, now: float) -> float | None:
        aht = self._handle_times.aht(queue_name, self.config.queues[queue_name].default_aht)
        return self._serving[queue_name].estimate(position, now, aht)

    def _serve(self, agent: Agent, state: AgentState, delta: int) -> None:
        """Count ``agent`` in (``delta`` 1) or out of (-1) the serving
        tallies of its queues, as an agent in ``state``."""
        if state is _AVAILABLE:
            for pool in self._agent_pools.get(agent.index, ()):
                pool.available += delta
        elif state is _RESERVED:
            for pool in self._agent_pools.get(agent.index, ()):
                pool.reserved += delta
        elif state is _ON_CALL or state is _WRAP_UP:
            since = agent.busy_since
            if delta > 0:
                for pool in self._agent_pools.get(agent.index, ()):
                    pool.add_busy(since)
            else:
                for pool in self._agent_pools.get(agent.index, ()):
                    pool.remove_busy(since)

    # ------------------------------------------------ reconfigure, persist
    def reconfigure(self, now: float, config: AcdConfig) -> list[Effect]:
        """Switch to ``config`` without losing anyone: waiting callers keep
        their place (steps and priorities follow the new queue settings),
        agents keep their state; callers of a removed queue overflow with
        that queue's action (reason ``queue_removed``); a removed agent is
        logged out now, or after their call."""
        check_config(config, self._strategies)
        out: list[Effect] = []
        self._advance(now, out)
        orphans = rebuild.orphans(self, config, out)
        for name, agent in list(self._agents.items()):
            if name in config.agents:
                continue
            agent.removed = True
            if agent.state is AgentState.RESERVED and agent.call is not None:
                call = self._calls[agent.call]
                self._withdraw(call, agent, now, "agent_removed", _OFFLINE, out, "removed")
                continue
            if agent.state in (AgentState.ON_CALL, AgentState.WRAP_UP):
                agent.pending = (_OFFLINE, "removed")
            elif agent.state is not _OFFLINE:
                self._set_state(agent, _OFFLINE, now, "removed", out)
                self._forget_agent(agent)
            else:
                self._forget_agent(agent)
        rebuild.install(self, config)
        rebuild.settle(self, now, orphans, out)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Agent and call state as JSON-able data (see :meth:`restore`).
        Times are on the Router's clock: persist across restarts only with
        a clock that survives them (Unix time)."""
        return snapshot_router(self)

    def restore(self, data: dict[str, Any], now: float | None = None) -> list[Effect]:
        """Replace the state with a :meth:`snapshot` taken under this or an
        earlier configuration. Agents no longer configured are dropped,
        calls of queues no longer configured overflow (``queue_removed``,
        back to their flow). Timers already due fire at the next input or
        :meth:`on_timer` (or now, when ``now`` is given)."""
        out: list[Effect] = []
        orphans = restore_router(self, data, out)
        when = self._now if now is None else now
        rebuild.install(self, self.config)
        rebuild.settle(self, when, orphans, out)
        if now is not None:
            self._advance(now, out)
        return out

    def _record(self, record: Record) -> None:
        self.records.append(record)
