"""Semantic checks of a flows folder, each reported at the YAML key or value at fault.

Runs on flows that passed the model (:mod:`ivr.model`); errors stop the set
from loading, warnings do not.

Errors
    * ``start`` is not a node of the flow;
    * a target (``next``, options, branches, ``goto``...) names a node, or a
      flow (``flow:``/``flow:node``), that does not exist; likewise a
      subflow's ``flow``/``node``, routes' flows and the routes ``default``;
      an empty target;
    * two files define the same flow name; two routes for one number;
    * a ``menu`` or ``gather`` with neither ``no_input`` nor ``invalid``: its
      tries must lead somewhere when the caller presses nothing. One of them
      is enough because the runtime sends both failures to whichever is set
      (:mod:`ivr.runtime`); only without both would it hang up;
    * a loop in which no node waits for the caller (see :data:`WAITS`), so a
      call would spin through say/set/switch/... forever; a subflow in such
      a loop counts as waiting when every way through it to a ``return``
      waits (falling off a node without ``next`` returns too);
    * a menu ``repeat`` digit that is also an option; language option keys
      that are not one DTMF digit;
    * audio that does not exist: files relative to the flows folder (absolute
      paths and paths leaving the folder are refused), ``sound:NAME`` unknown
      to the :class:`~media.prompts.sounds.SoundLibrary` (without a library
      only the name's form is checked);
    * a queue not in ``queues.yaml`` (or that file is missing);
    * a time zone unknown to zoneinfo;
    * an expression or template that does not compile (set values, switch
      ``when``, if ``condition``, say text, prompts, ``play`` names holding
      ``{{``, lookup ``key``/``url``, transfer ``to`` holding ``{{``);
    * a ``set`` variable name that is not an identifier.

Warnings
    * a node no path from ``start`` (or from another flow) reaches;
    * a flow no route and no other flow uses;
    * a language in per-language text (or a language option) that is not in
      the flow's ``languages``; ``language`` not in ``languages``;
    * a ``return`` node in a flow never run as a subflow; a ``gather``
      without ``next`` in such a flow (the call hangs up after it; in a
      subflow it returns, which is fine);
    * a variable a template or expression reads that nothing sets (``set``,
      ``gather``/``lookup`` ``variable``, flow ``variables``) and that is not
      built in (:data:`ivr.expressions.BUILTIN_VARIABLES`).
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr import model as m
from ivr.diagnostics import Diagnostic
from ivr.expressions import (
    BUILTIN_VARIABLES,
    Condition,
    ExpressionError,
    Template,
    Value,
    compile_condition,
    compile_template,
    compile_value,
    is_template,
)
from ivr.yamldoc import DataPath, Pos, YamlDoc
from media.prompts.sounds import SCHEME, SoundLibrary, SoundNotFound

__all__ = ["WAITS", "ValidationResult", "validate"]

WAITS: tuple[type[m._NodeBase], ...] = (
    m.MenuNode,
    m.GatherNode,
    m.LanguageNode,
    m.VoicemailNode,
    m.QueueNode,
)
"""Nodes that wait for the caller (or an agent), so a loop through them is a
loop the caller drives. Say/play nodes wait too when ``barge_in`` is on."""

_PROMPT_FIELDS = ("prompt", "no_input_prompt", "invalid_prompt")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Compiled = Condition | Value | Template
NodeKey = tuple[str, str]
"""(flow name, node id)."""


@dataclass
class ValidationResult:
    """Diagnostics, plus every expression compiled on the way ((kind, source) -> compiled)."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    compiled: dict[tuple[str, str], Compiled] = field(default_factory=dict)


def _waits(node: Any) -> bool:
    if isinstance(node, WAITS):
        return True
    return isinstance(node, m.SayNode | m.PlayNode) and node.barge_in


def _falls_off(node: Any) -> bool:
    """A node without input and without `next`: in a subflow, the run returns after it."""
    return isinstance(node, m.SayNode | m.PlayNode | m.SetNode) and node.next is None


