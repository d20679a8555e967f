"""Pydantic validation errors as diagnostics at the YAML key or value at fault.

Pydantic's ``loc`` is a path through the *model*: besides mapping keys and
list indexes it holds the discriminated union's tag (``('nodes', 'm',
'menu', 'timeout')``), union member labels (``('prompt', 'str')``,
``('prompt', 'list[...]', 0, 'say')``) and ``'[key]'`` for errors in a
mapping key. :func:`model_diagnostics` walks a ``loc`` along the *data*,
skipping what is not there, to find the YAML position; of the errors a union
reports for each of its members it keeps those of the member that matches
the kind of value written (a list for a list, text for text), so a bad
prompt part is one error, not three.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ivr import model as m
from ivr.diagnostics import Diagnostic
from ivr.yamldoc import DataPath, YamlDoc

__all__ = ["NODE_CLASSES", "model_diagnostics"]

NODE_CLASSES: dict[str, type[BaseModel]] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls for cls in m.NODE_TYPES
}
"""Node type name (``menu``) -> its model class."""

_PROMPT_FIELDS = ("prompt", "no_input_prompt", "invalid_prompt")
_ID_PATTERN = m._ID
_TARGET_PATTERN = m._TARGET
_KIND_WORDS = {
    "str": "text",
    "dict": "a mapping",
    "list": "a list",
    "int": "a whole number",
    "float": "a number",
    "bool": "true/false",
    "none": "nothing (null)",
}


def _label_kind(label: str) -> str | None:
    for kind in ("str", "dict", "list", "int", "float", "bool", "none"):
        if label == kind or label.startswith(f"{kind}["):
            return kind
    return None


def _value_kind(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _matches(kind: str, value: Any) -> bool:
    have = _value_kind(value)
    return have == kind or (kind == "float" and have == "int")


def _shown(value: Any) -> str:
    kind = _value_kind(value)
    if kind == "str":
        return f"the text {value!r}"
    if kind in ("int", "float"):
        return f"the number {value}"
    if kind == "bool":
        return f"{str(value).lower()}"
    if kind == "none":
        return "nothing"
    if kind == "dict":
        return "a mapping"
    if kind == "list":
        return "a list"
    return repr(value)


@dataclass
class _Located:
    error: ErrorDetails
    path: DataPath
    """The deepest data path the loc reaches."""
    labels: list[tuple[DataPath, str]]
    """Loc items that are not in the data (tags, union members, missing fields)."""
    on_key: bool
    """The error is about a mapping key ('[key]')."""
    value: Any
    """The data at ``path``."""


def _locate(error: ErrorDetails, data: Any) -> _Located:
    path: list[str | int] = []
    labels: list[tuple[DataPath, str]] = []
    cur = data
    on_key = False
    for item in error["loc"]:
        if item == "[key]":
            on_key = True
            continue
        node = len(path) == 2 and path[0] == "nodes" and isinstance(cur, dict)
        if node and cur.get("type") == item:  # the union's tag (a queue node has `queue:` too)
            labels.append((tuple(path), str(item)))
            continue
        in_dict = isinstance(cur, dict) and item in cur
        if in_dict or (isinstance(cur, list) and isinstance(item, int) and 0 <= item < len(cur)):
            path.append(item)
            cur = cur[item]
        else:
            labels.append((tuple(path), str(item)))
    return _Located(error, tuple(path), labels, on_key, cur)


def _union_label(loc: _Located) -> tuple[DataPath, str] | None:
    for where, label in loc.labels:
        if _label_kind(label) is not None:
            return where, label
    return None


def _get(data: Any, path: DataPath) -> Any:
    for item in path:
        data = data[item]
    return data


def _model_at(doc: YamlDoc, path: DataPath, root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class whose fields the mapping at ``path`` holds."""
    if not path:
        return root
    if root is m.Routes:
        return m.Route if len(path) == 2 and path[0] == "routes" else None
    if path[0] != "nodes" or len(path) < 2:
        return None
    try:
        node = _get(doc.data, path[:2])
    except (KeyError, IndexError, TypeError):
        return None
    node_type = node.get("type") if isinstance(node, dict) else None
    if len(path) == 2:
        return NODE_CLASSES.get(node_type) if isinstance(node_type, str) else None
    if len(path) == 4 and path[2] == "cases":
        return m.SwitchCase
    if len(path) == 4 and path[2] in _PROMPT_FIELDS and isinstance(path[3], int):
        return m.PromptPart
    return None


