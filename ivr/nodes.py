"""The node handlers of :class:`~ivr.runtime.FlowRun`, one per node type.

Each handler is a generator: it yields actions (through ``run._ask``) and
returns where the run goes next: a target (``node``, ``flow:``,
``flow:node``), :data:`RETURN`, a terminal :class:`~ivr.actions.Hangup`, or
None when the node has no ``next`` (the end of this flow). The semantics of
every node are described in :mod:`ivr.runtime`; :data:`HANDLERS` maps each
node type to its handler.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr.actions import (
    CallbackOption,
    CollectDigits,
    DigitsResult,
    Enqueue,
    Hangup,
    Lookup,
    LookupResult,
    PlayFile,
    QueueResult,
    RecordingResult,
    RecordVoicemail,
    SetRecording,
    Tone,
    Transfer,
    TransferResult,
    VoicemailResult,
)
from ivr.expressions import is_template
from ivr.model import (
    GatherNode,
    GotoNode,
    HangupNode,
    HoursNode,
    IfNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    PlayNode,
    QueueNode,
    RecordingNode,
    ReturnNode,
    SayNode,
    SetNode,
    SubflowNode,
    SwitchNode,
    TransferNode,
    VoicemailNode,
)
from ivr.prompts import say_item

if TYPE_CHECKING:
    from ivr.runtime import FlowRun, Step

__all__ = ["HANDLERS", "RETURN", "Next"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RETURN = Hangup("return")
"""Returned by a ``return`` node (compared by identity)."""
Next = str | Hangup | None
"""Where a handler sends the run: a target, the end of the run, or None (fell off)."""


def node_say(run: FlowRun, node: SayNode) -> Step:
    item = say_item(
        node.text,
        language=run.language,
        flow=run._state.flow,
        voice=node.voice,
        render=run._render,
    )
    digit = yield from run._play_parts((item,) if item.text else (), node.barge_in)
    if digit is not None:
        run._typeahead.append(digit)
    return node.next


def node_play(run: FlowRun, node: PlayNode) -> Step:
    files = [node.audio] if isinstance(node.audio, str) else list(node.audio)
    parts = tuple(PlayFile(run._text(f)) for f in files)
    digit = yield from run._play_parts(parts, node.barge_in)
    if digit is not None:
        run._typeahead.append(digit)
    return node.next


def node_menu(run: FlowRun, node: MenuNode) -> Step:
    tries = 0
    lead: Any = None
    while True:
        run.attempt = tries + 1
        parts = run._prompt(lead) + run._prompt(node.prompt)
        digit = yield from run._one_digit(parts, node.barge_in, node.timeout)
        lead = None
        if digit is not None and digit in node.options:
            run.digits = digit
            return node.options[digit]
        if digit is not None and digit == node.repeat:
            continue
        failure = "no_input" if digit is None else "invalid"
        tries += 1
        if tries > node.retries:
            return _exhausted(run, node.no_input, node.invalid, failure)
        lead = node.no_input_prompt if failure == "no_input" else node.invalid_prompt


def _exhausted(run: FlowRun, no_input: str | None, invalid: str | None, failure: str) -> Next:
    first, second = (no_input, invalid) if failure == "no_input" else (invalid, no_input)
    target = first or second
    if target is None:
        return Hangup("hangup", f"{run._where()}: {failure}, tries exhausted")
    return target


def node_gather(run: FlowRun, node: GatherNode) -> Step:
    tries = 0
    lead: Any = None
    term = node.terminator
    while True:
        run.attempt = tries + 1
        typed = "".join(run._typeahead)
        run._typeahead.clear()
        if not typed:
            parts = run._prompt(lead) + run._prompt(node.prompt)
            typed = (yield from run._play_parts(parts, node.barge_in)) or ""
        lead = None
        done = False
        if term is not None and term in typed:
            typed, done = typed[: typed.index(term)], True
        if len(typed) >= node.max_length:
            typed, done = typed[: node.max_length], True
        if not done:
            first = node.inter_digit_timeout if typed else node.timeout
            want = CollectDigits(
                node.max_length - len(typed), first, node.inter_digit_timeout, term
            )
            got: DigitsResult = yield from run._ask(want)
            typed += got.digits
        failure = None
        if not typed:
            failure = "no_input"
        elif len(typed) < node.min_length or not _matches(run, node.pattern, typed):
            failure = "invalid"
        else:
            run.digits = typed
            run._assign(node.variable, typed)
            return node.next
        tries += 1
        if tries > node.retries:
            return _exhausted(run, node.no_input, node.invalid, failure)
        lead = node.no_input_prompt if failure == "no_input" else node.invalid_prompt


def _matches(run: FlowRun, pattern: str | None, typed: str) -> bool:
    if pattern is None:
        return True
    compiled = run._patterns.get(pattern)
    if compiled is None:
        compiled = run._patterns[pattern] = re.compile(pattern)
    return compiled.fullmatch(typed) is not None


def node_set(run: FlowRun, node: SetNode) -> Step:
    for name, value in node.values.items():
        run._assign(name, run._eval("value", value) if isinstance(value, str) else value)
    return node.next
    yield  # a generator like every handler


def node_switch(run: FlowRun, node: SwitchNode) -> Step:
    for case in node.cases:
        if run._eval("condition", case.when):
            return case.goto
    return node.default
    yield


def node_if(run: FlowRun, node: IfNode) -> Step:
    return node.then if run._eval("condition", node.condition) else node.else_
    yield


def node_hours(run: FlowRun, node: HoursNode) -> Step:
    try:
        zone = ZoneInfo(node.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise run._fail(f"unknown time zone {node.timezone!r} (use e.g. Asia/Tokyo)") from None
    local = run.now.astimezone(zone)
    if local.date().isoformat() in node.holidays:
        return node.holiday or node.closed
    second = local.hour * 3600 + local.minute * 60 + local.second
    for span in node.schedule.get(DAYS[local.weekday()], []):  # type: ignore[call-overload]
        start, end = (int(t[:2]) * 3600 + int(t[3:5]) * 60 for t in span.split("-"))
        if start <= second < end:
            return node.open
    return node.closed
    yield


def node_lookup(run: FlowRun, node: LookupNode) -> Step:
    key = run._eval("value", node.key)
    key = "" if key is None else str(key)
    url = node.url
    if url is not None and is_template(url):
        url = str(run._eval("template", url, {"key": key})).strip()
    got: LookupResult = yield from run._ask(Lookup(node.source, key, url, node.timeout))
    if got.error is not None:
        run._assign(node.variable, None)
        run.variables["lookup_error"] = got.error
        return node.error or node.not_found
    run.variables["lookup_error"] = None
    if got.record is None:
        run._assign(node.variable, None)
        return node.not_found
    run._assign(node.variable, dict(got.record))
    return node.found


CALLBACK_OFFER = (
    "To be called back when it is your turn, without losing your place in line, press {digit}."
)
CALLBACK_CONFIRM = "Thank you. We will call you back when it is your turn. Goodbye."


def _callback_option(run: FlowRun, node: QueueNode) -> CallbackOption | None:
    """The queue node's callback offer with its texts rendered for this caller."""
    cb = node.callback
    if cb is None:
        return None
    flow = run._state.flow
    number = run._eval("value", cb.number)
    if number is None or not str(number).strip():
        return None  # nobody to call back (anonymous caller): no offer
    offer = say_item(
        cb.offer or CALLBACK_OFFER.format(digit=cb.digit),
        language=run.language,
        flow=flow,
        voice=None,
        render=run._render,
    )
    confirm = say_item(
        cb.confirm or CALLBACK_CONFIRM,
        language=run.language,
        flow=flow,
        voice=None,
        render=run._render,
    )
    return CallbackOption(
        digit=cb.digit,
        after=cb.after,
        every=cb.every,
        number=str(number).strip(),
        offer=offer.text,
        confirm=confirm.text,
        language=offer.language,
    )


