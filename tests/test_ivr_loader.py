"""The flow loader: YAML and model errors at the exact file:line:column, the
folder format (which files are flows), and the FlowSet it builds (routes,
sources, digest, positions, compiled expressions)."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bench.flow_validate import big_flow, write_folder
from ivr.diagnostics import Diagnostic, FlowSetError
from ivr.expressions import Condition, Template, Value
from ivr.loader import check_flowset, is_flowset_file, load_flowset
from ivr.schema import routes_json_schema, schema_text
from ivr.yamldoc import HAS_CLIB, DataPath, Pos, load_yaml, parse_yaml
from tests.conftest import FLOWS
from tests.ivr_folder import GOODBYE, SIMPLE_ROUTES, make_folder, report

DATA = Path(__file__).parent / "data" / "flows"
BYE = "  " + textwrap.indent(GOODBYE, " " * 8).lstrip(" ")


def one_flow(tmp_path: Path, text: str) -> list[str]:
    return report(make_folder(tmp_path, text))


# ------------------------------------------------------------------ YAML errors
def test_yaml_syntax_error_position(tmp_path: Path) -> None:
    assert one_flow(tmp_path, "flow: main\nstart: a\nnodes:\n  a: {type: hangup\n") == [
        "main.yaml:5:1: error: invalid YAML: expected ',' or '}', but got '<stream end>' "
        "(while parsing a flow mapping at 4:6) (fix: fix the YAML syntax at this point)"
    ]


def test_duplicate_key_names_the_first(tmp_path: Path) -> None:
    text = "flow: main\nstart: a\nnodes:\n  a: {type: hangup}\n  b: {type: hangup}\n  a: {}\n"
    assert one_flow(tmp_path, text) == [
        "main.yaml:6:3: error: duplicate key 'a' (first at line 4) (fix: each key may appear "
        "once: remove or rename one)"
    ]


def test_tab_indentation(tmp_path: Path) -> None:
    text = "flow: main\nstart: a\nnodes:\n\ta: {type: hangup}\n"
    assert one_flow(tmp_path, text) == [
        "main.yaml:4:1: error: invalid YAML: found character '\\t' that cannot start any "
        "token (while scanning for the next token) (fix: indent with spaces, not tabs)"
    ]


def test_unquoted_star_key_is_an_alias(tmp_path: Path) -> None:
    text = "flow: main\nstart: m\nnodes:\n  m:\n    type: menu\n    prompt: x\n"
    text += "    options:\n      *: m\n"
    assert one_flow(tmp_path, text) == [
        "main.yaml:8:7: error: invalid YAML: found undefined alias ':' (fix: quote keys and "
        "values that start with '*' or '&': '*': target)"
    ]


# ------------------------------------------------------------------ model errors
def test_unknown_field_suggests_the_right_one(tmp_path: Path) -> None:
    text = """\
        flow: main
        start: hi
        nodes:
          hi:
            type: say
            text: Hello.
            nxt: bye
        """
    assert one_flow(tmp_path, text + BYE) == [
        "main.yaml:7:5: error: node 'hi' (say): unknown field 'nxt' (fix: did you mean "
        "'next'? allowed here: description, text, voice, barge_in, next)"
    ]


def test_unknown_node_type_and_missing_type(tmp_path: Path) -> None:
    text = """\
        flow: main
        start: hi
        nodes:
          hi:
            type: sya
            text: Hello.
          there:
            text: Hello.
          plain: Hello
        """
    types = (
        "say, play, menu, gather, set, switch, if, hours, lookup, queue, transfer, voicemail, "
        "recording, hangup, goto, subflow, return, language"
    )
    assert one_flow(tmp_path, text) == [
        f"main.yaml:5:11: error: node 'hi': unknown node type 'sya' (fix: did you mean 'say'? "
        f"node types: {types})",
        f"main.yaml:7:3: error: node 'there': the node has no `type:` (fix: add `type:` with "
        f"one of: {types})",
        "main.yaml:9:10: error: node 'plain': expected a node, got the text 'Hello' (fix: "
        "write the node as a mapping: `type: say`, `text: ...` indented under its name)",
    ]


def test_missing_required_field(tmp_path: Path) -> None:
    text = """\
        flow: main
        start: check
        nodes:
          check:
            type: if
            condition: "caller == '1'"
            then: bye
        """
    assert one_flow(tmp_path, text + BYE) == [
        "main.yaml:4:3: error: node 'check' (if): missing required field 'else' (fix: add "
        "`else:` (a node of this flow ('node'), or another flow ('flow:' or 'flow:node')))"
    ]


def test_invalid_names_and_targets(tmp_path: Path) -> None:
    text = """\
        flow: main
        start: bye
        nodes:
          "two words":
            type: goto
            target: "a b"
        """
    assert one_flow(tmp_path, text + BYE) == [
        "main.yaml:4:3: error: node 'two words' (goto): 'two words' is not a valid name (fix: "
        "use letters, digits, '_' and '-', starting with a letter or '_')",
        "main.yaml:6:13: error: node 'two words' (goto): target: 'a b' is not a valid target "
        "(fix: write `node`, `flow:` or `flow:node` (names: letters, digits, '_' and '-'))",
    ]


def test_numbers_where_text_is_expected_say_quote_it(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path, "flow: main\nstart: bye\nnodes:\n" + GOODBYE,
        routes="routes:\n  - number: 0123\n    flow: main\n",
    )  # fmt: skip
    assert report(folder) == [
        "routes.yaml:2:13: error: routes[0].number: expected text, got the number 123 (fix: "
        "quote it: '123' (unquoted, YAML reads a number and drops leading zeros))"
    ]


def test_bad_prompt_part_is_one_error_not_one_per_union_member(tmp_path: Path) -> None:
    text = """\
        flow: main
        start: bye
        nodes:
          bye:
            type: hangup
            prompt:
              - say: Goodbye.
                speed: 2
              - {say: Bye, play: bye.wav}
              - silence: -5
        """
    assert one_flow(tmp_path, text) == [
        "main.yaml:8:9: error: node 'bye' (hangup): prompt[0]: unknown field 'speed' (fix: "
        "allowed here: say, play, silence, tone, voice)",
        "main.yaml:9:9: error: node 'bye' (hangup): prompt[1]: a prompt part needs exactly "
        "one of say, play, silence, tone (got say, play) (fix: one part per list item: split "
        "it into `- say: ...` and `- play: ...`)",
        "main.yaml:10:18: error: node 'bye' (hangup): prompt[2].silence: should be greater "
        "than or equal to 0 (fix: silence: milliseconds)",
    ]


def test_union_value_of_no_member_kind(tmp_path: Path) -> None:
    text = """\
        flow: main
        start: hi
        nodes:
          hi:
            type: say
            text: 42
            next: s
          s:
            type: set
            values: {x: [1, 2]}
            next: bye
        """
    assert one_flow(tmp_path, text + BYE) == [
        "main.yaml:6:11: error: node 'hi' (say): text: expected text or a mapping, got the "
        "number 42 (fix: quote it: '42')",
        "main.yaml:10:17: error: node 's' (set): values.x: expected text, a number or "
        "true/false, got a list",
    ]


def test_model_validator_errors_point_at_the_field_they_name(tmp_path: Path) -> None:
    text = """\
        flow: main
        start: g
        nodes:
          g:
            type: gather
            prompt: PIN?
            variable: pin
            min_length: 6
            max_length: 4
            no_input: bye
            next: bye
          m:
            type: menu
            prompt: Choose.
            options: {1: bye, x: bye}
            no_input: bye
          h:
            type: hours
            timezone: UTC
            schedule:
              mon: ["09:00-12:00", "14:00-13:00"]
            open: bye
            closed: bye
          l:
            type: lookup
            source: sql
            found: bye
            not_found: bye
        """
    lines = one_flow(tmp_path, text + BYE)
    assert lines == [
        "main.yaml:8:17: error: node 'g' (gather): min_length 6 > max_length 4 (fix: see "
        "flows/schema.json for what is accepted here)",
        "main.yaml:15:23: error: node 'm' (menu): options: menu option 'x' is not one DTMF "
        "digit (0-9, *, #) (fix: options: digit -> target)",
        "main.yaml:21:28: error: node 'h' (hours): schedule: mon: '14:00-13:00' ends before "
        "it starts (fix: schedule: day -> list of 'HH:MM-HH:MM' open spans)",
        "main.yaml:26:13: error: node 'l' (lookup): source: should be 'history' or 'http' "
        "(fix: use 'history' or 'http')",
    ]


def test_not_a_mapping_and_empty_files(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        "- a\n- b\n",
        files={"empty.yaml": "", "notes.yaml": "title: not a flow\n"},
    )
    assert report(folder) == [
        "empty.yaml:1:1: error: expected a mapping, got nothing (fix: a flow file is a mapping "
        "with flow:, start: and nodes:)",
        "main.yaml:1:1: error: expected a mapping, got a list (fix: a flow file is a mapping "
        "with flow:, start: and nodes:)",
        "notes.yaml:1:1: error: not a flow: no `flow:` and no `nodes:` (fix: a flow file needs "
        "flow:, start: and nodes:; move other YAML files out of the flows folder (flow tests: "
        "name them *.test.yaml))",
    ]


def test_yaml_conveniences_int_keys_and_dates(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: h
        nodes:
          h:
            type: hours
            timezone: Europe/Paris
            schedule:
              mon:
                - 09:00-12:00
                - 13:00-17:00
            holidays: [2025-12-25, 2026-01-01]
            open: m
            closed: bye
          m:
            type: menu
            prompt: Choose.
            options: {1: bye, 2: h, "#": bye}
            no_input: bye
        """
        + BYE,
    )
    flowset = load_flowset(folder)
    flow = flowset.flows["main"]
    assert flow.nodes["h"].holidays == ["2025-12-25", "2026-01-01"]  # type: ignore[union-attr]
    assert flow.nodes["h"].schedule == {"mon": ["09:00-12:00", "13:00-17:00"]}  # type: ignore[union-attr]
    assert flow.nodes["m"].options == {"1": "bye", "2": "h", "#": "bye"}  # type: ignore[union-attr]


