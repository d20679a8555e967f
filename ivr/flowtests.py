"""Flow tests as data: ``*.test.yaml`` cases run against a flows folder.

A case file lives in ``<flows>/tests/`` (or next to the flows, named
``*.test.yaml``; the loader ignores both)::

    defaults:                      # optional: fields every case starts from
      caller: "+12125550100"
      called: "5000"
      at: 2026-11-23T10:00:00-05:00
    cases:
      - name: billing, VIP goes ahead
        digits: ["1", "1"]         # one token per input (see ivr.scripted):
                                   #   "1", "123456#", "t" (timeout), "h" (hang up),
                                   #   "!2" (pressed during the prompt: barge-in)
        lookup: {name: Ada, tier: vip}   # every lookup finds this (null: not found,
        lookups: {lookup_account: null}  #   "error"); per node id wins
        queue: overflow            # answered | overflow | no_agents | abandoned | callback
        queues: {operator: answered}
        transfer: failed           # ok (default) | failed
        expect:
          path: [welcome, choose_language, hours, ...]   # the exact node ids
          path_includes: [main_menu, billing_vip]        # in this order, gaps allowed
          prompts: ["Welcome back, Ada", "billing team"] # substrings heard, in order
          not_prompts: ["operator"]                      # never heard
          variables: {customer.tier: vip, language: en}  # dotted paths into values
          language: en
          end: {queue: billing}    # or hangup | error | caller_hangup |
                                   #   {transfer: sip:...} | {voicemail: MAILBOX} ...

Other case fields: ``flow`` (run this flow instead of the route of
``called``), ``caller_name``, ``language`` (the caller's language at the
start), ``voicemail_seconds``. Node ids of other flows than the entry flow
are written ``flow:node``. ``at`` needs a UTC offset.

:func:`run_cases` runs cases on a loaded flow set with the same
:class:`~ivr.runtime.FlowRun` the engine uses and returns one
:class:`CaseResult` per case with every expectation that failed and a diff
(``ivr test-flows`` prints them).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ivr.diagnostics import Diagnostic
from ivr.modelerrors import model_diagnostics
from ivr.runtime import FlowRuntimeError, FlowSetLike
from ivr.scripted import ScriptResult, Stubs, parse_digits, run_script
from ivr.yamldoc import YamlDoc, YamlError, load_yaml

__all__ = [
    "CaseFile",
    "CaseFileError",
    "CaseResult",
    "Expectations",
    "FlowCase",
    "check_case",
    "discover",
    "load_cases",
    "run_case",
    "run_cases",
]

QueueOutcome = Literal["answered", "overflow", "no_agents", "abandoned", "callback"]
LookupStub = dict[str, Any] | Literal["error"] | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expectations(_Strict):
    """What a case checks; give at least one."""

    path: list[str] | None = Field(default=None, description="Exact node ids visited.")
    path_includes: list[str] | None = Field(
        default=None, description="Node ids visited in this order (others may come between)."
    )
    prompts: list[str] | None = Field(
        default=None, description="Substrings of what is heard (texts, file names), in order."
    )
    not_prompts: list[str] | None = Field(default=None, description="Never heard.")
    variables: dict[str, Any] | None = Field(
        default=None, description="Variable (dotted path) -> value at the end."
    )
    language: str | None = None
    end: str | dict[str, str] | None = Field(
        default=None,
        description="How the run ends: a reason (hangup, queue, transfer, voicemail, overflow,"
        " no_agents, abandoned, callback, caller_hangup, error) or {reason: detail}.",
    )

    @field_validator("end")
    @classmethod
    def _one_end(cls, v: str | dict[str, str] | None) -> str | dict[str, str] | None:
        if isinstance(v, dict) and len(v) != 1:
            raise ValueError("end: give one reason, e.g. {queue: sales} or hangup")
        return v


class _CaseFields(_Strict):
    flow: str | None = None
    caller: str = "+15555550100"
    caller_name: str = ""
    called: str = "5000"
    at: str | None = Field(default=None, description="ISO date-time with a UTC offset.")
    language: str | None = None
    digits: list[str | int] | str = Field(default_factory=list)
    lookup: LookupStub = None
    lookups: dict[str, LookupStub] = Field(default_factory=dict)
    queue: QueueOutcome = "no_agents"
    queues: dict[str, QueueOutcome] = Field(default_factory=dict)
    transfer: Literal["ok", "failed"] = "ok"
    voicemail_seconds: float = Field(default=10.0, ge=0)

    @field_validator("at")
    @classmethod
    def _aware(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            when = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an ISO date-time (2026-11-23T10:00:00-05:00)") from None
        if when.tzinfo is None:
            raise ValueError(f"{v!r} has no UTC offset: write e.g. {v}+09:00 or {v}Z")
        return v


class FlowCase(_CaseFields):
    """One scripted call and what must happen."""

    name: str
    expect: Expectations


class CaseFile(_Strict):
    """A ``*.test.yaml`` file."""

    defaults: _CaseFields = Field(default_factory=_CaseFields)
    cases: list[FlowCase] = Field(min_length=1)


class CaseFileError(ValueError):
    """A case file that cannot be used; ``diagnostics`` say where and why."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


