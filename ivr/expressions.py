"""Expressions and templates of a flow, in a sandboxed Jinja2.

What an admin writes in a flow is never passed to Python's ``eval``: it is
parsed by Jinja2 and run in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`
(no attribute starting with ``_``, no mutation of lists/dicts, no unsafe
callables), and this module refuses more at compile time:

* any name, attribute or item key starting with ``_`` (``''.__class__``,
  ``x._private``, ``x['__dict__']``) is a compile error;
* a module or class passed in as a variable exposes no attribute
  (``os.system`` is refused), and ``eval``, ``exec``, ``open``,
  ``__import__``, ``getattr`` and the like cannot be called;
* ``**`` with an exponent above :data:`MAX_POWER`, and ``*`` making a string
  or list longer than :data:`MAX_SEQUENCE`, fail instead of eating memory.

Three kinds, each compiled once (at load time) and called per call:

* :func:`compile_condition` (``when``, ``if``): an expression, its truth value;
* :func:`compile_value` (``set``, lookup ``key``): an expression, its value;
* :func:`compile_template` (``say`` text, prompts, URLs): a template, a str.

Variables come from the call (``caller``, ``called``, ``language``,
``customer``, ``digits``, ``now``, ``call_id``, flow variables...); the clock
is never read here: ``now`` is a variable the runtime passes in. Undefined
variables are errors (:class:`jinja2.StrictUndefined`), reported as
:class:`ExpressionError`, as are syntax errors (with the line and column
inside the expression) and failures while evaluating.

Helpers available to every expression besides Jinja's own filters and tests:
``len abs min max round int float str bool range dict list``; filters
``spell`` (``'123' | spell`` -> ``'1 2 3'``, for TTS), ``only_digits``
(``'+1 (555)' | only_digits`` -> ``'1555'``) and ``mask`` (``'4111' | mask``
-> ``'***1'``, keeps the last ``n=1`` characters).
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.environment import Template as JinjaTemplate
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.lexer import TokenStream, ignored_tokens
from jinja2.meta import find_undeclared_variables
from jinja2.parser import Parser
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "BUILTIN_VARIABLES",
    "MAX_POWER",
    "MAX_SEQUENCE",
    "Condition",
    "ExpressionEnvironment",
    "ExpressionError",
    "Template",
    "Value",
    "compile_condition",
    "compile_template",
    "compile_value",
    "is_template",
]

MAX_POWER = 64
"""Largest exponent ``**`` accepts."""
MAX_SEQUENCE = 10_000
"""Longest string or list ``*`` may build."""

BUILTIN_VARIABLES = frozenset(
    {
        "caller",
        "caller_name",
        "called",
        "call_id",
        "language",
        "customer",
        "digits",
        "now",
        "flow",
        "node",
        "queue",
        "queue_outcome",
        "transfer_ok",
        "voicemail",
        "recording_paused",
        "lookup_error",
        "attempt",
    }
)
"""Variables the runtime provides to every call (the validator does not warn
about them being used without a ``set``)."""


class ExpressionError(ValueError):
    """An expression or template that does not compile or fails to evaluate.

    ``source`` is the expression text; ``line``/``column`` (1-based, inside
    ``source``) say where, when known; ``reason`` is the bare message.
    ``str()`` gives all of it in one line.
    """

    def __init__(
        self, reason: str, source: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        shown = self.source if len(self.source) <= 80 else self.source[:77] + "..."
        if self.line is None:
            return f"{self.reason} in {shown!r}"
        if "\n" in self.source:
            return f"{self.reason} at line {self.line}, column {self.column} of {shown!r}"
        return f"{self.reason} at column {self.column} of {shown!r}"


def is_template(text: str) -> bool:
    """Whether ``text`` uses Jinja syntax (and so depends on call variables)."""
    return "{{" in text or "{%" in text or "{#" in text


# --------------------------------------------------------------- helpers
def _spell(value: Any) -> str:
    return " ".join(str(value).replace(" ", ""))


def _only_digits(value: Any) -> str:
    return "".join(c for c in str(value) if c.isdigit())


def _mask(value: Any, n: int = 1, char: str = "*") -> str:
    text = str(value)
    keep = max(0, min(int(n), len(text)))
    return char[:1] * (len(text) - keep) + text[len(text) - keep :]


_GLOBALS: dict[str, Any] = {
    "len": len,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
}


# ------------------------------------------------------------ environment
_UNSAFE_CALLABLES = frozenset(
    id(f)
    for f in (
        eval,
        exec,
        compile,
        open,
        __import__,
        getattr,
        setattr,
        delattr,
        globals,
        locals,
        vars,
        input,
        breakpoint,
        exit,
        quit,
        help,
    )
)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox with bounded ``**`` and ``*``, no attribute of a module or a
    class, and no call of the builtins that reach outside (eval, open...)."""

    intercepted_binops = frozenset({"**", "*"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, types.ModuleType | type):
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def is_safe_callable(self, obj: Any) -> bool:
        if id(obj) in _UNSAFE_CALLABLES or isinstance(obj, types.ModuleType | type):
            return obj in _GLOBALS.values()
        return bool(super().is_safe_callable(obj))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_POWER:
                raise SecurityError(f"exponent {right} is above the limit {MAX_POWER}")
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_SEQUENCE
                ):
                    raise SecurityError(
                        f"'*' would build {len(seq) * times} items (limit {MAX_SEQUENCE})"
                    )
        return super().call_binop(context, operator, left, right)


