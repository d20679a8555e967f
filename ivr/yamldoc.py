"""YAML documents with the position of every key and value.

:func:`load_yaml` reads a file with ruamel.yaml's round-trip loader (YAML 1.2:
``yes``/``no``/``09:00`` stay strings) and returns a :class:`YamlDoc`: the
data as plain Python (dict, list, str, int, float, bool, None) plus a table
of 1-based (line, column) positions keyed by the data path (``('nodes',
'menu', 'options', '1')``). Two conversions make YAML friendlier to write:

* integer mapping keys become strings (menu options ``1: sales``);
* dates and times become ISO strings (holidays ``- 2024-12-25``).

YAML syntax errors and duplicate keys raise :class:`YamlError` carrying a
:class:`~ivr.diagnostics.Diagnostic`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ivr.diagnostics import Diagnostic

__all__ = ["DataPath", "Pos", "YamlDoc", "YamlError", "load_yaml", "parse_yaml"]

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


def _plain_key(key: Hashable) -> Any:
    if isinstance(key, bool) or key is None:
        return key
    if isinstance(key, int):
        return str(int(key))
    return _plain_scalar(key)


def _plain_scalar(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return bool(value) if value is not None else None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return value


class _Walker:
    def __init__(self) -> None:
        self.keys: dict[DataPath, Pos] = {}
        self.values: dict[DataPath, Pos] = {}

    def walk(self, node: Any, path: DataPath) -> Any:
        if isinstance(node, CommentedMap):
            out: dict[Any, Any] = {}
            for key, value in node.items():
                plain = _plain_key(key)
                sub = (*path, plain)
                kl, kc = node.lc.key(key)
                vl, vc = node.lc.value(key)
                self.keys[sub] = (kl + 1, kc + 1)
                self.values[sub] = (vl + 1, vc + 1)
                out[plain] = self.walk(value, sub)
            return out
        if isinstance(node, CommentedSeq):
            items: list[Any] = []
            for i, value in enumerate(node):
                line, col = node.lc.item(i)
                self.keys[(*path, i)] = self.values[(*path, i)] = (line + 1, col + 1)
                items.append(self.walk(value, (*path, i)))
            return items
        return _plain_scalar(node)


def _yaml_diagnostic(file: Path, exc: YAMLError) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    if isinstance(exc, DuplicateKeyError):
        problem = str(getattr(exc, "problem", "") or "duplicate key")
        problem = problem.split(" with value")[0]
        return Diagnostic(
            "error", file, line, col, problem, "each key may appear once: remove or rename one"
        )
    if isinstance(exc, MarkedYAMLError):
        problem = str(exc.problem or exc.context or "invalid YAML")
        context = ""
        if exc.context and exc.problem:
            cm = exc.context_mark
            at = f" at {cm.line + 1}:{cm.column + 1}" if cm is not None and cm is not mark else ""
            context = f" ({exc.context}{at})"
        hint = "fix the YAML syntax at this point"
        if "alias" in problem or "anchor" in problem:
            hint = "quote keys and values that start with '*' or '&': '*': target"
        elif "mapping values are not allowed" in problem:
            hint = "quote text that holds ': ' or put it on its own line after '|'"
        elif "tab" in problem:
            hint = "indent with spaces, not tabs"
        return Diagnostic("error", file, line, col, f"invalid YAML: {problem}{context}", hint)
    return Diagnostic("error", file, line, col, f"invalid YAML: {exc}", "fix the YAML syntax")


def parse_yaml(text: str, file: Path) -> YamlDoc:
    """Parse ``text`` (shown as ``file`` in diagnostics); raises :class:`YamlError`."""
    yaml = YAML(typ="rt")
    try:
        raw = yaml.load(text)
    except YAMLError as exc:
        raise YamlError(_yaml_diagnostic(file, exc)) from None
    walker = _Walker()
    data = walker.walk(raw, ())
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
