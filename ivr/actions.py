"""What a running flow asks of the call, and what the call answers.

The flow runtime (:mod:`ivr.runtime`) does no I/O: it returns one *action*
at a time and is resumed with that action's *result*. Whoever drives it (the
engine's :mod:`engine.flowapp`, ``ivr simulate``, the flow tests) executes
the action its own way. Every action and result is a frozen dataclass::

    Play(parts, barge_in)                         -> PlayResult(digit | None)
    CollectDigits(max_digits, first_timeout,
                  inter_digit_timeout, terminator) -> DigitsResult(digits, timed_out)
    Lookup(source, key, url, timeout)             -> LookupResult(record | None, error | None)
    Enqueue(queue, skills, priority, max_wait)    -> QueueResult(outcome)
    Transfer(to)                                  -> TransferResult(ok)
    RecordVoicemail(mailbox, max_length,
                    finish_digit)                 -> VoicemailResult(path | None, seconds)
    SetRecording(paused, reason)                  -> RecordingResult(ok, detail)
    Hangup(reason, detail)                        (terminal: the run is over)

Prompt parts arrive resolved: :class:`SayText` (text already rendered in the
caller's language), :class:`PlayFile` (a file relative to the flows folder,
or ``sound:NAME``), :class:`Silence`, :class:`Tone`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "END_REASONS",
    "QUEUE_OUTCOMES",
    "RESULT_OF",
    "Action",
    "CallbackOption",
    "CollectDigits",
    "DigitsResult",
    "Enqueue",
    "Hangup",
    "Lookup",
    "LookupResult",
    "Play",
    "PlayFile",
    "PlayResult",
    "PromptItem",
    "QueueResult",
    "RecordVoicemail",
    "RecordingResult",
    "Result",
    "SayText",
    "SetRecording",
    "Silence",
    "Tone",
    "Transfer",
    "TransferResult",
    "VoicemailResult",
    "describe",
]


# ------------------------------------------------------------- prompt parts
@dataclass(frozen=True)
class SayText:
    """Text to speak (already rendered), in ``language``, with ``voice`` (None: default)."""

    text: str
    language: str
    voice: str | None = None


@dataclass(frozen=True)
class PlayFile:
    """An audio file: a path relative to the flows folder, or ``sound:NAME``."""

    ref: str


@dataclass(frozen=True)
class Silence:
    """``ms`` milliseconds of silence."""

    ms: int


@dataclass(frozen=True)
class Tone:
    """A named tone; only ``beep`` (1 kHz, 250 ms) exists."""

    name: Literal["beep"] = "beep"


PromptItem = SayText | PlayFile | Silence | Tone


# ------------------------------------------------------------------ actions
@dataclass(frozen=True)
class Play:
    """Play ``parts`` in order. With ``barge_in`` a key press stops the prompt
    and is returned (it counts as the caller's input); without it, keys
    pressed during the prompt are discarded."""

    parts: tuple[PromptItem, ...]
    barge_in: bool = False


@dataclass(frozen=True)
class CollectDigits:
    """Wait up to ``first_timeout`` s for a first digit, then up to
    ``inter_digit_timeout`` s for each next one; stop after ``max_digits``
    digits or at ``terminator`` (which is not part of the result)."""

    max_digits: int
    first_timeout: float
    inter_digit_timeout: float
    terminator: str | None = None


@dataclass(frozen=True)
class Lookup:
    """Read a customer record: ``source`` ``history`` (the customer directory,
    by ``key``) or ``http`` (GET ``url``, a JSON object; 404 = not found)."""

    source: Literal["history", "http"]
    key: str
    url: str | None
    timeout: float


@dataclass(frozen=True)
class CallbackOption:
    """While waiting, the caller is offered a callback: ``offer`` is said after
    ``after`` seconds (again every ``every`` seconds when set); pressing
    ``digit`` asks to be called back at ``number`` (keeping their place),
    ``confirm`` is said and the queue ends with ``QueueResult("callback")``.
    Texts are already rendered, in ``language``."""

    digit: str
    after: float
    every: float | None
    number: str
    offer: str
    confirm: str
    language: str = "en"


@dataclass(frozen=True)
class Enqueue:
    """Hand the caller to the ACD queue ``queue``; returns once an agent leg
    ended (``answered``), the caller asked for a callback (``callback``) or
    was not served."""

    queue: str
    skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    max_wait: float | None = None
    callback: CallbackOption | None = None


@dataclass(frozen=True)
class Transfer:
    """Blind transfer (SIP REFER) to ``to`` (a SIP URI or an extension)."""

    to: str


@dataclass(frozen=True)
class RecordVoicemail:
    """Record the caller into ``mailbox`` (the beep was already played) until
    ``max_length`` seconds, ``finish_digit`` or hang-up."""

    mailbox: str
    max_length: float
    finish_digit: str | None = "#"


@dataclass(frozen=True)
class SetRecording:
    """Pause (``paused``) or resume the call's recording: a PCI DSS secure pause."""

    paused: bool
    reason: str = "pci"


END_REASONS = (
    "hangup",
    "queue",
    "transfer",
    "voicemail",
    "overflow",
    "no_agents",
    "abandoned",
    "callback",
    "caller_hangup",
    "shutdown",
    "error",
)
"""Why a run ended (``Hangup.reason``): a hangup node or the end of the flow,
after an agent leg (``queue``), transferred, after a voicemail, a queue that
could not serve with no overflow branch (``overflow``/``no_agents``), the
caller left the queue (``abandoned``) or asked to be called back
(``callback``) or hung up elsewhere, the engine ended the call
(``shutdown``), or a flow error."""


@dataclass(frozen=True)
class Hangup:
    """The run is over: hang the call up. ``reason`` is one of
    :data:`END_REASONS`; ``detail`` names the queue, transfer target,
    mailbox or error."""

    reason: str = "hangup"
    detail: str | None = None


Action = (
    Play | CollectDigits | Lookup | Enqueue | Transfer | RecordVoicemail | SetRecording | Hangup
)


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class PlayResult:
    """The digit that interrupted the prompt (barge-in), else None."""

    digit: str | None = None


@dataclass(frozen=True)
class DigitsResult:
    """Digits typed (terminator excluded); ``timed_out`` when a timeout ended
    the collection rather than the terminator or ``max_digits``."""

    digits: str = ""
    timed_out: bool = False


@dataclass(frozen=True)
class LookupResult:
    """The record found (None: not found), or the error that prevented the lookup."""

    record: Mapping[str, Any] | None = None
    error: str | None = None


QUEUE_OUTCOMES = ("answered", "overflow", "no_agents", "abandoned", "callback")


@dataclass(frozen=True)
class QueueResult:
    """How the queue ended for the caller: ``answered`` (an agent leg took
    place and ended), ``overflow`` (``max_wait`` passed), ``no_agents`` (no
    agent can serve), ``abandoned`` (the caller hung up while waiting),
    ``callback`` (the caller asked to be called back and heard the
    confirmation; the ACD keeps their place)."""

    outcome: Literal["answered", "overflow", "no_agents", "abandoned", "callback"]
    agent: str | None = None
    waited: float = 0.0


@dataclass(frozen=True)
class TransferResult:
    """Whether the far end accepted the transfer; ``status`` is the SIP status seen."""

    ok: bool
    status: int | None = None


@dataclass(frozen=True)
class VoicemailResult:
    """Where the message was stored (None if nothing was recorded) and its length."""

    path: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class RecordingResult:
    """Whether the recording is now as asked; ``detail`` says why not (no recorder,
    already paused ...)."""

    ok: bool
    detail: str | None = None


Result = (
    PlayResult
    | DigitsResult
    | LookupResult
    | QueueResult
    | TransferResult
    | VoicemailResult
    | RecordingResult
)

RESULT_OF: dict[type, type] = {
    Play: PlayResult,
    CollectDigits: DigitsResult,
    Lookup: LookupResult,
    Enqueue: QueueResult,
    Transfer: TransferResult,
    RecordVoicemail: VoicemailResult,
    SetRecording: RecordingResult,
}
"""The result type each (non-terminal) action is resumed with."""


def describe(item: PromptItem) -> str:
    """One prompt part as a short human text (simulator, logs, flow tests)."""
    if isinstance(item, SayText):
        return f"say[{item.language}]: {item.text}"
    if isinstance(item, PlayFile):
        return f"play: {item.ref}"
    if isinstance(item, Silence):
        return f"silence: {item.ms} ms"
    return f"tone: {item.name}"
