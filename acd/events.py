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
@dataclass(slots=True, unsafe_hash=True)
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


@dataclass(slots=True, unsafe_hash=True)
class Hangup:
    """The call ended: abandoned if it was waiting or ringing, completed
    (the agent goes to wrap-up) if it was answered."""

    now: float
    call: str


@dataclass(slots=True, unsafe_hash=True)
class RequestCallback:
    """The waiting caller leaves the line and will be called back at
    ``number``, keeping their place (original enqueue time and priority)."""

    now: float
    call: str
    number: str


@dataclass(slots=True, unsafe_hash=True)
class AgentLogin:
    """The agent logs in, available at once when ``ready`` (else not_ready
    with reason ``login``). ``lease`` overrides the configured presence
    lease (seconds)."""

    now: float
    agent: str
    ready: bool = True
    lease: float | None = None


@dataclass(slots=True, unsafe_hash=True)
class AgentLogout:
    """The agent logs out (after their current call, if any)."""

    now: float
    agent: str


@dataclass(slots=True, unsafe_hash=True)
class AgentReady:
    """The agent is ready for calls (cancels a pending not_ready)."""

    now: float
    agent: str


@dataclass(slots=True, unsafe_hash=True)
class AgentNotReady:
    """The agent takes a break (``reason``: a code such as ``lunch``);
    after their current call if they are on one; a call ringing them goes
    back to its place."""

    now: float
    agent: str
    reason: str = "break"


@dataclass(slots=True, unsafe_hash=True)
class Heartbeat:
    """The agent's softphone is alive: the lease runs ``ttl`` more seconds
    (default: the agent's configured lease)."""

    now: float
    agent: str
    ttl: float | None = None


@dataclass(slots=True, unsafe_hash=True)
class AgentAnswer:
    """The agent answered the call offered to them."""

    now: float
    agent: str
    call: str


@dataclass(slots=True, unsafe_hash=True)
class AgentDecline:
    """The agent rejected the offer: they go not_ready (``declined``) and
    the call goes back to its place."""

    now: float
    agent: str
    call: str


@dataclass(slots=True, unsafe_hash=True)
class Hold:
    """The answered call is put on hold (``on``) or taken off hold."""

    now: float
    call: str
    on: bool = True


@dataclass(slots=True, unsafe_hash=True)
class EndWrapUp:
    """The agent finished wrap-up early."""

    now: float
    agent: str


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
@dataclass(slots=True, unsafe_hash=True)
class Offer:
    """Ring ``agent`` with ``call``. For a callback (``callback`` = the
    number), the runtime dials the customer once the agent answers.
    ``why`` says why this agent and this call."""

    call: str
    agent: str
    queue: str
    callback: str | None
    why: Explanation


@dataclass(slots=True, unsafe_hash=True)
class CancelOffer:
    """Stop ringing ``agent``: ``rna`` (ring timeout), ``answered_elsewhere``
    (ring-all), ``abandoned``, ``agent_not_ready``, ``agent_offline``,
    ``lease_expired``, ``queue_removed``, ``agent_removed``, ``declined``."""

    call: str
    agent: str
    reason: str


@dataclass(slots=True, unsafe_hash=True)
class Announce:
    """Tell the caller their ``position`` (1 = next) and estimated wait
    (seconds; ``None`` when it cannot be estimated: no agent serving);
    ``text`` is the spoken form (see :func:`acd.ewt.wait_text`)."""

    call: str
    queue: str
    position: int | None
    ewt: float | None
    text: str


@dataclass(slots=True, unsafe_hash=True)
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


@dataclass(slots=True, unsafe_hash=True)
class CallbackAccepted:
    """The caller may hang up: they will be called back from ``position``."""

    call: str
    queue: str
    position: int


@dataclass(slots=True, unsafe_hash=True)
class CallbackRefused:
    """No callback (``reason``: ``not_waiting``: an agent is already ringing)."""

    call: str
    reason: str


@dataclass(slots=True, unsafe_hash=True)
class AgentStateChanged:
    """The agent moved from ``old`` to ``new`` at ``at`` (``reason``:
    not_ready/offline reason code, or what caused the change)."""

    agent: str
    old: AgentState
    new: AgentState
    reason: str | None
    at: float


Effect = (
    Offer
    | CancelOffer
    | Announce
    | Overflow
    | CallbackAccepted
    | CallbackRefused
    | AgentStateChanged
)
