"""The flow language: the typed model behind flows/*.yaml.

A flow file is one :class:`Flow`; a folder of flows plus ``routes.yaml``
(dialed number -> flow) is one :class:`FlowSet`.  The JSON Schema that
editors use (``flows/schema.json``) is generated from these models by
:func:`flow_json_schema`, so the schema and the runtime never disagree.

Targets
    A node's ``next``/branch fields name a target: ``node`` (a node of the
    same flow), ``flow:node`` or ``flow:`` (another flow, at its start).

Prompts
    Wherever a node speaks, a :data:`PromptSpec` is accepted: a plain string
    (text to say, a Jinja template), or a list of parts, each one of
    ``{say: TEXT}``, ``{play: FILE | sound:NAME}``, ``{silence: MS}``,
    ``{tone: beep}``.  Text may be per language: ``{say: {en: Hi, es: Hola}}``.

Expressions
    Conditions (``when``, ``if``) and values (``set``) are sandboxed Jinja
    expressions (see :mod:`ivr.expressions`); text is a sandboxed Jinja
    template.  Nothing an admin writes is passed to ``eval``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DIGITS",
    "NODE_TYPES",
    "Flow",
    "GatherNode",
    "GotoNode",
    "HangupNode",
    "HoursNode",
    "IfNode",
    "LanguageNode",
    "LookupNode",
    "MenuNode",
    "Node",
    "PlayNode",
    "PromptPart",
    "PromptSpec",
    "QueueCallback",
    "QueueNode",
    "RecordingNode",
    "ReturnNode",
    "Route",
    "Routes",
    "SayNode",
    "SetNode",
    "SubflowNode",
    "SwitchCase",
    "SwitchNode",
    "TransferNode",
    "VoicemailNode",
    "flow_json_schema",
    "node_targets",
    "split_target",
]

DIGITS = "0123456789*#"
_ID = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
_TARGET = r"^([A-Za-z_][A-Za-z0-9_\-]*)?(:([A-Za-z_][A-Za-z0-9_\-]*)?)?$"

Target = Annotated[
    str,
    Field(
        pattern=_TARGET,
        description="A node of this flow ('node'), or another flow ('flow:' or 'flow:node').",
    ),
]
Text = Annotated[
    str | dict[str, str],
    Field(description="Text to speak (a Jinja template), or one text per language code."),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PromptPart(_Strict):
    """One part of a prompt: exactly one of say, play, silence or tone."""

    say: Text | None = None
    play: str | None = Field(
        default=None,
        description="A WAV file relative to the flows folder, or sound:NAME (Asterisk sounds).",
    )
    silence: int | None = Field(default=None, ge=0, le=60_000, description="Milliseconds.")
    tone: Literal["beep"] | None = None
    voice: str | None = Field(default=None, description="TTS voice for `say`.")

    @model_validator(mode="after")
    def _exactly_one(self) -> PromptPart:
        given = [k for k in ("say", "play", "silence", "tone") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a prompt part needs exactly one of say, play, silence, tone"
                f" (got {', '.join(given) or 'none'})"
            )
        return self


PromptSpec = Annotated[
    str | dict[str, str] | list[PromptPart],
    Field(description="Text to say, text per language, or a list of prompt parts."),
]


class _NodeBase(_Strict):
    description: str | None = None


class SayNode(_NodeBase):
    """Speak text (TTS, rendered ahead of time) then continue."""

    type: Literal["say"]
    text: Text
    voice: str | None = None
    barge_in: bool = False
    next: Target | None = None


class PlayNode(_NodeBase):
    """Play one or more audio files or ``sound:NAME`` then continue."""

    type: Literal["play"]
    audio: str | list[str]
    barge_in: bool = False
    next: Target | None = None


class MenuNode(_NodeBase):
    """Prompt, take one digit, branch on it; retries on no input or invalid."""

    type: Literal["menu"]
    prompt: PromptSpec
    options: dict[str, Target] = Field(min_length=1, description="Digit -> target.")
    timeout: float = Field(default=5.0, gt=0, le=120, description="Seconds to wait for a digit.")
    retries: int = Field(default=2, ge=0, le=10, description="Extra tries after the first.")
    no_input: Target | None = Field(default=None, description="Where to go when tries run out.")
    invalid: Target | None = Field(
        default=None, description="Where to go when tries run out on invalid digits."
    )
    no_input_prompt: PromptSpec | None = None
    invalid_prompt: PromptSpec | None = None
    repeat: str | None = Field(default=None, description="Digit that repeats the prompt.")
    barge_in: bool = True

    @field_validator("options")
    @classmethod
    def _digit_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if len(key) != 1 or key not in DIGITS:
                raise ValueError(f"menu option {key!r} is not one DTMF digit (0-9, *, #)")
        return v

    @field_validator("repeat")
    @classmethod
    def _repeat_digit(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 1 or v not in DIGITS):
            raise ValueError(f"repeat {v!r} is not one DTMF digit (0-9, *, #)")
        return v


class GatherNode(_NodeBase):
    """Collect several digits into a variable."""

    type: Literal["gather"]
    prompt: PromptSpec
    variable: str = Field(pattern=_ID)
    min_length: int = Field(default=1, ge=1, le=64)
    max_length: int = Field(default=16, ge=1, le=64)
    terminator: str | None = Field(default="#", description="Digit that ends input early.")
    timeout: float = Field(default=5.0, gt=0, le=120, description="Seconds to the first digit.")
    inter_digit_timeout: float = Field(default=3.0, gt=0, le=60)
    pattern: str | None = Field(default=None, description="Regex the input must match.")
    retries: int = Field(default=2, ge=0, le=10)
    invalid_prompt: PromptSpec | None = None
    no_input_prompt: PromptSpec | None = None
    barge_in: bool = True
    next: Target | None = None
    invalid: Target | None = None
    no_input: Target | None = None

    @model_validator(mode="after")
    def _lengths(self) -> GatherNode:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} > max_length {self.max_length}")
        if self.terminator is not None and (
            len(self.terminator) != 1 or self.terminator not in DIGITS
        ):
            raise ValueError(f"terminator {self.terminator!r} is not one DTMF digit")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {self.pattern!r} is not a regular expression: {exc}"
                ) from None
        return self


class SetNode(_NodeBase):
    """Set variables from expressions."""

    type: Literal["set"]
    values: dict[str, str | int | float | bool] = Field(
        description="Variable -> expression (strings are Jinja expressions; numbers/bools literal)."
    )
    next: Target | None = None


class SwitchCase(_Strict):
    when: str = Field(description="A Jinja expression; the first true case wins.")
    goto: Target


class SwitchNode(_NodeBase):
    """Branch on the first true condition."""

    type: Literal["switch"]
    cases: list[SwitchCase] = Field(min_length=1)
    default: Target


class IfNode(_NodeBase):
    """Branch on one condition."""

    type: Literal["if"]
    condition: str
    then: Target
    else_: Target = Field(alias="else")


class HoursNode(_NodeBase):
    """Branch on business hours and holidays in a time zone."""

    type: Literal["hours"]
    timezone: str = Field(description="IANA time zone, e.g. Asia/Tokyo.")
    schedule: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[str]] = Field(
        description="Day -> list of 'HH:MM-HH:MM' open spans."
    )
    holidays: list[str] = Field(default_factory=list, description="Dates YYYY-MM-DD (closed).")
    open: Target
    closed: Target
    holiday: Target | None = Field(default=None, description="Defaults to `closed`.")

    @field_validator("schedule")
    @classmethod
    def _spans(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, spans in v.items():
            for span in spans:
                m = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", span)
                if not m:
                    raise ValueError(f"{day}: {span!r} is not HH:MM-HH:MM")
                h1, m1, h2, m2 = (int(g) for g in m.groups())
                if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 * 60 + m2) > 24 * 60:
                    raise ValueError(f"{day}: {span!r} is not a time of day")
                if h1 * 60 + m1 >= h2 * 60 + m2:
                    raise ValueError(f"{day}: {span!r} ends before it starts")
        return v

    @field_validator("holidays")
    @classmethod
    def _dates(cls, v: list[str]) -> list[str]:
        import datetime as _dt

        for d in v:
            try:
                _dt.date.fromisoformat(d)
            except ValueError:
                raise ValueError(f"holiday {d!r} is not a date YYYY-MM-DD") from None
        return v


class LookupNode(_NodeBase):
    """Read a customer record into a variable, from the history store or HTTP JSON."""

    type: Literal["lookup"]
    source: Literal["history", "http"]
    key: str = Field(
        default="caller",
        description="Expression giving the lookup key (phone number, account, email).",
    )
    url: str | None = Field(default=None, description="For http: URL template; {{ key }} allowed.")
    timeout: float = Field(default=2.0, gt=0, le=30)
    variable: str = Field(default="customer", pattern=_ID)
    found: Target
    not_found: Target
    error: Target | None = Field(default=None, description="On timeout or failure; else not_found.")

    @model_validator(mode="after")
    def _url(self) -> LookupNode:
        if self.source == "http" and not self.url:
            raise ValueError("an http lookup needs a url")
        return self


class QueueCallback(_Strict):
    """Offer waiting callers to be called back, keeping their place in line."""

    digit: str = Field(
        default="1", pattern=r"^[0-9*#]$", description="The key that asks for the callback."
    )
    after: float = Field(
        default=30.0, ge=0, le=3600, description="Seconds of waiting before the first offer."
    )
    every: float | None = Field(
        default=None, gt=0, le=3600, description="Repeat the offer this often (else once)."
    )
    number: str = Field(
        default="caller",
        description="Expression giving the number to call back (default: the caller's number).",
    )
    offer: Text | None = Field(
        default=None,
        description="What the caller hears (default: 'To be called back ..., press 1.').",
    )
    confirm: Text | None = Field(
        default=None, description="Said once the callback is taken, before the call ends."
    )
    next: Target | None = Field(default=None, description="After the confirmation (else hang up).")


class QueueNode(_NodeBase):
    """Hand the caller to the ACD."""

    type: Literal["queue"]
    queue: str
    skills: dict[str, int] = Field(
        default_factory=dict, description="Skill -> minimum level 1-5 for this caller."
    )
    priority: int = Field(default=0, ge=0, le=100, description="Higher is served first.")
    max_wait: float | None = Field(default=None, gt=0, description="Seconds before overflow.")
    overflow: Target | None = None
    next: Target | None = Field(default=None, description="After the agent leg (else hang up).")
    callback: QueueCallback | None = Field(
        default=None,
        description="Offer a callback while waiting: {digit: '1', after: 30} (the ACD's"
        " queues.yaml gives the number to dial in `callbacks: {dial: ...}`).",
    )

    @field_validator("skills")
    @classmethod
    def _levels(cls, v: dict[str, int]) -> dict[str, int]:
        for skill, level in v.items():
            if not 1 <= level <= 5:
                raise ValueError(f"skill {skill}: level {level} is not 1-5")
        return v


class TransferNode(_NodeBase):
    """Blind-transfer the caller to a SIP URI or an extension."""

    type: Literal["transfer"]
    to: str = Field(description="sip:user@host, or an extension resolved against the PBX.")
    failed: Target | None = None


class VoicemailNode(_NodeBase):
    """Record a message after a beep; stored like a recording."""

    type: Literal["voicemail"]
    mailbox: str
    prompt: PromptSpec | None = None
    max_length: float = Field(default=120.0, gt=0, le=600, description="Seconds.")
    finish_digit: str = "#"
    next: Target | None = None


class RecordingNode(_NodeBase):
    """Pause or resume the call recording (PCI DSS secure pause).

    While paused the recording gets silence on both channels, digits are
    masked in the call's records, and an agent on the call hears no key
    tones (nor are keys relayed to them); the flow itself still gets the
    digits, e.g. a card number for a payment lookup. A pause left open ends
    with the call.
    """

    type: Literal["recording"]
    action: Literal["pause", "resume"]
    reason: str = Field(default="pci", max_length=64, description="Why (kept with the pause span).")
    next: Target | None = None


class HangupNode(_NodeBase):
    """End the call."""

    type: Literal["hangup"]
    prompt: PromptSpec | None = None


class GotoNode(_NodeBase):
    """Jump to a node or another flow."""

    type: Literal["goto"]
    target: Target


class SubflowNode(_NodeBase):
    """Run another flow (or a node of it); continue at `next` when it returns."""

    type: Literal["subflow"]
    flow: str = Field(pattern=_ID)
    node: str | None = Field(default=None, pattern=_ID)
    next: Target


class ReturnNode(_NodeBase):
    """Return from a subflow to the caller's `next`."""

    type: Literal["return"]


