"""YAML documents with the position of every key and value.

:func:`load_yaml` reads a file with ruamel.yaml (YAML 1.2: ``yes``/``no``/
``09:00`` stay strings) and returns a :class:`YamlDoc`: the data as plain
Python (dict, list, str, int, float, bool, None) plus a table of 1-based
(line, column) positions keyed by the data path (``('nodes', 'menu',
'options', '1')``).

The document is *composed* (ruamel's node graph, where every key and value
node carries its start mark) and built into plain data here, rather than
loaded round-trip into CommentedMaps: the positions are the same (a test
compares them on real flows), and with ruamel.yaml.clib the C parser makes
it about 8x faster (a 500-node flow: 0.05 s instead of 0.4 s). libyaml is a
YAML 1.1 parser that refuses a few 1.2 documents (``{prompt: PIN?, next:
x}``), so on any error the document is parsed again by ruamel's own parser,
whose result or error stands: what loads, and every error text, is ruamel's.

Two conversions make YAML friendlier to write:

* integer mapping keys become strings (menu options ``1: sales``);
* dates and times become ISO strings (holidays ``- 2024-12-25``).

YAML syntax errors, duplicate keys, unknown tags and keys that are not
scalars raise :class:`YamlError` carrying a :class:`~ivr.diagnostics.Diagnostic`.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr.diagnostics import Diagnostic

__all__ = ["HAS_CLIB", "DataPath", "Pos", "YamlDoc", "YamlError", "load_yaml", "parse_yaml"]

HAS_CLIB = importlib.util.find_spec("_ruamel_yaml") is not None
"""ruamel.yaml.clib (libyaml's parser) is installed; else the pure-Python parser,
same positions, slower."""

DataPath = tuple[str | int, ...]
Pos = tuple[int, int]


@dataclass(frozen=True)
class YamlDoc:
    """A parsed YAML file: plain ``data`` and where each part of it was written."""

    file: Path
    """The file as it is to be shown in diagnostics."""
    text: str
    """The file's text."""
    data: Any
    """The document as plain Python."""
    keys: dict[DataPath, Pos]
    """Path -> (line, column) of the mapping key (of the item, for sequences)."""
    values: dict[DataPath, Pos]
    """Path -> (line, column) of the value."""

    def key_pos(self, path: DataPath) -> Pos:
        """Where the key of ``path`` is (the closest written ancestor if not written)."""
        while path and path not in self.keys:
            path = path[:-1]
        return self.keys.get(path, (1, 1))

    def value_pos(self, path: DataPath) -> Pos:
        """Where the value of ``path`` is (the closest written ancestor if not written)."""
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, (1, 1))

    def line_text(self, line: int) -> str:
        """The text of 1-based ``line`` ('' past the end)."""
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def diagnostic(
        self,
        severity: str,
        pos: Pos,
        message: str,
        hint: str = "",
    ) -> Diagnostic:
        """A diagnostic in this file at ``pos``."""
        return Diagnostic(severity, self.file, pos[0], pos[1], message, hint)  # type: ignore[arg-type]


class YamlError(ValueError):
    """A file that is not valid YAML; ``diagnostic`` says where and why."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic
        super().__init__(str(diagnostic))


_MERGE = "tag:yaml.org,2002:merge"


def _plain_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return value


def _pos(node: Node) -> Pos:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Walker:
    """Builds plain data from composed YAML nodes, noting every node's position."""

    def __init__(self, file: Path, constructor: Any) -> None:
        self.file = file
        self.constructor = constructor
        self.keys: dict[DataPath, Pos] = {}
        self.values: dict[DataPath, Pos] = {}

    def fail(self, node: Node, message: str, hint: str) -> YamlError:
        line, col = _pos(node)
        return YamlError(Diagnostic("error", self.file, line, col, message, hint))

    def scalar(self, node: Node) -> Any:
        try:
            return _plain_scalar(self.constructor.construct_object(node, deep=True))
        except YAMLError as exc:
            raise self.fail(
                node, f"invalid YAML value: {getattr(exc, 'problem', None) or exc}", ""
            ) from None

    def walk(self, node: Node, path: DataPath) -> Any:
        if isinstance(node, MappingNode):
            if any(k.tag == _MERGE for k, _v in node.value):
                self.constructor.flatten_mapping(node)
            out: dict[Any, Any] = {}
            first: dict[Any, Node] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise self.fail(
                        key_node, "a key must be text or a number", "write `name: value`"
                    )
                key = self.scalar(key_node)
                if isinstance(key, int) and not isinstance(key, bool):
                    key = str(key)
                if key in first:
                    line = _pos(first[key])[0]
                    raise self.fail(
                        key_node,
                        f"duplicate key {key!r} (first at line {line})",
                        "each key may appear once: remove or rename one",
                    )
                first[key] = key_node
                sub = (*path, key)
                self.keys[sub] = _pos(key_node)
                self.values[sub] = _pos(value_node)
                out[key] = self.walk(value_node, sub)
            return out
        if isinstance(node, SequenceNode):
            items: list[Any] = []
            for i, value_node in enumerate(node.value):
                self.keys[(*path, i)] = self.values[(*path, i)] = _pos(value_node)
                items.append(self.walk(value_node, (*path, i)))
            return items
        return self.scalar(node)


