"""The ACD routing rules, one test each, on both routers (indexed and full scan)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from acd.core import Router
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
    record_from_dict,
    record_to_dict,
)
from acd.strategies import Strategy, StrategyRegistry


def need(*skills: tuple[str, int], groups: tuple[str, ...] = ()) -> Requirement:
    return Requirement(tuple(skills), frozenset(groups))


def queue(name: str, *steps: Step, **options: Any) -> QueueConfig:
    if not steps:
        steps = (Step(need()),)
    return QueueConfig(name=name, steps=steps, **options)


def agent(name: str, groups: tuple[str, ...] = (), **skills: int) -> AgentConfig:
    return AgentConfig(name, skills, frozenset(groups))


def config(queues: list[QueueConfig], agents: list[AgentConfig]) -> AcdConfig:
    return AcdConfig(
        ("billing", "sales", "spanish"),
        {q.name: q for q in queues},
        {a.name: a for a in agents},
    )


class Both:
    """Drives an indexed Router and a NaiveRouter, checks they agree."""

    def __init__(self, cfg: AcdConfig, **kwargs: Any) -> None:
        self.router = Router(cfg, **kwargs)
        self.naive = NaiveRouter(cfg, **kwargs)
        self.records: list[Record] = []

    def __call__(self, event: Input) -> list[Effect]:
        got = self.router.handle(event)
        assert got == self.naive.handle(event)
        self._records()
        return got

    def timer(self, now: float) -> list[Effect]:
        got = self.router.on_timer(now)
        assert got == self.naive.on_timer(now)
        self._records()
        return got

    def _records(self) -> None:
        new = self.router.drain_records()
        assert new == self.naive.drain_records()
        self.records.extend(new)

    def of(self, kind: type) -> list[Any]:
        return [r for r in self.records if isinstance(r, kind)]


def offers(effects: list[Effect]) -> list[tuple[str, str]]:
    return [(e.call, e.agent) for e in effects if isinstance(e, Offer)]


def only(effects: list[Effect], kind: type) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def login(acd: Both, now: float, *names: str) -> None:
    for name in names:
        acd(AgentLogin(now, name))


# ------------------------------------------------------------ strategies
def test_longest_idle_takes_the_agent_available_longest_and_explains_why() -> None:
    acd = Both(config([queue("q")], [agent("a"), agent("b"), agent("c")]))
    acd(AgentLogin(0, "b"))
    acd(AgentLogin(5, "a"))
    acd(AgentLogin(7, "c"))
    out = acd(EnqueueCall(10, "c1", "q"))
    assert offers(out) == [("c1", "b")]
    why = only(out, Offer)[0].why
    assert why.trigger == "call_arrived" and why.strategy == "longest_idle"
    assert [(c.agent, c.idle_for) for c in why.candidates] == [("b", 10), ("a", 5), ("c", 3)]
    assert why.text() == (
        "call_arrived: queue q step 1 (anyone), priority 0, waited 0.0s; longest_idle chose "
        "b (idle 10.0s); next: a (idle 5.0s), c (idle 3.0s)"
    )
    assert json.loads(json.dumps(why.to_dict()))["candidates"][0]["agent"] == "b"


def test_most_skilled_ranks_by_the_primary_skill_then_idle_time() -> None:
    step = Step(need(("billing", 2), ("spanish", 1)))
    acd = Both(
        config(
            [queue("q", step, strategy="most_skilled")],
            [
                agent("idle_long", billing=3, spanish=5),
                agent("expert", billing=5, spanish=1),
                agent("expert_newer", billing=5, spanish=2),
                agent("no_spanish", billing=5),
            ],
        )
    )
    login(acd, 0, "idle_long", "expert", "expert_newer", "no_spanish")
    out = acd(EnqueueCall(10, "c1", "q"))
    assert offers(out) == [("c1", "expert")]
    why = only(out, Offer)[0].why
    assert [c.agent for c in why.candidates] == ["expert", "expert_newer", "idle_long"]
    assert why.candidates[0].levels == (("billing", 5), ("spanish", 1))


def test_fewest_calls_and_least_talk_time_use_the_day_counters() -> None:
    for strategy, winner in (("fewest_calls", "b"), ("least_talk_time", "a")):
        acd = Both(config([queue("q", strategy=strategy)], [agent("a"), agent("b")]))
        login(acd, 0, "a", "b")
        # a: two short calls; b: one long call
        for n, (who, talk) in enumerate((("a", 10), ("a", 10), ("b", 100))):
            call = f"warm{n}"
            t = 1000 * (n + 1)
            acd(AgentNotReady(t, "a" if who == "b" else "b"))
            out = acd(EnqueueCall(t, call, "q"))
            assert offers(out) == [(call, who)]
            acd(AgentAnswer(t, who, call))
            acd(Hangup(t + talk, call))
            acd(AgentReady(t + talk, "a" if who == "b" else "b"))
        out = acd(EnqueueCall(10_000, "c", "q"))
        assert offers(out) == [("c", winner)], strategy


def test_round_robin_goes_round_in_configuration_order() -> None:
    acd = Both(config([queue("q", strategy="round_robin")], [agent("a"), agent("b"), agent("c")]))
    login(acd, 0, "c", "b", "a")
    got = []
    for n in range(5):
        out = acd(EnqueueCall(n, f"c{n}", "q"))
        (call, who) = offers(out)[0]
        got.append(who)
        acd(AgentAnswer(n, who, call))
        acd(Hangup(n + 0.5, call))
    assert got == ["a", "b", "c", "a", "b"]


def test_ring_all_rings_everyone_and_the_first_answer_takes_it() -> None:
    acd = Both(config([queue("q", strategy="ring_all")], [agent("a"), agent("b"), agent("c")]))
    login(acd, 0, "a", "b", "c")
    acd(AgentNotReady(0, "c", "lunch"))
    out = acd(EnqueueCall(1, "c1", "q"))
    assert offers(out) == [("c1", "a"), ("c1", "b")]
    assert only(out, Offer)[0].why.chosen == 2
    out = acd(AgentAnswer(3, "b", "c1"))
    assert only(out, CancelOffer) == [CancelOffer("c1", "a", "answered_elsewhere")]
    assert acd.router.agent("a").state is AgentState.AVAILABLE
    assert acd.router.agent("b").state is AgentState.ON_CALL


def test_a_strategy_registered_by_name_is_used_by_both_routers() -> None:
    def by_name_desc(a: Any) -> tuple[Any, ...]:
        return (-ord(a.name[0]), a.index)

    registry = StrategyRegistry()
    registry.register(Strategy("reverse_alpha", by_name_desc))
    cfg = config([queue("q", strategy="reverse_alpha")], [agent("a"), agent("z"), agent("m")])
    acd = Both(cfg, strategies=registry)
    login(acd, 0, "a", "z", "m")
    assert offers(acd(EnqueueCall(1, "c1", "q"))) == [("c1", "z")]
    with pytest.raises(AcdError, match="unknown strategy 'reverse_alpha'"):
        Router(cfg)


# --------------------------------------------------------------- steps
def test_steps_relax_the_requirement_over_time() -> None:
    steps = (
        Step(need(("billing", 4)), 30.0),
        Step(need(("billing", 2)), 60.0),
        Step(need(groups=("team",))),
    )
    acd = Both(
        config(
            [queue("q", *steps)],
            [agent("mid", billing=2), agent("teammate", groups=("team",))],
        )
    )
    login(acd, 0, "mid", "teammate")
    acd(AgentNotReady(0, "mid", "break"))
    assert offers(acd(EnqueueCall(10, "c1", "q"))) == []
    assert acd.router.next_deadline() == 40.0
    acd(AgentReady(20, "mid"))  # not yet: billing>=4 in force
    assert acd.router.call("c1").state is CallState.WAITING
    out = acd.timer(40)
    assert offers(out) == [("c1", "mid")]
    assert only(out, Offer)[0].why.trigger == "step_relaxed"
    assert only(out, Offer)[0].why.step == 1
    acd(AgentAnswer(41, "mid", "c1"))
    # a second caller reaches the last step: anyone in the team
    assert offers(acd(EnqueueCall(41, "c2", "q"))) == []
    out = acd.timer(41 + 90)
    assert offers(out) == [("c2", "teammate")]
    assert [r.step for r in acd.of(CallOffered)] == [1, 2]


def test_per_call_skills_are_added_to_every_step() -> None:
    acd = Both(config([queue("q")], [agent("en", billing=3), agent("es", billing=3, spanish=2)]))
    login(acd, 0, "en", "es")
    out = acd(EnqueueCall(1, "c1", "q", skills={"spanish": 2}))
    assert offers(out) == [("c1", "es")]
    assert only(out, Offer)[0].why.requirement == need(("spanish", 2))


# ------------------------------------------------------------- fairness
def test_priority_first_then_time_waited_across_queues() -> None:
    acd = Both(
        config(
            [queue("low"), queue("high", priority=5), queue("also_low")],
            [agent("a")],
        )
    )
    acd(AgentLogin(0, "a", ready=False))
    acd(EnqueueCall(1, "old", "low"))
    acd(EnqueueCall(2, "older_than_vip", "also_low"))
    acd(EnqueueCall(3, "vip", "high"))
    acd(EnqueueCall(4, "vip_call_priority", "low", priority=5))
    served = []
    acd(AgentReady(5, "a"))
    for n in range(4):
        call = offers_of_agent(acd, "a")
        served.append(call)
        acd(AgentAnswer(10 + n, "a", call))
        acd(Hangup(11 + n, call))
    assert served == ["vip", "vip_call_priority", "old", "older_than_vip"]


def offers_of_agent(acd: Both, name: str) -> str:
    return next(r.call for r in reversed(acd.of(CallOffered)) if r.agent == name)


def test_an_available_agent_gets_the_longest_waiting_call_they_qualify_for() -> None:
    acd = Both(
        config(
            [
                queue("billing", Step(need(("billing", 3)))),
                queue("sales", Step(need(("sales", 1)))),
            ],
            [agent("both", billing=3, sales=1)],
        )
    )
    acd(AgentLogin(0, "both", ready=False))
    acd(EnqueueCall(1, "s1", "sales"))
    acd(EnqueueCall(2, "b1", "billing"))
    out = acd(AgentReady(3, "both"))
    assert offers(out) == [("s1", "both")]
    why = only(out, Offer)[0].why
    assert why.trigger == "agent_available" and why.calls_eligible == 2
    assert "first of 2 calls" in why.text()


def test_a_callback_keeps_its_place_and_never_passes_an_earlier_caller() -> None:
    acd = Both(config([queue("q")], [agent("a")]))
    acd(AgentLogin(0, "a", ready=False))
    acd(EnqueueCall(1, "first", "q"))
    acd(EnqueueCall(2, "cb", "q"))
    acd(EnqueueCall(3, "later", "q"))
    out = acd(RequestCallback(50, "cb", "+15551234"))
    assert out == [CallbackAccepted("cb", "q", 2)]
    assert acd.of(CallbackRequested) == [CallbackRequested(50, "cb", "q", 48, 2)]
    served = []
    acd(AgentReady(60, "a"))
    for n in range(3):
        call = offers_of_agent(acd, "a")
        served.append(call)
        acd(AgentAnswer(61 + n, "a", call))
        acd(Hangup(62 + n, call))
    assert served == ["first", "cb", "later"]
    offer_cb = next(r for r in acd.of(CallAnswered) if r.call == "cb")
    assert offer_cb.callback is True and offer_cb.total_wait == 62 - 2
    assert [c.callback for c in acd.of(CallCompleted)] == [False, True, False]


def test_callback_is_refused_while_an_agent_rings_and_offers_carry_the_number() -> None:
    acd = Both(config([queue("q")], [agent("a")]))
    acd(AgentLogin(0, "a", ready=False))
    acd(EnqueueCall(1, "c1", "q"))
    acd(RequestCallback(2, "c1", "+15550100"))
    out = acd(AgentReady(3, "a"))
    assert only(out, Offer)[0].callback == "+15550100"
    assert acd(RequestCallback(4, "c1", "+1")) == [CallbackRefused("c1", "not_waiting")]


def test_a_callback_rejoining_the_line_is_a_callback_even_when_taken_at_once() -> None:
    acd = Both(config([queue("q")], [agent("a")]))
    acd(AgentLogin(0, "a"))
    out = acd(EnqueueCall(1, "c1~2", "q", callback="+15550100"))  # a retry: agent idle
    assert offers(out) == [("c1~2", "a")] and only(out, Offer)[0].callback == "+15550100"
    acd(AgentAnswer(2, "a", "c1~2"))
    assert acd.of(CallAnswered)[0].callback
    assert not acd.of(CallbackRequested)  # the request was recorded on the first attempt


def test_a_callback_rejoining_a_busy_line_waits_silently_with_no_max_wait() -> None:
    acd = Both(config([queue("q", max_wait=30.0)], [agent("a")]))
    acd(AgentLogin(0, "a", ready=False))
    acd(EnqueueCall(1, "c1~2", "q", callback="+15550100"))
    routed = acd.router.call("c1~2")
    assert routed is not None and routed.callback == "+15550100"
    assert routed.max_wait_at is None and routed.next_announce is None
    assert not [e for e in acd.timer(100) if not isinstance(e, AgentStateChanged)]
    assert only(acd(AgentReady(101, "a")), Offer)[0].callback == "+15550100"


# ---------------------------------------------------- ring-no-answer
def test_ring_no_answer_makes_the_agent_not_ready_and_the_call_keeps_its_place() -> None:
    acd = Both(config([queue("q", ring_timeout=10.0)], [agent("a"), agent("b")]))
    acd(AgentLogin(0, "a"))
    acd(AgentLogin(0, "b", ready=False))
    assert offers(acd(EnqueueCall(1, "first", "q"))) == [("first", "a")]
    acd(EnqueueCall(2, "second", "q"))
    out = acd.timer(11)
    assert CancelOffer("first", "a", "rna") in out
    assert acd.router.agent("a").state is AgentState.NOT_READY
    assert acd.router.agent("a").reason == "rna"
    assert acd.router.position("first") == 1  # back at the head, before "second"
    assert acd.of(CallRequeued)[-1] == CallRequeued(11, "first", "q", "a", "rna")
    out = acd(AgentReady(12, "b"))
    assert offers(out) == [("first", "b")]
    assert only(out, Offer)[0].why.trigger == "agent_available"
    acd(AgentAnswer(13, "b", "first"))
    answered = acd.of(CallAnswered)[0]
    assert answered.wait == 12 and answered.total_wait == 12  # original enqueue time kept


def test_decline_and_not_ready_while_ringing_send_the_call_back() -> None:
    acd = Both(config([queue("q")], [agent("a"), agent("b")]))
    login(acd, 0, "a", "b")
    acd(EnqueueCall(1, "c1", "q"))
    out = acd(AgentDecline(2, "a", "c1"))
    assert out[0] == CancelOffer("c1", "a", "declined")
    assert offers(out) == [("c1", "b")]
    out = acd(AgentNotReady(3, "b", "lunch"))
    assert out[0] == CancelOffer("c1", "b", "agent_not_ready")
    assert acd.router.agent("b").reason == "lunch"
    assert acd.router.call("c1").state is CallState.WAITING


# --------------------------------------------------------------- wrap-up
def test_wrap_up_per_queue_overridden_per_agent_and_completion_record() -> None:
    acd = Both(
        config(
            [queue("q", wrap_up=30.0)],
            [AgentConfig("quick", {}, frozenset(), wrap_up=5.0), agent("std")],
        )
    )
    login(acd, 0, "quick")
    acd(EnqueueCall(1, "c1", "q"))
    acd(AgentAnswer(2, "quick", "c1"))
    acd(Hold(10, "c1"))
    acd(Hold(25, "c1", on=False))
    out = acd(Hangup(102, "c1"))
    assert only(out, AgentStateChanged)[-1].new is AgentState.WRAP_UP
    assert acd.router.next_deadline() == 107.0
    out = acd.timer(107)
    assert only(out, AgentStateChanged)[-1].new is AgentState.AVAILABLE
    assert acd.of(CallCompleted) == [
        CallCompleted(107, "c1", "q", "quick", talk=85.0, hold=15.0, wrap_up=5.0, handle=105.0)
    ]
    login(acd, 200, "std")
    acd(AgentNotReady(200, "quick"))
    acd(EnqueueCall(201, "c2", "q"))
    acd(AgentAnswer(201, "std", "c2"))
    acd(Hangup(211, "c2"))
    assert acd.router.agent("std").wrap_until == 241.0
    acd(EndWrapUp(215, "std"))
    assert acd.of(CallCompleted)[-1].wrap_up == 4.0
    assert acd.router.agent("std").state is AgentState.AVAILABLE
    assert acd.router.aht("q") == (105.0 + 14.0) / 2


def test_not_ready_and_logout_during_a_call_wait_for_its_end() -> None:
    acd = Both(config([queue("q", wrap_up=10.0)], [agent("a"), agent("b")]))
    login(acd, 0, "a", "b")
    acd(EnqueueCall(1, "c1", "q"))
    acd(EnqueueCall(1, "c2", "q"))
    acd(AgentAnswer(2, "a", "c1"))
    acd(AgentAnswer(2, "b", "c2"))
    acd(AgentNotReady(3, "a", "training"))
    acd(AgentLogout(3, "b"))
    assert acd.router.agent("a").state is AgentState.ON_CALL
    acd(Hangup(10, "c1"))
    acd(Hangup(10, "c2"))
    acd.timer(20)
    assert acd.router.agent("a").state is AgentState.NOT_READY
    assert acd.router.agent("a").reason == "training"
    assert acd.router.agent("b").state is AgentState.OFFLINE


# ---------------------------------------------------------------- lease
def test_presence_lease_expiry_logs_out_and_a_ringing_call_goes_back() -> None:
    acd = Both(config([queue("q")], [AgentConfig("a", {}, frozenset(), lease=30.0), agent("b")]))
    acd(AgentLogin(0, "a"))
    acd(Heartbeat(20, "a"))
    acd.timer(45)
    assert acd.router.agent("a").state is AgentState.AVAILABLE  # renewed until 50
    acd(EnqueueCall(46, "c1", "q"))
    out = acd.timer(50)
    assert CancelOffer("c1", "a", "lease_expired") in out
    assert acd.router.agent("a").state is AgentState.OFFLINE
    assert acd.router.agent("a").reason == "lease_expired"
    assert acd.router.call("c1").state is CallState.WAITING
    assert offers(acd(AgentLogin(51, "b"))) == [("c1", "b")]
    states = [(r.agent, r.old, r.new, r.reason) for r in acd.of(AgentStateRecord)]
    assert ("a", "reserved", "offline", "lease_expired") in states


def test_a_lease_given_at_login_overrides_the_configured_one() -> None:
    acd = Both(config([queue("q")], [agent("a")]))
    acd(AgentLogin(0, "a", lease=10.0))
    acd.timer(10)
    assert acd.router.agent("a").state is AgentState.OFFLINE


# ------------------------------------------------------------- overflow
def test_max_wait_overflows_with_the_queue_action() -> None:
    action = OverflowAction("voicemail", "billing")
    acd = Both(config([queue("q", max_wait=60.0, overflow=action)], [agent("a")]))
    acd(AgentLogin(0, "a", ready=False))
    acd(EnqueueCall(1, "c1", "q"))
    acd(EnqueueCall(2, "c2", "q", max_wait=10.0))
    out = acd.timer(12)
    assert out == [Overflow("c2", "q", "max_wait", action)]
    out = acd.timer(61)
    assert out == [Overflow("c1", "q", "max_wait", action)]
    assert [(r.call, r.wait, r.reason, r.action) for r in acd.of(CallOverflowed)] == [
        ("c2", 10, "max_wait", "voicemail"),
        ("c1", 60, "max_wait", "voicemail"),
    ]
    assert acd.router.calls() == []


def test_max_wait_during_a_ring_overflows_only_if_the_offer_fails() -> None:
    acd = Both(config([queue("q", max_wait=20.0, ring_timeout=15.0)], [agent("a"), agent("b")]))
    acd(AgentLogin(0, "a", ready=False))
    acd(EnqueueCall(0, "c1", "q"))
    acd(AgentReady(10, "a"))  # rings until 25, max wait at 20
    out = acd.timer(25)
    assert [type(e).__name__ for e in out] == ["CancelOffer", "AgentStateChanged", "Overflow"]
    acd(AgentLogin(30, "b"))
    acd(EnqueueCall(30, "c2", "q", max_wait=5.0))
    acd(AgentAnswer(31, "b", "c2"))
    assert acd.timer(40) == []


def test_max_length_overflows_the_caller_who_does_not_fit() -> None:
    acd = Both(config([queue("q", max_length=2)], []))
    acd(EnqueueCall(1, "c1", "q"))
    acd(EnqueueCall(1, "c2", "q"))
    out = acd(EnqueueCall(1, "c3", "q"))
    assert out == [Overflow("c3", "q", "max_length", OverflowAction())]
    assert [r.call for r in acd.of(CallEnqueued)] == ["c1", "c2", "c3"]


def test_overflow_to_another_queue_keeps_the_place_and_is_recorded_twice() -> None:
    acd = Both(
        config(
            [
                queue(
                    "first",
                    Step(need(("billing", 5))),
                    max_wait=30.0,
                    overflow=OverflowAction("queue", "second"),
                ),
                queue("second"),
            ],
            [agent("a", billing=1)],
        )
    )
    acd(AgentLogin(0, "a", ready=False))
    acd(EnqueueCall(0, "early", "first"))
    acd(EnqueueCall(10, "direct", "second"))
    out = acd.timer(30)
    assert out == [
        Overflow("early", "first", "max_wait", OverflowAction("queue", "second"), "second")
    ]
    moved = acd.of(CallEnqueued)[-1]
    assert (moved.call, moved.queue, moved.from_queue, moved.enqueued_at) == (
        "early",
        "second",
        "first",
        0,
    )
    assert acd.router.position("early") == 1  # ahead of "direct", who came later
    out = acd(AgentReady(31, "a"))
    assert offers(out) == [("early", "a")]


def test_no_agents_join_overflow_and_after() -> None:
    acd = Both(
        config(
            [
                queue("join", no_agents=NoAgentsPolicy("join")),
                queue("leave", no_agents=NoAgentsPolicy("overflow")),
                queue("after", no_agents=NoAgentsPolicy("after", 20.0)),
            ],
            [agent("a")],
        )
    )
    assert acd(EnqueueCall(0, "j", "join")) == []
    assert only(acd(EnqueueCall(0, "l", "leave")), Overflow)[0].reason == "no_agents"
    assert acd(EnqueueCall(0, "x", "after")) == []
    assert acd.timer(19) == []
    assert only(acd.timer(20), Overflow) == [Overflow("x", "after", "no_agents", OverflowAction())]
    # not ready counts as logged in: the caller waits
    acd(AgentLogin(30, "a", ready=False))
    assert acd(EnqueueCall(30, "y", "leave")) == []
    # the last agent logs out: waiting callers of an `overflow` queue leave at once
    out = acd(AgentLogout(40, "a"))
    assert only(out, Overflow) == [Overflow("y", "leave", "no_agents", OverflowAction())]
    assert acd.router.call("j") is not None


# --------------------------------------------------------- announcements
def test_announcements_at_intervals_with_position_and_estimate() -> None:
    ann = Announcements(first=10.0, every=30.0, round_to=60.0)
    acd = Both(config([queue("q", announce=ann, default_aht=120.0)], [agent("a")]))
    acd(AgentLogin(0, "a"))
    acd(EnqueueCall(0, "busy", "q"))
    acd(AgentAnswer(0, "a", "busy"))  # a frees up at 120 by the AHT
    acd(EnqueueCall(0, "c1", "q"))
    acd(EnqueueCall(5, "c2", "q"))
    out = acd.timer(10)
    assert out == [
        Announce("c1", "q", 1, 110.0, "You are next in line. Your wait is less than 2 minutes.")
    ]
    out = acd.timer(15)
    assert out == [
        Announce("c2", "q", 2, 225.0, "You are number 2 in line. Your wait is less than 4 minutes.")
    ]
    out = acd.timer(40)
    assert [(e.call, e.ewt) for e in out] == [("c1", 80.0)]
    assert [(r.call, r.position, r.ewt) for r in acd.of(Announced)] == [
        ("c1", 1, 110.0),
        ("c2", 2, 225.0),
        ("c1", 1, 80.0),
    ]
    # predicted at enqueue vs actual wait, for the EWT error metric
    enq = {r.call: r.ewt for r in acd.of(CallEnqueued)}
    assert enq == {"busy": 0.0, "c1": 120.0, "c2": 235.0}
    acd(Hangup(50, "busy"))
    acd(AgentAnswer(50, "a", "c1"))
    answered = acd.of(CallAnswered)[-1]
    assert (answered.call, answered.ewt, answered.wait) == ("c1", 120.0, 50)


# -------------------------------------------------------- abandonment
def test_abandon_while_waiting_and_while_ringing() -> None:
    acd = Both(config([queue("q")], [agent("a")]))
    acd(AgentLogin(0, "a", ready=False))
    acd(EnqueueCall(0, "c1", "q"))
    acd(EnqueueCall(1, "c2", "q"))
    acd(Hangup(5, "c2"))
    acd(AgentReady(6, "a"))
    out = acd(Hangup(8, "c1"))
    assert out[0] == CancelOffer("c1", "a", "abandoned")
    assert acd.router.agent("a").state is AgentState.AVAILABLE
    rows = [(r.call, r.wait, r.position, r.while_ringing) for r in acd.of(CallAbandoned)]
    assert rows == [("c2", 4, 2, False), ("c1", 8, None, True)]


# ---------------------------------------------------------- bad inputs
def test_stale_inputs_are_ignored_and_impossible_ones_refused() -> None:
    acd = Both(config([queue("q")], [agent("a")]))
    assert acd(Hangup(0, "never")) == []
    assert acd(AgentAnswer(0, "a", "never")) == []
    assert acd(AgentNotReady(0, "a")) == []  # offline: a race with a lease expiry
    with pytest.raises(AcdError, match=r"unknown queue 'nope' \(known: q\)"):
        acd.router.handle(EnqueueCall(1, "c", "nope"))
    acd(EnqueueCall(1, "c", "q"))
    with pytest.raises(AcdError, match="call 'c' is already in the ACD"):
        acd.router.handle(EnqueueCall(2, "c", "q"))
    with pytest.raises(AcdError, match="unknown agent 'zed'"):
        acd.router.handle(AgentLogin(2, "zed"))
    with pytest.raises(AcdError, match="time went backwards"):
        acd.router.handle(AgentLogin(0.5, "a"))


# ------------------------------------------------- snapshot, reconfigure
def test_snapshot_is_json_and_restore_carries_on_identically() -> None:
    cfg = config(
        [
            queue(
                "q",
                Step(need(("billing", 3)), 20.0),
                Step(need()),
                ring_timeout=10.0,
                wrap_up=5.0,
                announce=Announcements(first=0.0, every=15.0),
            )
        ],
        [agent("a", billing=3), agent("b"), AgentConfig("c", {}, frozenset(), lease=60.0)],
    )
    acd = Both(cfg)
    login(acd, 0, "a", "c")
    acd(AgentNotReady(0, "c", "lunch"))
    acd(EnqueueCall(1, "ringing", "q"))
    acd(EnqueueCall(2, "waiting", "q"))
    acd(EnqueueCall(3, "cb", "q"))
    acd(RequestCallback(4, "cb", "+1555"))
    data = json.loads(json.dumps(acd.router.snapshot()))
    restored = Router(cfg)
    assert restored.restore(data) == []
    assert restored.snapshot() == data
    assert restored.agent("c").reason == "lunch"
    for router in (acd.router, restored):
        out = router.on_timer(60)
        assert CancelOffer("ringing", "a", "rna") in out
    assert acd.router.snapshot() == restored.snapshot()


def test_restore_refuses_what_is_not_a_snapshot() -> None:
    router = Router(config([queue("q")], []))
    with pytest.raises(AcdError, match="not an ACD snapshot of version 1"):
        router.restore({"version": 99})


def test_reconfigure_keeps_callers_and_overflows_those_of_a_removed_queue() -> None:
    old = config(
        [
            queue("keep", Step(need(("billing", 5)))),
            queue("gone", overflow=OverflowAction("voicemail", "x")),
        ],
        [agent("a", billing=2), agent("b")],
    )
    acd = Both(old)
    login(acd, 0, "b")
    acd(AgentNotReady(0, "b"))
    acd(EnqueueCall(1, "k1", "keep"))
    acd(EnqueueCall(2, "k2", "keep"))
    acd(EnqueueCall(3, "g1", "gone"))
    new = config([queue("keep", Step(need(("billing", 2))), priority=3)], [agent("a", billing=2)])
    out = acd.router.reconfigure(10, new)
    assert out == acd.naive.reconfigure(10, new)
    assert Overflow("g1", "gone", "queue_removed", OverflowAction("voicemail", "x")) in out
    assert ("b", "not_ready", "offline", "removed") in [
        (r.agent, r.old, r.new, r.reason)
        for r in acd.router.drain_records()
        if isinstance(r, AgentStateRecord)
    ]
    acd.naive.drain_records()
    assert acd.router.position("k1") == 1 and acd.router.position("k2") == 2
    assert acd.router.call("k1").priority == 3
    out = acd(AgentLogin(11, "a"))
    assert offers(out) == [("k1", "a")]


# --------------------------------------------------------------- records
def test_records_round_trip_through_dicts() -> None:
    acd = Both(config([queue("q")], [agent("a")]))
    login(acd, 0, "a")
    acd(EnqueueCall(1, "c1", "q"))
    acd(AgentAnswer(2, "a", "c1"))
    acd(Hangup(9, "c1"))
    assert acd.records
    for record in acd.records:
        data = json.loads(json.dumps(record_to_dict(record)))
        assert record_from_dict(data) == record
    with pytest.raises(ValueError, match="unknown ACD record kind 'nope'"):
        record_from_dict({"kind": "nope"})


def test_a_step_ending_where_float_rounding_shortens_the_wait_still_moves_on() -> None:
    entered = 2.0500000000000003  # (entered + 30) - entered < 30 in binary floating point
    acd = Both(config([queue("q", Step(need(("billing", 5)), 30.0), Step(need()))], [agent("a")]))
    acd(AgentLogin(0, "a", ready=False))
    acd(EnqueueCall(entered, "c1", "q"))
    acd.timer(entered + 30)
    assert acd.router.call("c1").step == 1
    assert acd.router.next_deadline() is None
