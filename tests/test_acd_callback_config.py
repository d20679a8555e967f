"""Callback settings: queues.yaml ``callbacks:`` and the flow queue node's
``callback:``, checked with file:line:column; the flow run hands the rendered
offer to the ACD and ends (or goes on) when the caller took it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acd.config import AcdConfigError, parse_config
from acd.model import CallbackPolicy
from ivr.actions import CallbackOption, Enqueue, Hangup, QueueResult
from ivr.loader import load_flowset
from ivr.model import flow_json_schema
from ivr.runtime import FlowRun
from tests.ivr_folder import make_folder, report

QUEUES = """\
queues:
  help: {}
"""


ACD = """\
skills: [help]
queues:
  help: {skills: {help: 1}}
agents:
  ann: {skills: {help: 1}}
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(AcdConfigError) as info:
        parse_config(text, Path("queues.yaml"))
    return [str(d) for d in info.value.diagnostics if d.severity == "error"]


def test_callbacks_section_is_read() -> None:
    config, _warnings = parse_config(
        ACD
        + "callbacks:\n"
        + '  dial: "sip:{number}@{pbx}"\n'
        + "  ring_timeout: 20\n  attempts: 2\n  retry_after: 0\n"
    )
    assert config.callbacks == CallbackPolicy("sip:{number}@{pbx}", 20.0, 2, 0.0)
    default, _ = parse_config(ACD)
    assert default.callbacks == CallbackPolicy()  # no dial: callbacks are not offered
    assert default.callbacks.dial is None


def test_bad_callbacks_settings_name_the_place_and_the_fix() -> None:
    assert _errors(ACD + 'callbacks:\n  dial: "sip:agent@pbx:5060"\n') == [
        "queues.yaml:7:9: error: callbacks dial 'sip:agent@pbx:5060' does not hold {number} "
        "(fix: write e.g. sip:{number}@{pbx} ({number}: the caller's number, {pbx}: the "
        "host:port their call came from) or sip:{number}@pbx.example.com:5060)"
    ]
    (error,) = _errors(ACD + 'callbacks:\n  dial: "sip:{numbr}@pbx"\n')
    assert error.startswith("queues.yaml:7:9: error: callbacks dial 'sip:{numbr}@pbx' is not")
    assert "only {number} and {pbx} may appear in braces" in error
    (error,) = _errors(ACD + 'callbacks:\n  dial: "tel:{number}"\n')
    assert error.startswith("queues.yaml:7:9: error: callbacks dial 'tel:{number}' is not a sip:")
    assert _errors(ACD + "callbacks:\n  attempts: 0\n  retries: 2\n") == [
        "queues.yaml:7:13: error: callbacks attempts must be greater than 0, not 0 "
        "(fix: give callbacks attempts a value greater than 0)",
        "queues.yaml:8:3: error: unknown key 'retries' in callbacks "
        "(fix: known: attempts, dial, retry_after, ring_timeout)",
    ]
    (error,) = _errors(ACD + "callbacks: sip:{number}@pbx\n")
    assert error.startswith("queues.yaml:6:12: error: callbacks must be a mapping, not text")


FLOW = """\
flow: main
start: q
nodes:
  q:
    type: queue
    queue: help
    callback: {CALLBACK}
    next: bye
  bye:
    type: hangup
    prompt: Goodbye.
"""


def _flow(callback: str) -> str:
    return FLOW.replace("{CALLBACK}", callback)


def test_queue_node_callback_is_checked(tmp_path: Path) -> None:
    good = make_folder(
        tmp_path / "good",
        _flow('{digit: "1", after: 30, every: 60, next: bye, confirm: "Bye {{ caller }}."}'),
        queues=QUEUES,
    )
    assert report(good) == []
    bad_digit = make_folder(tmp_path / "digit", _flow('{digit: "12"}'), queues=QUEUES)
    (problem,) = report(bad_digit)
    assert problem.startswith("main.yaml:7:23: error:") and "digit" in problem
    bad_target = make_folder(tmp_path / "target", _flow("{next: by}"), queues=QUEUES)
    (problem,) = report(bad_target)
    assert problem.startswith("main.yaml:7:22: error: node 'q' (queue):")
    assert "did you mean 'bye'?" in problem
    bad_number = make_folder(tmp_path / "number", _flow('{number: "caller +"}'), queues=QUEUES)
    assert report(bad_number) == [
        "main.yaml:7:33: error: node 'q' (queue): bad expression callback.number: unexpected "
        "end of text (fix: Jinja expression syntax, e.g. caller.startswith('+81') and "
        "digits == '1')"
    ]
    unknown = make_folder(tmp_path / "unknown", _flow("{press: 1}"), queues=QUEUES)
    (problem,) = report(unknown)
    assert problem.startswith("main.yaml:7:16: error:") and "press" in problem


def test_flow_schema_describes_the_callback() -> None:
    schema = flow_json_schema()
    callback = schema["$defs"]["QueueCallback"]
    assert set(callback["properties"]) == {
        "digit",
        "after",
        "every",
        "number",
        "offer",
        "confirm",
        "next",
    }
    shipped = json.loads((Path(__file__).parent.parent / "flows" / "schema.json").read_text())
    assert shipped == schema  # regenerated: ivr schema -o flows/schema.json


def test_flow_run_offers_the_callback_and_ends_when_taken(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        _flow('{digit: "#", after: 5, confirm: {en: "We will call {{ caller }}.", es: "Adiós."}}'),
        queues=QUEUES,
    )
    flowset = load_flowset(folder)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    run = FlowRun(flowset, caller="5551234", called="1", call_id="c1", now=now)
    action = run.start(now)
    assert isinstance(action, Enqueue) and action.callback is not None
    assert action.callback == CallbackOption(
        digit="#",
        after=5.0,
        every=None,
        number="5551234",
        offer="To be called back when it is your turn, without losing your place in line, press #.",
        confirm="We will call 5551234.",
        language="en",
    )
    # the node's `next` is for the agent leg: a callback ends the run (no callback.next)
    assert run.resume(QueueResult("callback", waited=12.0), now) == Hangup("callback", "help")
    assert run.variables["queue_outcome"] == "callback"
