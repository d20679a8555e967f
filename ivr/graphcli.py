"""``ivr graph``: read flows from disk, draw them (:mod:`ivr.graph`), render.

A flow file is drawn in the context of its folder (other flows resolve, so
targets into them show their real node). A folder draws every flow, or one
with ``flow_name``. A folder with validation errors is still drawn as far as
its files parse as flows (the errors are printed as a warning first), so a
diagram can help find the mistake; a file that does not parse as a flow at
all is an error listing what is wrong where.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import graphviz
from pydantic import ValidationError

from ivr.diagnostics import Diagnostic, errors
from ivr.graph import FORMATS, GraphError, flow_graph, flowset_graph, render
from ivr.loader import NOT_FLOWS, check_file, check_flowset, flow_files
from ivr.model import Flow, Routes
from ivr.modelerrors import model_diagnostics
from ivr.yamldoc import YamlError, load_yaml

__all__ = ["build_graph", "draw", "output_format"]

Warn = Callable[[str], None]


def output_format(fmt: str | None, output: Path | None) -> str:
    """The format asked for, else the one the output suffix names, else svg."""
    if fmt is not None:
        return fmt
    if output is not None:
        suffix = output.suffix.lower().lstrip(".")
        if suffix == "gv":
            return "dot"
        if suffix in FORMATS:
            return suffix
    return "svg"


def _parse(path: Path) -> tuple[Flow | None, list[Diagnostic]]:
    """One file as a Flow, without the folder's checks."""
    try:
        doc = load_yaml(path)
    except YamlError as exc:
        return None, [exc.diagnostic]
    try:
        return Flow.model_validate(doc.data), []
    except ValidationError as exc:
        return None, model_diagnostics(exc, doc, Flow)


def _routes(folder: Path) -> Routes | None:
    try:
        return Routes.model_validate(load_yaml(folder / "routes.yaml").data or {})
    except (OSError, YamlError, ValidationError):
        return None


def _report(diags: list[Diagnostic], warn: Warn) -> None:
    errs = errors(diags)
    if errs:
        warn(f"{len(errs)} error(s) in the flows; drawing what parses:")
        for d in errs:
            warn(f"  {d}")


def build_graph(path: Path, *, flow_name: str | None = None, warn: Warn) -> graphviz.Digraph:
    """The diagram of a flow file or a flows folder (see the module docstring).

    Raises ValueError (with file:line:column diagnostics) when nothing can be drawn.
    """
    path = Path(path)
    if path.is_dir():
        flowset, diags = check_flowset(path)
        routes: Routes | None
        if flowset is not None:
            flows, routes = dict(flowset.flows), flowset.routes
        else:
            _report(diags, warn)
            flows = {}
            for file in flow_files(path):
                flow, _ = _parse(file)
                if flow is not None:
                    flows[flow.flow] = flow
            routes = _routes(path)
            if not flows:
                raise ValueError(
                    "\n".join([f"{path}: no flow file parses", *map(str, errors(diags))])
                )
        if flow_name is not None:
            if flow_name not in flows:
                known = ", ".join(sorted(flows)) or "none"
                raise ValueError(f"{path}: no flow named {flow_name!r} (flows: {known})")
            return flow_graph(flows[flow_name], flows=flows, routes=routes)
        return flowset_graph(flows, routes=routes, title=str(path))

    if path.name in NOT_FLOWS or path.name.endswith(".test.yaml"):
        raise ValueError(f"{path}: not a flow file; pass a flow file or the flows folder")
    flowset, diags = check_file(path)
    target = path.resolve()
    if flowset is not None:
        for name, file in flowset.files.items():
            if Path(file).resolve() == target:
                return flow_graph(flowset.flows[name], flows=flowset.flows, routes=flowset.routes)
    flow, parse_diags = _parse(path)
    if flow is None:
        lines = [str(d) for d in errors(parse_diags or diags)] or [f"{path}: not a flow"]
        raise ValueError("\n".join(lines))
    _report(diags, warn)
    siblings: dict[str, Flow] = {}
    for file in flow_files(path.parent):
        if file.resolve() != target:
            other, _ = _parse(file)
            if other is not None:
                siblings[other.flow] = other
    return flow_graph(flow, flows=siblings, routes=_routes(path.parent))


def draw(
    path: Path,
    *,
    fmt: str | None,
    output: Path | None,
    flow_name: str | None = None,
    warn: Warn,
) -> bytes:
    """The rendered diagram of ``path`` (format from ``fmt`` / ``output``'s suffix).

    Raises ValueError for flows that cannot be drawn or when Graphviz fails.
    """
    kind = output_format(fmt, output)
    graph = build_graph(path, flow_name=flow_name, warn=warn)
    try:
        return render(graph, kind)
    except GraphError as exc:
        raise ValueError(str(exc)) from None