class _Recorder:
    """Wraps the lexer's raw token iterator, remembering where each kept token starts."""

    def __init__(self, raw: Iterable[tuple[int, str, str]]) -> None:
        self._raw = iter(raw)
        self.offset = 0
        self.starts: list[int] = []
        self.failed = False

    def __iter__(self) -> Iterator[tuple[int, str, str]]:
        while True:
            try:
                lineno, kind, value = next(self._raw)
            except StopIteration:
                return
            except TemplateSyntaxError:
                self.failed = True
                raise
            if kind not in ignored_tokens:
                self.starts.append(self.offset)
            self.offset += len(value)
            yield lineno, kind, value


def _line_col(source: str, offset: int) -> tuple[int, int]:
    before = source[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


class ExpressionEnvironment:
    """One sandbox configuration; compiles expressions and templates.

    The module functions use a shared default instance (it holds no state
    besides Jinja's own template cache, which is safe to share).
    """

    def __init__(self) -> None:
        env = _Sandbox(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            cache_size=0,
        )
        env.globals.clear()
        env.globals.update(_GLOBALS)
        env.globals["range"] = ImmutableSandboxedEnvironment().globals["range"]  # safe_range
        env.filters.update(spell=_spell, only_digits=_only_digits, mask=_mask)
        self.env = env

    # -- parsing with positions
    def _parse(self, source: str, state: str | None) -> nodes.Node:
        source = "\n".join(re.split(r"\r\n|\r|\n", source))
        lexer = self.env.lexer
        recorder = _Recorder(lexer.tokeniter(source, None, None, state))
        parser = Parser(self.env, "", state=state)
        try:
            parser.stream = TokenStream(lexer.wrap(iter(recorder), None, None), None, None)
            if state == "variable":
                tree: nodes.Node = parser.parse_expression()
                if not parser.stream.eos:
                    raise TemplateSyntaxError(
                        f"unexpected {parser.stream.current.value!r} after the expression",
                        parser.stream.current.lineno,
                    )
            else:
                tree = parser.parse()
        except TemplateSyntaxError as exc:
            if recorder.failed:
                offset = recorder.offset
            elif parser.stream.current.type == "eof":
                offset = len(source.rstrip())
            else:
                back = 1 + len(parser.stream._pushed)
                starts = recorder.starts
                offset = starts[-back] if len(starts) >= back else 0
            line, col = _line_col(source, offset)
            raise ExpressionError(_reason(exc), source, line, col) from None
        _refuse_private(tree, source)
        return tree

    def _finish(self, tree: nodes.Node, source: str) -> JinjaTemplate:
        try:
            tree.set_environment(self.env)
            return self.env.from_string(tree)  # type: ignore[arg-type]
        except TemplateError as exc:
            reason = _reason(exc)
            m = re.search(r"named '([^']+)'", reason)
            if m and m.group(1) in source:
                line, col = _line_col(source, source.index(m.group(1)))
                raise ExpressionError(reason, source, line, col) from None
            raise ExpressionError(reason, source) from None

    def _expression(self, source: str) -> tuple[TemplateExpression, frozenset[str]]:
        if not source.strip():
            raise ExpressionError("empty expression", source)
        expr = self._parse(source, "variable")
        assert isinstance(expr, nodes.Expr)
        found = (expr, *expr.find_all(nodes.Name))  # find_all skips the root itself
        names = frozenset(
            n.name for n in found if isinstance(n, nodes.Name) and n.ctx == "load"
        ) - frozenset(self.env.globals)
        body = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)])
        template = self._finish(body, source)
        return TemplateExpression(template, undefined_to_none=False), names

    def condition(self, source: str) -> Condition:
        """Compile a condition; raises :class:`ExpressionError`."""
        expr, names = self._expression(source)
        return Condition(source, names, expr)

    def value(self, source: str) -> Value:
        """Compile a value expression; raises :class:`ExpressionError`."""
        expr, names = self._expression(source)
        return Value(source, names, expr)

    def template(self, source: str) -> Template:
        """Compile a template; raises :class:`ExpressionError`."""
        tree = self._parse(source, None)
        assert isinstance(tree, nodes.Template)
        template = self._finish(tree, source)
        names = frozenset(find_undeclared_variables(tree)) - frozenset(self.env.globals)
        return Template(source, names, template)