def _target_path(field_name: str) -> DataPath:
    """node_targets' field name -> the data path inside the node."""
    if field_name.startswith("options."):
        return ("options", field_name.split(".", 1)[1])
    if field_name == "callback.next":
        return ("callback", "next")
    mt = re.fullmatch(r"cases\[(\d+)\]", field_name)
    if mt:
        return ("cases", int(mt.group(1)), "goto")
    return (field_name,)


def _close(word: str, choices: Iterable[str]) -> str:
    found = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean {found[0]!r}? " if found else ""


def _listing(names: Iterable[str], limit: int = 12) -> str:
    items = sorted(names)
    if not items:
        return "(none)"
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


class _Checker:
    def __init__(
        self,
        folder: Path,
        parsed: list[Any],
        routes: m.Routes | None,
        routes_doc: YamlDoc | None,
        queues: frozenset[str] | None,
        sounds: SoundLibrary | None,
        complete: bool,
    ) -> None:
        from ivr.loader import QUEUES_FILE

        self.complete = complete
        """Every flow file named its flow: else 'no such flow' is not reported
        (it may be the one that did not parse)."""
        self.folder = folder
        self.queues_file = folder / QUEUES_FILE
        self.routes = routes
        self.routes_doc = routes_doc
        self.queues = queues
        self.sounds = sounds
        self.out = ValidationResult()
        # every flow name seen (also of files that failed the model): references
        # to a broken flow are not reported as unknown
        self.known: set[str] = {p.name for p in parsed if p.name}
        self.flows: dict[str, m.Flow] = {}
        self.docs: dict[str, YamlDoc] = {}
        first_file: dict[str, YamlDoc] = {}
        for p in parsed:
            if p.name is None:
                continue
            if p.name in first_file:
                self.error(
                    p.doc,
                    p.doc.value_pos(("flow",)),
                    f"flow {p.name!r} is already defined in {first_file[p.name].file}",
                    "give each flow its own name in `flow:`",
                )
                continue
            first_file[p.name] = p.doc
            if p.flow is not None:
                self.flows[p.name] = p.flow
                self.docs[p.name] = p.doc
        self.used_vars: list[tuple[YamlDoc, Pos, str, str, str]] = []
        """(doc, position, variable, where, source of the expression that reads it)."""
        self.gathers_without_next: list[tuple[str, YamlDoc, Pos, str, str]] = []
        self.set_vars: set[str] = set(BUILTIN_VARIABLES)

    # ------------------------------------------------------------ output
    def error(self, doc: YamlDoc, pos: Pos, message: str, hint: str = "") -> None:
        self.out.diagnostics.append(doc.diagnostic("error", pos, message, hint))

    def warn(self, doc: YamlDoc, pos: Pos, message: str, hint: str = "") -> None:
        self.out.diagnostics.append(doc.diagnostic("warning", pos, message, hint))

    # ------------------------------------------------------------ driver
    def run(self) -> ValidationResult:
        for name, flow in self.flows.items():
            doc = self.docs[name]
            self.check_flow(flow, doc)
        self.check_routes()
        self.check_reachability()
        self.check_loops()
        self.check_returns()
        self.check_unused_flows()
        self.check_variables()
        return self.out

    # ------------------------------------------------------------ targets
    def resolve(self, flow: m.Flow, target: str) -> NodeKey | None:
        """The node a valid target leads to (None if unknown or into a broken flow)."""
        other, node = m.split_target(target)
        if other is None:
            return (flow.flow, node) if node in flow.nodes else None
        dest = self.flows.get(other)
        if dest is None:
            return None
        node = node or dest.start
        return (other, node) if node in dest.nodes else None

    def check_target(self, flow: m.Flow, doc: YamlDoc, pos: Pos, where: str, target: str) -> None:
        other, node = m.split_target(target)
        if target in ("", ":") or (other == "" and node is None):
            self.error(doc, pos, f"{where}: empty target", "write `node`, `flow:` or `flow:node`")
            return
        if other is None or other == flow.flow:
            if node is not None and node not in flow.nodes:
                self.error(
                    doc,
                    pos,
                    f"{where}: target {target!r} is not a node of flow {flow.flow!r}",
                    f"{_close(node, flow.nodes)}nodes: {_listing(flow.nodes)}",
                )
            return
        if other not in self.known and self.complete:
            self.error(
                doc,
                pos,
                f"{where}: target {target!r}: there is no flow {other!r}",
                f"{_close(other, self.known)}flows: {_listing(self.known)}",
            )
            return
        dest = self.flows.get(other)
        if dest is not None and node is not None and node not in dest.nodes:
            self.error(
                doc,
                pos,
                f"{where}: target {target!r}: flow {other!r} has no node {node!r}",
                f"{_close(node, dest.nodes)}nodes of {other}: {_listing(dest.nodes)}",
            )

    # ------------------------------------------------------------ one flow
    def check_flow(self, flow: m.Flow, doc: YamlDoc) -> None:
        if flow.start not in flow.nodes:
            self.error(
                doc,
                doc.value_pos(("start",)),
                f"start node {flow.start!r} is not a node of flow {flow.flow!r}",
                f"{_close(flow.start, flow.nodes)}nodes: {_listing(flow.nodes)}",
            )
        if flow.language not in flow.languages:
            self.warn(
                doc,
                doc.value_pos(("language",)),
                f"default language {flow.language!r} is not in languages {flow.languages}",
                f"add {flow.language!r} to `languages:`",
            )
        self.set_vars.update(flow.variables)
        for node_id, node in flow.nodes.items():
            base: DataPath = ("nodes", node_id)
            where = f"node {node_id!r} ({node.type})"
            for fname, target in m.node_targets(node):
                self.check_target(
                    flow, doc, doc.value_pos((*base, *_target_path(fname))), where, target
                )
            self.check_node(flow, doc, node_id, node, base, where)

    def check_node(
        self, flow: m.Flow, doc: YamlDoc, node_id: str, node: Any, base: DataPath, where: str
    ) -> None:
        key_pos = doc.key_pos(base)
        if isinstance(node, m.MenuNode):
            if node.no_input is None and node.invalid is None:
                tries = node.retries + 1
                self.error(
                    doc,
                    key_pos,
                    f"{where}: no `no_input:` (nor `invalid:`): after {tries} "
                    f"tr{'y' if tries == 1 else 'ies'} without a digit the call has nowhere to go",
                    "add `no_input: <node>` (e.g. a goodbye hangup node or a transfer);"
                    " it also catches wrong digits unless `invalid:` is given",
                )
            if node.repeat is not None and node.repeat in node.options:
                self.error(
                    doc,
                    doc.value_pos((*base, "repeat")),
                    f"{where}: repeat digit {node.repeat!r} is also an option",
                    "pick a repeat digit no option uses (often '*' or '9')",
                )
        elif isinstance(node, m.GatherNode):
            if node.no_input is None and node.invalid is None:
                self.error(
                    doc,
                    key_pos,
                    f"{where}: no `no_input:` (nor `invalid:`): when the tries run out "
                    "without digits the call has nowhere to go",
                    "add `no_input: <node>`; it also catches invalid input unless "
                    "`invalid:` is given",
                )
            if node.next is None:
                self.gathers_without_next.append((flow.flow, doc, key_pos, where, node.variable))
            self.set_vars.add(node.variable)
        elif isinstance(node, m.LanguageNode):
            for digit, lang in node.options.items():
                if len(digit) != 1 or digit not in m.DIGITS:
                    self.error(
                        doc,
                        doc.key_pos((*base, "options", digit)),
                        f"{where}: option {digit!r} is not one DTMF digit",
                        "use one of 0-9, '*' or '#' (quote '*' and '#')",
                    )
                if lang not in flow.languages:
                    self.warn(
                        doc,
                        doc.value_pos((*base, "options", digit)),
                        f"{where}: language {lang!r} is not in the flow's languages "
                        f"{flow.languages}",
                        f"add {lang!r} to `languages:` (and texts in it)",
                    )
            if node.default is not None and node.default not in flow.languages:
                self.warn(
                    doc,
                    doc.value_pos((*base, "default")),
                    f"{where}: default language {node.default!r} is not in the flow's "
                    f"languages {flow.languages}",
                    f"add {node.default!r} to `languages:`",
                )
        elif isinstance(node, m.SetNode):
            for var, value in node.values.items():
                if not _IDENT.match(var):
                    self.error(
                        doc,
                        doc.key_pos((*base, "values", var)),
                        f"{where}: {var!r} is not a variable name",
                        "use letters, digits and '_', starting with a letter or '_'",
                    )
                self.set_vars.add(var)
                if isinstance(value, str):
                    self.expression(doc, (*base, "values", var), value, "value", where)
        elif isinstance(node, m.SwitchNode):
            for i, case in enumerate(node.cases):
                self.expression(doc, (*base, "cases", i, "when"), case.when, "condition", where)
        elif isinstance(node, m.IfNode):
            self.expression(doc, (*base, "condition"), node.condition, "condition", where)
        elif isinstance(node, m.HoursNode):
            self.check_timezone(doc, base, node.timezone, where)
        elif isinstance(node, m.LookupNode):
            self.expression(doc, (*base, "key"), node.key, "value", where)
            if node.url is not None:
                self.expression(doc, (*base, "url"), node.url, "template", where, extra={"key"})
            self.set_vars.add(node.variable)
        elif isinstance(node, m.QueueNode):
            self.check_queue(doc, base, node.queue, where)
            if node.callback is not None:
                cb: DataPath = (*base, "callback")
                self.expression(doc, (*cb, "number"), node.callback.number, "value", where)
                for key in ("offer", "confirm"):
                    text = getattr(node.callback, key)
                    if text is not None:
                        self.text(flow, doc, (*cb, key), text, where)
        elif isinstance(node, m.TransferNode):
            if is_template(node.to):
                self.expression(doc, (*base, "to"), node.to, "template", where)
        elif isinstance(node, m.SubflowNode):
            self.check_subflow(flow, doc, base, node, where)
        elif isinstance(node, m.SayNode):
            self.text(flow, doc, (*base, "text"), node.text, where)
        elif isinstance(node, m.PlayNode):
            if isinstance(node.audio, str):
                self.audio(doc, (*base, "audio"), node.audio, where)
            else:
                for i, ref in enumerate(node.audio):
                    self.audio(doc, (*base, "audio", i), ref, where)
        for pf in _PROMPT_FIELDS:
            spec = getattr(node, pf, None)
            if spec is not None:
                self.prompt(flow, doc, (*base, pf), spec, where)

    def check_subflow(
        self, flow: m.Flow, doc: YamlDoc, base: DataPath, node: m.SubflowNode, where: str
    ) -> None:
        if node.flow not in self.known:
            if not self.complete:
                return
            self.error(
                doc,
                doc.value_pos((*base, "flow")),
                f"{where}: there is no flow {node.flow!r}",
                f"{_close(node.flow, self.known)}flows: {_listing(self.known)}",
            )
            return
        dest = self.flows.get(node.flow)
        if dest is not None and node.node is not None and node.node not in dest.nodes:
            self.error(
                doc,
                doc.value_pos((*base, "node")),
                f"{where}: flow {node.flow!r} has no node {node.node!r}",
                f"{_close(node.node, dest.nodes)}nodes of {node.flow}: {_listing(dest.nodes)}",
            )

    def check_timezone(self, doc: YamlDoc, base: DataPath, tz: str, where: str) -> None:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.error(
                doc,
                doc.value_pos((*base, "timezone")),
                f"{where}: unknown time zone {tz!r}",
                f"{_close(tz, zoneinfo.available_timezones())}use an IANA name such as "
                "Europe/Paris or Asia/Tokyo",
            )

    def check_queue(self, doc: YamlDoc, base: DataPath, queue: str, where: str) -> None:
        pos = doc.value_pos((*base, "queue"))
        if self.queues is None:
            self.error(
                doc,
                pos,
                f"{where}: unknown queue {queue!r}: {self.queues_file} does not exist",
                f"create {self.queues_file} with `queues:` and `{queue}:` under it",
            )
        elif queue not in self.queues:
            known = _listing(self.queues) if self.queues else "(none)"
            self.error(
                doc,
                pos,
                f"{where}: unknown queue {queue!r} (not in {self.queues_file})",
                f"{_close(queue, self.queues)}queues: {known}",
            )

    # ------------------------------------------------------------ text, audio, expressions
    def expression(
        self,
        doc: YamlDoc,
        path: DataPath,
        source: str,
        kind: str,
        where: str,
        extra: set[str] | None = None,
    ) -> None:
        key = (kind, source)
        compiled: Compiled | None = self.out.compiled.get(key)
        if compiled is None:
            try:
                if kind == "condition":
                    compiled = compile_condition(source)
                elif kind == "value":
                    compiled = compile_value(source)
                else:
                    compiled = compile_template(source)
            except ExpressionError as exc:
                pos = _expr_pos(doc, doc.value_pos(path), exc.line, exc.column)
                label = "template" if kind == "template" else "expression"
                self.error(
                    doc,
                    pos,
                    f"{where}: bad {label} {_field_name(path)}: {exc.reason}",
                    _expr_hint(exc.reason, kind),
                )
                return
            self.out.compiled[key] = compiled
        for var in sorted(compiled.variables - (extra or set())):
            self.used_vars.append((doc, doc.value_pos(path), var, where, source))

    def text(
        self, flow: m.Flow, doc: YamlDoc, path: DataPath, text: str | dict[str, str], where: str
    ) -> None:
        if isinstance(text, str):
            if is_template(text):
                self.expression(doc, path, text, "template", where)
            return
        for lang, value in text.items():
            if lang not in flow.languages:
                self.warn(
                    doc,
                    doc.key_pos((*path, lang)),
                    f"{where}: text in {lang!r}, which is not in the flow's languages "
                    f"{flow.languages}",
                    f"add {lang!r} to `languages:` or remove this text",
                )
            if is_template(value):
                self.expression(doc, (*path, lang), value, "template", where)

    def prompt(self, flow: m.Flow, doc: YamlDoc, path: DataPath, spec: Any, where: str) -> None:
        if isinstance(spec, str | dict):
            self.text(flow, doc, path, spec, where)
            return
        for i, part in enumerate(spec):
            if part.say is not None:
                self.text(flow, doc, (*path, i, "say"), part.say, where)
            elif part.play is not None:
                self.audio(doc, (*path, i, "play"), part.play, where)

    def audio(self, doc: YamlDoc, path: DataPath, ref: str, where: str) -> None:
        pos = doc.value_pos(path)
        if is_template(ref):
            self.expression(doc, path, ref, "template", where)
            return
        if ref.startswith(SCHEME):
            try:
                SoundLibrary.name_of(ref)
                if self.sounds is not None:
                    self.sounds.path(ref)
            except SoundNotFound as exc:
                self.error(
                    doc,
                    pos,
                    f"{where}: {exc}",
                    "use a sound that exists (ls the roots listed) or ship a WAV under "
                    f"{self.folder / 'prompts'}",
                )
            return
        rel = Path(ref)
        if rel.is_absolute() or ".." in rel.parts:
            self.error(
                doc,
                pos,
                f"{where}: audio {ref!r} is outside the flows folder",
                "put the file under the flows folder (e.g. prompts/) and give its path "
                "relative to that folder",
            )
            return
        full = self.folder / rel
        if not full.is_file():
            near = ""
            if full.parent.is_dir():
                near = _close(full.name, [p.name for p in full.parent.iterdir()])
            self.error(
                doc,
                pos,
                f"{where}: audio file {ref!r} not found (looked for {full})",
                f"{near}paths are relative to the flows folder; sound:NAME plays Asterisk sounds",
            )

    # ------------------------------------------------------------ routes
    def check_routes(self) -> None:
        routes, doc = self.routes, self.routes_doc
        if routes is None or doc is None:
            return
        seen: dict[str, int] = {}
        for i, route in enumerate(routes.routes):
            if route.flow not in self.known and self.complete:
                self.error(
                    doc,
                    doc.value_pos(("routes", i, "flow")),
                    f"route {route.number!r}: there is no flow {route.flow!r}",
                    f"{_close(route.flow, self.known)}flows: {_listing(self.known)}",
                )
            if route.number in seen:
                self.error(
                    doc,
                    doc.value_pos(("routes", i, "number")),
                    f"number {route.number!r} is routed twice (first in route "
                    f"{seen[route.number] + 1})",
                    "keep one route per number",
                )
            else:
                seen[route.number] = i
        if routes.default is not None and routes.default not in self.known and self.complete:
            self.error(
                doc,
                doc.value_pos(("default",)),
                f"default: there is no flow {routes.default!r}",
                f"{_close(routes.default, self.known)}flows: {_listing(self.known)}",
            )

    # ------------------------------------------------------------ graph
    def edges(self, key: NodeKey, *, skip_subflow_next: bool = False) -> Iterator[NodeKey]:
        """Where a node can go next (subflow: into the subflow, and on to `next`)."""
        flow = self.flows[key[0]]
        node = flow.nodes[key[1]]
        for fname, target in m.node_targets(node):
            if isinstance(node, m.SubflowNode) and fname == "next" and skip_subflow_next:
                continue
            dest = self.resolve(flow, target)
            if dest is not None:
                yield dest
        if isinstance(node, m.SubflowNode):
            sub = self.flows.get(node.flow)
            if sub is not None:
                entry = node.node or sub.start
                if entry in sub.nodes:
                    yield (node.flow, entry)

    def check_reachability(self) -> None:
        entries: dict[str, set[str]] = {name: {f.start} for name, f in self.flows.items()}
        for name, flow in self.flows.items():
            for node in flow.nodes.values():
                for _f, target in m.node_targets(node):
                    other, node_id = m.split_target(target)
                    if other and other != name and other in self.flows:
                        entries[other].add(node_id or self.flows[other].start)
                if isinstance(node, m.SubflowNode) and node.flow in self.flows:
                    entries[node.flow].add(node.node or self.flows[node.flow].start)
        for name, flow in self.flows.items():
            if flow.start not in flow.nodes:
                continue  # reported as an error; everything would look unreachable
            seen = {n for n in entries[name] if n in flow.nodes}
            todo = list(seen)
            while todo:
                cur = todo.pop()
                for _field, target in m.node_targets(flow.nodes[cur]):
                    other, node_id = m.split_target(target)
                    local = other is None or other == name
                    if local and node_id in flow.nodes and node_id not in seen:
                        seen.add(node_id)
                        todo.append(node_id)
            doc = self.docs[name]
            for node_id in flow.nodes:
                if node_id not in seen:
                    self.warn(
                        doc,
                        doc.key_pos(("nodes", node_id)),
                        f"node {node_id!r} is never reached from start {flow.start!r}",
                        "make a target point to it, or delete it",
                    )

    def returns_without_input(self) -> dict[NodeKey, bool]:
        """For each subflow entry: can a call get from it to a `return` without waiting?"""
        memo: dict[NodeKey, bool] = {}

        def can_return(entry: NodeKey) -> bool:
            if entry in memo:
                return memo[entry]
            memo[entry] = False  # in progress: recursion counts as not returning
            seen = {entry}
            todo = [entry]
            found = False
            while todo and not found:
                cur = todo.pop()
                node = self.flows[cur[0]].nodes[cur[1]]
                if isinstance(node, m.ReturnNode) or _falls_off(node):
                    found = True
                    break
                if _waits(node):
                    continue
                nexts = list(self.edges(cur, skip_subflow_next=True))
                if isinstance(node, m.SubflowNode) and node.flow in self.flows:
                    sub_entry = (node.flow, node.node or self.flows[node.flow].start)
                    sub_nodes = self.flows[node.flow].nodes
                    if sub_entry[1] in sub_nodes and can_return(sub_entry):
                        nxt = self.resolve(self.flows[cur[0]], node.next)
                        if nxt is not None:
                            nexts.append(nxt)
                    nexts = [n for n in nexts if n != sub_entry]
                for n in nexts:
                    if n not in seen:
                        seen.add(n)
                        todo.append(n)
            memo[entry] = found
            return found

        for flow in self.flows.values():
            for node in flow.nodes.values():
                if isinstance(node, m.SubflowNode) and node.flow in self.flows:
                    entry = (node.flow, node.node or self.flows[node.flow].start)
                    if entry[1] in self.flows[node.flow].nodes:
                        can_return(entry)
        return memo

    def check_loops(self) -> None:
        returns = self.returns_without_input()
        graph: dict[NodeKey, list[NodeKey]] = {}
        for name, flow in self.flows.items():
            for node_id, node in flow.nodes.items():
                key = (name, node_id)
                if _waits(node):
                    continue
                nexts = []
                for dest in self.edges(key, skip_subflow_next=True):
                    nexts.append(dest)
                if isinstance(node, m.SubflowNode) and node.flow in self.flows:
                    entry = (node.flow, node.node or self.flows[node.flow].start)
                    if returns.get(entry, False):
                        nxt = self.resolve(flow, node.next)
                        if nxt is not None:
                            nexts.append(nxt)
                graph[key] = [n for n in nexts if not _waits(self.flows[n[0]].nodes[n[1]])]
        for component in _strongly_connected(graph):
            if len(component) == 1:
                only = next(iter(component))
                if only not in graph.get(only, []):
                    continue
            first = min(component, key=self._node_order)
            cycle = _cycle_from(first, graph, component)
            shown = " -> ".join(n if f == first[0] else f"{f}:{n}" for f, n in cycle)
            doc = self.docs[first[0]]
            self.error(
                doc,
                doc.key_pos(("nodes", first[1])),
                f"loop with no caller input: {shown}",
                "put a menu or gather in the loop (or a say/play with barge_in: true), "
                "or end it with a hangup/transfer",
            )

    def _node_order(self, key: NodeKey) -> tuple[str, Pos]:
        return str(self.docs[key[0]].file), self.docs[key[0]].key_pos(("nodes", key[1]))

    def check_returns(self) -> None:
        called = {
            node.flow
            for flow in self.flows.values()
            for node in flow.nodes.values()
            if isinstance(node, m.SubflowNode)
        }
        for name, doc, pos, where, variable in self.gathers_without_next:
            if name not in called:
                self.warn(
                    doc,
                    pos,
                    f"{where}: no `next:`: the call hangs up once the digits are collected",
                    f"add `next: <node>` (the node that uses {variable!r})",
                )
        for name, flow in self.flows.items():
            if name in called:
                continue
            doc = self.docs[name]
            for node_id, node in flow.nodes.items():
                if isinstance(node, m.ReturnNode):
                    self.warn(
                        doc,
                        doc.key_pos(("nodes", node_id)),
                        f"node {node_id!r} returns, but no subflow node runs flow {name!r}",
                        "use a hangup (or goto) here, or run this flow from a subflow node",
                    )

    def check_unused_flows(self) -> None:
        if self.routes is None:
            return
        used = {r.flow for r in self.routes.routes}
        if self.routes.default:
            used.add(self.routes.default)
        for name, flow in self.flows.items():
            for node in flow.nodes.values():
                for _f, target in m.node_targets(node):
                    other, _n = m.split_target(target)
                    if other and other != name:
                        used.add(other)
                if isinstance(node, m.SubflowNode) and node.flow != name:
                    used.add(node.flow)
        for name in self.flows:
            if name not in used:
                doc = self.docs[name]
                self.warn(
                    doc,
                    doc.value_pos(("flow",)),
                    f"flow {name!r} is not used: no route and no other flow goes to it",
                    "add a route in routes.yaml, or a `goto`/subflow to it",
                )

    def check_variables(self) -> None:
        for doc, pos, var, where, source in self.used_vars:
            if var in self.set_vars:
                continue
            if source.strip() == var and where.endswith("(set)"):
                hint = (
                    f"a set value is an expression: for the text {var!r} write \"'{var}'\"; "
                    "else set the variable somewhere"
                )
            else:
                hint = (
                    "set it (a set node, a gather/lookup `variable:`, or the flow's "
                    f"`variables:`); built in: {', '.join(sorted(BUILTIN_VARIABLES))}"
                )
            self.warn(doc, pos, f"{where}: variable {var!r} is never set", hint)