def node_queue(run: FlowRun, node: QueueNode) -> Step:
    run.variables["queue"] = node.queue
    want = Enqueue(
        node.queue, dict(node.skills), node.priority, node.max_wait, _callback_option(run, node)
    )
    got: QueueResult = yield from run._ask(want)
    run.variables["queue_outcome"] = got.outcome
    if got.outcome == "answered":
        return node.next or Hangup("queue", node.queue)
    if got.outcome == "abandoned":
        return Hangup("abandoned", node.queue)
    if got.outcome == "callback":
        return (node.callback.next if node.callback else None) or Hangup("callback", node.queue)
    return node.overflow or Hangup(got.outcome, node.queue)


def node_transfer(run: FlowRun, node: TransferNode) -> Step:
    to = run._text(node.to)
    got: TransferResult = yield from run._ask(Transfer(to))
    run.variables["transfer_ok"] = got.ok
    if got.ok:
        return Hangup("transfer", to)
    return node.failed or Hangup("hangup", f"transfer to {to} failed")


def node_voicemail(run: FlowRun, node: VoicemailNode) -> Step:
    parts = (*run._prompt(node.prompt), Tone("beep"))
    yield from run._play_parts(parts, False)
    mailbox = run._text(node.mailbox)
    want = RecordVoicemail(mailbox, node.max_length, node.finish_digit)
    got: VoicemailResult = yield from run._ask(want)
    run.variables["voicemail"] = {
        "mailbox": mailbox,
        "path": got.path,
        "seconds": got.seconds,
    }
    return node.next or Hangup("voicemail", mailbox)


def node_recording(run: FlowRun, node: RecordingNode) -> Step:
    paused = node.action == "pause"
    got: RecordingResult = yield from run._ask(SetRecording(paused, node.reason))
    if got.ok:
        run.variables["recording_paused"] = paused
    return node.next


def node_hangup(run: FlowRun, node: HangupNode) -> Step:
    yield from run._play_parts(run._prompt(node.prompt), False)
    return Hangup("hangup")


def node_goto(run: FlowRun, node: GotoNode) -> Step:
    return node.target
    yield


def node_subflow(run: FlowRun, node: SubflowNode) -> Step:
    if node.flow not in run.flowset.flows:
        raise run._fail(f"subflow {node.flow!r} does not exist")
    run._push_frame(node.next)
    return f"{node.flow}:{node.node or ''}"
    yield


def node_return(run: FlowRun, node: ReturnNode) -> Step:
    return RETURN
    yield


def node_language(run: FlowRun, node: LanguageNode) -> Step:
    digit = yield from run._one_digit(run._prompt(node.prompt), True, node.timeout)
    if digit is not None and digit in node.options:
        run.language = node.options[digit]
    else:
        run.language = node.default or run._state.flow.language
    run.digits = digit
    return node.next


HANDLERS: dict[str, Callable[[FlowRun, Any], Step]] = {
    "say": node_say,
    "play": node_play,
    "menu": node_menu,
    "gather": node_gather,
    "set": node_set,
    "switch": node_switch,
    "if": node_if,
    "hours": node_hours,
    "lookup": node_lookup,
    "queue": node_queue,
    "transfer": node_transfer,
    "voicemail": node_voicemail,
    "recording": node_recording,
    "hangup": node_hangup,
    "goto": node_goto,
    "subflow": node_subflow,
    "return": node_return,
    "language": node_language,
}
"""Node type -> its handler: a generator yielding actions, returning where to go."""