class LanguageNode(_NodeBase):
    """Let the caller choose a language by digit."""

    type: Literal["language"]
    prompt: PromptSpec
    options: dict[str, str] = Field(min_length=1, description="Digit -> language code.")
    timeout: float = Field(default=5.0, gt=0, le=120)
    default: str | None = Field(default=None, description="Language on no input (else the flow's).")
    next: Target


Node = Annotated[
    SayNode
    | PlayNode
    | MenuNode
    | GatherNode
    | SetNode
    | SwitchNode
    | IfNode
    | HoursNode
    | LookupNode
    | QueueNode
    | TransferNode
    | VoicemailNode
    | RecordingNode
    | HangupNode
    | GotoNode
    | SubflowNode
    | ReturnNode
    | LanguageNode,
    Field(discriminator="type"),
]

NODE_TYPES: tuple[type[_NodeBase], ...] = (
    SayNode,
    PlayNode,
    MenuNode,
    GatherNode,
    SetNode,
    SwitchNode,
    IfNode,
    HoursNode,
    LookupNode,
    QueueNode,
    TransferNode,
    VoicemailNode,
    RecordingNode,
    HangupNode,
    GotoNode,
    SubflowNode,
    ReturnNode,
    LanguageNode,
)


class Flow(_Strict):
    """One call flow: a start node and a graph of nodes."""

    flow: str = Field(pattern=_ID, description="The flow's name; other flows refer to it.")
    description: str | None = None
    language: str = Field(default="en", description="Default language code.")
    languages: list[str] = Field(default_factory=lambda: ["en"])
    voice: str | None = Field(default=None, description="Default TTS voice.")
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)
    start: str = Field(pattern=_ID)
    nodes: dict[Annotated[str, Field(pattern=_ID)], Node] = Field(min_length=1)