@dataclass(frozen=True)
class LoadedCase:
    """A case with the defaults applied, and where it was written."""

    case: FlowCase
    file: Path
    line: int

    @property
    def where(self) -> str:
        """``file:line`` of the case."""
        return f"{self.file}:{self.line}"

    @property
    def id(self) -> str:
        """``file-name::case name``: a test id."""
        return f"{self.file.name}::{self.case.name}"


def discover(folder: Path) -> list[Path]:
    """The case files of a flows folder: ``tests/**/*.test.yaml``, then ``*.test.yaml``."""
    folder = Path(folder)
    found = sorted((folder / "tests").rglob("*.test.yaml")) if (folder / "tests").is_dir() else []
    found += sorted(folder.glob("*.test.yaml"))
    return found


def _with_defaults(case: FlowCase, defaults: _CaseFields) -> FlowCase:
    merged = {
        name: getattr(defaults, name)
        for name in _CaseFields.model_fields
        if name not in case.model_fields_set and name in defaults.model_fields_set
    }
    return case.model_copy(update=merged) if merged else case


def load_cases(path: Path) -> list[LoadedCase]:
    """The cases of one file, defaults applied; raises :class:`CaseFileError`
    naming file:line:column for YAML or schema errors."""
    try:
        doc: YamlDoc = load_yaml(Path(path))
    except YamlError as exc:
        raise CaseFileError([exc.diagnostic]) from None
    try:
        parsed = CaseFile.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        raise CaseFileError(model_diagnostics(exc, doc, CaseFile)) from None
    out: list[LoadedCase] = []
    problems: list[Diagnostic] = []
    names: dict[str, int] = {}
    for i, raw in enumerate(parsed.cases):
        case = _with_defaults(raw, parsed.defaults)
        pos = doc.key_pos(("cases", i))
        if case.at is None:
            problems.append(
                doc.diagnostic(
                    "error",
                    pos,
                    f"case {case.name!r} has no `at` (the time of the call)",
                    "add `at: 2026-11-23T10:00:00-05:00` to the case or to `defaults:`",
                )
            )
        if not case.expect.model_fields_set:
            problems.append(
                doc.diagnostic(
                    "error",
                    doc.key_pos(("cases", i, "expect")),
                    f"case {case.name!r} expects nothing",
                    "give path, path_includes, prompts, not_prompts, variables, language or end",
                )
            )
        if case.name in names:
            problems.append(
                doc.diagnostic(
                    "error",
                    pos,
                    f"two cases are named {case.name!r} (line {names[case.name]})",
                    "give each case its own name",
                )
            )
        names[case.name] = pos[0]
        out.append(LoadedCase(case, Path(path), pos[0]))
    if problems:
        raise CaseFileError(problems)
    return out


