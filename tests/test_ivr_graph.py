"""Flow diagrams (ivr.graph, ``ivr graph``): DOT text from the model, real ``dot``.

The DOT text is parsed back (nodes, edges and their attributes) and compared
with what the flow says; SVG and PNG are made by Graphviz's real ``dot`` and
checked as documents; the command runs through click's CliRunner.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ivr.cli import cli
from ivr.graph import (
    FAILURE_BRANCHES,
    NODE_STYLES,
    GraphError,
    edge_label,
    flow_graph,
    flowset_graph,
    graph_name,
    render,
)
from ivr.loader import load_flowset
from ivr.model import Flow, MenuNode, SubflowNode, node_targets, split_target

FLOWS = Path(__file__).resolve().parent.parent / "flows"
SVG = "{http://www.w3.org/2000/svg}"

_NODE = re.compile(r'^\t"([^"]+)" \[(.*)\]$', re.S)
_EDGE = re.compile(r'^\t"([^"]+)" -> "([^"]+)"(?: \[(.*)\])?$', re.S)
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s\]]+)')


def _attrs(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in _ATTR.findall(text or ""):
        out[key] = value[1:-1] if value.startswith('"') else value
    return out


def _statements(source: str) -> list[str]:
    """Top-level statements of graphviz's output: one per line, except that a
    quoted label may hold newlines (we never emit any, checked below)."""
    return [line for line in source.split("\n") if line.startswith("\t")]


def parse_dot(
    source: str,
) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, dict[str, str]]]]:
    """(nodes name -> attributes, edges (src, dst, attributes)) of a DOT text."""
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []
    for line in _statements(source):
        line = line.strip("\n")
        stripped = "\t" + line.lstrip("\t")
        if m := _EDGE.match(stripped):
            edges.append((m.group(1), m.group(2), _attrs(m.group(3))))
        elif m := _NODE.match(stripped):
            nodes[m.group(1)] = _attrs(m.group(2))
    return nodes, edges


def _flow(data: Mapping[str, object]) -> Flow:
    return Flow.model_validate(data)


SMALL: dict[str, Any] = {
    "flow": "front",
    "start": "hello",
    "nodes": {
        "hello": {"type": "say", "text": "Hi", "next": "menu"},
        "menu": {
            "type": "menu",
            "prompt": "Press 1 or 2",
            "options": {"1": "ask", "2": "other:", "#": "help:deep"},
            "repeat": "*",
            "no_input": "bye",
            "invalid": "nowhere",
        },
        "ask": {
            "type": "gather",
            "prompt": "Account?",
            "variable": "account",
            "next": "find",
            "no_input": "bye",
        },
        "find": {
            "type": "lookup",
            "source": "history",
            "key": "account",
            "found": "call_sub",
            "not_found": "bye",
        },
        "call_sub": {"type": "subflow", "flow": "other", "node": "inner", "next": "bye"},
        "bye": {"type": "hangup", "prompt": "Bye"},
        "orphan": {"type": "say", "text": "never heard", "next": "bye"},
    },
}
OTHER: dict[str, Any] = {
    "flow": "other",
    "start": "top",
    "nodes": {
        "top": {"type": "say", "text": "Other", "next": "inner"},
        "inner": {"type": "return"},
    },
}


def test_small_flow_nodes_and_labelled_edges() -> None:
    front, other = _flow(SMALL), _flow(OTHER)
    source = flow_graph(front, flows={"other": other}).source
    nodes, edges = parse_dot(source)
    for node_id in SMALL["nodes"]:
        assert f"front/{node_id}" in nodes, node_id
    got = {(s, d, a.get("label", "")) for s, d, a in edges}
    expected = {
        ("front/(start)", "front/hello", ""),
        ("front/hello", "front/menu", ""),
        ("front/menu", "front/ask", "1"),
        ("front/menu", "other/top", "2"),  # 'other:' is its start node
        ("front/menu", "help/deep", "#"),
        ("front/menu", "front/bye", "no_input"),
        ("front/menu", "front/nowhere", "invalid"),
        ("front/menu", "front/menu", "* repeat"),
        ("front/ask", "front/find", ""),
        ("front/ask", "front/bye", "no_input"),
        ("front/find", "front/call_sub", "found"),
        ("front/find", "front/bye", "not_found"),
        ("front/call_sub", "front/bye", ""),
        ("front/call_sub", "other/inner", "calls"),
        ("front/orphan", "front/bye", ""),
    }
    assert got == expected
    by_pair = {(s, d, a.get("label", "")): a for s, d, a in edges}
    # other-flow targets: dashed edges to dashed nodes in a cluster per flow
    assert by_pair[("front/menu", "other/top", "2")]["style"] == "dashed"
    assert by_pair[("front/call_sub", "other/inner", "calls")]["style"] == "dashed"
    assert "subgraph cluster_ext_other {" in source
    assert "subgraph cluster_ext_help {" in source
    assert nodes["other/top"]["label"] == "other:top\\n[say]"
    assert "dashed" in nodes["other/top"]["style"]
    # a flow that does not exist, a node that does not exist: red
    assert nodes["help/deep"]["label"] == "help:deep\\n(no such flow)"
    assert nodes["help/deep"]["color"] == "#c62828"
    assert nodes["front/nowhere"]["label"] == "front:nowhere\\n(no such node)"
    # failure branches are red
    assert by_pair[("front/menu", "front/bye", "no_input")]["color"] == "#c62828"
    # the node nothing leads to is drawn dashed and grey
    assert "dashed" in nodes["front/orphan"]["style"]
    assert "dashed" not in nodes["front/hello"]["style"]
    # shapes and colours by type
    assert nodes["front/find"]["shape"] == NODE_STYLES["lookup"].shape == "cylinder"
    assert nodes["front/menu"]["fillcolor"] == NODE_STYLES["menu"].fill
    assert nodes["front/bye"]["shape"] == "doubleoctagon"
    assert nodes["front/menu"]["label"].startswith("menu\\n[menu]\\n")
    # no label spans lines: every line of the DOT text closes the quotes it opens
    assert all(len(re.findall(r'(?<!\\)"', line)) % 2 == 0 for line in source.split("\n"))


def test_shipped_flows_every_node_and_branch_is_drawn() -> None:
    flowset = load_flowset(FLOWS)
    for flow in flowset.flows.values():
        source = flow_graph(flow, flows=flowset.flows, routes=flowset.routes).source
        nodes, edges = parse_dot(source)
        edge_set = {(s, d, a.get("label", "")) for s, d, a in edges}
        for node_id, node in flow.nodes.items():
            name = graph_name(flow.flow, node_id)
            assert name in nodes, name
            assert nodes[name]["shape"] == NODE_STYLES[node.type].shape
            assert nodes[name]["label"].startswith(f"{node_id}\\n[{node.type}]")
            # nothing in the shipped flows is unreachable
            assert "dashed" not in nodes[name]["style"], name
            for branch, target in node_targets(node):
                tf, tn = split_target(target)
                tflow = flowset.flows[tf or flow.flow]
                dst = graph_name(tflow.flow, tn or tflow.start)
                assert (name, dst, edge_label(branch)) in edge_set, (name, branch, target)
                if branch in FAILURE_BRANCHES:
                    label = edge_label(branch)
                    edge = next(
                        a for s, d, a in edges if (s, d, a.get("label")) == (name, dst, label)
                    )
                    assert edge["color"] == "#c62828"
            if isinstance(node, MenuNode) and node.repeat:
                assert (name, name, f"{node.repeat} repeat") in edge_set
            assert not isinstance(node, SubflowNode)
    # main's option 2 leads into support's first node, drawn outside main
    main = flow_graph(flowset.flows["main"], flows=flowset.flows).source
    nodes, edges = parse_dot(main)
    assert ("main/main_menu", "support/support_hours", "2") in {
        (s, d, a.get("label", "")) for s, d, a in edges
    }
    assert nodes["support/support_hours"]["label"] == "support:support_hours\\n[hours]"


def test_flowset_graph_clusters_every_flow() -> None:
    flowset = load_flowset(FLOWS)
    source = flowset_graph(flowset.flows, routes=flowset.routes).source
    nodes, edges = parse_dot(source)
    for flow in flowset.flows.values():
        assert f"subgraph cluster_{flow.flow} {{" in source
        for node_id in flow.nodes:
            assert graph_name(flow.flow, node_id) in nodes
    assert "cluster_ext_" not in source  # every target is drawn in its own cluster
    assert "5000 → main; 5001 → support; default → main" in source
    pairs = {(s, d, a.get("label", "")) for s, d, a in edges}
    assert ("support/support_menu", "main/main_menu", "9") in pairs
    assert ("support/support_busy", "main/operator", "0") in pairs


def _svg_texts(svg: bytes) -> tuple[ET.Element, list[str], list[str]]:
    root = ET.fromstring(svg)
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    return root, titles, texts


def test_render_svg_with_real_dot_names_every_node() -> None:
    flowset = load_flowset(FLOWS)
    main = flowset.flows["main"]
    svg = render(flow_graph(main, flows=flowset.flows), "svg")
    root, titles, texts = _svg_texts(svg)
    assert root.tag == f"{SVG}svg"
    groups = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert len(groups) == len(main.nodes) + 2  # + the start dot + support's start node
    for node_id in main.nodes:
        assert f"main/{node_id}" in titles
        assert node_id in texts
    assert "main/main_menu&#45;&gt;support/support_hours" in svg.decode() or (
        "main/main_menu->support/support_hours" in titles
    )
    for label in ("1", "3", "0", "no_input", "invalid", "found", "not_found", "overflow"):
        assert label in texts, label


def test_render_png_and_dot() -> None:
    graph = flow_graph(_flow(OTHER))
    png = render(graph, "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 50 and height > 100
    assert render(graph, "dot").decode() == graph.source
    with pytest.raises(ValueError, match="format 'jpeg' is not one of svg, png, dot"):
        render(graph, "jpeg")


def test_render_without_dot_says_how_to_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no `dot` on the PATH
    with pytest.raises(GraphError, match="install the Debian package graphviz"):
        render(flow_graph(_flow(OTHER)), "svg")


# ------------------------------------------------------------------- CLI
def test_cli_writes_svg_png_and_dot(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "main.svg"
    res = runner.invoke(cli, ["graph", str(FLOWS / "main.yaml"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    root, titles, _ = _svg_texts(out.read_bytes())
    assert root.tag == f"{SVG}svg" and "main/main_menu" in titles
    png = tmp_path / "all.png"
    res = runner.invoke(cli, ["graph", str(FLOWS), "-o", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes().startswith(b"\x89PNG")
    res = runner.invoke(cli, ["graph", str(FLOWS), "--flow", "support", "--format", "dot"])
    assert res.exit_code == 0, res.output
    nodes, _ = parse_dot(res.output)
    assert "support/support_menu" in nodes and "main/main_menu" in nodes
    assert "main/welcome" not in nodes
    res = runner.invoke(cli, ["graph", str(FLOWS), "--flow", "nope"])
    assert res.exit_code == 1
    assert "no flow named 'nope' (flows: main, support)" in res.output


def test_cli_broken_folder_draws_what_parses_and_refuses_non_flows(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    shutil.copytree(FLOWS, folder, ignore=shutil.ignore_patterns("tests", "prompts"))
    text = (folder / "main.yaml").read_text()
    (folder / "main.yaml").write_text(text.replace('"3": sales', '"3": salse', 1))
    runner = CliRunner()
    res = runner.invoke(cli, ["graph", str(folder / "main.yaml"), "--format", "dot"])
    assert res.exit_code == 0, res.output
    assert "error(s) in the flows; drawing what parses" in res.output
    assert re.search(r"main\.yaml:\d+:\d+: error: .*salse", res.output)
    nodes, edges = parse_dot(res.output[res.output.index("digraph") :])
    assert nodes["main/salse"]["label"] == "main:salse\\n(no such node)"
    assert ("main/main_menu", "main/salse") in {(s, d) for s, d, _ in edges}

    (folder / "support.yaml").write_text("flow: support\nstart: a\nnodes:\n  a: {type: sing}\n")
    res = runner.invoke(cli, ["graph", str(folder / "support.yaml")])
    assert res.exit_code == 1
    assert re.search(r"support\.yaml:4:\d+: error: ", res.output), res.output

    res = runner.invoke(cli, ["graph", str(folder / "routes.yaml")])
    assert res.exit_code == 1
    assert "not a flow file; pass a flow file or the flows folder" in res.output