def _field_name(path: DataPath) -> str:
    out = ""
    for item in path[2:]:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
    return out


def _expr_hint(reason: str, kind: str) -> str:
    if "not allowed" in reason:
        return "expressions may read variables and their public fields only"
    if "No filter named" in reason or "No test named" in reason:
        return "see the Jinja built-in filters and tests, plus spell, only_digits, mask"
    if kind == "template":
        return "Jinja template syntax: {{ variable }}, {% if cond %}...{% endif %}"
    return "Jinja expression syntax, e.g. caller.startswith('+81') and digits == '1'"


def _expr_pos(doc: YamlDoc, value_pos: Pos, line: int | None, column: int | None) -> Pos:
    """The file position of (line, column) inside the YAML scalar at ``value_pos``."""
    if line is None or column is None:
        return value_pos
    vline, vcol = value_pos
    text = doc.line_text(vline)
    first = text[vcol - 1 : vcol] if 0 < vcol <= len(text) else ""
    if first in ("|", ">"):
        target = vline + line
        content = doc.line_text(target)
        indent = len(content) - len(content.lstrip(" "))
        return target, indent + column
    shift = 1 if first in ("'", '"') else 0
    if line == 1:
        return vline, vcol + shift + column - 1
    target = vline + line - 1
    content = doc.line_text(target)
    indent = len(content) - len(content.lstrip(" "))
    return target, indent + column