# ------------------------------------------------------------------ folder format
def test_which_files_are_flows(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        "flow: main\nstart: bye\nnodes:\n" + GOODBYE,
        files={
            "agents.yaml": "agents: [this is not a flow]\n",
            "main.test.yaml": "cases: [also not a flow]\n",
            "tests/case.yaml": "neither: {\n",
            "prompts/readme.yaml": "nor: this\n",
            "old.yml": "flow: old\n",
        },
    )
    flowset, diags = check_flowset(folder)
    assert flowset is not None
    assert list(flowset.flows) == ["main"]
    assert [str(d).replace(f"{folder}/", "") for d in diags] == [
        "old.yml: warning: ignored: flow files end in .yaml (fix: rename it to old.yaml)"
    ]
    assert sorted(flowset.sources) == ["main.yaml", "queues.yaml", "routes.yaml"]
    for name, expected in [
        ("main.yaml", True), ("routes.yaml", True), ("queues.yaml", True),
        ("agents.yaml", False), ("main.test.yaml", False), ("tests/case.yaml", False),
        ("old.yml", False), ("prompts/greeting.wav", False),
    ]:  # fmt: skip
        assert is_flowset_file(folder, folder / name) is expected, name
    assert is_flowset_file(folder, tmp_path / "main.yaml") is False


