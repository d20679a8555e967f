"""``ivr simulate``, ``ivr test-flows``, the scripted caller and case files.

The commands run through click's runner on flows written to a temporary
folder and loaded by the real loader.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.actions import CollectDigits, Play, SayText
from ivr.cli import cli
from ivr.flowtests import CaseFileError, load_cases
from ivr.scripted import CallerHangsUp, ScriptedCaller, parse_digits

FLOW = """\
flow: main
languages: [en, es]
start: hi
nodes:
  hi: {type: say, text: "Hello {{ caller_name or 'there' }}.", barge_in: true, next: look}
  look: {type: lookup, source: history, found: vip, not_found: menu}
  vip: {type: say, text: "Welcome back {{ customer.name }}.", next: menu}
  menu:
    type: menu
    prompt: {en: Press 1 for sales or 2 for the PIN., es: Oprima 1.}
    options: {"1": sales, "2": pin}
    retries: 1
    no_input: bye
  pin:
    type: gather
    prompt: Enter your PIN.
    variable: pin
    min_length: 4
    max_length: 4
    next: bye
    no_input: bye
  sales: {type: queue, queue: sales, overflow: bye}
  bye: {type: hangup, prompt: [{say: Goodbye.}, {play: "sound:goodbye"}]}
"""

CASES = """\
defaults:
  caller: "+15550001"
  at: 2026-11-23T10:00:00-05:00
cases:
  - name: sales answered
    digits: ["1"]
    queue: answered
    expect:
      path: [hi, look, menu, sales]
      prompts: ["Hello there.", "Press 1"]
      end: {queue: sales}
  - name: pin stored
    digits: "2,1234"
    expect:
      variables: {pin: "1234"}
      end: hangup
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "main.yaml").write_text(FLOW)
    (tmp_path / "routes.yaml").write_text("default: main\n")
    (tmp_path / "queues.yaml").write_text("queues:\n  sales: {}\n")
    (tmp_path / "tests").mkdir()
    return tmp_path


