"""Flow diagrams: a flow (or a whole flows folder) as a Graphviz graph.

:func:`flow_graph` and :func:`flowset_graph` turn :mod:`ivr.model` objects
into a :class:`graphviz.Digraph` without any I/O (its ``.source`` is the DOT
text); :func:`render` runs Graphviz's ``dot`` to make SVG or PNG bytes.
``ivr graph`` is the command-line front end.

What the drawing shows

* one box per node, shaped and coloured by type (:data:`NODE_STYLES`), with
  the node id, its type and a short summary (the queue and its skills, the
  prompt's first words, the condition...);
* one edge per branch a node can take (:func:`ivr.model.node_targets`),
  labelled with the digit for menu options (``1``, ``*``) and with the branch
  name otherwise (``no_input``, ``found``, ``overflow``, ``cases[0]``...);
  ``next`` edges are plain arrows; failure branches are red, a menu's
  ``repeat`` digit is a loop back to the menu;
* a subflow's call as a dashed ``calls`` edge into the other flow;
* targets in other flows, when only one flow is drawn, as dashed nodes in a
  cluster named after that flow; targets that do not exist in red;
* nodes that no route, start or branch leads to with a dashed grey outline.

Graph node names are ``flow/node`` (flow and node ids cannot hold ``/``), so
nodes of different flows never collide and no name is mistaken for a DOT
``node:port``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import graphviz

from ivr.model import (
    Flow,
    GatherNode,
    GotoNode,
    HoursNode,
    IfNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    Node,
    PlayNode,
    QueueNode,
    RecordingNode,
    Routes,
    SayNode,
    SetNode,
    SubflowNode,
    SwitchNode,
    TransferNode,
    VoicemailNode,
    node_targets,
    split_target,
)
from ivr.prompts import spec_parts

__all__ = [
    "FAILURE_BRANCHES",
    "FORMATS",
    "NODE_STYLES",
    "GraphError",
    "edge_label",
    "flow_graph",
    "flowset_graph",
    "graph_name",
    "render",
]

FORMATS = ("svg", "png", "dot")
"""Output formats of :func:`render` (``dot`` is the DOT text itself)."""


@dataclass(frozen=True)
class NodeStyle:
    """How one node type is drawn."""

    shape: str
    fill: str
    style: str = "filled"
    peripheries: int = 1


NODE_STYLES: dict[str, NodeStyle] = {
    # the caller hears something
    "say": NodeStyle("box", "#dbeafe", "rounded,filled"),
    "play": NodeStyle("note", "#dbeafe"),
    # the caller presses keys
    "menu": NodeStyle("box", "#fde68a", "rounded,filled,bold"),
    "gather": NodeStyle("parallelogram", "#fde68a"),
    "language": NodeStyle("hexagon", "#fde68a"),
    # decisions and data
    "hours": NodeStyle("hexagon", "#ede9fe"),
    "if": NodeStyle("diamond", "#ede9fe"),
    "switch": NodeStyle("diamond", "#ede9fe", "filled", 2),
    "set": NodeStyle("box", "#f3f4f6"),
    "lookup": NodeStyle("cylinder", "#d1fae5"),
    # where the call goes
    "queue": NodeStyle("tab", "#bbf7d0"),
    "transfer": NodeStyle("component", "#bbf7d0"),
    "voicemail": NodeStyle("folder", "#fce7f3"),
    "recording": NodeStyle("note", "#fce7f3"),
    "goto": NodeStyle("rarrow", "#e5e7eb"),
    "subflow": NodeStyle("box", "#e5e7eb", "filled", 2),
    "return": NodeStyle("invhouse", "#fecaca"),
    "hangup": NodeStyle("doubleoctagon", "#fecaca"),
}

FAILURE_BRANCHES = frozenset({"no_input", "invalid", "error", "failed", "not_found"})
"""Branches drawn in red (the caller or a service did not do what was hoped)."""
_WARN_BRANCHES = frozenset({"overflow", "closed", "holiday"})

_SUMMARY_CHARS = 42


class GraphError(RuntimeError):
    """Graphviz could not render; the message says why and how to fix it."""


def graph_name(flow: str, node: str) -> str:
    """The DOT node name of ``node`` in ``flow``."""
    return f"{flow}/{node}"


def edge_label(branch: str) -> str:
    """The label of a branch: the digit for ``options.D``, else the branch name."""
    if branch.startswith("options."):
        return branch.split(".", 1)[1]
    return "" if branch == "next" else branch


def _short(text: str, limit: int = _SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _first_text(spec: object, language: str) -> str:
    """The first words a prompt says or plays (the flow's language first)."""
    try:
        parts = spec_parts(spec)
    except (TypeError, ValueError):
        return ""
    for part in parts:
        if part.say is not None:
            if isinstance(part.say, str):
                return part.say
            return part.say.get(language) or next(iter(part.say.values()), "")
        if part.play is not None:
            return part.play
    return ""


def _skills(skills: Mapping[str, int]) -> str:
    return ", ".join(f"{name}\u2265{level}" for name, level in skills.items())


def _summary(node: Node, language: str) -> list[str]:
    """Up to two short lines describing what the node does."""
    if isinstance(node, SayNode):
        text = node.text if isinstance(node.text, str) else _first_text({**node.text}, language)
        return [f"\u201c{_short(text)}\u201d"]
    if isinstance(node, PlayNode):
        files = [node.audio] if isinstance(node.audio, str) else node.audio
        return [_short(", ".join(files))]
    if isinstance(node, MenuNode):
        lines = [f"\u201c{_short(_first_text(node.prompt, language))}\u201d"]
        lines.append(f"{node.timeout:g} s, {node.retries} retries")
        return lines
    if isinstance(node, GatherNode):
        size = (
            f"{node.min_length} digits"
            if node.min_length == node.max_length
            else f"{node.min_length}-{node.max_length} digits"
        )
        end = f", ends with {node.terminator}" if node.terminator else ""
        return [f"{node.variable}: {size}{end}"]
    if isinstance(node, LanguageNode):
        return [", ".join(f"{d}: {code}" for d, code in node.options.items())]
    if isinstance(node, HoursNode):
        return [node.timezone, *_week(node.schedule)]
    if isinstance(node, IfNode):
        return [_short(node.condition)]
    if isinstance(node, SwitchNode):
        return [f"{len(node.cases)} cases"]
    if isinstance(node, SetNode):
        return [_short(", ".join(node.values))]
    if isinstance(node, LookupNode):
        where = node.url if node.source == "http" and node.url else node.source
        return [_short(f"{where}: {node.key} \u2192 {node.variable}")]
    if isinstance(node, QueueNode):
        lines = [f"queue {node.queue}" + (f", priority {node.priority}" if node.priority else "")]
        if node.skills:
            lines.append(_short(_skills(node.skills)))
        return lines
    if isinstance(node, TransferNode):
        return [f"\u2192 {_short(node.to)}"]
    if isinstance(node, VoicemailNode):
        return [f"mailbox {node.mailbox}"]
    if isinstance(node, RecordingNode):
        return [f"{node.action} recording ({_short(node.reason)})"]
    if isinstance(node, GotoNode):
        return [node.target]
    if isinstance(node, SubflowNode):
        return [f"{node.flow}:{node.node or ''}"]
    return []


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _week(schedule: Mapping[Any, list[str]]) -> list[str]:
    """Opening hours with runs of days alike folded: ``mon-fri 08:00-20:00``."""
    lines: list[str] = []
    run: list[str] = []
    spans: list[str] | None = None
    for day in (*_DAYS, None):
        today = schedule.get(day) if day is not None else None
        if run and (today != spans or day is None):
            days = run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}"
            lines.append(f"{days} {' '.join(spans or [])}")
            run = []
        if day is not None and today:
            run.append(day)
            spans = today
    return lines or ["always closed"]