def test_missing_folder(tmp_path: Path) -> None:
    flowset, diags = check_flowset(tmp_path / "nope")
    assert flowset is None
    assert [str(d) for d in diags] == [
        f"{tmp_path}/nope: error: flows folder does not exist (fix: pass the flows folder)"
    ]


# ------------------------------------------------------------------ FlowSet
def test_flowset_of_the_example_folder() -> None:
    flowset = load_flowset(DATA)
    assert sorted(flowset.flows) == ["billing", "main"]
    assert flowset.files == {"billing": DATA / "billing.yaml", "main": DATA / "main.yaml"}
    assert flowset.queues == frozenset({"sales", "support"})
    assert flowset.positions["main"]["hours"] == (7, 3)
    assert flowset.positions["billing"]["balance"] == (18, 3)
    assert flowset.sources["routes.yaml"] == (DATA / "routes.yaml").read_text()
    assert flowset.warnings == []
    assert flowset.folder == DATA
    assert len(flowset.digest) == 64


def test_flow_for_routes_wildcard_and_default(tmp_path: Path) -> None:
    files = {"b.yaml": SIMPLE_FLOW.replace("main", "b"), "c.yaml": SIMPLE_FLOW.replace("main", "c")}
    to_b = "routes:\n  - {number: '100', flow: b}\n"
    wildcard = to_b + "  - {number: '*', flow: c}\ndefault: main\n"
    flowset = load_flowset(make_folder(tmp_path / "1", SIMPLE_FLOW, routes=wildcard, files=files))
    assert flowset.flow_for("100").flow == "b"
    assert flowset.flow_for("999").flow == "c"  # '*' wins over default
    only_default = load_flowset(
        make_folder(tmp_path / "2", SIMPLE_FLOW, routes=to_b + "default: main\n", files=files)
    )
    assert only_default.flow_for("999").flow == "main"
    no_default = load_flowset(
        make_folder(tmp_path / "3", SIMPLE_FLOW, routes=SIMPLE_ROUTES, files=files)
    )
    with pytest.raises(LookupError) as info:
        no_default.flow_for("555")
    assert str(info.value) == (
        "no route for '555' in routes.yaml and no default: add "
        "`- {number: '555', flow: NAME}` or `default: NAME`"
    )


