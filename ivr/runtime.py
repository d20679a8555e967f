"""The flow interpreter: one :class:`FlowRun` per call, sans I/O.

A run walks the nodes of a :class:`~ivr.loader.FlowSet` snapshot (taken at
call start; a reload never changes a call in progress) and returns one
action at a time (:mod:`ivr.actions`)::

    run = FlowRun(flowset, caller="+81312345678", called="5000", call_id=cid, now=t0)
    action = run.start()
    while not isinstance(action, Hangup):
        result = execute(action)            # the driver's business: play, collect...
        action = run.resume(result, now=t)  # time comes in; never read inside
    run.path, run.variables, run.ended     # what happened

Node semantics (``next`` left out means: return from a subflow, else hang
up; the handlers are in :mod:`ivr.nodes`)

say / play
    Speak or play, then ``next``. With ``barge_in`` a key stops the prompt
    and is kept as type-ahead for the next menu, gather or language node.
menu
    Prompt (barge-in: a key during the prompt is the choice), wait
    ``timeout`` s for one digit. An option digit goes to its target; the
    ``repeat`` digit replays the prompt; anything else is a failure:
    ``invalid`` (a wrong digit) or ``no_input`` (timeout). Failures share
    one count: after ``retries`` extra tries the run goes to ``invalid`` /
    ``no_input`` (each falls back to the other, then hangs up); before
    that it plays ``invalid_prompt`` / ``no_input_prompt`` and the prompt again.
gather
    Like a menu with several digits: ``max_length`` digits, the
    ``terminator`` or an inter-digit timeout end the input; fewer than
    ``min_length`` digits or no ``pattern`` match is invalid. Stored in
    ``variable`` (a string).
set / switch / if
    Jinja expressions (:mod:`ivr.expressions`) over the variables below.
hours
    ``now`` in ``timezone`` (zoneinfo, so DST is right); a ``holidays`` date
    goes to ``holiday`` (else ``closed``); a ``schedule`` span of that
    weekday (start included, end excluded) goes to ``open``; else ``closed``.
lookup
    ``key`` expression, optional ``url`` template (``{{ key }}``); record in
    ``variable`` (None when not found or on error); ``found`` /
    ``not_found`` / ``error`` (error falls back to ``not_found``).
queue
    ``answered`` -> ``next`` (hang up if none); ``overflow``/``no_agents``
    -> ``overflow`` (hang up if none); ``abandoned`` ends the run.
    With ``callback: {digit: "1", after: 30}`` the waiting caller is offered
    a callback (the number is the ``number`` expression, default ``caller``);
    ``callback`` (they took it and heard the confirmation) -> ``callback.next``
    (hang up if none). The outcome is in ``queue_outcome``.
transfer
    Accepted: the run ends (``transfer``). Refused: ``failed``, else hang up.
voicemail
    Optional prompt, a beep, then the recording; ``voicemail`` holds
    mailbox, path and seconds.
hangup / goto / subflow / return
    ``subflow`` runs ``flow`` (at ``node`` or its start) and continues at
    ``next`` on ``return`` (or when the subflow falls off its end).
language
    One digit picks a language code; no input or a wrong digit picks
    ``default``, else the flow's language. Texts given per language follow it.

Variables seen by expressions and templates: the flow's ``variables``
(entering another flow adds its defaults for names not set yet), what
``set`` and ``gather`` stored, what the run stored (:data:`RUN_DEFAULTS`:
``customer`` (the default lookup variable), ``queue`` and
``queue_outcome``, ``transfer_ok``, ``voicemail``, ``lookup_error``; None
until set; ``recording_paused``, False until a ``recording`` node succeeds)
and the read-only built-ins (:data:`BUILTINS`): ``caller``,
``caller_name``, ``called``, ``call_id``, ``now`` (aware datetime),
``language`` (settable: switches the caller's language), ``flow`` and
``node`` (where the run is), ``digits`` (the last menu choice or gathered
input), ``attempt`` (1, 2 ... at the current menu/gather try, else 0).

Guards: more than ``Limits.max_steps`` nodes in one call, more than
``Limits.max_silent_steps`` nodes in a row without waiting on the caller
(a goto loop), or subflows nested deeper than ``Limits.max_depth``, end the
run with ``Hangup("error", why)``; so does an expression that fails or a
target that does not exist. The error text names the flow and node.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ivr.actions import (
    RESULT_OF,
    Action,
    CollectDigits,
    DigitsResult,
    Enqueue,
    Hangup,
    Play,
    PlayResult,
    PromptItem,
    RecordVoicemail,
    Result,
)
from ivr.expressions import is_template
from ivr.model import Flow, split_target
from ivr.nodes import HANDLERS, RETURN, Next
from ivr.prompts import resolve_prompt

__all__ = [
    "BUILTINS",
    "CompiledExpressions",
    "FlowRun",
    "FlowRuntimeError",
    "FlowSetLike",
    "Limits",
    "Visit",
]

BUILTINS = frozenset(
    {"caller", "caller_name", "called", "call_id", "now", "language", "flow", "node", "digits",
     "attempt"}
)  # fmt: skip
"""Read-only variables (but ``language``, which switches the caller's language)."""
RUN_DEFAULTS: Mapping[str, Any] = {
    "customer": None,
    "queue": None,
    "queue_outcome": None,
    "transfer_ok": None,
    "voicemail": None,
    "recording_paused": False,
    "lookup_error": None,
}
"""Variables the run sets (lookup, queue, transfer, voicemail, recording nodes), None
until then (``recording_paused``: False)."""


class FlowRuntimeError(Exception):
    """A flow could not go on: a failing expression, a missing target, a loop.

    The message names the flow and node and what to fix.
    """


class FlowSetLike(Protocol):
    """What the runtime needs of a loaded flow set (:class:`ivr.loader.FlowSet`)."""

    @property
    def flows(self) -> Mapping[str, Flow]: ...

    def flow_for(self, number: str) -> Flow: ...


@dataclass(frozen=True)
class Limits:
    """Runaway guards of one run."""

    max_steps: int = 1000
    """Nodes visited in one call."""
    max_silent_steps: int = 100
    """Nodes visited in a row without an action for the caller (play, collect...)."""
    max_depth: int = 16
    """Nested subflows."""


@dataclass(frozen=True)
class Visit:
    """One node entered: where and when (the ``now`` of that step)."""

    flow: str
    node: str
    type: str
    at: datetime

    def label(self, entry: str) -> str:
        """``node`` for nodes of the ``entry`` flow, ``flow:node`` otherwise."""
        return self.node if self.flow == entry else f"{self.flow}:{self.node}"


Compiled = Callable[[Mapping[str, Any]], Any]


class CompiledExpressions:
    """Conditions, values and templates compiled once per source text.

    The compile functions default to :mod:`ivr.expressions` (sandboxed
    Jinja); :meth:`of` uses the ones a loaded flow set compiled at load time.
    """

    def __init__(
        self,
        *,
        condition: Callable[[str], Compiled] | None = None,
        value: Callable[[str], Compiled] | None = None,
        template: Callable[[str], Compiled] | None = None,
    ) -> None:
        if condition is None or value is None or template is None:
            from ivr import expressions

            condition = condition or expressions.compile_condition
            value = value or expressions.compile_value
            template = template or expressions.compile_template
        self._compilers = {"condition": condition, "value": value, "template": template}
        self._cache: dict[tuple[str, str], Compiled] = {}

    @classmethod
    def of(cls, flowset: object) -> CompiledExpressions:
        """The flow set's own compiled expressions (``condition``/``value``/
        ``template`` methods of :class:`ivr.loader.FlowSet`), else compiled here."""
        fns = [getattr(flowset, k, None) for k in ("condition", "value", "template")]
        if all(callable(f) for f in fns):
            return cls(condition=fns[0], value=fns[1], template=fns[2])
        return cls()

    def get(self, kind: str, src: str) -> Compiled:
        """The compiled ``kind`` (condition, value, template) of ``src``."""
        key = (kind, src)
        fn = self._cache.get(key)
        if fn is None:
            fn = self._compilers[kind](src)
            self._cache[key] = fn
        return fn


Step = Generator[Action, Result, Any]


@dataclass
class _Frame:
    flow: Flow
    next: str


@dataclass
class _State:
    flow: Flow
    node: str
    stack: list[_Frame] = field(default_factory=list)


class FlowRun:
    """One call walking a flow (see the module docstring).

    ``flow`` names the entry flow; without it the flow set's route for
    ``called`` is used. ``node`` starts elsewhere than the flow's start.
    ``language`` overrides the entry flow's default language. Raises
    :class:`FlowRuntimeError` when there is no such flow / no route.
    """

    def __init__(
        self,
        flowset: FlowSetLike,
        *,
        caller: str,
        called: str,
        call_id: str,
        now: datetime,
        caller_name: str = "",
        flow: str | None = None,
        node: str | None = None,
        language: str | None = None,
        limits: Limits | None = None,
        expressions: CompiledExpressions | None = None,
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("FlowRun: now must be timezone-aware")
        self.flowset = flowset
        if flow is not None:
            entry = flowset.flows.get(flow)
            if entry is None:
                known = ", ".join(sorted(flowset.flows)) or "none"
                raise FlowRuntimeError(f"no flow named {flow!r} (flows: {known})")
        else:
            try:
                entry = flowset.flow_for(called)
            except Exception as exc:  # the loader's own error type says why
                raise FlowRuntimeError(f"no flow for number {called!r}: {exc}") from exc
            if entry is None:
                raise FlowRuntimeError(f"no flow for number {called!r}")
        self.entry = entry.flow
        self.caller = caller
        self.caller_name = caller_name
        self.called = called
        self.call_id = call_id
        self.now = now
        self.language = language or entry.language
        self.limits = limits or Limits()
        self.exprs = expressions or CompiledExpressions.of(flowset)
        self.variables: dict[str, Any] = {}
        self.path: list[Visit] = []
        self.digits: str | None = None
        self.attempt = 0
        self.ended: Hangup | None = None
        self.error: str | None = None
        self._state = _State(entry, node or entry.start)
        self._typeahead: list[str] = []
        self._silent = 0
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._pending: Action | None = None
        self._gen: Step = self._main()
        self._started = False
        self._enter_flow(entry)

    # ------------------------------------------------------------ stepping
    @property
    def finished(self) -> bool:
        """Whether the run returned its terminal :class:`Hangup`."""
        return self.ended is not None

    @property
    def flow(self) -> str:
        """The flow the run is in."""
        return self._state.flow.flow

    @property
    def pending(self) -> Action | None:
        """The action waiting for its result."""
        return self._pending

    def start(self, now: datetime | None = None) -> Action:
        """Run up to the first action (``now`` defaults to the constructor's)."""
        if self._started:
            raise RuntimeError("FlowRun.start() called twice")
        self._started = True
        if now is not None:
            self.now = now
        return self._step(None)

    def resume(self, result: Result, now: datetime) -> Action:
        """Hand in the result of the pending action; the next action comes back."""
        if not self._started or self._pending is None:
            raise RuntimeError("FlowRun.resume() without a pending action")
        expected = RESULT_OF[type(self._pending)]
        if not isinstance(result, expected):
            raise TypeError(
                f"{type(self._pending).__name__} is resumed with a {expected.__name__},"
                f" not {type(result).__name__}"
            )
        self.now = now
        return self._step(result)

    def caller_hung_up(self, now: datetime, *, by_engine: bool = False) -> Hangup:
        """The call ended while an action was under way: end the run.

        ``by_engine``: our side ended it (engine shutdown), not the caller.
        """
        self.now = now
        if self.ended is None:
            pending = self._pending
            if by_engine:
                self.ended = Hangup("shutdown", self._where())
            elif isinstance(pending, Enqueue):
                self.ended = Hangup("abandoned", pending.queue)
            elif isinstance(pending, RecordVoicemail):  # hanging up ends a message
                self.ended = Hangup("voicemail", pending.mailbox)
            else:
                self.ended = Hangup("caller_hangup", self._where())
            self._pending = None
            self._gen.close()
        return self.ended

    def _step(self, result: Result | None) -> Action:
        if self.ended is not None:
            return self.ended
        try:
            action = self._gen.send(result)  # type: ignore[arg-type]
        except StopIteration as stop:
            action = stop.value
        except FlowRuntimeError as exc:
            self.error = str(exc)
            action = Hangup("error", str(exc))
        if isinstance(action, Hangup):
            self.ended = action
            self._pending = None
        else:
            self._pending = action
        return action

    # ------------------------------------------------------------ helpers
    def scope(self) -> dict[str, Any]:
        """The variables expressions see (built-ins win over stored names)."""
        scope = dict(RUN_DEFAULTS)
        scope.update(self.variables)
        scope.update(
            caller=self.caller,
            caller_name=self.caller_name,
            called=self.called,
            call_id=self.call_id,
            now=self.now,
            language=self.language,
            flow=self._state.flow.flow,
            node=self._state.node,
            digits=self.digits,
            attempt=self.attempt,
        )
        return scope

    def labels(self) -> list[str]:
        """The path as node ids (``flow:node`` outside the entry flow)."""
        return [v.label(self.entry) for v in self.path]

    def _where(self) -> str:
        return f"{self._state.flow.flow}:{self._state.node}"

    def _fail(self, what: str) -> FlowRuntimeError:
        state = self._state
        return FlowRuntimeError(f"flow {state.flow.flow!r}, node {state.node!r}: {what}")

    def _eval(self, kind: str, src: str, extra: Mapping[str, Any] | None = None) -> Any:
        scope = self.scope()
        if extra:
            scope.update(extra)
        try:
            return self.exprs.get(kind, src)(scope)
        except FlowRuntimeError:
            raise
        except Exception as exc:  # admin-written code: report it, never crash the engine
            raise self._fail(f"{kind} {src!r} failed: {exc}") from exc

    def _render(self, text: str) -> str:
        return str(self._eval("template", text))

    def _text(self, text: str) -> str:
        return self._render(text).strip() if is_template(text) else text

    def _assign(self, name: str, value: Any) -> None:
        if name == "language":
            if not isinstance(value, str) or not value:
                raise self._fail(f"language must be a language code, got {value!r}")
            self.language = value
        elif name in BUILTINS:
            raise self._fail(f"{name!r} is a built-in variable and cannot be set")
        else:
            self.variables[name] = value

    def _enter_flow(self, flow: Flow) -> None:
        for name, value in flow.variables.items():
            if name not in self.variables and name not in BUILTINS:
                self.variables[name] = value

    def _prompt(self, spec: Any, voice: str | None = None) -> tuple[PromptItem, ...]:
        return resolve_prompt(
            spec, language=self.language, flow=self._state.flow, voice=voice, render=self._render
        )

    def _ask(self, action: Action) -> Step:
        self._silent = 0
        result = yield action
        return result

    def _play_parts(self, parts: tuple[PromptItem, ...], barge_in: bool) -> Step:
        """Play; returns the barge-in digit (None without barge-in or key)."""
        if not parts:
            return None
        result: PlayResult = yield from self._ask(Play(parts, barge_in))
        return result.digit if barge_in else None

    def _one_digit(self, parts: tuple[PromptItem, ...], barge_in: bool, timeout: float) -> Step:
        """A prompt and one digit (type-ahead first, then barge-in, then waiting)."""
        if self._typeahead:
            return self._typeahead.pop(0)
        digit = yield from self._play_parts(parts, barge_in)
        if digit is None:
            got: DigitsResult = yield from self._ask(CollectDigits(1, timeout, timeout, None))
            digit = got.digits[:1] or None
        return digit

    # --------------------------------------------------------------- main
    def _main(self) -> Step:
        state = self._state
        while True:
            flow = state.flow
            node = flow.nodes.get(state.node)
            if node is None:
                raise FlowRuntimeError(
                    f"flow {flow.flow!r} has no node {state.node!r}: fix the target that leads"
                    f" here (after {self.labels()[-1:] or ['the start']})"
                )
            if len(self.path) >= self.limits.max_steps:
                raise self._fail(
                    f"{self.limits.max_steps} nodes visited in one call; stopping "
                    f"(last: {' -> '.join(self.labels()[-6:])}). Is there a loop?"
                )
            if self._silent >= self.limits.max_silent_steps:
                raise self._fail(
                    f"{self.limits.max_silent_steps} nodes in a row without waiting on the caller;"
                    f" stopping (last: {' -> '.join(self.labels()[-6:])}). A goto/if loop?"
                )
            self._silent += 1
            self.attempt = 0
            self.path.append(Visit(flow.flow, state.node, node.type, self.now))
            nxt: Next = yield from HANDLERS[node.type](self, node)
            if nxt is RETURN or nxt is None:
                if not state.stack:
                    return Hangup("hangup")
                frame = state.stack.pop()
                state.flow = frame.flow
                nxt = frame.next
            if isinstance(nxt, Hangup):
                return nxt
            self._go(nxt)

    def _push_frame(self, next_target: str) -> None:
        """Enter a subflow: remember where to continue on its return."""
        state = self._state
        if len(state.stack) >= self.limits.max_depth:
            raise self._fail(f"subflows nested more than {self.limits.max_depth} deep")
        state.stack.append(_Frame(state.flow, next_target))

    def _go(self, target: str) -> None:
        state = self._state
        flow_name, node_id = split_target(target)
        if flow_name is not None and flow_name != state.flow.flow:
            flow = self.flowset.flows.get(flow_name)
            if flow is None:
                raise self._fail(f"target {target!r}: there is no flow {flow_name!r}")
            state.flow = flow
            self._enter_flow(flow)
        state.node = node_id or state.flow.start