# ------------------------------------------------------------------ checking
@dataclass
class CaseResult:
    """The outcome of one case: the run, and each failed expectation as text."""

    loaded: LoadedCase
    result: ScriptResult | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every expectation held."""
        return not self.failures

    def report(self) -> str:
        """PASS/FAIL line, then (on failure) every difference, indented."""
        head = f"{'PASS' if self.passed else 'FAIL'}  {self.loaded.where}  {self.loaded.case.name}"
        if self.passed:
            return head
        body = "\n".join("      " + line for f in self.failures for line in f.splitlines())
        return f"{head}\n{body}"


def _diff(expected: Sequence[str], actual: Sequence[str]) -> str:
    lines = difflib.unified_diff(
        [str(x) for x in expected], [str(x) for x in actual], "expected", "actual", lineterm="", n=2
    )
    return "\n".join(list(lines)[2:])


def _subsequence(expected: Sequence[str], actual: Sequence[str], match: Any) -> int | None:
    """Index in ``expected`` of the first item not found in order, else None."""
    pos = 0
    for i, want in enumerate(expected):
        while pos < len(actual) and not match(want, actual[pos]):
            pos += 1
        if pos == len(actual):
            return i
        pos += 1
    return None


_MISSING = object()


def _lookup(scope: dict[str, Any], dotted: str) -> Any:
    value: Any = scope
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def check_case(case: FlowCase, res: ScriptResult) -> list[str]:
    """Every expectation of ``case`` that ``res`` does not meet, as text."""
    exp = case.expect
    out: list[str] = []
    path = res.path
    heard = res.heard
    if exp.path is not None and list(exp.path) != path:
        out.append(f"path differs:\n{_diff(exp.path, path)}")
    if exp.path_includes is not None:
        miss = _subsequence(exp.path_includes, path, lambda w, a: w == a)
        if miss is not None:
            out.append(
                f"path_includes: {exp.path_includes[miss]!r} not visited in order"
                f" (after {exp.path_includes[:miss]}); path was {path}"
            )
    if exp.prompts is not None:
        miss = _subsequence(exp.prompts, heard, lambda w, a: w in a)
        if miss is not None:
            shown = "\n".join(f"  {h}" for h in heard) or "  (nothing)"
            out.append(
                f"prompts: {exp.prompts[miss]!r} not heard in order"
                f" (after {exp.prompts[:miss]}); heard:\n{shown}"
            )
    for never in exp.not_prompts or []:
        hits = [h for h in heard if never in h]
        if hits:
            out.append(f"not_prompts: {never!r} was heard: {hits[0]!r}")
    if exp.variables:
        scope = res.run.scope()
        for name, want in exp.variables.items():
            got = _lookup(scope, name)
            if got is _MISSING:
                out.append(f"variables: {name} is not set (expected {want!r})")
            elif got != want:
                out.append(f"variables: {name} is {got!r}, expected {want!r}")
    if exp.language is not None and res.run.language != exp.language:
        out.append(f"language is {res.run.language!r}, expected {exp.language!r}")
    if exp.end is not None:
        ended = res.ended
        if isinstance(exp.end, str):
            reason, detail = exp.end, None
        else:
            ((reason, detail),) = exp.end.items()
        shown = ended.reason + (f" {ended.detail}" if ended.detail else "")
        if ended.reason != reason or (detail is not None and ended.detail != detail):
            want = reason + (f" {detail}" if detail is not None else "")
            out.append(f"end: ended with {shown!r}, expected {want!r}")
    return out


def _tokens(digits: list[str | int] | str) -> list[str]:
    return parse_digits(digits) if isinstance(digits, str) else [str(d) for d in digits]


def run_case(flowset: FlowSetLike, loaded: LoadedCase) -> CaseResult:
    """Run one case (the flow runtime with the case's script and stubs) and check it."""
    case = loaded.case
    out = CaseResult(loaded)
    assert case.at is not None
    stubs = Stubs(
        lookup=case.lookup,
        lookups=case.lookups,
        queue=case.queue,
        queues=case.queues,
        transfer=case.transfer == "ok",
        voicemail_seconds=case.voicemail_seconds,
    )
    try:
        res = run_script(
            flowset,
            caller=case.caller,
            caller_name=case.caller_name,
            called=case.called,
            at=datetime.fromisoformat(case.at),
            digits=_tokens(case.digits),
            stubs=stubs,
            flow=case.flow,
            language=case.language,
            call_id=f"test-{loaded.line}",
        )
    except (FlowRuntimeError, ValueError) as exc:
        out.failures.append(f"cannot run: {exc}")
        return out
    out.result = res
    out.failures = check_case(case, res)
    return out


def run_cases(flowset: FlowSetLike, cases: Iterable[LoadedCase]) -> list[CaseResult]:
    """Every case, in order."""
    return [run_case(flowset, c) for c in cases]
