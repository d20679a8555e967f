"""Hypothesis state machine over random agents, queues and events.

Every input goes to the indexed Router and to the full-scan NaiveRouter;
after every step:

* both returned the same effects and wrote the same records;
* no agent holds two calls (ringing or talking), no call is offered to an
  agent twice at once, nobody rings for a call that is not ringing;
* the routing rule: no waiting call has an available agent that meets
  its step in force (so no call waits while a qualified agent idles);
* fairness: an agent who became available got the best-ranked waiting
  call they qualify for (checked against an independent scan);
* no lost call: every call is in the ACD or ended with a terminal record.

At teardown every call is hung up and time runs on: each call ends
answered (then completed), abandoned or overflowed, exactly once per queue
it entered.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from acd.core import Router
from acd.events import (
    AgentAnswer,
    AgentDecline,
    AgentLogin,
    AgentLogout,
    AgentNotReady,
    AgentReady,
    AgentStateChanged,
    CancelOffer,
    Effect,
    EndWrapUp,
    EnqueueCall,
    Hangup,
    Heartbeat,
    Hold,
    Input,
    Offer,
    RequestCallback,
)
from acd.ewt import estimate_wait
from acd.model import (
    AcdConfig,
    AgentConfig,
    AgentState,
    Announcements,
    CallState,
    NoAgentsPolicy,
    OverflowAction,
    QueueConfig,
    Requirement,
    Step,
)
from acd.naive import NaiveRouter
from acd.records import (
    CallAbandoned,
    CallAnswered,
    CallCompleted,
    CallEnqueued,
    CallOverflowed,
)
from acd.strategies import builtin_strategies

SKILLS = ("s0", "s1", "s2", "s3")
GROUPS = ("g0", "g1")
STRATEGIES = [s.name for s in builtin_strategies()]


@st.composite
def requirements(draw: Any) -> Requirement:
    names = draw(st.lists(st.sampled_from(SKILLS), max_size=2, unique=True))
    skills = tuple((name, draw(st.integers(1, 4))) for name in names)
    groups = frozenset(draw(st.lists(st.sampled_from(GROUPS), max_size=1)))
    return Requirement(skills, groups)


@st.composite
def configs(draw: Any) -> AcdConfig:
    agents: dict[str, AgentConfig] = {}
    for index in range(draw(st.integers(2, 7))):
        names = draw(st.lists(st.sampled_from(SKILLS), min_size=1, max_size=3, unique=True))
        skills = {name: draw(st.integers(2, 5)) for name in names}
        groups = frozenset(draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True)))
        wrap = draw(st.one_of(st.none(), st.sampled_from([0.0, 3.0])))
        lease = draw(st.one_of(st.none(), st.sampled_from([20.0, 60.0])))
        name = f"a{index}"
        agents[name] = AgentConfig(name, skills, groups, wrap, lease)
    queues: dict[str, QueueConfig] = {}
    count = draw(st.integers(1, 3))
    for index in range(count):
        name = f"q{index}"
        relaxing = [
            Step(draw(requirements()), draw(st.sampled_from([5.0, 10.0, 30.0])))
            for _ in range(draw(st.integers(0, 2)))
        ]
        steps = (*relaxing, Step(draw(requirements())))
        overflow = OverflowAction("flow")
        if index + 1 < count and draw(st.booleans()):
            overflow = OverflowAction("queue", f"q{draw(st.integers(index + 1, count - 1))}")
        queues[name] = QueueConfig(
            name=name,
            steps=steps,
            priority=draw(st.integers(0, 2)),
            strategy=draw(st.sampled_from(STRATEGIES)),
            max_wait=draw(st.one_of(st.none(), st.sampled_from([15.0, 60.0]))),
            max_length=draw(st.one_of(st.none(), st.integers(1, 4))),
            overflow=overflow,
            no_agents=draw(
                st.sampled_from(
                    [
                        NoAgentsPolicy("join"),
                        NoAgentsPolicy("overflow"),
                        NoAgentsPolicy("after", 7.0),
                    ]
                )
            ),
            wrap_up=draw(st.sampled_from([0.0, 5.0])),
            ring_timeout=draw(st.sampled_from([4.0, 12.0])),
            announce=draw(st.one_of(st.none(), st.just(Announcements(first=0.0, every=9.0)))),
        )
    return AcdConfig(SKILLS, queues, agents)


class RouterMachine(RuleBasedStateMachine):
    """Indexed and naive routers side by side (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.next_call = 0
        self.enqueued: list[str] = []
        self.records: list[Any] = []

    @initialize(config=configs())
    def setup(self, config: AcdConfig) -> None:
        self.config = config
        self.indexed = Router(config)
        self.naive = NaiveRouter(config)
        self.agent_names = list(config.agents)
        self.queue_names = list(config.queues)

    # -------------------------------------------------------------- driving
    def apply(self, make: Input | None) -> list[Effect]:
        """Send one input (or on_timer) to both routers and compare."""
        before = self.pre_state()
        if make is None:
            got = self.indexed.on_timer(self.now)
            ref = self.naive.on_timer(self.now)
        else:
            got = self.indexed.handle(make)
            ref = self.naive.handle(make)
        assert got == ref
        new = self.indexed.drain_records()
        assert new == self.naive.drain_records()
        self.records.extend(new)
        self.check_offers(before, got)
        if make is not None and before["quiet"]:
            self.check_fairness(before, got)
        return got

    def pre_state(self) -> dict[str, Any]:
        deadline = self.indexed.next_deadline()
        return {
            "quiet": deadline is None or deadline > self.now,
            "states": {a.name: a.state for a in self.indexed.agents()},
            "ringing": {
                c.id: set(c.ringing) for c in self.indexed.calls() if c.state is CallState.RINGING
            },
            "waiting": {
                c.id: (c.rank, c.requirement)
                for c in self.indexed.calls()
                if c.state is CallState.WAITING
            },
        }

    def check_offers(self, before: dict[str, Any], effects: list[Effect]) -> None:
        """An offer goes to an available agent, and never to a call that
        already rings (except the agents of one ring-all batch)."""
        states = dict(before["states"])
        ringing: dict[str, set[str]] = {k: set(v) for k, v in before["ringing"].items()}
        batch: dict[str, int] = {}
        for effect in effects:
            if isinstance(effect, AgentStateChanged):
                states[effect.agent] = effect.new
            elif isinstance(effect, CancelOffer):
                ringing.get(effect.call, set()).discard(effect.agent)
            elif isinstance(effect, Offer):
                assert states.get(effect.agent) is AgentState.AVAILABLE, effect
                if ringing.get(effect.call):
                    assert batch.get(effect.call) == id(effect.why), f"{effect.call} offered twice"
                ringing.setdefault(effect.call, set()).add(effect.agent)
                batch[effect.call] = id(effect.why)
                assert effect.why.candidates[0].agent in {c.agent for c in effect.why.candidates}

    def check_fairness(self, before: dict[str, Any], effects: list[Effect]) -> None:
        """No offer passed over a better-ranked waiting call the agent
        qualified for (one that still waits, with the same requirement)."""
        after = {
            c.id: (c.rank, c.requirement)
            for c in self.indexed.calls()
            if c.state is CallState.WAITING
        }
        ranks = {c.id: c.rank for c in self.indexed.calls()}
        for effect in effects:
            if not isinstance(effect, Offer) or effect.call not in ranks:
                continue
            agent = self.config.agents[effect.agent]
            for call, (rank, requirement) in before["waiting"].items():
                if after.get(call) != (rank, requirement) or rank >= ranks[effect.call]:
                    continue
                assert not requirement.matches(agent.skills, agent.groups), (
                    f"{effect.agent} got {effect.call} while better-ranked {call} waited"
                )

    def tick(self, dt: float) -> None:
        self.now += dt

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 3.0, 6.0, 15.0]))
    def time_passes(self, dt: float) -> None:
        self.tick(dt)
        self.apply(None)

    @rule(
        queue=st.integers(0, 2),
        priority=st.integers(0, 2),
        extra=st.one_of(
            st.just({}), st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 3), max_size=1)
        ),
        max_wait=st.one_of(st.none(), st.just(20.0)),
    )
    def enqueue(
        self, queue: int, priority: int, extra: dict[str, int], max_wait: float | None
    ) -> None:
        self.next_call += 1
        call = f"c{self.next_call}"
        self.enqueued.append(call)
        name = self.queue_names[queue % len(self.queue_names)]
        self.apply(EnqueueCall(self.now, call, name, priority, extra, max_wait))

    def pick_call(self, index: int) -> str | None:
        return self.enqueued[index % len(self.enqueued)] if self.enqueued else None

    def agent(self, index: int) -> str:
        return self.agent_names[index % len(self.agent_names)]

    @rule(index=st.integers(0, 10**6))
    def hangup(self, index: int) -> None:
        call = self.pick_call(index)
        if call is not None:
            self.apply(Hangup(self.now, call))

    @rule(index=st.integers(0, 10**6))
    def callback(self, index: int) -> None:
        call = self.pick_call(index)
        if call is not None:
            self.apply(RequestCallback(self.now, call, "+15550100"))

    @rule(index=st.integers(0, 10**6), ready=st.booleans())
    def login(self, index: int, ready: bool) -> None:
        self.apply(AgentLogin(self.now, self.agent(index), ready))

    @rule()
    def everyone_logs_in(self) -> None:
        for name in self.agent_names:
            self.apply(AgentLogin(self.now, name))

    @rule(index=st.integers(0, 10**6))
    def logout(self, index: int) -> None:
        self.apply(AgentLogout(self.now, self.agent(index)))

    @rule(index=st.integers(0, 10**6))
    def ready(self, index: int) -> None:
        self.apply(AgentReady(self.now, self.agent(index)))

    @rule(index=st.integers(0, 10**6), reason=st.sampled_from(["break", "lunch"]))
    def not_ready(self, index: int, reason: str) -> None:
        self.apply(AgentNotReady(self.now, self.agent(index), reason))

    @rule(index=st.integers(0, 10**6))
    def heartbeat(self, index: int) -> None:
        self.apply(Heartbeat(self.now, self.agent(index)))

    def ringing_pairs(self) -> list[tuple[str, str]]:
        return [
            (agent, call.id)
            for call in self.indexed.calls()
            if call.state is CallState.RINGING
            for agent in call.ringing
        ]

    @rule(index=st.integers(0, 10**6), stale=st.booleans())
    def answer(self, index: int, stale: bool) -> None:
        pairs = self.ringing_pairs()
        if pairs and not stale:
            agent, call = pairs[index % len(pairs)]
        else:
            agent, call = self.agent(index), self.pick_call(index) or "nobody"
        self.apply(AgentAnswer(self.now, agent, call))

    @rule(index=st.integers(0, 10**6))
    def decline(self, index: int) -> None:
        pairs = self.ringing_pairs()
        if pairs:
            agent, call = pairs[index % len(pairs)]
            self.apply(AgentDecline(self.now, agent, call))

    @rule(index=st.integers(0, 10**6), on=st.booleans())
    def hold(self, index: int, on: bool) -> None:
        call = self.pick_call(index)
        if call is not None:
            self.apply(Hold(self.now, call, on))

    @rule(index=st.integers(0, 10**6))
    def end_wrap_up(self, index: int) -> None:
        self.apply(EndWrapUp(self.now, self.agent(index)))

    @rule(
        drop_queue=st.booleans(),
        drop_agent=st.booleans(),
        strategy=st.sampled_from(STRATEGIES),
        levels=st.integers(1, 5),
    )
    def reconfigure(self, drop_queue: bool, drop_agent: bool, strategy: str, levels: int) -> None:
        """Live reconfiguration: a queue or agent removed, a strategy and a
        skill level changed; both routers must stay in step."""
        queues = dict(self.config.queues)
        agents = dict(self.config.agents)
        if drop_queue and len(queues) > 1:
            gone = list(queues)[-1]
            del queues[gone]
            for name, queue in queues.items():
                if queue.overflow.target == gone:
                    queues[name] = replace(queue, overflow=OverflowAction("flow"))
        if drop_agent and len(agents) > 1:
            del agents[next(iter(agents))]
        first = next(iter(queues))
        queues[first] = replace(queues[first], strategy=strategy)
        last = list(agents)[-1]
        skills = dict(agents[last].skills)
        skills[next(iter(skills))] = levels
        agents[last] = replace(agents[last], skills=skills)
        self.config = AcdConfig(SKILLS, queues, agents)
        self.queue_names = list(queues)
        self.agent_names = list(agents)
        got = self.indexed.reconfigure(self.now, self.config)
        assert got == self.naive.reconfigure(self.now, self.config)
        new = self.indexed.drain_records()
        assert new == self.naive.drain_records()
        self.records.extend(new)

    @rule()
    def snapshot_restore(self) -> None:
        """A restored copy carries on exactly like the original."""
        data = self.indexed.snapshot()
        restored = Router(self.config)
        assert restored.restore(data) == []
        assert restored.snapshot() == data
        self.indexed = restored
        naive = NaiveRouter(self.config)
        assert naive.restore(self.naive.snapshot()) == []
        self.naive = naive
        self.indexed.drain_records()
        self.naive.drain_records()

    # ----------------------------------------------------------- invariants
    @invariant()
    def one_call_per_agent(self) -> None:
        if not hasattr(self, "indexed"):
            return
        holder: dict[str, str] = {}
        for call in self.indexed.calls():
            if call.state is CallState.RINGING:
                assert call.ringing, f"{call.id} rings nobody"
                names = call.ringing
            elif call.state is CallState.ANSWERED:
                names = [call.agent] if call.agent is not None else []
            else:
                assert not call.ringing
                continue
            for name in names:
                assert name not in holder, f"{name} holds {holder[name]} and {call.id}"
                holder[name] = call.id
                agent = self.indexed.agent(name)
                assert agent.call == call.id
                if call.state is CallState.RINGING:
                    assert agent.state is AgentState.RESERVED
        for agent in self.indexed.agents():
            if agent.state is AgentState.RESERVED:
                assert holder.get(agent.name) == agent.call
            if agent.state in (AgentState.AVAILABLE, AgentState.NOT_READY):
                assert agent.call is None

    @invariant()
    def no_waiting_call_with_an_idle_qualified_agent(self) -> None:
        if not hasattr(self, "indexed"):
            return
        available = [a for a in self.indexed.agents() if a.state is AgentState.AVAILABLE]
        for call in self.indexed.calls():
            if call.state is not CallState.WAITING:
                continue
            for agent in available:
                assert not call.requirement.matches(agent.config.skills, agent.config.groups), (
                    f"{call.id} waits while {agent.name} is available and qualified"
                )

    @invariant()
    def incremental_ewt_equals_the_full_formula(self) -> None:
        """The Router's O(log n) estimate equals acd.ewt.estimate_wait over
        the serving agents listed by hand."""
        if not hasattr(self, "indexed"):
            return
        for queue in self.config.queues:
            aht = self.indexed.aht(queue)
            free = []
            for agent in self.indexed.agents():
                if agent not in self.indexed.members(queue):
                    continue
                if agent.state is AgentState.AVAILABLE:
                    free.append(0.0)
                elif agent.state is AgentState.RESERVED:
                    free.append(aht)
                elif agent.state in (AgentState.ON_CALL, AgentState.WRAP_UP):
                    free.append(max(0.0, aht - (self.now - agent.busy_since)))
            for position in (1, 2, 3, 7):
                expected = estimate_wait(position, free, aht)
                assert self.indexed._ewt(queue, position, self.now) == expected

    @invariant()
    def no_lost_call(self) -> None:
        if not hasattr(self, "indexed"):
            return
        ended = self.terminal_counts()
        inside = {call.id for call in self.indexed.calls()}
        for call in self.enqueued:
            entries = self.entries(call)
            if call in inside:
                assert ended.get(call, 0) == entries - 1, call
            else:
                completed = any(
                    isinstance(r, CallCompleted) and r.call == call for r in self.records
                )
                answered = any(isinstance(r, CallAnswered) and r.call == call for r in self.records)
                if answered and not completed:
                    # agent in wrap-up: the completion record follows
                    continue
                assert ended.get(call, 0) == entries, (call, ended.get(call), entries)

    def entries(self, call: str) -> int:
        return sum(1 for r in self.records if isinstance(r, CallEnqueued) and r.call == call)

    def terminal_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            if isinstance(record, CallAbandoned | CallOverflowed | CallCompleted):
                counts[record.call] = counts.get(record.call, 0) + 1
        return counts

    def teardown(self) -> None:
        if not hasattr(self, "indexed"):
            return
        for call in list(self.enqueued):
            self.apply(Hangup(self.now, call))
        self.tick(3600.0)
        self.apply(None)
        assert self.indexed.calls() == []
        ended = self.terminal_counts()
        for call in self.enqueued:
            assert ended.get(call, 0) == self.entries(call), call
        answered = {r.call for r in self.records if isinstance(r, CallAnswered)}
        completed = [r.call for r in self.records if isinstance(r, CallCompleted)]
        assert sorted(completed) == sorted(
            r.call for r in self.records if isinstance(r, CallAnswered)
        )
        assert set(completed) == answered


TestRouterMachine = RouterMachine.TestCase
TestRouterMachine.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