def _fields(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _context(doc: YamlDoc, path: DataPath) -> tuple[str, str]:
    """('node 'x' (menu)', 'options.1') for a path inside a node, ('', 'start') else."""

    def dotted(items: DataPath) -> str:
        out = ""
        for item in items:
            out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
        return out

    if len(path) >= 2 and path[0] == "nodes" and isinstance(doc.data, dict):
        node = (
            doc.data.get("nodes", {}).get(path[1])
            if isinstance(doc.data.get("nodes"), dict)
            else None
        )
        node_type = node.get("type") if isinstance(node, dict) else None
        kind = f" ({node_type})" if isinstance(node_type, str) and node_type in NODE_CLASSES else ""
        return f"node {path[1]!r}{kind}", dotted(path[2:])
    return "", dotted(path)


def _join(context: str, field: str, text: str) -> str:
    subject = ": ".join(x for x in (context, field) if x)
    return f"{subject}: {text}" if subject else text


def _should(msg: str) -> str:
    return re.sub(r"^Input should", "should", msg)


def _value_error_pos(doc: YamlDoc, path: DataPath, value: Any, msg: str) -> tuple[int, int]:
    """A model/field validator names what is wrong in its message: point at it."""
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, str) and repr(key) in msg:
                return doc.key_pos((*path, key))
        for key, sub in value.items():
            # the message names the key with its value ("min_length 6 > ...",
            # "terminator 'x' ...") or as a label ("mon: '9-5' ...")
            said = "|".join(re.escape(str(s)) for s in {str(sub), repr(sub)})
            if isinstance(key, str) and re.search(rf"\b{re.escape(key)}(:|\s+({said}))", msg):
                if isinstance(sub, list | dict):
                    inner = _value_error_pos(doc, (*path, key), sub, msg)
                    if inner != doc.value_pos((*path, key)):
                        return inner
                return doc.value_pos((*path, key))
        for key, sub in value.items():
            if isinstance(sub, str) and repr(sub) in msg:
                return doc.value_pos((*path, key))
    if isinstance(value, list):
        for i, sub in enumerate(value):
            if isinstance(sub, str) and repr(sub) in msg:
                return doc.value_pos((*path, i))
    return doc.value_pos(path)


def _diagnose(doc: YamlDoc, loc: _Located, root: type[BaseModel]) -> Diagnostic:
    err = loc.error
    kind = err["type"]
    msg = err["msg"]
    path = loc.path
    context, field = _context(doc, path)

    if kind == "missing":
        name = str(err["loc"][-1])
        model = _model_at(doc, path, root)
        desc = ""
        if model is not None:
            for fname, finfo in model.model_fields.items():
                if (finfo.alias or fname) == name and finfo.description:
                    text = finfo.description.rstrip(".")
                    desc = f" ({text[:1].lower()}{text[1:]})"
        where = _join(context, field, f"missing required field {name!r}")
        return doc.diagnostic("error", doc.key_pos(path), where, f"add `{name}:`{desc}")

    if kind == "extra_forbidden":
        parent = path[:-1]
        name = str(path[-1]) if path else "?"
        context, field = _context(doc, parent)
        model = _model_at(doc, parent, root)
        allowed = _fields(model) if model is not None else []
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
        if allowed:
            listed = ", ".join(a for a in allowed if a != "type")
            hint = f"{hint} allowed here: {listed}".strip()
        return doc.diagnostic(
            "error", doc.key_pos(path), _join(context, field, f"unknown field {name!r}"), hint
        )

    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get(
            "tag", loc.value.get("type") if isinstance(loc.value, dict) else "?"
        )
        close = difflib.get_close_matches(str(tag), list(NODE_CLASSES), n=1)
        hint = (
            (f"did you mean {close[0]!r}? " if close else "")
            + "node types: "
            + ", ".join(NODE_CLASSES)
        )
        return doc.diagnostic(
            "error",
            doc.value_pos((*path, "type")),
            _join(context, field, f"unknown node type {tag!r}"),
            hint,
        )

    if kind == "union_tag_not_found":
        return doc.diagnostic(
            "error",
            doc.key_pos(path),
            _join(context, field, "the node has no `type:`"),
            "add `type:` with one of: " + ", ".join(NODE_CLASSES),
        )

    if kind in ("model_attributes_type", "model_type", "dict_type") and not isinstance(
        loc.value, dict
    ):
        what = "a node" if len(path) == 2 and path[0] == "nodes" else "a mapping"
        hint = (
            "write the node as a mapping: `type: say`, `text: ...` indented under its name"
            if what == "a node"
            else "write `key: value` pairs indented under it"
        )
        if not path:
            hint = "a flow file is a mapping with flow:, start: and nodes:"
        return doc.diagnostic(
            "error",
            doc.value_pos(path),
            _join(context, field, f"expected {what}, got {_shown(loc.value)}"),
            hint,
        )

    if kind == "string_pattern_mismatch":
        pattern = str(err.get("ctx", {}).get("pattern", ""))
        value = err["input"]
        pos = doc.key_pos(path) if loc.on_key else doc.value_pos(path)
        if loc.on_key:
            field = re.sub(r"(\.|^)[^.\[]+$", "", field) if isinstance(path[-1], str) else field
        if pattern == _TARGET_PATTERN:
            return doc.diagnostic(
                "error",
                pos,
                _join(context, field, f"{value!r} is not a valid target"),
                "write `node`, `flow:` or `flow:node` (names: letters, digits, '_' and '-')",
            )
        if pattern == _ID_PATTERN:
            return doc.diagnostic(
                "error",
                pos,
                _join(context, field, f"{value!r} is not a valid name"),
                "use letters, digits, '_' and '-', starting with a letter or '_'",
            )
        return doc.diagnostic(
            "error", pos, _join(context, field, f"{value!r} does not match {pattern}"), ""
        )

    if kind.endswith("_type") or kind.endswith("_parsing"):
        head = kind.split("_")[0]
        want = {"string": "str", "model": "dict", "dictionary": "dict"}.get(head, head)
        value = err["input"]
        hint = ""
        if want == "str" and isinstance(value, int | float) and not isinstance(value, bool):
            hint = f"quote it: '{value}' (unquoted, YAML reads a number and drops leading zeros)"
        elif want == "str" and isinstance(value, bool):
            hint = f"quote it: '{str(value).lower()}'"
        elif want in ("int", "float") and isinstance(value, str):
            hint = "write a number without quotes"
        pos = doc.key_pos(path) if loc.on_key else doc.value_pos(path)
        text = f"expected {_KIND_WORDS.get(want, want)}, got {_shown(value)}"
        return doc.diagnostic("error", pos, _join(context, field, text), hint)

    if kind in ("value_error", "assertion_error"):
        text = re.sub(r"^(Value|Assertion) error, ", "", msg)
        pos = _value_error_pos(doc, path, loc.value, text)
        hint = _field_hint(doc, path, root)
        if "exactly one of say, play" in text:
            hint = "one part per list item: split it into `- say: ...` and `- play: ...`"
        return doc.diagnostic("error", pos, _join(context, field, text), hint)

    pos = doc.key_pos(path) if loc.on_key else doc.value_pos(path)
    if kind == "literal_error":
        hint = "use " + re.sub(r"^Input should be ", "", msg)
    else:
        hint = _field_hint(doc, path, root)
    return doc.diagnostic("error", pos, _join(context, field, _should(msg)), hint)