def _reason(exc: TemplateError) -> str:
    text = (exc.message or str(exc)).rstrip(".")
    text = text.replace("'end of template'", "end of text").replace(
        "end of template", "end of text"
    )
    return re.sub(r"unexpected char (.+) at \d+$", r"unexpected character \1", text)


def _refuse_private(tree: nodes.Node, source: str) -> None:
    """Compile-time refusal of ``_names``: the sandbox would refuse at run time
    too, but an admin should hear about it when the flow is loaded."""
    found: list[tuple[int, str]] = []
    for node in (tree, *tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name))):
        bad: str | None = None
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            bad = node.attr
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and node.arg.value.startswith("_")
        ):
            bad = node.arg.value
        elif isinstance(node, nodes.Name) and node.name.startswith("_"):
            bad = node.name
        if bad is not None:
            found.append((max(source.find(bad), 0), bad))
    if found:
        offset, bad = min(found)
        line, col = _line_col(source, offset)
        raise ExpressionError(
            f"access to {bad!r} is not allowed (names starting with '_' are private)",
            source,
            line,
            col,
        )


# ------------------------------------------------------------- compiled
def _vars(variables: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in variables.items()}


def _run_error(exc: Exception, source: str) -> ExpressionError:
    if isinstance(exc, UndefinedError):
        return ExpressionError(str(exc), source)
    if isinstance(exc, SecurityError):
        return ExpressionError(f"refused by the sandbox: {exc}", source)
    return ExpressionError(f"{type(exc).__name__}: {exc}", source)


@dataclass(frozen=True)
class _Compiled:
    source: str
    """The text as written in the flow."""
    variables: frozenset[str]
    """Variables the text reads (besides helpers)."""


@dataclass(frozen=True)
class Condition(_Compiled):
    """A compiled condition: ``cond(vars) -> bool``; raises :class:`ExpressionError`."""

    _expr: TemplateExpression = field(repr=False, compare=False)

    def __call__(self, variables: Mapping[str, Any]) -> bool:
        try:
            result = self._expr(**_vars(variables))
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
            return bool(result)
        except ExpressionError:
            raise
        except Exception as exc:  # an admin's expression may fail in any way
            raise _run_error(exc, self.source) from None


@dataclass(frozen=True)
class Value(_Compiled):
    """A compiled value expression: ``value(vars) -> Any``; raises :class:`ExpressionError`."""

    _expr: TemplateExpression = field(repr=False, compare=False)

    def __call__(self, variables: Mapping[str, Any]) -> Any:
        try:
            result = self._expr(**_vars(variables))
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
            return result
        except Exception as exc:  # an admin's expression may fail in any way
            raise _run_error(exc, self.source) from None


@dataclass(frozen=True)
class Template(_Compiled):
    """A compiled template: ``template(vars) -> str``; raises :class:`ExpressionError`."""

    _template: JinjaTemplate = field(repr=False, compare=False)

    def __call__(self, variables: Mapping[str, Any]) -> str:
        try:
            return self._template.render(_vars(variables))
        except Exception as exc:  # an admin's template may fail in any way
            raise _run_error(exc, self.source) from None


_DEFAULT = ExpressionEnvironment()


def compile_condition(source: str) -> Condition:
    """Compile ``source`` as a condition (``when:``, ``condition:``)."""
    return _DEFAULT.condition(source)


def compile_value(source: str) -> Value:
    """Compile ``source`` as a value expression (``set`` values, lookup ``key``)."""
    return _DEFAULT.value(source)


def compile_template(source: str) -> Template:
    """Compile ``source`` as a text template (``say`` text, prompts, URLs)."""
    return _DEFAULT.template(source)