SIMPLE_FLOW = "flow: main\nstart: bye\nnodes:\n" + GOODBYE


def test_digest_and_sources_follow_the_bytes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, SIMPLE_FLOW)
    first = load_flowset(folder)
    again = load_flowset(folder)
    assert first.digest == again.digest
    crlf = SIMPLE_FLOW.replace("\n", "\r\n")
    (folder / "main.yaml").write_bytes(crlf.encode())
    changed = load_flowset(folder)
    assert changed.digest != first.digest
    assert changed.sources["main.yaml"] == crlf  # exact text, no newline translation
    assert changed.flows == first.flows


def test_compiled_expressions_are_reused(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: s
        nodes:
          s:
            type: set
            values: {n: "digits | int"}
            next: i
          i:
            type: if
            condition: "n > 1"
            then: say
            else: bye
          say:
            type: say
            text: "You chose {{ n }}."
            next: bye
        """
        + BYE,
    )
    flowset = load_flowset(folder)
    cond = flowset.condition("n > 1")
    assert isinstance(cond, Condition)
    assert cond is flowset.compiled[("condition", "n > 1")]
    assert isinstance(flowset.value("digits | int"), Value)
    assert flowset.value("digits | int") is flowset.value("digits | int")
    template = flowset.template("You chose {{ n }}.")
    assert isinstance(template, Template) and template({"n": 2}) == "You chose 2."
    assert flowset.condition("n > 5")({"n": 9}) is True  # not in the set: compiled on demand


def test_load_flowset_raises_with_every_error(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "flow: main\nstart: x\nnodes:\n  a: {type: goto, target: y}\n")
    with pytest.raises(FlowSetError) as info:
        load_flowset(folder)
    exc = info.value
    assert [d.severity for d in exc.diagnostics] == ["error", "error"]
    assert exc.errors == exc.diagnostics
    first = exc.diagnostics[0]
    assert first == Diagnostic(
        "error", folder / "main.yaml", 2, 8,
        "start node 'x' is not a node of flow 'main'", "nodes: a",
    )  # fmt: skip
    assert str(exc).splitlines() == [
        "2 errors in flows",
        f"{folder}/main.yaml:2:8: error: start node 'x' is not a node of flow 'main' "
        "(fix: nodes: a)",
        f"{folder}/main.yaml:4:27: error: node 'a' (goto): target 'y' is not a node of flow "
        "'main' (fix: nodes: a)",
    ]


def test_a_generated_500_node_flow_validates(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "flows", 500)
    flowset, diags = check_flowset(folder)
    assert diags == []
    assert flowset is not None
    assert len(flowset.flows["big"].nodes) == 501
    assert flowset.positions["big"]["c49"] == (flowset.sources["big.yaml"].count("\n") - 7, 3)


# ------------------------------------------------------------------ positions
def _round_trip_positions(text: str) -> tuple[dict[DataPath, Pos], dict[DataPath, Pos]]:
    """Positions as ruamel's round-trip loader records them (CommentedMap.lc)."""
    keys: dict[DataPath, Pos] = {}
    values: dict[DataPath, Pos] = {}

    def walk(node: Any, path: DataPath) -> None:
        if isinstance(node, CommentedMap):
            for k, v in node.items():
                sub = (*path, str(k) if isinstance(k, int) else k)
                kl, kc = node.lc.key(k)
                vl, vc = node.lc.value(k)
                keys[sub], values[sub] = (kl + 1, kc + 1), (vl + 1, vc + 1)
                walk(v, sub)
        elif isinstance(node, CommentedSeq):
            for i, v in enumerate(node):
                line, col = node.lc.item(i)
                keys[(*path, i)] = values[(*path, i)] = (line + 1, col + 1)
                walk(v, (*path, i))

    walk(YAML(typ="rt").load(text), ())
    keys[()] = values[()] = (1, 1)
    return keys, values


@pytest.mark.parametrize("name", ["main.yaml", "billing.yaml", "routes.yaml", "queues.yaml"])
def test_positions_equal_the_round_trip_loaders(name: str) -> None:
    doc = load_yaml(DATA / name)
    keys, values = _round_trip_positions(doc.text)
    assert doc.keys == keys
    # ruamel's lc.value of a nested block mapping/sequence is its first key or item;
    # ours is the same node's start: compare every scalar value
    scalars = {p: pos for p, pos in values.items() if p in doc.values}
    assert {p: doc.values[p] for p in scalars} == scalars


def test_positions_of_a_big_flow_equal_the_round_trip_loaders(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "flows", 100)
    doc = load_yaml(folder / "big.yaml")
    keys, _values = _round_trip_positions(doc.text)
    assert doc.keys == keys


YAML_FILES = sorted(
    [*DATA.glob("*.yaml"), *FLOWS.glob("*.yaml"), *(DATA.parent / "flows_sipp").glob("*.yaml")]
)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_c_parser_and_ruamels_own_agree(path: Path) -> None:
    assert HAS_CLIB, "ruamel.yaml.clib is a dependency (pyproject.toml)"
    text = path.read_text(encoding="utf-8")
    fast, pure = parse_yaml(text, path, fast=True), parse_yaml(text, path, fast=False)
    assert (fast.data, fast.keys, fast.values) == (pure.data, pure.keys, pure.values)


def test_c_parser_and_ruamels_own_agree_on_a_big_flow() -> None:
    text = big_flow(200)
    fast, pure = (
        parse_yaml(text, Path("big.yaml"), fast=True),
        parse_yaml(text, Path("b"), fast=False),
    )
    assert (fast.data, fast.keys, fast.values) == (pure.data, pure.keys, pure.values)


def test_yaml_12_that_libyaml_refuses_still_loads() -> None:
    text = "ask: {type: gather, prompt: PIN?, variable: pin}\n"
    doc = parse_yaml(text, Path("t.yaml"))
    assert doc.data == {"ask": {"type": "gather", "prompt": "PIN?", "variable": "pin"}}
    assert doc.value_pos(("ask", "variable")) == (1, 45)


def test_positions_count_characters_not_bytes() -> None:
    text = 'x: {es: "Español ñ", en: "Hi"}\n'
    doc = parse_yaml(text, Path("t.yaml"))
    assert doc.key_pos(("x", "en")) == (1, 22)
    assert doc.value_pos(("x", "en")) == (1, 26)
    assert doc.keys == _round_trip_positions(text)[0]


# ------------------------------------------------------------------ schema
def test_shipped_flow_schema_is_current() -> None:
    shipped = (FLOWS / "schema.json").read_text(encoding="utf-8")
    assert shipped == schema_text("flow"), "regenerate: ivr schema -o flows/schema.json"


def test_shipped_routes_schema_is_current() -> None:
    shipped = (FLOWS / "routes.schema.json").read_text(encoding="utf-8")
    assert shipped == schema_text("routes"), (
        "regenerate: ivr schema --routes -o flows/routes.schema.json"
    )
    assert json.loads(shipped) == routes_json_schema()


def test_schema_covers_every_node_type() -> None:
    schema = json.loads((FLOWS / "schema.json").read_text(encoding="utf-8"))
    node_schema = schema["properties"]["nodes"]["patternProperties"]["^[A-Za-z_][A-Za-z0-9_\\-]*$"]
    tags = sorted(node_schema["discriminator"]["mapping"])
    assert tags == sorted(
        ["say", "play", "menu", "gather", "set", "switch", "if", "hours", "lookup", "queue",
         "transfer", "voicemail", "recording", "hangup", "goto", "subflow", "return",
         "language"]
    )  # fmt: skip


# ------------------------------------------------------------------ robustness
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 500), st.floats(-1, 100, allow_nan=False),
    st.sampled_from(["", ":", "main:", "bye", "x y", "{{ x", "sound:", "*", "say", "menu"]),
)  # fmt: skip
_JUNK = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["type", "a", "1"]), inner)
    ),
    max_leaves=6,
)


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*path, i))
    return out


