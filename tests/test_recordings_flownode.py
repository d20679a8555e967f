"""The flow language's ``recording`` node (secure pause): model, runtime, simulator, schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.actions import CollectDigits, DigitsResult, Hangup, RecordingResult, SetRecording
from ivr.loader import FlowSetError
from ivr.model import flow_json_schema
from ivr.scripted import run_script
from tests.test_ivr_runtime import NOPLAY, Driver, flowset, new_run, texts

ROOT = Path(__file__).resolve().parent.parent

PAY = """
flow: main
start: secure
nodes:
  secure: {type: recording, action: pause, reason: card, next: card}
  card:
    type: gather
    prompt: Card number?
    variable: card
    max_length: 4
    no_input: unsecure
    next: unsecure
  unsecure: {type: recording, action: resume, next: bye}
  bye: {type: hangup}
"""


def test_pause_gather_resume_asks_the_driver_and_keeps_the_digits(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, PAY))
    d = Driver(run)
    assert d.action == SetRecording(True, "card")
    assert texts(d.answer(RecordingResult(True))) == ["Card number?"]
    assert run.variables["recording_paused"] is True
    d.answer(NOPLAY)
    d.expect(CollectDigits, DigitsResult("4111"))
    assert d.action == SetRecording(False, "pci")
    assert d.answer(RecordingResult(True)) == Hangup("hangup")
    assert run.variables["card"] == "4111" and run.variables["recording_paused"] is False


def test_a_refused_pause_leaves_the_variable_and_goes_on(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, PAY))
    d = Driver(run)
    d.answer(RecordingResult(False, "calls are not recorded"))
    assert run.scope()["recording_paused"] is False  # the flow can branch on it


def test_simulator_notes_the_pause(tmp_path: Path) -> None:
    fs = flowset(tmp_path, PAY)
    result = run_script(
        fs, caller="1", called="5000", at=datetime(2024, 1, 1, tzinfo=UTC), digits=["4111"]
    )
    notes = [(e.kind, e.detail) for e in result.events if e.kind == "recording"]
    assert notes == [("recording", "paused (card)"), ("recording", "resumed")]


def test_bad_action_is_refused_with_where_and_choices(tmp_path: Path) -> None:
    with pytest.raises(FlowSetError) as info:
        flowset(tmp_path, PAY.replace("action: resume", "action: stop"))
    text = str(info.value)
    assert "main.yaml:" in text and "'pause'" in text and "'resume'" in text, text


def test_shipped_schema_knows_the_node() -> None:
    shipped = json.loads((ROOT / "flows" / "schema.json").read_text())
    assert shipped == json.loads(json.dumps(flow_json_schema()))
    node = shipped["$defs"]["RecordingNode"]
    assert node["properties"]["action"]["enum"] == ["pause", "resume"]
