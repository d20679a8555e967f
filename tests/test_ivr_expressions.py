"""Sandboxed Jinja expressions and templates: values, helpers, exact error
positions, and escape attempts refused (at compile time when visible there,
else by the sandbox when run)."""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

import pytest

from ivr.expressions import (
    MAX_POWER,
    ExpressionError,
    compile_condition,
    compile_template,
    compile_value,
)

NOW = dt.datetime(2025, 3, 14, 9, 30, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_condition_value_template_evaluate_against_variables() -> None:
    variables = {"caller": "+81312345678", "digits": "2", "now": NOW, "customer": {"vip": True}}
    cond = compile_condition("caller.startswith('+81') and digits == '2' and customer.vip")
    assert cond(variables) is True
    assert cond({**variables, "digits": "1"}) is False
    assert compile_condition("now.hour < 9")(variables) is False
    assert compile_condition("now.weekday() == 4")(variables) is True  # a Friday
    assert compile_value("(digits | int) * 10 + len(caller)")(variables) == 32
    assert compile_value("customer")(variables) == {"vip": True}
    text = compile_template("Hello{% if customer.vip %} valued{% endif %} caller {{ digits }}.")
    assert text(variables) == "Hello valued caller 2."


def test_helpers_spell_only_digits_mask() -> None:
    variables = {"account": "12 34", "phone": "+1 (555) 0100"}
    assert compile_template("{{ account | spell }}")(variables) == "1 2 3 4"
    assert compile_value("phone | only_digits")(variables) == "15550100"
    assert compile_value("phone | only_digits | mask(4)")(variables) == "****0100"
    assert compile_value("min(3, 1) + max(2, 5) + abs(-1) + round(2.6)")({}) == 10


def test_variables_read_are_listed_without_locals_or_helpers() -> None:
    tmpl = compile_template("{% for d in digits %}{{ d }}{% endfor %} {{ len(name) }} {{ now }}")
    assert tmpl.variables == frozenset({"digits", "name", "now"})
    assert compile_condition("a.b == c['d'] and len(e) > 1").variables == frozenset("ace")
    assert compile_value("vip").variables == frozenset({"vip"})
    assert compile_value("'vip'").variables == frozenset()


def test_undefined_variable_fails_when_evaluated() -> None:
    cond = compile_condition("vip_level > 2")
    with pytest.raises(ExpressionError) as info:
        cond({})
    assert str(info.value) == "'vip_level' is undefined in 'vip_level > 2'"
    with pytest.raises(ExpressionError, match="'name' is undefined"):
        compile_template("Hi {{ name }}")({})
    with pytest.raises(ExpressionError, match="'missing' is undefined"):
        compile_value("missing")({})


@pytest.mark.parametrize(
    ("source", "message", "line", "column"),
    [
        ("caller == '123' and", "unexpected end of text", 1, 20),
        ("a +* b", "unexpected '*'", 1, 4),
        ("a b", "unexpected 'b' after the expression", 1, 3),
        ("digits == 'x", 'unexpected character "\'"', 1, 11),
        ("x.y(1,\n 2) )", "unexpected ')'", 2, 5),
        ("digits | nofilter", "No filter named 'nofilter'", 1, 10),
        ("x is nosuchtest", "No test named 'nosuchtest'", 1, 6),
    ],
)
def test_expression_syntax_errors_give_line_and_column(
    source: str, message: str, line: int, column: int
) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_condition(source)
    exc = info.value
    assert (exc.reason, exc.line, exc.column) == (message, line, column)
    assert isinstance(exc, ValueError)


def test_error_text_names_position_and_source() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_value("a +* b")
    assert str(info.value) == "unexpected '*' at column 4 of 'a +* b'"
    with pytest.raises(ExpressionError) as info:
        compile_value("x.y(1,\n 2) )")
    assert str(info.value) == "unexpected ')' at line 2, column 5 of 'x.y(1,\\n 2) )'"
    with pytest.raises(ExpressionError) as info:
        compile_value("  ")
    assert str(info.value) == "empty expression in '  '"


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("Hello {{ name ", "unexpected end of text, expected 'end of print statement'", 14),
        ("hi {{ a.b( }}", "unexpected '}', expected ')'", 12),
        ("{{ x | nosuch }}", "No filter named 'nosuch'", 8),
    ],
)
def test_template_syntax_errors(source: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_template(source)
    assert (info.value.reason, info.value.line, info.value.column) == (message, 1, column)


@pytest.mark.parametrize(
    ("source", "name", "column"),
    [
        ("''.__class__.__mro__", "__class__", 4),
        ("caller.__class__.__base__.__subclasses__()", "__class__", 8),
        ("x._private", "_private", 3),
        ("x['__globals__']", "__globals__", 4),
        ("_hidden", "_hidden", 1),
        ("cycler.__init__.__globals__", "__init__", 8),
    ],
)
def test_private_names_are_refused_at_compile_time(source: str, name: str, column: int) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_value(source)
    assert info.value.reason == (
        f"access to {name!r} is not allowed (names starting with '_' are private)"
    )
    assert info.value.column == column


def test_private_names_in_templates_are_refused() -> None:
    with pytest.raises(ExpressionError, match="access to '__class__' is not allowed"):
        compile_template("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(ExpressionError, match="access to '__globals__' is not allowed"):
        compile_template("{% set f = x['__globals__'] %}{{ f }}")


def test_calling_os_or_eval_is_refused_even_when_passed_in() -> None:
    variables = {"os": os, "ev": eval, "op": open, "cls": str}
    with pytest.raises(ExpressionError) as info:
        compile_value("os.system('touch /tmp/pwned-by-flow')")(variables)
    assert "access to attribute 'system' of 'module' object is unsafe" in str(info.value)
    with pytest.raises(ExpressionError, match="is not safely callable"):
        compile_value("ev('1+1')")(variables)
    with pytest.raises(ExpressionError, match="is not safely callable"):
        compile_value("op('/etc/passwd').read()")(variables)
    with pytest.raises(ExpressionError, match="attribute 'mro' of 'type' object is unsafe"):
        compile_value("cls.mro()")(variables)
    with pytest.raises(ExpressionError, match="'os' is undefined"):
        compile_value("os.system('true')")({})
    # builtins of Python are not variables of the sandbox
    with pytest.raises(ExpressionError, match="access to '__import__' is not allowed"):
        compile_value("__import__('os')")
    with pytest.raises(ExpressionError, match="'eval' is undefined"):
        compile_value("eval('1')")({})


def test_format_strings_cannot_reach_private_attributes() -> None:
    with pytest.raises(ExpressionError, match="attribute '__class__' of 'int' object is unsafe"):
        compile_value("'{0.__class__}'.format(1)")({})
    assert compile_value("'{:>4}'.format(7)")({}) == "   7"


def test_immutable_values_and_resource_limits() -> None:
    with pytest.raises(ExpressionError, match="attribute 'append' of 'list' object is unsafe"):
        compile_value("[1, 2].append(3)")({})
    with pytest.raises(ExpressionError, match="attribute 'update' of 'dict' object is unsafe"):
        compile_value("d.update(a=1)")({"d": {}})
    with pytest.raises(ExpressionError) as info:
        compile_value("2 ** 1000")({})
    assert info.value.reason == (
        f"refused by the sandbox: exponent 1000 is above the limit {MAX_POWER}"
    )
    assert compile_value("2 ** 10")({}) == 1024
    with pytest.raises(ExpressionError, match="'\\*' would build 100000 items"):
        compile_value("'ab' * 50000")({})
    with pytest.raises(ExpressionError, match="Range too big"):
        compile_value("range(10 ** 6) | list | length")({})


def test_runtime_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_value("1 / n")({"n": 0})
    assert str(info.value) == "ZeroDivisionError: division by zero in '1 / n'"


def test_compiled_objects_keep_their_source() -> None:
    cond = compile_condition("digits == '1'")
    assert cond.source == "digits == '1'"
    assert compile_template("Hi {{ x }}").source == "Hi {{ x }}"
