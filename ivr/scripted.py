"""A scripted caller: runs a :class:`~ivr.runtime.FlowRun` without a phone.

``ivr simulate`` and the flow tests (:mod:`ivr.flowtests`) drive the same
runtime the engine drives, answering each action from a script and stubs:

* digits: one token per input the flow waits for: ``"1"``, ``"1234#"``
  (a whole gather entry), ``"t"`` or ``""`` (wait out the timeout), ``"h"``
  (hang up here), ``"!2"`` (press 2 *during* the next prompt: barge-in; on a
  prompt without barge-in the key is ignored, as on a real call).
  A token longer than the input wanted, or going past the terminator,
  leaves the rest typed ahead for the next input.
* lookups, queues, transfers: :class:`Stubs` (per node id, or one default).

Time is virtual: it starts at ``at`` and advances by what the caller would
wait (timeouts, roughly the length of prompts, a second per digit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ivr.actions import (
    Action,
    CollectDigits,
    DigitsResult,
    Enqueue,
    Hangup,
    Lookup,
    LookupResult,
    Play,
    PlayFile,
    PlayResult,
    PromptItem,
    QueueResult,
    RecordingResult,
    RecordVoicemail,
    Result,
    SayText,
    SetRecording,
    Silence,
    Tone,
    Transfer,
    TransferResult,
    VoicemailResult,
)
from ivr.runtime import CompiledExpressions, FlowRun, FlowSetLike

__all__ = [
    "CallerHangsUp",
    "Event",
    "ScriptResult",
    "ScriptedCaller",
    "Stubs",
    "heard_text",
    "parse_digits",
    "run_script",
]

QueueOutcome = Literal["answered", "overflow", "no_agents", "abandoned", "callback"]
LookupStub = Mapping[str, Any] | Literal["error"] | None


def parse_digits(text: str) -> list[str]:
    """``"1,2,#"`` -> ``["1", "2", "#"]``; an empty item is a timeout."""
    return [] if text == "" else [t.strip() for t in text.split(",")]


def heard_text(item: PromptItem) -> str | None:
    """What the caller hears of one part: the text, the file name, ``<beep>``."""
    if isinstance(item, SayText):
        return item.text
    if isinstance(item, PlayFile):
        return item.ref
    if isinstance(item, Tone):
        return f"<{item.name}>"
    return None


class CallerHangsUp(Exception):
    """The script hangs up (token ``h``, or nothing left to answer with)."""


@dataclass
class Stubs:
    """Answers for the outside world, by node id (``node`` or ``flow:node``)."""

    lookup: LookupStub = None
    lookups: Mapping[str, LookupStub] = field(default_factory=dict)
    queue: QueueOutcome = "no_agents"
    queues: Mapping[str, QueueOutcome] = field(default_factory=dict)
    transfer: bool = True
    voicemail_seconds: float = 10.0


@dataclass(frozen=True)
class Event:
    """One action of the run as the caller lived it (for printing and checks)."""

    node: str
    kind: str
    detail: str


class ScriptedCaller:
    """Answers digit actions from tokens, then from ``ask`` (interactive), else hangs up."""

    def __init__(
        self, tokens: Sequence[str], ask: Callable[[CollectDigits], str | None] | None = None
    ) -> None:
        self.tokens = list(tokens)
        self.ask = ask

    def _next(self, want: CollectDigits | None) -> str:
        if self.tokens:
            return self.tokens.pop(0)
        if self.ask is not None and want is not None:
            answer = self.ask(want)
            if answer is not None:
                return answer
        raise CallerHangsUp("the digit script ran out")

    def during_prompt(self, play: Play) -> tuple[str | None, str | None]:
        """(barge-in digit, ignored digit) for a prompt being played."""
        if not self.tokens or not self.tokens[0].startswith("!"):
            return None, None
        token = self.tokens.pop(0)[1:]
        digit, rest = token[:1], token[1:]
        if rest:
            self.tokens.insert(0, rest)
        return (digit, None) if play.barge_in else (None, digit)

    def collect(self, want: CollectDigits) -> DigitsResult:
        """Digits for one input, following the rules in the module docstring."""
        token = self._next(want).lstrip("!")
        if token == "h":
            raise CallerHangsUp("the script hangs up")
        if token in ("", "t"):
            return DigitsResult("", timed_out=True)
        bad = [c for c in token if c not in "0123456789*#"]
        if bad:
            raise ValueError(f"digit token {token!r}: {bad[0]!r} is not 0-9, * or #")
        term = want.terminator
        if term is not None and term in token[: want.max_digits + 1]:
            cut = token.index(term)
            rest = token[cut + 1 :]
            if rest:
                self.tokens.insert(0, rest)
            return DigitsResult(token[:cut], timed_out=False)
        if len(token) >= want.max_digits:
            rest = token[want.max_digits :]
            if rest:
                self.tokens.insert(0, rest)
            return DigitsResult(token[: want.max_digits], timed_out=False)
        return DigitsResult(token, timed_out=True)


@dataclass
class ScriptResult:
    """A finished scripted run."""

    run: FlowRun
    events: list[Event]
    ended: Hangup

    @property
    def heard(self) -> list[str]:
        """Everything played, in order: texts, file names, ``<beep>``."""
        return [e.detail for e in self.events if e.kind == "heard"]

    @property
    def path(self) -> list[str]:
        """Node ids visited (``flow:node`` outside the entry flow)."""
        return self.run.labels()


def _seconds(parts: Sequence[PromptItem]) -> float:
    total = 0.0
    for item in parts:
        if isinstance(item, SayText):
            total += len(item.text) / 15.0  # ~15 characters a second
        elif isinstance(item, Silence):
            total += item.ms / 1000
        else:
            total += 1.0
    return total


def run_script(
    flowset: FlowSetLike,
    *,
    caller: str,
    called: str,
    at: datetime,
    caller_name: str = "",
    digits: Sequence[str] = (),
    stubs: Stubs | None = None,
    flow: str | None = None,
    language: str | None = None,
    call_id: str = "simulated",
    ask: Callable[[CollectDigits], str | None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    expressions: CompiledExpressions | None = None,
) -> ScriptResult:
    """Run a flow to its end against the script and stubs.

    Raises :class:`~ivr.runtime.FlowRuntimeError` when there is no such flow
    or route, ValueError for a malformed digit token.
    """
    stubs = stubs or Stubs()
    script = ScriptedCaller(digits, ask)
    now = at
    run = FlowRun(
        flowset,
        caller=caller,
        caller_name=caller_name,
        called=called,
        call_id=call_id,
        now=now,
        flow=flow,
        language=language,
        expressions=expressions,
    )
    events: list[Event] = []

    def note(kind: str, detail: str) -> None:
        label = run.path[-1].label(run.entry) if run.path else "-"
        event = Event(label, kind, detail)
        events.append(event)
        if on_event is not None:
            on_event(event)

    action: Action = run.start()
    while not isinstance(action, Hangup):
        node = run.path[-1].label(run.entry)
        try:
            result, waited = _answer(action, node, script, stubs, note)
        except CallerHangsUp as exc:
            note("hangup", f"caller hangs up ({exc})")
            action = run.caller_hung_up(now)
            break
        now += timedelta(seconds=waited)
        action = run.resume(result, now)
    if action.reason == "error":
        note("error", action.detail or "")
    note("end", f"{action.reason}" + (f" {action.detail}" if action.detail else ""))
    return ScriptResult(run, events, action)


def _answer(
    action: Action,
    node: str,
    script: ScriptedCaller,
    stubs: Stubs,
    note: Callable[[str, str], None],
) -> tuple[Result, float]:
    if isinstance(action, Play):
        for item in action.parts:
            text = heard_text(item)
            if text is not None:
                note("heard", text)
        digit, ignored = script.during_prompt(action)
        if ignored is not None:
            note("ignored", f"{ignored} pressed during a prompt without barge-in")
        if digit is not None:
            note("digit", f"{digit} (barge-in)")
            return PlayResult(digit), _seconds(action.parts) / 2
        return PlayResult(None), _seconds(action.parts)
    if isinstance(action, CollectDigits):
        got = script.collect(action)
        waited = len(got.digits) * 1.0
        if got.timed_out:
            waited += action.first_timeout if not got.digits else action.inter_digit_timeout
        note("digits", got.digits or "(timeout)")
        return got, waited
    if isinstance(action, Lookup):
        stub = stubs.lookups.get(node, stubs.lookup)
        where = action.url or action.key
        if stub == "error":
            note("lookup", f"{action.source} {where}: error (stub)")
            return LookupResult(None, "stubbed error"), action.timeout
        note("lookup", f"{action.source} {where}: {'found' if stub else 'not found'}")
        return LookupResult(dict(stub) if isinstance(stub, Mapping) else None), 0.1
    if isinstance(action, Enqueue):
        outcome = stubs.queues.get(node, stubs.queue)
        note("queue", f"{action.queue}: {outcome}")
        return QueueResult(outcome), 30.0
    if isinstance(action, Transfer):
        note("transfer", f"{action.to}: {'accepted' if stubs.transfer else 'refused'}")
        return TransferResult(stubs.transfer, 202 if stubs.transfer else 603), 1.0
    if isinstance(action, RecordVoicemail):
        seconds = min(stubs.voicemail_seconds, action.max_length)
        note("voicemail", f"{action.mailbox}: {seconds:g} s recorded")
        return VoicemailResult(f"voicemail/{action.mailbox}/simulated.wav", seconds), seconds
    if isinstance(action, SetRecording):
        what = "paused" if action.paused else "resumed"
        note("recording", f"{what} ({action.reason})" if action.paused else what)
        return RecordingResult(True), 0.0
    raise TypeError(f"unknown action {action!r}")
