"""The ACD's append-only event records: the input of every statistic.

The Router appends one record per fact to ``router.records``; take them
with :meth:`acd.core.Router.drain_records` (returns the new ones and
forgets them). Every record is a slotted dataclass (a value: equal and
hashable by its fields, read-only by convention; not ``frozen``, whose
``__init__`` costs about five times as much) with ``t`` (the time of
the fact, seconds on the Router's clock) and a ``kind`` string;
:func:`record_to_dict` / :func:`record_from_dict` give a JSON-able form.

Life of a call (one ``call`` id)::

    call_enqueued  (again after an overflow that moved it to another queue)
      [announced]* [callback_requested] [call_offered -> call_requeued]*
      then exactly one of, per queue entered:
        call_abandoned                      caller hung up while waiting/ringing
        call_overflowed                     queue gave up (max_wait, max_length,
                                            no_agents, queue_removed); when
                                            ``moved_to`` is set a call_enqueued
                                            for that queue follows
        call_answered -> call_completed     agent took it; completed after wrap-up

So per queue: offered = call_enqueued; answered + abandoned + overflowed =
offered once every call is over. Fields for the usual metrics:

* service level (SL, Asterisk's): answered with ``wait <= sl_threshold`` /
  answered; SL2: (that + abandoned with ``wait <= sl_threshold``) /
  (answered + abandoned). ``sl_threshold``/``sl_target`` ride on
  call_answered and call_abandoned.
* ASA: mean ``wait`` of call_answered. ``wait`` counts from the entry into
  *this* queue; ``total_wait`` from the first entry into the ACD.
* AHT: mean ``handle`` (= talk + hold + wrap_up) of call_completed.
* abandonment rate: call_abandoned / call_enqueued (``while_ringing``: the
  caller left while an agent was being rung).
* EWT error: call_answered.ewt (predicted when the caller joined the
  queue; ``None`` when it could not be estimated) vs call_answered.wait;
  every announcement also logs its prediction (``announced``; the actual
  remaining wait is the answer's ``t`` minus the announcement's ``t``).
* callbacks: callback_requested, and ``callback`` on call_answered/completed.
* agent occupancy and state time: agent_state (``since`` = when the previous
  state began, so ``t - since`` is the time spent in ``old``).
* missed offers (agent non-response): call_requeued with reason ``rna``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

__all__ = [
    "RECORD_TYPES",
    "AgentStateRecord",
    "Announced",
    "CallAbandoned",
    "CallAnswered",
    "CallCompleted",
    "CallEnqueued",
    "CallOffered",
    "CallOverflowed",
    "CallRequeued",
    "CallbackRequested",
    "Record",
    "record_from_dict",
    "record_to_dict",
]


class _RecordBase:
    """What every record has besides its fields: the class attribute
    ``kind``, set from ``_KINDS`` at the end of this module (a ``ClassVar``
    in each dataclass would do in Python, but mypyc hands it to the
    dataclass as a field: see acd.native).

    The records write their ``__init__`` out (``init=False``): a
    dataclass-generated ``__init__`` stays interpreted even in the compiled
    build. Keep it in step with the fields (tests/test_acd_native.py
    checks names, order and defaults)."""

    __slots__ = ()
    kind: ClassVar[str]


@dataclass(slots=True, unsafe_hash=True, init=False)
class CallEnqueued(_RecordBase):
    """A call joined ``queue``: ``priority`` (effective), ``enqueued_at``
    (first entry into the ACD), ``position`` (1 = next) and ``ewt`` (the
    predicted wait, ``None`` if no agent serves the queue); ``from_queue``
    when an overflow moved it here."""

    t: float
    call: str
    queue: str
    priority: int
    enqueued_at: float
    position: int
    ewt: float | None
    from_queue: str | None = None

    def __init__(
        self,
        t: float,
        call: str,
        queue: str,
        priority: int,
        enqueued_at: float,
        position: int,
        ewt: float | None,
        from_queue: str | None = None,
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.priority = priority
        self.enqueued_at = enqueued_at
        self.position = position
        self.ewt = ewt
        self.from_queue = from_queue


@dataclass(slots=True, unsafe_hash=True, init=False)
class CallOffered(_RecordBase):
    """``agent`` was rung with the call after ``wait`` seconds in the queue
    (``step``: routing step in force; ``trigger``: see acd.explain)."""

    t: float
    call: str
    queue: str
    agent: str
    wait: float
    step: int
    strategy: str
    trigger: str

    def __init__(
        self,
        t: float,
        call: str,
        queue: str,
        agent: str,
        wait: float,
        step: int,
        strategy: str,
        trigger: str,
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.wait = wait
        self.step = step
        self.strategy = strategy
        self.trigger = trigger


@dataclass(slots=True, unsafe_hash=True, init=False)
class CallRequeued(_RecordBase):
    """The offer to ``agent`` failed (``reason``: ``rna``, ``declined``,
    ``agent_not_ready``, ``agent_offline``, ``lease_expired``,
    ``agent_removed``); the call is back at its place in line."""

    t: float
    call: str
    queue: str
    agent: str
    reason: str

    def __init__(self, t: float, call: str, queue: str, agent: str, reason: str) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.reason = reason


@dataclass(slots=True, unsafe_hash=True, init=False)
class CallAnswered(_RecordBase):
    """``agent`` answered: ``wait`` in this queue, ``total_wait`` in the ACD,
    ``ewt`` predicted on joining this queue."""

    t: float
    call: str
    queue: str
    agent: str
    wait: float
    total_wait: float
    ewt: float | None
    sl_threshold: float
    sl_target: float
    callback: bool = False

    def __init__(
        self,
        t: float,
        call: str,
        queue: str,
        agent: str,
        wait: float,
        total_wait: float,
        ewt: float | None,
        sl_threshold: float,
        sl_target: float,
        callback: bool = False,
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.wait = wait
        self.total_wait = total_wait
        self.ewt = ewt
        self.sl_threshold = sl_threshold
        self.sl_target = sl_target
        self.callback = callback


@dataclass(slots=True, unsafe_hash=True, init=False)
class CallAbandoned(_RecordBase):
    """The caller hung up (or cancelled their callback) after ``wait``
    seconds, at ``position``."""

    t: float
    call: str
    queue: str
    wait: float
    total_wait: float
    position: int | None
    ewt: float | None
    sl_threshold: float
    sl_target: float
    while_ringing: bool = False
    callback: bool = False

    def __init__(
        self,
        t: float,
        call: str,
        queue: str,
        wait: float,
        total_wait: float,
        position: int | None,
        ewt: float | None,
        sl_threshold: float,
        sl_target: float,
        while_ringing: bool = False,
        callback: bool = False,
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.wait = wait
        self.total_wait = total_wait
        self.position = position
        self.ewt = ewt
        self.sl_threshold = sl_threshold
        self.sl_target = sl_target
        self.while_ringing = while_ringing
        self.callback = callback


@dataclass(slots=True, unsafe_hash=True, init=False)
class CallOverflowed(_RecordBase):
    """The queue gave up on the call (``reason``) after ``wait`` seconds;
    ``action``/``target``: its overflow action; ``moved_to``: the queue the
    call now waits in, if the action moved it."""

    t: float
    call: str
    queue: str
    wait: float
    reason: str
    action: str
    target: str | None
    moved_to: str | None = None

    def __init__(
        self,
        t: float,
        call: str,
        queue: str,
        wait: float,
        reason: str,
        action: str,
        target: str | None,
        moved_to: str | None = None,
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.wait = wait
        self.reason = reason
        self.action = action
        self.target = target
        self.moved_to = moved_to


@dataclass(slots=True, unsafe_hash=True, init=False)
class CallCompleted(_RecordBase):
    """Handled call, written when the agent's wrap-up ends: ``talk`` (answer
    to hang-up, minus hold), ``hold``, ``wrap_up``, ``handle`` (their sum)."""

    t: float
    call: str
    queue: str
    agent: str
    talk: float
    hold: float
    wrap_up: float
    handle: float
    callback: bool = False

    def __init__(
        self,
        t: float,
        call: str,
        queue: str,
        agent: str,
        talk: float,
        hold: float,
        wrap_up: float,
        handle: float,
        callback: bool = False,
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.talk = talk
        self.hold = hold
        self.wrap_up = wrap_up
        self.handle = handle
        self.callback = callback


@dataclass(slots=True, unsafe_hash=True, init=False)
class CallbackRequested(_RecordBase):
    """The caller left the line after ``wait`` s, keeping their place."""

    t: float
    call: str
    queue: str
    wait: float
    position: int

    def __init__(self, t: float, call: str, queue: str, wait: float, position: int) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.wait = wait
        self.position = position


@dataclass(slots=True, unsafe_hash=True, init=False)
class Announced(_RecordBase):
    """Position and predicted remaining wait announced to the caller."""

    t: float
    call: str
    queue: str
    position: int
    ewt: float | None

    def __init__(self, t: float, call: str, queue: str, position: int, ewt: float | None) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.position = position
        self.ewt = ewt


@dataclass(slots=True, unsafe_hash=True, init=False)
class AgentStateRecord(_RecordBase):
    """``agent`` went from ``old`` to ``new`` (state names, see
    acd.model.AgentState); ``since``: when ``old`` began; ``reason``:
    not_ready/offline reason code or cause."""

    t: float
    agent: str
    old: str
    new: str
    since: float
    reason: str | None = None

    def __init__(
        self, t: float, agent: str, old: str, new: str, since: float, reason: str | None = None
    ) -> None:
        self.t = t
        self.agent = agent
        self.old = old
        self.new = new
        self.since = since
        self.reason = reason


Record = (
    CallEnqueued
    | CallOffered
    | CallRequeued
    | CallAnswered
    | CallAbandoned
    | CallOverflowed
    | CallCompleted
    | CallbackRequested
    | Announced
    | AgentStateRecord
)

_KINDS: tuple[tuple[type[Record], str], ...] = (
    (CallEnqueued, "call_enqueued"),
    (CallOffered, "call_offered"),
    (CallRequeued, "call_requeued"),
    (CallAnswered, "call_answered"),
    (CallAbandoned, "call_abandoned"),
    (CallOverflowed, "call_overflowed"),
    (CallCompleted, "call_completed"),
    (CallbackRequested, "callback_requested"),
    (Announced, "announced"),
    (AgentStateRecord, "agent_state"),
)
for _cls, _kind in _KINDS:
    _cls.kind = _kind

RECORD_TYPES: dict[str, type[Record]] = {kind: cls for cls, kind in _KINDS}
"""kind -> record class."""


def record_to_dict(record: Record) -> dict[str, Any]:
    """``{"kind": ..., field: value...}`` (JSON-able)."""
    return {"kind": record.kind, **asdict(record)}


def record_from_dict(data: dict[str, Any]) -> Record:
    """The record written by :func:`record_to_dict`; ValueError on an
    unknown kind or missing fields."""
    kind = data.get("kind")
    cls = RECORD_TYPES.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown ACD record kind {kind!r} (known: {', '.join(RECORD_TYPES)})")
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise ValueError(f"bad {kind} record: {exc}") from None