def _label(node_id: str, node: Node, language: str) -> str:
    lines = [node_id, f"[{node.type}]", *_summary(node, language)]
    return "\\n".join(line.replace("\\", "\\\\") for line in lines)


def _branches(flow: Flow, node: Node) -> list[tuple[str, str, str]]:
    """(branch, target flow, target node) for every way out of ``node``."""
    out: list[tuple[str, str, str]] = []
    for branch, target in node_targets(node):
        out.append((branch, *_resolve(flow, target)))
    return out


def _resolve(flow: Flow, target: str) -> tuple[str, str]:
    flow_name, node_id = split_target(target)
    return flow_name or flow.flow, node_id or ""


def _entries(flows: Mapping[str, Flow], routes: Routes | None) -> set[tuple[str, str]]:
    """Nodes a call can start at: the start of every routed flow (of every
    flow when no routes are known)."""
    names: Iterable[str]
    if routes is None:
        names = flows
    else:
        names = [r.flow for r in routes.routes] + ([routes.default] if routes.default else [])
    return {(n, flows[n].start) for n in names if n in flows}


def _reachable(flows: Mapping[str, Flow], entries: set[tuple[str, str]]) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    todo = list(entries)
    while todo:
        flow_name, node_id = todo.pop()
        flow = flows.get(flow_name)
        if flow is None:
            continue
        node_id = node_id or flow.start
        if (flow_name, node_id) in seen or node_id not in flow.nodes:
            continue
        seen.add((flow_name, node_id))
        node = flow.nodes[node_id]
        for _, tf, tn in _branches(flow, node):
            todo.append((tf, tn))
        if isinstance(node, SubflowNode):
            todo.append((node.flow, node.node or ""))
    return seen