def _check_dumped(base: Any) -> tuple[Any, list[Diagnostic]]:
    """check_flowset of the example folder with main.yaml replaced by ``base`` dumped."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("billing.yaml", "routes.yaml", "queues.yaml"):
            (folder / name).write_text((DATA / name).read_text())
        shutil.copytree(DATA / "prompts", folder / "prompts")
        out = io.StringIO()
        YAML(typ="safe").dump(base, out)
        (folder / "main.yaml").write_text(out.getvalue())
        return check_flowset(folder)


def _example() -> Any:
    return YAML(typ="safe").load((DATA / "main.yaml").read_text(encoding="utf-8"))


def test_dumped_example_is_clean() -> None:
    flowset, diags = _check_dumped(_example())
    assert flowset is not None and diags == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_mutation_of_a_flow_gives_located_diagnostics_never_an_exception(
    data: st.DataObject,
) -> None:
    base = _example()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(base)[1:]))
        parent = base
        for item in path[:-1]:
            parent = parent[item]
        parent[path[-1]] = data.draw(_JUNK)
    flowset, diags = _check_dumped(base)
    errors = [d for d in diags if d.severity == "error"]
    assert (flowset is None) == bool(errors)
    for d in diags:
        assert d.line >= 1 and d.column >= 1, str(d)
        assert d.message and d.file.name in ("main.yaml", "billing.yaml", "routes.yaml")