class Route(_Strict):
    number: str = Field(description="Dialed number (user part of the request URI), or '*'.")
    flow: str = Field(pattern=_ID)


class Routes(_Strict):
    """routes.yaml: which dialed number runs which flow."""

    routes: list[Route] = Field(default_factory=list)
    default: str | None = Field(default=None, description="Flow for numbers with no route.")


def split_target(target: str) -> tuple[str | None, str | None]:
    """``'node'`` -> (None, node); ``'flow:'`` -> (flow, None); ``'flow:node'`` -> (flow, node)."""
    if ":" in target:
        flow, node = target.split(":", 1)
        return flow, node or None
    return None, target


def node_targets(node: _NodeBase) -> list[tuple[str, str]]:
    """Every (field, target) a node can go to, in declaration order."""
    out: list[tuple[str, str]] = []
    for name in type(node).model_fields:
        value = getattr(node, name)
        if name in ("next", "no_input", "invalid", "open", "closed", "holiday", "found",
                    "not_found", "error", "overflow", "failed", "then", "else_", "default",
                    "target"):  # fmt: skip
            language_default = isinstance(node, LanguageNode) and name == "default"
            if isinstance(value, str) and not language_default:
                out.append(("else" if name == "else_" else name, value))
        elif name == "options" and isinstance(node, MenuNode):
            out.extend((f"options.{d}", t) for d, t in value.items())
        elif name == "cases":
            out.extend((f"cases[{i}]", c.goto) for i, c in enumerate(value))
        elif name == "callback" and isinstance(value, QueueCallback) and value.next:
            out.append(("callback.next", value.next))
    return out


def flow_json_schema() -> dict[str, Any]:
    """The JSON Schema of a flow file, as shipped in flows/schema.json."""
    schema = Flow.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "callcore IVR flow"
    return schema