class _Drawing:
    """Builds one Digraph: the drawn flows as clusters or as the whole graph."""

    def __init__(self, title: str, flows: Mapping[str, Flow], drawn: list[str]) -> None:
        self.flows = flows
        self.drawn = drawn
        self.graph = graphviz.Digraph(name=title)
        self.graph.attr(
            label=title.replace("\\", "\\\\"),
            labelloc="t",
            fontname="Helvetica",
            fontsize="16",
            rankdir="TB",
            nodesep="0.35",
            ranksep="0.45",
        )
        self.graph.attr("node", fontname="Helvetica", fontsize="10", margin="0.12,0.06")
        self.graph.attr("edge", fontname="Helvetica", fontsize="9")
        self.external: dict[str, dict[str, str]] = {}  # flow -> graph name -> label

    def draw(self, reachable: set[tuple[str, str]] | None) -> graphviz.Digraph:
        clustered = len(self.drawn) > 1
        for name in self.drawn:
            flow = self.flows[name]
            if clustered:
                with self.graph.subgraph(name=f"cluster_{name}") as sub:
                    sub.attr(label=f"flow {name}", style="rounded", color="#9ca3af", fontsize="13")
                    self._nodes(sub, flow, reachable)
            else:
                self._nodes(self.graph, flow, reachable)
        for name in self.drawn:
            self._edges(self.flows[name])
        self._external()
        return self.graph

    def _nodes(
        self, graph: graphviz.Digraph, flow: Flow, reachable: set[tuple[str, str]] | None
    ) -> None:
        entry = graph_name(flow.flow, "(start)")
        graph.node(entry, label="", shape="circle", style="filled", fillcolor="black",
                   width="0.18", height="0.18")  # fmt: skip
        for node_id, node in flow.nodes.items():
            style = NODE_STYLES[node.type]
            attrs = {
                "shape": style.shape,
                "style": style.style,
                "fillcolor": style.fill,
                "tooltip": _short(node.description or f"{node_id} ({node.type})", 200),
            }
            if style.peripheries != 1:
                attrs["peripheries"] = str(style.peripheries)
            if reachable is not None and (flow.flow, node_id) not in reachable:
                attrs["style"] = style.style.replace("filled", "dashed,filled")
                attrs["color"] = "#9ca3af"
                attrs["fontcolor"] = "#6b7280"
                attrs["tooltip"] = f"{node_id}: no route, start or branch leads here"
            graph.node(graph_name(flow.flow, node_id), label=_label(node_id, node, flow.language),
                       **attrs)  # fmt: skip

    def _target(self, flow_name: str, node_id: str) -> str:
        """The graph name of a target, adding an external node when needed."""
        target_flow = self.flows.get(flow_name)
        node_id = node_id or (target_flow.start if target_flow is not None else "")
        name = graph_name(flow_name, node_id or "(start)")
        if flow_name in self.drawn and target_flow is not None and node_id in target_flow.nodes:
            return name
        if target_flow is None:
            label = f"{flow_name}:{node_id}\\n(no such flow)"
        elif node_id not in target_flow.nodes:
            label = f"{flow_name}:{node_id}\\n(no such node)"
        else:
            label = f"{flow_name}:{node_id}\\n[{target_flow.nodes[node_id].type}]"
        self.external.setdefault(flow_name, {})[name] = label
        return name

    def _edges(self, flow: Flow) -> None:
        g = self.graph
        g.edge(graph_name(flow.flow, "(start)"), graph_name(flow.flow, flow.start))
        for node_id, node in flow.nodes.items():
            src = graph_name(flow.flow, node_id)
            for branch, tf, tn in _branches(flow, node):
                attrs: dict[str, str] = {}
                label = edge_label(branch)
                if label:
                    attrs["label"] = label
                if branch in FAILURE_BRANCHES:
                    attrs.update(color="#c62828", fontcolor="#c62828")
                elif branch in _WARN_BRANCHES:
                    attrs.update(color="#b45309", fontcolor="#b45309")
                if tf != flow.flow:
                    attrs["style"] = "dashed"
                g.edge(src, self._target(tf, tn), **attrs)
            if isinstance(node, MenuNode) and node.repeat is not None:
                g.edge(src, src, label=f"{node.repeat} repeat", color="#6b7280",
                       fontcolor="#6b7280")  # fmt: skip
            if isinstance(node, SubflowNode):
                g.edge(src, self._target(node.flow, node.node or ""), label="calls",
                       style="dashed")  # fmt: skip

    def _external(self) -> None:
        for flow_name, nodes in sorted(self.external.items()):
            missing = flow_name not in self.flows
            with self.graph.subgraph(name=f"cluster_ext_{flow_name}") as sub:
                sub.attr(
                    label=f"flow {flow_name}" + (" (missing)" if missing else ""),
                    style="dashed,rounded",
                    color="#c62828" if missing else "#9ca3af",
                    fontsize="12",
                )
                for name, label in sorted(nodes.items()):
                    bad = missing or label.endswith("(no such node)")
                    sub.node(name, label=label, shape="box", style="dashed,rounded",
                             color="#c62828" if bad else "#6b7280",
                             fontcolor="#c62828" if bad else "#374151")  # fmt: skip


