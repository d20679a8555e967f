"""What the flow loader and validator report: one :class:`Diagnostic` per problem.

A diagnostic names the file and the 1-based line and column of the YAML key or
value at fault, says what is wrong and how to fix it::

    flows/main.yaml:12:14: error: node 'menu' (menu): target 'salse' is not a node
      of flow 'main' (fix: did you mean 'sales'? nodes: goodbye, menu, sales)

(one line when printed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Diagnostic", "FlowSetError", "Severity", "errors", "sort_key", "warnings"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a flows folder; ``line``/``column`` are 1-based
    (0 when the whole file is meant)."""

    severity: Severity
    file: Path
    line: int
    column: int
    message: str
    hint: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else f"{self.file}"
        fix = f" (fix: {self.hint})" if self.hint else ""
        return f"{where}: {self.severity}: {self.message}{fix}"

    @property
    def is_error(self) -> bool:
        """True for errors, False for warnings."""
        return self.severity == "error"


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    """File, line, column, message: the order diagnostics are printed in."""
    return (str(d.file), d.line, d.column, d.message)


def errors(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The errors among ``diagnostics``, in file order."""
    return sorted((d for d in diagnostics if d.severity == "error"), key=sort_key)


def warnings(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The warnings among ``diagnostics``, in file order."""
    return sorted((d for d in diagnostics if d.severity == "warning"), key=sort_key)


class FlowSetError(ValueError):
    """A flows folder that cannot be used; ``diagnostics`` holds every error
    (and the warnings found alongside), ``str()`` lists the errors one per line."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errs = errors(diagnostics)
        head = f"{len(errs)} error{'s' if len(errs) != 1 else ''} in flows"
        super().__init__("\n".join([head, *(str(d) for d in errs)]))

    @property
    def errors(self) -> list[Diagnostic]:
        """The errors only, in file order."""
        return errors(self.diagnostics)
