"""The ACD model: agents, queues, routing steps, calls (pure data).

Configuration (frozen, loaded by :mod:`acd.config` or built in code)::

    AcdConfig
     |- skills: the skill names every reference must use
     |- queues: name -> QueueConfig
     |     steps: Step(skills {name: min level 1-5}, groups, duration)...
     |     priority, service level, max_wait/max_length -> OverflowAction,
     |     no_agents policy, strategy, wrap_up, ring_timeout, announcements
     '- agents: name -> AgentConfig(skills {name: level 1-5}, groups, wrap_up, lease)

Runtime state (mutable, owned by :class:`acd.core.Router`; read it, never
write it): :class:`Agent` and :class:`Call`.

Agent states (``AgentState``)::

    offline --login--> available <--ready-- not_ready(reason)
    available --offer--> reserved (ringing) --answer--> on_call --hangup--> wrap_up
    wrap_up --(timer or end_wrap_up)--> available (or the pending not_ready/offline)
    reserved --ring timeout--> not_ready("rna") and the call goes back to its place
    any --lease expired--> offline (a call ringing them goes back to its place)

Times are seconds on the caller's clock (``now``); nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

__all__ = [
    "MAX_LEVEL",
    "MIN_LEVEL",
    "AcdConfig",
    "Agent",
    "AgentConfig",
    "AgentState",
    "Announcements",
    "Call",
    "CallState",
    "CallbackPolicy",
    "NoAgentsPolicy",
    "OverflowAction",
    "QueueConfig",
    "Requirement",
    "Step",
]

MIN_LEVEL = 1
MAX_LEVEL = 5


class AgentState(StrEnum):
    """Where an agent is; ``reserved`` means a call is ringing them."""

    OFFLINE = "offline"
    AVAILABLE = "available"
    RESERVED = "reserved"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    NOT_READY = "not_ready"


class CallState(StrEnum):
    """Where a call is in the ACD: waiting (in line, possibly as a callback),
    ringing (offered to one agent, or several for ring-all), answered."""

    WAITING = "waiting"
    RINGING = "ringing"
    ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class Requirement:
    """What an agent must have to take a call: every skill in ``skills`` at
    least at its level (in listed order: the first is the *primary* skill
    that ``most_skilled`` ranks by) and, when ``groups`` is not empty,
    membership of at least one of ``groups``. The empty requirement matches
    every agent."""

    skills: tuple[tuple[str, int], ...] = ()
    groups: frozenset[str] = frozenset()

    def __hash__(self) -> int:
        # the dataclass's own hash, written out so that the compiled build
        # (acd.native) compiles it: the matcher hashes one per decision
        return hash((self.skills, self.groups))

    def matches(self, skills: Mapping[str, int], groups: frozenset[str]) -> bool:
        """True when an agent with these skills and groups qualifies."""
        for name, level in self.skills:
            if skills.get(name, 0) < level:
                return False
        return not self.groups or not self.groups.isdisjoint(groups)

    def merged(self, extra: Mapping[str, int]) -> Requirement:
        """This requirement plus per-call skills (the higher level wins)."""
        if not extra:
            return self
        skills = dict(self.skills)
        for name, level in extra.items():
            skills[name] = max(level, skills.get(name, 0))
        return Requirement(tuple(skills.items()), self.groups)

    def describe(self) -> str:
        """``billing>=4, english>=2 in {tier2}``, or ``anyone``."""
        parts = [f"{name}>={level}" for name, level in self.skills]
        if self.groups:
            parts.append("in {" + ", ".join(sorted(self.groups)) + "}")
        return ", ".join(parts) if parts else "anyone"


@dataclass(frozen=True, slots=True)
class Step:
    """One routing step: ``requirement`` is in force for ``duration``
    seconds after the previous step (the last step has ``None``: for the
    rest of the wait). Steps relax a queue's requirement over time, e.g.
    billing>=4 for 30 s, then billing>=2 for 60 s, then anyone in the group."""

    requirement: Requirement
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class OverflowAction:
    """What happens to a call the queue gives up on.

    ``flow`` (the default): back to the IVR flow that queued the call, which
    follows its own overflow branch (or ``target`` = ``flow:node``);
    ``queue``: move it to queue ``target`` (keeping its original enqueue
    time and priority, so it does not lose its place); ``voicemail``
    (``target`` = mailbox), ``transfer`` (``target`` = URI/extension) and
    ``hangup`` are carried out by the runtime."""

    kind: Literal["flow", "queue", "voicemail", "transfer", "hangup"] = "flow"
    target: str | None = None


@dataclass(frozen=True, slots=True)
class NoAgentsPolicy:
    """When no agent able to serve the queue is logged in: ``join`` (wait
    anyway, up to max_wait), ``overflow`` (overflow at once; callers already
    waiting overflow when the last agent logs out), ``after`` (overflow once
    no agent has been logged in for ``after`` seconds of the caller's wait)."""

    mode: Literal["join", "overflow", "after"] = "join"
    after: float = 0.0


@dataclass(frozen=True, slots=True)
class Announcements:
    """Position/EWT announcements: the first ``first`` seconds after the
    caller joins, then every ``every`` seconds (``None``: only once).
    ``round_to`` is the granularity of the "less than N minutes" text."""

    first: float = 0.0
    every: float | None = 60.0
    position: bool = True
    ewt: bool = True
    round_to: float = 60.0


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A queue. ``steps`` must not be empty; every step but the last has a
    duration. ``priority`` is added to each call's own priority; the ACD
    serves the highest priority first, then the longest waiting, across all
    queues. ``sl_threshold``/``sl_target``: the service-level goal (e.g.
    80 % answered within 20 s), carried into the records for metrics."""

    name: str
    steps: tuple[Step, ...]
    priority: int = 0
    strategy: str = "longest_idle"
    sl_threshold: float = 20.0
    sl_target: float = 0.8
    max_wait: float | None = None
    max_length: int | None = None
    overflow: OverflowAction = OverflowAction()
    no_agents: NoAgentsPolicy = NoAgentsPolicy()
    wrap_up: float = 0.0
    ring_timeout: float = 15.0
    announce: Announcements | None = None
    default_aht: float = 180.0

    def step_at(self, waited: float) -> tuple[int, float | None]:
        """The step in force after ``waited`` seconds in this queue, and
        the wait at which it ends (``None``: never)."""
        end = 0.0
        last = len(self.steps) - 1
        for index, step in enumerate(self.steps):
            if step.duration is None or index == last:
                return index, None
            end += step.duration
            if waited < end:
                return index, end
        return last, None  # pragma: no cover - the loop always returns

    def step_end(self, index: int) -> float | None:
        """The wait at which step ``index`` ends (``None``: the last step)."""
        if index >= len(self.steps) - 1:
            return None
        end = 0.0
        for step in self.steps[: index + 1]:
            if step.duration is None:
                return None
            end += step.duration
        return end


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """An agent: ``skills`` name -> proficiency 1-5, ``groups``,
    ``wrap_up`` (overrides every queue's wrap-up when set), ``lease``
    (presence lease in seconds: without a heartbeat for that long a
    logged-in agent goes offline; ``None``: no lease), ``uri`` (the SIP URI
    of the agent's phone, which the engine rings with offers; routing never
    reads it)."""

    name: str
    skills: Mapping[str, int] = field(default_factory=dict)
    groups: frozenset[str] = frozenset()
    wrap_up: float | None = None
    lease: float | None = None
    uri: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    """How the engine calls back callers who asked for it (routing never reads
    it): ``dial`` is the URI template of the customer's leg (``{number}`` is
    the number the caller left, ``{pbx}`` the ``host:port`` their call came
    from, e.g. ``sip:{number}@{pbx}`` back through the Asterisk trunk;
    ``None``: callbacks are not offered); ``ring_timeout`` seconds for the
    customer to answer; ``attempts`` customer legs at most, ``retry_after``
    seconds apart (each retry waits its turn in line again)."""

    dial: str | None = None
    ring_timeout: float = 30.0
    attempts: int = 3
    retry_after: float = 120.0


@dataclass(frozen=True, slots=True)
class AcdConfig:
    """Skills, queues and agents. Agent order is meaningful: round robin
    walks agents in this order. ``callbacks``: see :class:`CallbackPolicy`."""

    skills: tuple[str, ...]
    queues: Mapping[str, QueueConfig]
    agents: Mapping[str, AgentConfig]
    callbacks: CallbackPolicy = CallbackPolicy()


@dataclass(slots=True, eq=False, init=False)
class Agent:
    """Runtime state of one agent (owned by the Router)."""

    config: AgentConfig
    index: int
    """Position in the configuration (round-robin order, final tie-break)."""
    state: AgentState = AgentState.OFFLINE
    state_since: float = 0.0
    reason: str | None = None
    """not_ready reason code (``rna``, ``declined``, ``break``...), offline reason."""
    idle_since: float = 0.0
    """When the agent last became available (longest idle ranks by this)."""
    calls_handled: int = 0
    talk_time: float = 0.0
    call: str | None = None
    """The call ringing them (reserved) or that they are on/wrapping up."""
    busy_since: float = 0.0
    """When the current call was answered (for the EWT's remaining time)."""
    wrap_until: float | None = None
    lease_until: float | None = None
    pending: tuple[AgentState, str | None] | None = None
    """A not_ready/offline request made during a call, applied after it."""
    removed: bool = False
    """Gone from the configuration; dropped once their call is over."""
    wrap_info: tuple[str, str, float, float, bool] | None = None
    """The call being wrapped up: (call, queue, talk, hold, callback)."""
    timers: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    """The Router's armed timer per kind (its private bookkeeping)."""

    def __init__(
        self,
        config: AgentConfig,
        index: int,
        state: AgentState = AgentState.OFFLINE,
        state_since: float = 0.0,
        reason: str | None = None,
        idle_since: float = 0.0,
        calls_handled: int = 0,
        talk_time: float = 0.0,
        call: str | None = None,
        busy_since: float = 0.0,
        wrap_until: float | None = None,
        lease_until: float | None = None,
        pending: tuple[AgentState, str | None] | None = None,
        removed: bool = False,
        wrap_info: tuple[str, str, float, float, bool] | None = None,
        timers: dict[str, int] | None = None,
    ) -> None:
        self.config = config
        self.index = index
        self.state = state
        self.state_since = state_since
        self.reason = reason
        self.idle_since = idle_since
        self.calls_handled = calls_handled
        self.talk_time = talk_time
        self.call = call
        self.busy_since = busy_since
        self.wrap_until = wrap_until
        self.lease_until = lease_until
        self.pending = pending
        self.removed = removed
        self.wrap_info = wrap_info
        self.timers = {} if timers is None else timers

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(slots=True, eq=False, init=False)
class Call:
    """Runtime state of one call in the ACD (owned by the Router)."""

    id: str
    queue: str
    seq: int
    """Arrival order in the ACD (kept when requeued or moved by overflow)."""
    priority: int
    """Effective priority: the queue's priority plus the call's own."""
    own_priority: int
    enqueued_at: float
    """First entry into the ACD: fairness ranks by this, it is never reset."""
    entered_at: float
    """Entry into the current queue: steps and max_wait count from here."""
    skills: Mapping[str, int] = field(default_factory=dict)
    """Per-call extra requirements (from the IVR), added to every step."""
    max_wait: float | None = None
    """Per-call max_wait override (seconds in the first queue)."""
    max_wait_at: float | None = None
    state: CallState = CallState.WAITING
    step: int = 0
    step_until: float | None = None
    requirement: Requirement = Requirement()
    ringing: list[str] = field(default_factory=list)
    offer_seq: int = 0
    ring_until: float | None = None
    callback: str | None = None
    """The number to call back: the caller left the line but keeps their place."""
    expired: bool = False
    """max_wait passed while ringing: overflow if the offer fails."""
    no_agents_until: float | None = None
    next_announce: float | None = None
    ewt: float | None = None
    """The wait predicted when the caller joined this queue (for EWT error)."""
    visited: tuple[str, ...] = ()
    agent: str | None = None
    answered_at: float | None = None
    hold_since: float | None = None
    hold_time: float = 0.0
    timers: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    """The Router's armed timer per kind (its private bookkeeping)."""

    def __init__(
        self,
        id: str,
        queue: str,
        seq: int,
        priority: int,
        own_priority: int,
        enqueued_at: float,
        entered_at: float,
        skills: Mapping[str, int] | None = None,
        max_wait: float | None = None,
        max_wait_at: float | None = None,
        state: CallState = CallState.WAITING,
        step: int = 0,
        step_until: float | None = None,
        requirement: Requirement = Requirement(),
        ringing: list[str] | None = None,
        offer_seq: int = 0,
        ring_until: float | None = None,
        callback: str | None = None,
        expired: bool = False,
        no_agents_until: float | None = None,
        next_announce: float | None = None,
        ewt: float | None = None,
        visited: tuple[str, ...] = (),
        agent: str | None = None,
        answered_at: float | None = None,
        hold_since: float | None = None,
        hold_time: float = 0.0,
        timers: dict[str, int] | None = None,
    ) -> None:
        self.id = id
        self.queue = queue
        self.seq = seq
        self.priority = priority
        self.own_priority = own_priority
        self.enqueued_at = enqueued_at
        self.entered_at = entered_at
        self.skills = {} if skills is None else skills
        self.max_wait = max_wait
        self.max_wait_at = max_wait_at
        self.state = state
        self.step = step
        self.step_until = step_until
        self.requirement = requirement
        self.ringing = [] if ringing is None else ringing
        self.offer_seq = offer_seq
        self.ring_until = ring_until
        self.callback = callback
        self.expired = expired
        self.no_agents_until = no_agents_until
        self.next_announce = next_announce
        self.ewt = ewt
        self.visited = visited
        self.agent = agent
        self.answered_at = answered_at
        self.hold_since = hold_since
        self.hold_time = hold_time
        self.timers = {} if timers is None else timers

    @property
    def rank(self) -> tuple[int, float, int]:
        """Global service order: highest priority, then longest waiting."""
        return (-self.priority, self.enqueued_at, self.seq)