def flow_graph(
    flow: Flow, *, flows: Mapping[str, Flow] | None = None, routes: Routes | None = None
) -> graphviz.Digraph:
    """One flow as a graph; targets in other flows as dashed external nodes.

    ``flows`` (the rest of the flow set) lets external targets show their
    real node and type and lets unreachable nodes be found across flows
    (with ``routes``: only routed flows are entry points).
    """
    everything = dict(flows or {})
    everything[flow.flow] = flow
    reachable = None
    if flows is not None:
        reachable = _reachable(everything, _entries(everything, routes) | {(flow.flow, flow.start)})
    else:
        reachable = _reachable(everything, {(flow.flow, flow.start)})
    title = flow.flow + (f": {flow.description}" if flow.description else "")
    return _Drawing(title, everything, [flow.flow]).draw(reachable)


def flowset_graph(
    flows: Mapping[str, Flow], *, routes: Routes | None = None, title: str = "flows"
) -> graphviz.Digraph:
    """Every flow of a folder, one cluster per flow, with the edges between them."""
    if not flows:
        raise ValueError("no flows to draw")
    reachable = _reachable(flows, _entries(flows, routes))
    if routes is not None:
        lines = [f"{r.number} \u2192 {r.flow}" for r in routes.routes]
        if routes.default:
            lines.append(f"default \u2192 {routes.default}")
        title = f"{title} ({'; '.join(lines)})" if lines else title
    return _Drawing(title, flows, sorted(flows)).draw(reachable)


def render(graph: graphviz.Digraph | str, fmt: str) -> bytes:
    """The drawing as ``fmt`` bytes (``svg``, ``png``, or ``dot`` for the DOT text).

    Runs Graphviz's ``dot``; raises :class:`GraphError` when it is missing or fails.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    source = graph if isinstance(graph, str) else graph.source
    if fmt == "dot":
        return source.encode("utf-8")
    try:
        return graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphError(
            "Graphviz's `dot` program is not installed: install the Debian package graphviz"
            " (scripts/bootstrap.sh does), or write DOT text with --format dot"
        ) from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip()
        raise GraphError(f"dot failed ({exc.returncode}): {detail[-500:]}") from None