def _yaml_diagnostic(file: Path, text: str, exc: YAMLError) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    if isinstance(exc, MarkedYAMLError):
        problem = str(exc.problem or exc.context or "invalid YAML")
        context = ""
        if exc.context and exc.problem:
            cm = exc.context_mark
            same = (
                cm is not None
                and mark is not None
                and (cm.line, cm.column)
                == (
                    mark.line,
                    mark.column,
                )
            )
            at = f" at {cm.line + 1}:{cm.column + 1}" if cm is not None and not same else ""
            context = f" ({exc.context}{at})"
        lines = text.splitlines()
        bad_line = lines[line - 1] if 0 < line <= len(lines) else ""
        hint = "fix the YAML syntax at this point"
        if "\t" in bad_line[: max(col, 1)]:
            hint = "indent with spaces, not tabs"
        elif any(w in f"{problem} {exc.context or ''}" for w in ("alias", "anchor")):
            hint = "quote keys and values that start with '*' or '&': '*': target"
        elif "mapping values are not allowed" in problem:
            hint = "quote text that holds ': ' or put it on its own line after '|'"
        return Diagnostic("error", file, line, col, f"invalid YAML: {problem}{context}", hint)
    return Diagnostic("error", file, line, col, f"invalid YAML: {exc}", "fix the YAML syntax")


def _compose(text: str, file: Path, *, fast: bool) -> tuple[Node | None, Any]:
    yaml = YAML(typ="safe", pure=not fast)
    try:
        return yaml.compose(text), yaml.constructor
    except YAMLError as exc:
        if fast:
            # libyaml parses YAML 1.1 and refuses some 1.2 plain scalars (`{a: PIN?, b: 1}`):
            # ruamel's own parser has the last word, so what loads and the error texts do
            # not depend on whether the C parser is installed
            return _compose(text, file, fast=False)
        raise YamlError(_yaml_diagnostic(file, text, exc)) from None


def parse_yaml(text: str, file: Path, *, fast: bool = HAS_CLIB) -> YamlDoc:
    """Parse ``text`` (shown as ``file`` in diagnostics); raises :class:`YamlError`.

    ``fast`` tries the C parser first (ruamel's own parser when it refuses).
    """
    root, constructor = _compose(text, file, fast=fast)
    walker = _Walker(file, constructor)
    data = walker.walk(root, ()) if root is not None else None
    walker.keys[()] = walker.values[()] = (1, 1)
    return YamlDoc(file, text, data, walker.keys, walker.values)


def load_yaml(path: Path, shown_as: Path | None = None) -> YamlDoc:
    """Read and parse ``path``; raises :class:`YamlError` (also for unreadable files)."""
    shown = shown_as or path
    try:
        text = path.read_bytes().decode("utf-8")  # no newline translation: sources stay exact
    except UnicodeDecodeError as exc:
        raise YamlError(
            Diagnostic("error", shown, 0, 0, f"not UTF-8 text: {exc}", "save the file as UTF-8")
        ) from None
    except OSError as exc:
        raise YamlError(
            Diagnostic(
                "error", shown, 0, 0, f"cannot read: {exc.strerror or exc}", "check the file"
            )
        ) from None
    return parse_yaml(text, shown)
