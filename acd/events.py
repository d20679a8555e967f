"""What drives the Router (inputs) and what it decides (effects).

Inputs and effects are values: slotted dataclasses, equal and hashable by
their fields, to be treated as read-only (they are not ``frozen``: a frozen
dataclass's ``__init__`` costs about five times as much, and the Router
builds several per call). Inputs carry ``now`` (seconds). Pass them to
:meth:`acd.core.Router.handle`; it first runs every timer due by ``now``
(ring-no-answer, wrap-up end, lease expiry, max wait, step relaxation,
announcements), then applies the input, and returns the effects in order::

    EnqueueCall(now, call, queue, priority, skills, max_wait)
    Hangup(now, call)               caller or agent hung up (abandon if not answered)
    RequestCallback(now, call, number)  leave the line, keep the place
    AgentLogin(now, agent, ready, lease) / AgentLogout(now, agent)
    AgentReady(now, agent) / AgentNotReady(now, agent, reason)
    Heartbeat(now, agent, ttl)      renews the presence lease
    AgentAnswer(now, agent, call) / AgentDecline(now, agent, call)
    Hold(now, call, on)
    EndWrapUp(now, agent)

Effects, for the runtime to carry out::

    Offer(call, agent, queue, callback, why)   ring the agent (why: acd.explain.Explanation)
    CancelOffer(call, agent, reason)           stop ringing them
    Announce(call, queue, position, ewt, text) play position / estimated wait
    Overflow(call, queue, reason, action, moved_to)
    CallbackAccepted(call, queue, position) / CallbackRefused(call, reason)
    AgentStateChanged(agent, old, new, reason, at)

Inputs that refer to a call or offer that is already over (a hang-up racing
an overflow, an answer racing a ring-no-answer) are ignored: ``handle``
returns no effect. Inputs that can never be right (unknown queue or agent,
a call id used twice, time going backwards) raise :class:`AcdError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from acd.explain import Explanation
from acd.model import AgentState, OverflowAction

__all__ = [
    "AcdError",
    "AgentAnswer",
    "AgentDecline",
    "AgentLogin",
    "AgentLogout",
    "AgentNotReady",
    "AgentReady",
    "AgentStateChanged",
    "Announce",
    "CallbackAccepted",
    "CallbackRefused",
    "CancelOffer",
    "Effect",
    "EndWrapUp",
    "EnqueueCall",
    "Hangup",
    "Heartbeat",
    "Hold",
    "Input",
    "Offer",
    "Overflow",
    "RequestCallback",
]


class AcdError(Exception):
    """An input the ACD can never accept (our caller's bug, not a race)."""


# ------------------------------------------------------------------ inputs
@dataclass(slots=True, unsafe_hash=True, init=False)
class EnqueueCall:
    """A caller joins ``queue``. ``priority`` is added to the queue's;
    ``skills`` are extra requirements added to every step; ``max_wait``
    overrides the queue's (seconds in this queue). ``callback`` (a number)
    makes it a callback from the start: a callback retried after its
    customer did not answer rejoins the line this way, so an agent who takes
    it at once takes it as the callback it is."""

    now: float
    call: str
    queue: str
    priority: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    max_wait: float | None = None
    callback: str | None = None

    def __init__(
        self,
        now: float,
        call: str,
        queue: str,
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
        max_wait: float | None = None,
        callback: str | None = None,
    ) -> None:
        self.now = now
        self.call = call
        self.queue = queue
        self.priority = priority
        self.skills = {} if skills is None else skills
        self.max_wait = max_wait
        self.callback = callback


@dataclass(slots=True, unsafe_hash=True, init=False)
class Hangup:
    """The call ended: abandoned if it was waiting or ringing, completed
    (the agent goes to wrap-up) if it was answered."""

    now: float
    call: str

    def __init__(self, now: float, call: str) -> None:
        self.now = now
        self.call = call


@dataclass(slots=True, unsafe_hash=True, init=False)
class RequestCallback:
    """The waiting caller leaves the line and will be called back at
    ``number``, keeping their place (original enqueue time and priority)."""

    now: float
    call: str
    number: str

    def __init__(self, now: float, call: str, number: str) -> None:
        self.now = now
        self.call = call
        self.number = number


@dataclass(slots=True, unsafe_hash=True, init=False)
class AgentLogin:
    """The agent logs in, available at once when ``ready`` (else not_ready
    with reason ``login``). ``lease`` overrides the configured presence
    lease (seconds)."""

    now: float
    agent: str
    ready: bool = True
    lease: float | None = None

    def __init__(
        self, now: float, agent: str, ready: bool = True, lease: float | None = None
    ) -> None:
        self.now = now
        self.agent = agent
        self.ready = ready
        self.lease = lease


@dataclass(slots=True, unsafe_hash=True, init=False)
class AgentLogout:
    """The agent logs out (after their current call, if any)."""

    now: float
    agent: str

    def __init__(self, now: float, agent: str) -> None:
        self.now = now
        self.agent = agent


@dataclass(slots=True, unsafe_hash=True, init=False)
class AgentReady:
    """The agent is ready for calls (cancels a pending not_ready)."""

    now: float
    agent: str

    def __init__(self, now: float, agent: str) -> None:
        self.now = now
        self.agent = agent


@dataclass(slots=True, unsafe_hash=True, init=False)
class AgentNotReady:
    """The agent takes a break (``reason``: a code such as ``lunch``);
    after their current call if they are on one; a call ringing them goes
    back to its place."""

    now: float
    agent: str
    reason: str = "break"

    def __init__(self, now: float, agent: str, reason: str = "break") -> None:
        self.now = now
        self.agent = agent
        self.reason = reason


@dataclass(slots=True, unsafe_hash=True, init=False)
class Heartbeat:
    """The agent's softphone is alive: the lease runs ``ttl`` more seconds
    (default: the agent's configured lease)."""

    now: float
    agent: str
    ttl: float | None = None

    def __init__(self, now: float, agent: str, ttl: float | None = None) -> None:
        self.now = now
        self.agent = agent
        self.ttl = ttl


@dataclass(slots=True, unsafe_hash=True, init=False)
class AgentAnswer:
    """The agent answered the call offered to them."""

    now: float
    agent: str
    call: str

    def __init__(self, now: float, agent: str, call: str) -> None:
        self.now = now
        self.agent = agent
        self.call = call


@dataclass(slots=True, unsafe_hash=True, init=False)
class AgentDecline:
    """The agent rejected the offer: they go not_ready (``declined``) and
    the call goes back to its place."""

    now: float
    agent: str
    call: str

    def __init__(self, now: float, agent: str, call: str) -> None:
        self.now = now
        self.agent = agent
        self.call = call


@dataclass(slots=True, unsafe_hash=True, init=False)
class Hold:
    """The answered call is put on hold (``on``) or taken off hold."""

    now: float
    call: str
    on: bool = True

    def __init__(self, now: float, call: str, on: bool = True) -> None:
        self.now = now
        self.call = call
        self.on = on


@dataclass(slots=True, unsafe_hash=True, init=False)
class EndWrapUp:
    """The agent finished wrap-up early."""

    now: float
    agent: str

    def __init__(self, now: float, agent: str) -> None:
        self.now = now
        self.agent = agent


Input = (
    EnqueueCall
    | Hangup
    | RequestCallback
    | AgentLogin
    | AgentLogout
    | AgentReady
    | AgentNotReady
    | Heartbeat
    | AgentAnswer
    | AgentDecline
    | Hold
    | EndWrapUp
)


# ----------------------------------------------------------------- effects
@dataclass(slots=True, unsafe_hash=True, init=False)
class Offer:
    """Ring ``agent`` with ``call``. For a callback (``callback`` = the
    number), the runtime dials the customer once the agent answers.
    ``why`` says why this agent and this call."""

    call: str
    agent: str
    queue: str
    callback: str | None
    why: Explanation

    def __init__(
        self, call: str, agent: str, queue: str, callback: str | None, why: Explanation
    ) -> None:
        self.call = call
        self.agent = agent
        self.queue = queue
        self.callback = callback
        self.why = why


@dataclass(slots=True, unsafe_hash=True, init=False)
class CancelOffer:
    """Stop ringing ``agent``: ``rna`` (ring timeout), ``answered_elsewhere``
    (ring-all), ``abandoned``, ``agent_not_ready``, ``agent_offline``,
    ``lease_expired``, ``queue_removed``, ``agent_removed``, ``declined``."""

    call: str
    agent: str
    reason: str

    def __init__(self, call: str, agent: str, reason: str) -> None:
        self.call = call
        self.agent = agent
        self.reason = reason


@dataclass(slots=True, unsafe_hash=True, init=False)
class Announce:
    """Tell the caller their ``position`` (1 = next) and estimated wait
    (seconds; ``None`` when it cannot be estimated: no agent serving);
    ``text`` is the spoken form (see :func:`acd.ewt.wait_text`)."""

    call: str
    queue: str
    position: int | None
    ewt: float | None
    text: str

    def __init__(
        self, call: str, queue: str, position: int | None, ewt: float | None, text: str
    ) -> None:
        self.call = call
        self.queue = queue
        self.position = position
        self.ewt = ewt
        self.text = text


@dataclass(slots=True, unsafe_hash=True, init=False)
class Overflow:
    """The queue gave up on the call (``reason``: ``max_wait``,
    ``max_length``, ``no_agents``, ``queue_removed``). ``action`` is the
    queue's overflow action; when it moved the call to another queue
    (``moved_to``), the call keeps waiting there and nothing is to be done."""

    call: str
    queue: str
    reason: str
    action: OverflowAction
    moved_to: str | None = None

    def __init__(
        self,
        call: str,
        queue: str,
        reason: str,
        action: OverflowAction,
        moved_to: str | None = None,
    ) -> None:
        self.call = call
        self.queue = queue
        self.reason = reason
        self.action = action
        self.moved_to = moved_to


@dataclass(slots=True, unsafe_hash=True, init=False)
class CallbackAccepted:
    """The caller may hang up: they will be called back from ``position``."""

    call: str
    queue: str
    position: int

    def __init__(self, call: str, queue: str, position: int) -> None:
        self.call = call
        self.queue = queue
        self.position = position


@dataclass(slots=True, unsafe_hash=True, init=False)
class CallbackRefused:
    """No callback (``reason``: ``not_waiting``: an agent is already ringing)."""

    call: str
    reason: str

    def __init__(self, call: str, reason: str) -> None:
        self.call = call
        self.reason = reason


@dataclass(slots=True, unsafe_hash=True, init=False)
class AgentStateChanged:
    """The agent moved from ``old`` to ``new`` at ``at`` (``reason``:
    not_ready/offline reason code, or what caused the change)."""

    agent: str
    old: AgentState
    new: AgentState
    reason: str | None
    at: float

    def __init__(
        self, agent: str, old: AgentState, new: AgentState, reason: str | None, at: float
    ) -> None:
        self.agent = agent
        self.old = old
        self.new = new
        self.reason = reason
        self.at = at


Effect = (
    Offer
    | CancelOffer
    | Announce
    | Overflow
    | CallbackAccepted
    | CallbackRefused
    | AgentStateChanged
)