def _field_hint(doc: YamlDoc, path: DataPath, root: type[BaseModel]) -> str:
    """What the field at ``path`` is for (its description in the model), else where to look."""
    for cut in range(len(path), 0, -1):
        name = path[cut - 1]
        model = _model_at(doc, path[: cut - 1], root)
        if model is None or not isinstance(name, str):
            continue
        for fname, finfo in model.model_fields.items():
            if (finfo.alias or fname) == name and finfo.description:
                text = finfo.description.rstrip(".")
                return f"{name}: {text[:1].lower()}{text[1:]}"
        break
    schema = "flows/routes.schema.json" if root is m.Routes else "flows/schema.json"
    return f"see {schema} for what is accepted here"


def _merged(doc: YamlDoc, group: list[_Located]) -> Diagnostic:
    """One error for a union value that matches none of its members."""
    first = group[0]
    union = _union_label(first)
    assert union is not None
    where, _ = union
    value = _get(doc.data, where)
    kinds: list[str] = []
    for loc in group:
        ul = _union_label(loc)
        kind = _label_kind(ul[1]) if ul else None
        if kind and _KIND_WORDS[kind] not in kinds:
            kinds.append(_KIND_WORDS[kind])
    if _KIND_WORDS["float"] in kinds and _KIND_WORDS["int"] in kinds:
        kinds.remove(_KIND_WORDS["int"])
    expected = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]
    context, field = _context(doc, where)
    hint = ""
    if isinstance(value, int | float) and not isinstance(value, bool) and "text" in kinds:
        hint = f"quote it: '{value}'"
    return doc.diagnostic(
        "error",
        doc.value_pos(where),
        _join(context, field, f"expected {expected}, got {_shown(value)}"),
        hint,
    )


def model_diagnostics(
    exc: ValidationError, doc: YamlDoc, root: type[BaseModel]
) -> list[Diagnostic]:
    """The errors of validating ``doc.data`` as ``root``, at their YAML positions."""
    located = [_locate(e, doc.data) for e in exc.errors()]
    groups: dict[DataPath, list[_Located]] = {}
    plain: list[_Located] = []
    for loc in located:
        union = _union_label(loc)
        if union is None:
            plain.append(loc)
        else:
            groups.setdefault(union[0], []).append(loc)
    out: list[Diagnostic] = [_diagnose(doc, loc, root) for loc in plain]
    for where, group in groups.items():
        value = _get(doc.data, where)
        fitting = []
        for loc in group:
            ul = _union_label(loc)
            kind = _label_kind(ul[1]) if ul else None
            if kind is not None and _matches(kind, value):
                fitting.append(loc)
        if fitting:
            out.extend(_diagnose(doc, loc, root) for loc in fitting)
        else:
            out.append(_merged(doc, group))
    seen: set[Diagnostic] = set()
    unique = []
    for d in out:
        if d not in seen:
            seen.add(d)
            unique.append(d)
    return unique
