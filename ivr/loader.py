"""Loading a flows folder into a validated, immutable :class:`FlowSet`.

Folder format::

    flows/
      main.yaml        one Flow per file (the file name need not be the flow name)
      billing.yaml
      routes.yaml      dialed number -> flow (Routes): `routes: [{number, flow}]`, `default`
      queues.yaml      owned by the ACD: only the keys of its top-level `queues:` are read
      agents.yaml      (ACD; not read here)
      *.test.yaml      flow test cases (not flows; also anything under tests/)
      prompts/         audio files that flows play (paths are relative to the folder)

:func:`load_flowset` returns a FlowSet or raises :class:`FlowSetError` with
every error found; :func:`check_flowset` returns the errors and warnings
without raising (``ivr validate``). Every diagnostic names the file, line and
column of the YAML key or value at fault (see :mod:`ivr.validator` for the
checks). Loading reads files only: nothing here touches a running call, so a
folder that fails to load leaves whatever runs untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ivr.diagnostics import Diagnostic, FlowSetError, errors, sort_key, warnings
from ivr.expressions import (
    Condition,
    Template,
    Value,
    compile_condition,
    compile_template,
    compile_value,
)
from ivr.model import Flow, Routes
from ivr.modelerrors import model_diagnostics
from ivr.yamldoc import YamlDoc, YamlError, load_yaml
from media.prompts.sounds import SoundLibrary

__all__ = [
    "NOT_FLOWS",
    "QUEUES_FILE",
    "ROUTES_FILE",
    "FlowSet",
    "FlowSetError",
    "check_file",
    "check_flowset",
    "flow_files",
    "is_flowset_file",
    "load_flowset",
]

ROUTES_FILE = "routes.yaml"
QUEUES_FILE = "queues.yaml"
NOT_FLOWS = frozenset({ROUTES_FILE, QUEUES_FILE, "agents.yaml"})
"""YAML files of a flows folder that are not flows."""


def _is_flow_name(name: str) -> bool:
    return name.endswith(".yaml") and not name.endswith(".test.yaml") and name not in NOT_FLOWS


def flow_files(folder: Path) -> list[Path]:
    """The flow files of ``folder``, sorted by name."""
    return sorted(p for p in folder.glob("*.yaml") if p.is_file() and _is_flow_name(p.name))


def is_flowset_file(folder: Path, path: Path) -> bool:
    """Whether a change to ``path`` can change the FlowSet loaded from ``folder``
    (a flow file, routes.yaml or queues.yaml directly in the folder): what a
    watcher filters on."""
    try:
        rel = Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    if len(rel.parts) != 1:
        return False
    name = rel.name
    return _is_flow_name(name) or name in (ROUTES_FILE, QUEUES_FILE)


@dataclass(frozen=True, eq=False)
class FlowSet:
    """A validated flows folder: every flow, the routes and the known queues.

    Immutable once built: a running call keeps the FlowSet it started with
    while a reload builds a new one.
    """

    flows: dict[str, Flow]
    """Flow name -> flow."""
    routes: Routes
    """routes.yaml."""
    queues: frozenset[str]
    """Queue names from queues.yaml."""
    files: dict[str, Path]
    """Flow name -> the file it was read from."""
    sources: dict[str, str]
    """Path relative to the folder (posix) -> text, of every file read (for diffs)."""
    digest: str
    """sha256 (hex) over the sorted relative paths and texts of ``sources``."""
    positions: dict[str, dict[str, tuple[int, int]]]
    """Flow name -> node id -> (line, column) of the node in its file."""
    warnings: list[Diagnostic] = field(default_factory=list)
    """What the validator warned about (the set loaded anyway)."""
    folder: Path = Path("flows")
    """The folder the set was read from (audio paths are relative to it)."""
    compiled: Mapping[tuple[str, str], Condition | Value | Template] = field(
        default_factory=dict, repr=False
    )
    """Every expression and template of the flows, compiled at load:
    (kind, source) -> compiled, kind one of ``condition``, ``value``, ``template``."""

    def flow_for(self, number: str) -> Flow:
        """The flow that answers calls to ``number``: its route, else the ``'*'``
        route, else ``default``; LookupError if none."""
        wildcard: str | None = None
        for route in self.routes.routes:
            if route.number == number:
                return self.flows[route.flow]
            if route.number == "*" and wildcard is None:
                wildcard = route.flow
        name = wildcard or self.routes.default
        if name is None:
            raise LookupError(
                f"no route for {number!r} in {ROUTES_FILE} and no default: add "
                f"`- {{number: '{number}', flow: NAME}}` or `default: NAME`"
            )
        return self.flows[name]

    def condition(self, source: str) -> Condition:
        """The compiled condition for ``source`` (compiled at load; else now)."""
        found = self.compiled.get(("condition", source))
        return found if isinstance(found, Condition) else compile_condition(source)

    def value(self, source: str) -> Value:
        """The compiled value expression for ``source`` (compiled at load; else now)."""
        found = self.compiled.get(("value", source))
        return found if isinstance(found, Value) else compile_value(source)

    def template(self, source: str) -> Template:
        """The compiled template for ``source`` (compiled at load; else now)."""
        found = self.compiled.get(("template", source))
        return found if isinstance(found, Template) else compile_template(source)


def _digest(sources: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(sources):
        data = sources[rel].encode("utf-8")
        h.update(rel.encode("utf-8") + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


@dataclass
class ParsedFlow:
    """A flow file that parsed (``flow`` set) or at least named its flow."""

    doc: YamlDoc
    flow: Flow | None
    name: str | None


def _read_queues(folder: Path, diags: list[Diagnostic]) -> tuple[frozenset[str] | None, str | None]:
    path = folder / QUEUES_FILE
    if not path.exists():
        return None, None
    try:
        doc = load_yaml(path)
    except YamlError as exc:
        diags.append(exc.diagnostic)
        return frozenset(), None
    data = doc.data
    queues = data.get("queues") if isinstance(data, dict) else None
    if not isinstance(queues, dict):
        pos = doc.value_pos(("queues",)) if isinstance(data, dict) and "queues" in data else (1, 1)
        diags.append(
            doc.diagnostic(
                "error",
                pos,
                f"{QUEUES_FILE} has no `queues:` mapping of queue names",
                "write `queues:` then one indented `NAME:` per queue",
            )
        )
        return frozenset(), doc.text
    return frozenset(str(k) for k in queues), doc.text


def _read_routes(folder: Path, diags: list[Diagnostic]) -> tuple[Routes | None, YamlDoc | None]:
    path = folder / ROUTES_FILE
    if not path.exists():
        diags.append(
            Diagnostic(
                "error",
                path,
                0,
                0,
                f"{ROUTES_FILE} is missing: no call can be routed to a flow",
                f"create {path} with `default: <flow name>` (and `routes:` per number)",
            )
        )
        return None, None
    try:
        doc = load_yaml(path)
    except YamlError as exc:
        diags.append(exc.diagnostic)
        return None, None
    data: Any = doc.data if doc.data is not None else {}
    try:
        return Routes.model_validate(data), doc
    except ValidationError as exc:
        diags.extend(model_diagnostics(exc, doc, Routes))
        return None, doc


def _read_flow(path: Path, diags: list[Diagnostic]) -> ParsedFlow | None:
    try:
        doc = load_yaml(path)
    except YamlError as exc:
        diags.append(exc.diagnostic)
        return None
    data = doc.data
    name = data.get("flow") if isinstance(data, dict) else None
    name = name if isinstance(name, str) else None
    if isinstance(data, dict) and "flow" not in data and "nodes" not in data:
        diags.append(
            doc.diagnostic(
                "error",
                (1, 1),
                "not a flow: no `flow:` and no `nodes:`",
                "a flow file needs flow:, start: and nodes:; move other YAML files out of "
                "the flows folder (flow tests: name them *.test.yaml)",
            )
        )
        return ParsedFlow(doc, None, None)
    try:
        flow = Flow.model_validate(data)
    except ValidationError as exc:
        diags.extend(model_diagnostics(exc, doc, Flow))
        return ParsedFlow(doc, None, name)
    return ParsedFlow(doc, flow, flow.flow)


def _rel(folder: Path, path: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return path.name


def check_flowset(
    folder: Path, *, sounds: SoundLibrary | None = None
) -> tuple[FlowSet | None, list[Diagnostic]]:
    """Load and validate ``folder``: the FlowSet (None if any error) and every
    error and warning found, sorted by file and position."""
    from ivr.validator import validate

    folder = Path(folder)
    diags: list[Diagnostic] = []
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        diags.append(
            Diagnostic("error", folder, 0, 0, f"flows folder {what}", "pass the flows folder")
        )
        return None, diags
    for odd in sorted(folder.glob("*.yml")):
        diags.append(
            Diagnostic(
                "warning",
                odd,
                0,
                0,
                "ignored: flow files end in .yaml",
                f"rename it to {odd.with_suffix('.yaml').name}",
            )
        )
    parsed: list[ParsedFlow] = []
    files = flow_files(folder)
    for path in files:
        p = _read_flow(path, diags)
        if p is not None:
            parsed.append(p)
    complete = len(files) == sum(1 for p in parsed if p.name is not None)
    routes, routes_doc = _read_routes(folder, diags)
    queues, queues_text = _read_queues(folder, diags)

    result = validate(folder, parsed, routes, routes_doc, queues, sounds, complete=complete)
    diags.extend(result.diagnostics)
    diags.sort(key=sort_key)
    if errors(diags) or routes is None:
        return None, diags

    sources = {_rel(folder, p.doc.file): p.doc.text for p in parsed}
    if routes_doc is not None:
        sources[ROUTES_FILE] = routes_doc.text
    if queues_text is not None:
        sources[QUEUES_FILE] = queues_text
    flows = {p.flow.flow: p.flow for p in parsed if p.flow is not None}
    flowset = FlowSet(
        flows=flows,
        routes=routes,
        queues=queues or frozenset(),
        files={p.flow.flow: p.doc.file for p in parsed if p.flow is not None},
        sources=sources,
        digest=_digest(sources),
        positions={
            p.flow.flow: {n: p.doc.key_pos(("nodes", n)) for n in p.flow.nodes}
            for p in parsed
            if p.flow is not None
        },
        warnings=warnings(diags),
        folder=folder,
        compiled=result.compiled,
    )
    return flowset, diags


def load_flowset(folder: Path, *, sounds: SoundLibrary | None = None) -> FlowSet:
    """Load and validate ``folder``; raises :class:`FlowSetError` listing every
    error (and warning) when any error is found."""
    flowset, diags = check_flowset(folder, sounds=sounds)
    if flowset is None:
        raise FlowSetError(diags)
    return flowset


def check_file(
    path: Path, *, sounds: SoundLibrary | None = None
) -> tuple[FlowSet | None, list[Diagnostic]]:
    """Validate one file in the context of its folder (so targets into sibling
    flows, routes and queues resolve): diagnostics of that file only, plus
    folder-level problems that make it unusable (none). The FlowSet is the
    folder's, None when the folder has errors."""
    path = Path(path)
    if not path.is_file():
        return None, [Diagnostic("error", path, 0, 0, "file does not exist", "check the path")]
    folder = path.parent
    flowset, diags = check_flowset(folder, sounds=sounds)
    target = path.resolve()
    mine = [d for d in diags if Path(d.file).resolve() == target]
    name = path.name
    if name.endswith(".test.yaml") or name == "agents.yaml" or path.suffix != ".yaml":
        mine.append(
            Diagnostic(
                "error",
                path,
                0,
                0,
                "not a flow file (flow files are *.yaml, not *.test.yaml, agents.yaml)",
                "pass a flow file, routes.yaml, queues.yaml or the flows folder",
            )
        )
    return flowset, sorted(mine, key=sort_key)