def _strongly_connected(graph: dict[NodeKey, list[NodeKey]]) -> list[set[NodeKey]]:
    """Tarjan's algorithm, iterative (a 500-node flow must not hit the recursion limit)."""
    index: dict[NodeKey, int] = {}
    low: dict[NodeKey, int] = {}
    on_stack: set[NodeKey] = set()
    stack: list[NodeKey] = []
    out: list[set[NodeKey]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[NodeKey, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = graph.get(node, [])
            recurse = False
            while i < len(succ):
                nxt = succ[i]
                i += 1
                if nxt not in index:
                    work.append((node, i))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                comp: set[NodeKey] = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == node:
                        break
                out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def _cycle_from(
    start: NodeKey, graph: dict[NodeKey, list[NodeKey]], component: set[NodeKey]
) -> list[NodeKey]:
    """A shortest cycle through ``start`` inside ``component`` (BFS), start repeated at the end."""
    parent: dict[NodeKey, NodeKey] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in graph.get(node, []):
                if nxt not in component:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if nxt not in parent:
                    parent[nxt] = node
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return [start, start]


def validate(
    folder: Path,
    parsed: list[Any],
    routes: m.Routes | None,
    routes_doc: YamlDoc | None,
    queues: frozenset[str] | None,
    sounds: SoundLibrary | None,
    *,
    complete: bool = True,
) -> ValidationResult:
    """Run every check over the parsed flows (``ivr.loader.ParsedFlow``);
    ``complete`` is False when some flow file did not parse far enough to
    name its flow (then unknown flow names are not reported)."""
    return _Checker(folder, parsed, routes, routes_doc, queues, sounds, complete).run()