def invoke(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


# ----------------------------------------------------------------- simulate
def test_simulate_scripted_prints_what_is_heard_path_and_variables(folder: Path) -> None:
    code, out = invoke(
        "simulate",
        str(folder),
        "--digits",
        "2,1234",
        "--at",
        "2026-11-23T10:00:00+09:00",
        "--caller-name",
        "Ann",
        "--customer-json",
        '{"name": "Ann Lee"}',
        "--no-interactive",
    )
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "call from +15555550100 to 5000 at 2026-11-23T10:00:00+09:00"
    assert "   hears     Hello Ann." in lines
    assert "   lookup    history +15555550100: found" in lines
    assert "   hears     Welcome back Ann Lee." in lines
    assert "   digits    1234" in lines
    assert "   hears     sound:goodbye" in lines
    assert "path: hi -> look -> vip -> menu -> pin -> bye" in lines
    assert '  pin = "1234"' in lines
    assert '  customer = {"name": "Ann Lee"}' in lines
    assert lines[-1] == "ended: hangup"


def test_simulate_a_flow_file_interactively_in_spanish(folder: Path) -> None:
    code, out = invoke(
        "simulate",
        str(folder / "main.yaml"),
        "--lang",
        "es",
        "--queue-outcome",
        "overflow",
        "--interactive",
        input="\n1\n",  # a timeout, then 1
    )
    assert code == 0, out
    assert out.count("hears     Oprima 1.") == 2
    assert "digits    (timeout)" in out and "queue     sales: overflow" in out
    assert "digits (up to 1 digit(s); Enter = wait 5 s, h = hang up)" in out
    assert "path: hi -> look -> menu -> menu -> sales -> bye" not in out  # a node once per entry
    assert "path: hi -> look -> menu -> sales -> bye" in out


def test_simulate_script_runs_out_then_the_caller_hangs_up(folder: Path) -> None:
    code, out = invoke("simulate", str(folder), "--digits", "", "--no-interactive")
    assert code == 0, out
    assert "caller hangs up (the digit script ran out)" in out
    assert out.splitlines()[-1] == "ended: caller_hangup (main:menu)"


def test_simulate_errors_are_named(folder: Path) -> None:
    code, out = invoke("simulate", str(folder), "--at", "2026-11-23T10:00")
    assert code == 2 and "--at: '2026-11-23T10:00' needs a UTC offset" in out
    code, out = invoke("simulate", str(folder), "--customer-json", "[1]")
    assert code == 2 and "--customer-json: give a JSON object" in out
    code, out = invoke("simulate", str(folder), "--flow", "nope", "--no-interactive")
    assert code == 1 and "no flow named 'nope' (flows: main)" in out
    (folder / "main.yaml").write_text(FLOW.replace("next: bye\n    no_input: bye", "next: zz"))
    result = CliRunner().invoke(cli, ["simulate", str(folder)])
    assert result.exit_code == 2
    assert "the flows do not load" in result.output
    assert "main.yaml:" in result.output and "'zz'" in result.output


# --------------------------------------------------------------- test-flows
def test_test_flows_pass_and_fail_with_a_diff(folder: Path) -> None:
    (folder / "tests" / "main.test.yaml").write_text(CASES)
    code, out = invoke("test-flows", str(folder))
    assert code == 0, out
    assert "PASS" in out and out.splitlines()[-1] == "2 passed, 0 failed (1 file)"

    wrong = CASES.replace("path: [hi, look, menu, sales]", "path: [hi, menu, sales]")
    wrong = wrong.replace('{pin: "1234"}', "{pin: 1234}")
    (folder / "tests" / "main.test.yaml").write_text(wrong)
    code, out = invoke("test-flows", str(folder))
    assert code == 1
    assert f"FAIL  {folder}/tests/main.test.yaml:5  sales answered" in out
    assert "      path differs:" in out
    assert "      @@ -1,3 +1,4 @@\n       hi\n      +look\n       menu\n       sales\n" in out
    assert "variables: pin is '1234', expected 1234" in out
    assert out.splitlines()[-1] == "0 passed, 2 failed (1 file)"

    code, out = invoke("test-flows", str(folder), "-k", "pin", "-q")
    assert code == 1 and "sales answered" not in out and "1 failed" in out


def test_test_flows_unusable_inputs_exit_2(folder: Path, tmp_path: Path) -> None:
    code, out = invoke("test-flows", str(folder))
    assert code == 2 and "no test cases in" in out
    (folder / "tests" / "bad.test.yaml").write_text(
        "cases:\n  - name: x\n    at: 2026-11-23T10:00\n    expect: {end: hangup}\n"
    )
    code, out = invoke("test-flows", str(folder))
    assert code == 2
    assert f"{folder}/tests/bad.test.yaml:3:9: error:" in out
    assert "has no UTC offset" in out


# --------------------------------------------------------------- case files
def test_case_file_errors_name_the_place(tmp_path: Path) -> None:
    path = tmp_path / "x.test.yaml"
    path.write_text(
        "cases:\n"
        "  - name: a\n"
        "    expect: {}\n"
        "  - name: a\n"
        "    at: 2026-01-01T00:00:00Z\n"
        "    queue: maybe\n"
        "    expect: {end: hangup}\n"
    )
    with pytest.raises(CaseFileError) as err:
        load_cases(path)
    text = str(err.value)
    assert f"{path}:6:12: error: cases[1].queue: should be 'answered', 'overflow'," in text
    path.write_text(
        "cases:\n"
        "  - name: a\n"
        "    expect: {}\n"
        "  - name: a\n"
        "    at: 2026-01-01T00:00:00Z\n"
        "    expect: {end: hangup}\n"
    )
    with pytest.raises(CaseFileError) as err:
        load_cases(path)
    lines = str(err.value).splitlines()
    assert lines == [
        f"{path}:2:5: error: case 'a' has no `at` (the time of the call) (fix: add"
        " `at: 2026-11-23T10:00:00-05:00` to the case or to `defaults:`)",
        f"{path}:3:5: error: case 'a' expects nothing (fix: give path, path_includes, prompts,"
        " not_prompts, variables, language or end)",
        f"{path}:4:5: error: two cases are named 'a' (line 2) (fix: give each case its own name)",
    ]


def test_defaults_apply_unless_the_case_sets_the_field(tmp_path: Path) -> None:
    path = tmp_path / "x.test.yaml"
    path.write_text(
        CASES.replace('    digits: "2,1234"\n', '    digits: "2,1234"\n    caller: "9"\n')
    )
    first, second = load_cases(path)
    assert first.case.caller == "+15550001" and second.case.caller == "9"
    assert first.case.at == second.case.at == "2026-11-23T10:00:00-05:00"
    assert first.line == 5 and second.id == "x.test.yaml::pin stored"


# ---------------------------------------------------------- scripted caller
def _want(n: int, term: str | None = "#") -> CollectDigits:
    return CollectDigits(n, 5.0, 3.0, term)


def test_scripted_caller_tokens() -> None:
    assert parse_digits("1,,t,12#") == ["1", "", "t", "12#"]
    caller = ScriptedCaller(["12#34", "5678", "t", "!9", "h"])
    got = caller.collect(_want(6))
    assert (got.digits, got.timed_out) == ("12", False)
    got = caller.collect(_want(1, None))  # the rest after the terminator is typed ahead
    assert (got.digits, got.timed_out) == ("3", False)
    got = caller.collect(_want(6))
    assert (got.digits, got.timed_out) == ("4", True)  # fewer than wanted: inter-digit timeout
    got = caller.collect(_want(3))
    assert (got.digits, got.timed_out) == ("567", False)
    assert caller.collect(_want(3)).digits == "8"
    assert caller.collect(_want(3)).timed_out
    prompt = Play((SayText("x", "en"),), barge_in=False)
    assert caller.during_prompt(prompt) == (None, "9")  # no barge-in: the key is lost
    with pytest.raises(CallerHangsUp):
        caller.collect(_want(1))
    with pytest.raises(ValueError, match="'x' is not 0-9"):
        ScriptedCaller(["1x"]).collect(_want(3))
    barge = ScriptedCaller(["!45"])
    assert barge.during_prompt(Play((), barge_in=True)) == ("4", None)
    assert barge.tokens == ["5"]


def test_simulate_output_is_json_safe_for_datetimes(folder: Path) -> None:
    (folder / "main.yaml").write_text(
        FLOW.replace("next: look}", "next: stamp}").replace(
            "  look:", "  stamp: {type: set, values: {t: now}, next: look}\n  look:"
        )
    )
    code, out = invoke("simulate", str(folder), "--digits", "h", "--at", "2026-11-23T10:00:00Z")
    assert code == 0, out
    # the clock of a simulation moves on with what the caller hears: 0.8 s of "Hello there."
    expected = json.dumps(str(datetime(2026, 11, 23, 10, 0, 0, 800000, tzinfo=UTC)))
    assert f"  t = {expected}" in out
