"""The flow runtime, node by node: every action it asks for and where it goes.

Flows are YAML files loaded (and validated) by the real loader; each test
answers the runtime's actions one by one, as a driver would, and checks the
path, the variables and the terminal action. What the validator refuses
(loops without input, missing targets, unknown zones) is also guarded by the
runtime itself: those tests build the flows without the validator
(:class:`RawFlows`).
"""

from __future__ import annotations

import re
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ruamel.yaml import YAML

from ivr.actions import (
    CollectDigits,
    DigitsResult,
    Enqueue,
    Hangup,
    Lookup,
    LookupResult,
    Play,
    PlayFile,
    PlayResult,
    QueueResult,
    RecordVoicemail,
    Result,
    SayText,
    Silence,
    Tone,
    Transfer,
    TransferResult,
    VoicemailResult,
)
from ivr.expressions import BUILTIN_VARIABLES
from ivr.loader import load_flowset
from ivr.model import Flow
from ivr.runtime import FlowRun, FlowRuntimeError, Limits
from media.prompts.tones import tone

TOKYO = ZoneInfo("Asia/Tokyo")
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=TOKYO)


def flowset(tmp_path: Path, *flows: str, routes: str | None = None) -> Any:
    for old in tmp_path.glob("*.yaml"):
        old.unlink()
    for text in flows:
        m = re.search(r"^flow: (\S+)", text, re.M)
        assert m, text
        (tmp_path / f"{m.group(1)}.yaml").write_text(text)
    (tmp_path / "routes.yaml").write_text(routes or "routes: []\ndefault: main\n")
    (tmp_path / "queues.yaml").write_text("queues:\n  sales: {}\n")
    return load_flowset(tmp_path)


class RawFlows:
    """Flows parsed by the model only, without the loader's validator."""

    def __init__(self, *texts: str) -> None:
        flows = [Flow.model_validate(YAML(typ="safe").load(t)) for t in texts]
        self.flows = {f.flow: f for f in flows}

    def flow_for(self, number: str) -> Flow:
        return self.flows["main"]


def new_run(fs: Any, **kw: Any) -> FlowRun:
    kw.setdefault("now", T0)
    return FlowRun(fs, caller="+81312345678", called="5000", call_id="c1", **kw)


def write_wav(path: Path, audio: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(audio.tobytes())


class Driver:
    """Answers a run's actions one by one, a minute apart."""

    def __init__(self, run: FlowRun) -> None:
        self.run = run
        self.now = run.now
        self.action = run.start()
        self.actions = [self.action]

    def answer(self, result: Result) -> Any:
        self.now += timedelta(minutes=1)
        self.action = self.run.resume(result, self.now)
        self.actions.append(self.action)
        return self.action

    def expect(self, kind: type, result: Result | None = None) -> Any:
        action = self.action
        assert isinstance(action, kind), f"expected {kind.__name__}, got {action!r}"
        if result is not None:
            self.answer(result)
        return action


def texts(action: Any) -> list[str]:
    assert isinstance(action, Play), action
    out = []
    for p in action.parts:
        if isinstance(p, SayText):
            out.append(p.text)
        elif isinstance(p, PlayFile):
            out.append(p.ref)
        elif isinstance(p, Tone):
            out.append("<beep>")
        elif isinstance(p, Silence):
            out.append(f"<{p.ms} ms>")
    return out


def timeout() -> DigitsResult:
    return DigitsResult("", timed_out=True)


def key(d: str) -> DigitsResult:
    return DigitsResult(d, timed_out=False)


NOPLAY = PlayResult(None)

MENU = """
flow: main
start: menu
nodes:
  menu:
    type: menu
    prompt: For sales press 1, for support press 2.
    options: {"1": sales, "2": support}
    timeout: 4
    retries: 2
    repeat: "9"
    no_input: noinput
    invalid: bad
    no_input_prompt: Sorry, I did not hear you.
    invalid_prompt: That is not an option.
  sales: {type: say, text: Sales.}
  support: {type: say, text: Support.}
  noinput: {type: say, text: Goodbye.}
  bad: {type: say, text: Too many wrong keys.}
"""


# ----------------------------------------------------------------- say / play
def test_say_then_end_of_flow_hangs_up_with_path_and_times(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
voice: gmw/en-us
variables: {company: Acme}
start: hi
nodes:
  hi: {type: say, text: "Welcome to {{ company }}, caller {{ caller }}.", next: bye}
  bye: {type: say, text: Goodbye., voice: gmw/en-gb, barge_in: true}
""",
    )
    run = new_run(fs)
    d = Driver(run)
    play = d.expect(Play)
    assert play.parts == (SayText("Welcome to Acme, caller +81312345678.", "en", "gmw/en-us"),)
    assert play.barge_in is False
    d.answer(NOPLAY)
    play = d.expect(Play)
    assert play.parts == (SayText("Goodbye.", "en", "gmw/en-gb"),) and play.barge_in
    end = d.answer(NOPLAY)
    assert end == Hangup("hangup") and run.finished and run.ended == end
    assert [(v.node, v.type, v.at) for v in run.path] == [
        ("hi", "say", T0),
        ("bye", "say", T0 + timedelta(minutes=1)),
    ]
    assert run.labels() == ["hi", "bye"]
    # A finished run keeps answering its end.
    with pytest.raises(RuntimeError, match="without a pending action"):
        run.resume(NOPLAY, d.now)


def test_play_node_files_sounds_and_templated_names(tmp_path: Path) -> None:
    write_wav(tmp_path / "prompts" / "welcome.wav", tone((440,), 200))
    fs = flowset(
        tmp_path,
        """
flow: main
variables: {n: 5}
start: p
nodes:
  p: {type: play, audio: [prompts/welcome.wav, "sound:digits/{{ n }}", "sound:vm-goodbye"]}
""",
    )
    d = Driver(new_run(fs))
    assert texts(d.expect(Play)) == ["prompts/welcome.wav", "sound:digits/5", "sound:vm-goodbye"]
    assert d.answer(NOPLAY) == Hangup("hangup")


def test_prompt_parts_silence_tone_and_languages(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
language: en
languages: [en, es]
start: m
nodes:
  m:
    type: menu
    prompt:
      - say: {en: Hello, es: Hola}
      - silence: 300
      - tone: beep
      - play: sound:vm-intro
      - say: "  "
      - say: {fr: Bonjour}
    options: {"1": m}
    no_input: m
""",
    )
    d = Driver(new_run(fs, language="es"))
    play = d.expect(Play)
    assert play.parts == (
        SayText("Hola", "es"),
        Silence(300),
        Tone("beep"),
        PlayFile("sound:vm-intro"),
        SayText("Bonjour", "fr"),
    )


# ------------------------------------------------------------------- menu
def test_menu_choice_after_prompt(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, MENU))
    d = Driver(run)
    assert texts(d.expect(Play)) == ["For sales press 1, for support press 2."]
    assert d.expect(Play).barge_in is True
    d.answer(NOPLAY)
    assert d.expect(CollectDigits) == CollectDigits(1, 4.0, 4.0, None)
    d.answer(key("2"))
    assert texts(d.expect(Play)) == ["Support."]
    d.answer(NOPLAY)
    assert run.labels() == ["menu", "support"]
    assert run.scope()["digits"] == "2"


def test_menu_barge_in_digit_is_the_choice(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, MENU))
    d = Driver(run)
    d.expect(Play, PlayResult("1"))
    # No digit collection: the key pressed during the prompt chose.
    assert texts(d.expect(Play)) == ["Sales."]
    assert run.labels() == ["menu", "sales"]


def test_menu_without_barge_in_ignores_a_reported_digit(tmp_path: Path) -> None:
    text = MENU.replace("    repeat:", "    barge_in: false\n    repeat:")
    d = Driver(new_run(flowset(tmp_path, text)))
    assert d.expect(Play).barge_in is False
    d.answer(PlayResult("1"))  # a driver bug at worst: it must not count
    d.expect(CollectDigits, key("2"))
    assert texts(d.expect(Play)) == ["Support."]


def test_menu_no_input_retries_with_reprompt_then_no_input_branch(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, MENU))
    d = Driver(run)
    prompt = "For sales press 1, for support press 2."
    d.expect(Play, NOPLAY)
    d.expect(CollectDigits, timeout())
    assert texts(d.expect(Play)) == ["Sorry, I did not hear you.", prompt]
    d.answer(NOPLAY)
    d.expect(CollectDigits, timeout())
    assert texts(d.expect(Play)) == ["Sorry, I did not hear you.", prompt]
    d.answer(NOPLAY)
    d.expect(CollectDigits, timeout())  # third try (retries: 2) -> no_input
    assert texts(d.expect(Play)) == ["Goodbye."]
    assert run.labels() == ["menu", "noinput"]


def test_menu_invalid_then_valid_and_shared_try_count(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, MENU))
    d = Driver(run)
    d.expect(Play, NOPLAY)
    d.expect(CollectDigits, key("7"))
    assert texts(d.expect(Play))[0] == "That is not an option."
    d.answer(PlayResult("5"))  # barge-in with another wrong key
    assert texts(d.expect(Play))[0] == "That is not an option."
    d.answer(NOPLAY)
    d.expect(CollectDigits, key("1"))
    assert texts(d.expect(Play)) == ["Sales."]


def test_menu_invalid_exhausted_goes_to_invalid(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, MENU))
    d = Driver(run)
    d.expect(Play, NOPLAY)
    d.expect(CollectDigits, timeout())  # 1: no input
    d.expect(Play, PlayResult("8"))  # 2: invalid
    d.expect(Play, PlayResult("#"))  # 3: invalid: tries exhausted on an invalid key
    assert texts(d.expect(Play)) == ["Too many wrong keys."]
    assert run.labels() == ["menu", "bad"]


def test_menu_repeat_digit_replays_without_counting(tmp_path: Path) -> None:
    text = MENU.replace("retries: 2", "retries: 0")
    run = new_run(flowset(tmp_path, text))
    d = Driver(run)
    for _ in range(3):
        assert texts(d.expect(Play)) == ["For sales press 1, for support press 2."]
        d.answer(PlayResult("9"))
    d.expect(Play, PlayResult("2"))
    assert texts(d.expect(Play)) == ["Support."]


def test_menu_targets_fall_back_to_each_other_then_hang_up(tmp_path: Path) -> None:
    base = """
flow: main
start: m
nodes:
  m:
    type: menu
    prompt: Press 1.
    options: {"1": m}
    retries: 0
"""
    fs = flowset(tmp_path, base + "    no_input: x\n  x: {type: hangup, prompt: Bye.}\n")
    d = Driver(new_run(fs))
    d.expect(Play, PlayResult("5"))  # invalid, no `invalid` target: uses no_input
    assert texts(d.expect(Play)) == ["Bye."]
    assert d.answer(NOPLAY) == Hangup("hangup")

    run = new_run(RawFlows(base))  # the validator wants a no_input target
    d = Driver(run)
    d.expect(Play, NOPLAY)
    end = d.answer(timeout())
    assert end == Hangup("hangup", "main:m: no_input, tries exhausted")


def test_say_barge_in_digit_is_type_ahead_for_the_next_menu(tmp_path: Path) -> None:
    text = MENU.replace("start: menu", "start: hi").replace(
        "nodes:\n", "nodes:\n  hi: {type: say, text: Welcome., barge_in: true, next: menu}\n"
    )
    run = new_run(flowset(tmp_path, text))
    d = Driver(run)
    d.expect(Play, PlayResult("2"))
    # The menu takes the typed-ahead key without playing its prompt.
    assert texts(d.expect(Play)) == ["Support."]
    assert run.labels() == ["hi", "menu", "support"]


# ----------------------------------------------------------------- gather
GATHER = """
flow: main
start: g
nodes:
  g:
    type: gather
    prompt: Enter your account number, then hash.
    variable: account
    min_length: 4
    max_length: 6
    timeout: 6
    inter_digit_timeout: 2
    pattern: "[1-9][0-9]*"
    retries: 1
    invalid_prompt: That number is not valid.
    no_input_prompt: Please enter your number.
    next: ok
    invalid: bad
    no_input: none
  ok: {type: say, text: "Account {{ account }}."}
  bad: {type: say, text: Invalid.}
  none: {type: say, text: Nothing.}
"""


def test_gather_terminator_and_variable(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, GATHER))
    d = Driver(run)
    d.expect(Play, NOPLAY)
    assert d.expect(CollectDigits) == CollectDigits(6, 6.0, 2.0, "#")
    d.answer(key("12345"))
    assert texts(d.expect(Play)) == ["Account 12345."]
    assert run.variables["account"] == "12345" and run.scope()["digits"] == "12345"


def test_gather_barge_in_first_digit_then_rest_with_inter_digit_timeout(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, GATHER))
    d = Driver(run)
    d.expect(Play, PlayResult("4"))
    assert d.expect(CollectDigits) == CollectDigits(5, 2.0, 2.0, "#")
    d.answer(DigitsResult("321", timed_out=True))  # inter-digit timeout ends the entry
    assert texts(d.expect(Play)) == ["Account 4321."]


def test_gather_too_short_then_pattern_fail_goes_invalid(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, GATHER))
    d = Driver(run)
    d.expect(Play, NOPLAY)
    d.expect(CollectDigits, key("12"))  # shorter than min_length
    assert texts(d.expect(Play)) == [
        "That number is not valid.",
        "Enter your account number, then hash.",
    ]
    d.answer(NOPLAY)
    d.expect(CollectDigits, key("012345"))  # max_length reached, but the pattern fails
    assert texts(d.expect(Play)) == ["Invalid."]
    assert "account" not in run.variables


def test_gather_no_input_and_terminator_alone(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, GATHER))
    d = Driver(run)
    d.expect(Play, PlayResult("#"))  # the terminator alone: nothing entered
    assert texts(d.expect(Play))[0] == "Please enter your number."
    d.answer(NOPLAY)
    d.expect(CollectDigits, timeout())
    assert texts(d.expect(Play)) == ["Nothing."]


def test_gather_uses_type_ahead_and_stops_at_max_length(tmp_path: Path) -> None:
    text = GATHER.replace("start: g", "start: hi").replace(
        "nodes:\n", "nodes:\n  hi: {type: say, text: Hi., barge_in: true, next: g}\n"
    )
    run = new_run(flowset(tmp_path, text))
    d = Driver(run)
    d.expect(Play, PlayResult("7"))
    # type-ahead "7": no prompt, the rest of the number is collected
    assert d.expect(CollectDigits) == CollectDigits(5, 2.0, 2.0, "#")
    d.answer(key("77777"))
    assert texts(d.expect(Play)) == ["Account 777777."]


# ------------------------------------------------------- set / switch / if
def test_set_switch_if_with_expressions(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
variables: {tier: silver}
start: s
nodes:
  s:
    type: set
    values:
      vip: "tier == 'gold' or caller.startswith('+8131')"
      count: 3
      ratio: 0.5
      flag: true
      total: "count * 2"
    next: sw
  sw:
    type: switch
    cases:
      - {when: "total > 10", goto: big}
      - {when: "vip and total == 6", goto: check}
    default: big
  check: {type: if, condition: "flag and ratio < 1", then: yes, else: no}
  big: {type: say, text: Big.}
  "yes": {type: say, text: "Yes {{ total }}."}
  "no": {type: say, text: No.}
""",
    )
    run = new_run(fs)
    d = Driver(run)
    assert texts(d.expect(Play)) == ["Yes 6."]
    assert run.labels() == ["s", "sw", "check", "yes"]
    assert run.variables == {
        "tier": "silver",
        "vip": True,
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "total": 6,
    }


def test_set_language_switches_texts_and_builtins_are_read_only(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
languages: [en, es]
start: s
nodes:
  s: {type: set, values: {language: "'es'"}, next: hi}
  hi: {type: say, text: {en: Hello, es: Hola}, next: bad}
  bad: {type: set, values: {caller: "'x'"}}
""",
    )
    run = new_run(fs)
    d = Driver(run)
    assert d.expect(Play).parts == (SayText("Hola", "es"),)
    end = d.answer(NOPLAY)
    assert end.reason == "error"
    assert end.detail == (
        "flow 'main', node 'bad': 'caller' is a built-in variable and cannot be set"
    )
    assert run.error == end.detail


def test_expression_error_ends_the_run_naming_flow_and_node(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
start: c
nodes:
  c: {type: if, condition: "1 / 0", then: d, else: d}
  d: {type: hangup}
""",
    )
    run = new_run(fs)
    end = run.start()
    assert isinstance(end, Hangup) and end.reason == "error"
    assert end.detail is not None
    assert end.detail.startswith("flow 'main', node 'c': condition '1 / 0' failed:")
    assert "division by zero" in end.detail


# ------------------------------------------------------------------ hours
HOURS = """
flow: main
start: h
nodes:
  h:
    type: hours
    timezone: America/New_York
    schedule:
      mon: ["09:00-17:00"]
      sat: ["09:00-12:00"]
    holidays: ["2026-12-25"]
    open: o
    closed: c
    holiday: x
  o: {type: hangup, prompt: Open.}
  c: {type: hangup, prompt: Closed.}
  x: {type: hangup, prompt: Holiday.}
"""


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Saturday 7 March 2026, EST (UTC-5): 13:30 UTC = 08:30 local, closed
        (datetime(2026, 3, 7, 13, 30, tzinfo=UTC), "Closed."),
        # the same UTC time on Monday 9 March, after the DST change (EDT, UTC-4):
        # 09:30 local, open; a fixed UTC-5 offset would say 08:30, closed
        (datetime(2026, 3, 9, 13, 30, tzinfo=UTC), "Open."),
        # Monday 2 March (EST): 13:59:59 UTC = 08:59:59 local, closed
        (datetime(2026, 3, 2, 13, 59, 59, tzinfo=UTC), "Closed."),
        (datetime(2026, 3, 2, 14, 0, tzinfo=UTC), "Open."),
        # end of span excluded: 17:00 local (EDT) = 21:00 UTC
        (datetime(2026, 3, 9, 20, 59, 59, tzinfo=UTC), "Open."),
        (datetime(2026, 3, 9, 21, 0, tzinfo=UTC), "Closed."),
        # Sunday: no schedule
        (datetime(2026, 3, 8, 15, 0, tzinfo=UTC), "Closed."),
        # Christmas 2026 is a Friday; closed all day as a holiday, by local date:
        # 04:30 UTC on the 26th is still the 25th in New York
        (datetime(2026, 12, 26, 4, 30, tzinfo=UTC), "Holiday."),
        (datetime(2026, 12, 25, 4, 30, tzinfo=UTC), "Closed."),  # 24th, 23:30 local
    ],
)
def test_hours_dst_and_holiday(tmp_path: Path, utc: datetime, expected: str) -> None:
    d = Driver(new_run(flowset(tmp_path, HOURS), now=utc))
    assert texts(d.expect(Play)) == [expected]


def test_hours_holiday_defaults_to_closed_and_bad_zone_is_an_error(tmp_path: Path) -> None:
    text = HOURS.replace("    holiday: x\n", "")
    d = Driver(new_run(flowset(tmp_path, text), now=datetime(2026, 12, 25, 15, tzinfo=UTC)))
    assert texts(d.expect(Play)) == ["Closed."]
    text = HOURS.replace("America/New_York", "Mars/Olympus")
    end = new_run(RawFlows(text)).start()
    assert end == Hangup(
        "error", "flow 'main', node 'h': unknown time zone 'Mars/Olympus' (use e.g. Asia/Tokyo)"
    )


# ----------------------------------------------------------------- lookup
LOOKUP = """
flow: main
start: l
nodes:
  l:
    type: lookup
    source: http
    key: "caller[1:]"
    url: "http://crm.example/customers/{{ key }}?lang={{ language }}"
    timeout: 1.5
    found: hi
    not_found: anon
    error: sorry
  hi: {type: say, text: "Hello {{ customer.name }}."}
  anon: {type: say, text: Hello.}
  sorry: {type: say, text: "Error {{ lookup_error }}."}
"""


def test_lookup_found_not_found_error(tmp_path: Path) -> None:
    fs = flowset(tmp_path, LOOKUP)
    d = Driver(new_run(fs))
    assert d.expect(Lookup) == Lookup(
        "http", "81312345678", "http://crm.example/customers/81312345678?lang=en", 1.5
    )
    d.answer(LookupResult({"name": "Alice", "tier": "gold"}))
    assert texts(d.expect(Play)) == ["Hello Alice."]
    assert d.run.variables["customer"] == {"name": "Alice", "tier": "gold"}

    d = Driver(new_run(fs))
    d.expect(Lookup, LookupResult(None))
    assert texts(d.expect(Play)) == ["Hello."] and d.run.variables["customer"] is None

    d = Driver(new_run(fs))
    d.expect(Lookup, LookupResult(None, "timeout after 1.5 s"))
    assert texts(d.expect(Play)) == ["Error timeout after 1.5 s."]

    # without an error branch, an error goes to not_found
    fs = flowset(tmp_path, LOOKUP.replace("    error: sorry\n", ""))
    d = Driver(new_run(fs))
    d.expect(Lookup, LookupResult(None, "HTTP 500"))
    assert texts(d.expect(Play)) == ["Hello."]


def test_history_lookup_default_key_is_the_caller(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
start: l
nodes:
  l: {type: lookup, source: history, variable: who, found: a, not_found: a}
  a: {type: hangup}
""",
    )
    d = Driver(new_run(fs))
    assert d.expect(Lookup) == Lookup("history", "+81312345678", None, 2.0)
    assert d.answer(LookupResult({"id": 7})) == Hangup("hangup")
    assert d.run.variables["who"] == {"id": 7}


# ------------------------------------------------------------------ queue
QUEUE = """
flow: main
start: q
nodes:
  q:
    type: queue
    queue: sales
    skills: {english: 3, billing: 2}
    priority: 5
    max_wait: 120
    overflow: vm
    next: survey
  survey: {type: say, text: "Thanks ({{ queue_outcome }})."}
  vm: {type: say, text: "Nobody there ({{ queue_outcome }})."}
"""


@pytest.mark.parametrize(
    ("outcome", "said"),
    [
        ("answered", "Thanks (answered)."),
        ("overflow", "Nobody there (overflow)."),
        ("no_agents", "Nobody there (no_agents)."),
    ],
)
def test_queue_outcomes_branch(tmp_path: Path, outcome: Any, said: str) -> None:
    d = Driver(new_run(flowset(tmp_path, QUEUE)))
    assert d.expect(Enqueue) == Enqueue("sales", {"english": 3, "billing": 2}, 5, 120.0)
    d.answer(QueueResult(outcome))
    assert texts(d.expect(Play)) == [said]


def test_queue_ends_without_branches_and_abandon(tmp_path: Path) -> None:
    text = QUEUE.replace("    overflow: vm\n", "").replace("    next: survey\n", "")
    fs = flowset(tmp_path, text)
    d = Driver(new_run(fs))
    assert d.expect(Enqueue, QueueResult("answered")) is not None
    assert d.action == Hangup("queue", "sales")
    d = Driver(new_run(fs))
    d.expect(Enqueue, QueueResult("no_agents"))
    assert d.action == Hangup("no_agents", "sales")
    d = Driver(new_run(fs))
    d.expect(Enqueue, QueueResult("abandoned"))
    assert d.action == Hangup("abandoned", "sales")
    # the driver reporting the caller's hang-up while queued
    run = new_run(fs)
    run.start()
    assert run.caller_hung_up(T0) == Hangup("abandoned", "sales")
    assert run.finished


# ------------------------------------------------------- transfer / voicemail
def test_transfer_ok_failed_and_templated_target(tmp_path: Path) -> None:
    text = """
flow: main
variables: {ext: "2001"}
start: t
nodes:
  t: {type: transfer, to: "sip:{{ ext }}@pbx.example", failed: sorry}
  sorry: {type: hangup, prompt: Transfer failed.}
"""
    fs = flowset(tmp_path, text)
    d = Driver(new_run(fs))
    assert d.expect(Transfer) == Transfer("sip:2001@pbx.example")
    assert d.answer(TransferResult(True, 200)) == Hangup("transfer", "sip:2001@pbx.example")
    d = Driver(new_run(fs))
    d.expect(Transfer, TransferResult(False, 486))
    assert texts(d.expect(Play)) == ["Transfer failed."]
    fs = flowset(tmp_path, text.replace(", failed: sorry", ""))
    d = Driver(new_run(fs))
    assert d.expect(Transfer, TransferResult(False, 404)) is not None
    assert d.action == Hangup("hangup", "transfer to sip:2001@pbx.example failed")


def test_voicemail_prompt_beep_record_and_variable(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
start: v
nodes:
  v:
    type: voicemail
    mailbox: "sales-{{ language }}"
    prompt: Leave a message after the tone.
    max_length: 30
    finish_digit: "*"
""",
    )
    run = new_run(fs)
    d = Driver(run)
    play = d.expect(Play)
    assert texts(play) == ["Leave a message after the tone.", "<beep>"] and not play.barge_in
    d.answer(NOPLAY)
    assert d.expect(RecordVoicemail) == RecordVoicemail("sales-en", 30.0, "*")
    assert d.answer(VoicemailResult("/data/vm.wav", 12.5)) == Hangup("voicemail", "sales-en")
    assert run.variables["voicemail"] == {
        "mailbox": "sales-en",
        "path": "/data/vm.wav",
        "seconds": 12.5,
    }


# ------------------------------------------------- goto / subflow / return
def test_goto_other_flow_adds_its_variable_defaults(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
variables: {shared: main}
start: g
nodes:
  g: {type: goto, target: "other:"}
  end: {type: say, text: Back.}
""",
        """
flow: other
variables: {shared: other, own: 1}
start: a
nodes:
  a: {type: say, text: "{{ shared }} {{ own }}", next: b}
  b: {type: goto, target: "main:end"}
""",
    )
    run = new_run(fs)
    d = Driver(run)
    assert texts(d.expect(Play)) == ["main 1"]
    d.answer(NOPLAY)
    assert texts(d.expect(Play)) == ["Back."]
    assert run.labels() == ["g", "other:a", "other:b", "end"]


def test_subflow_returns_explicitly_and_by_falling_off(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
start: s1
nodes:
  s1: {type: subflow, flow: auth, next: s2}
  s2: {type: subflow, flow: auth, node: short, next: done}
  done: {type: say, text: "Done {{ pin }}."}
""",
        """
flow: auth
start: ask
nodes:
  ask: {type: gather, prompt: PIN?, variable: pin, max_length: 4, next: ret, no_input: ret}
  ret: {type: return}
  short: {type: say, text: Short.}
""",
    )
    run = new_run(fs)
    d = Driver(run)
    d.expect(Play, NOPLAY)
    d.expect(CollectDigits, key("1234"))
    assert texts(d.expect(Play)) == ["Short."]
    d.answer(NOPLAY)
    assert texts(d.expect(Play)) == ["Done 1234."]
    assert run.labels() == ["s1", "auth:ask", "auth:ret", "s2", "auth:short", "done"]
    assert run.flow == "main"


def test_return_at_top_level_hangs_up_and_depth_limit(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
start: r
nodes:
  r: {type: return}
""",
    )
    assert new_run(fs).start() == Hangup("hangup")
    fs = RawFlows(
        """
flow: main
start: deeper
nodes:
  deeper: {type: subflow, flow: main, next: deeper}
"""
    )
    end = new_run(fs, limits=Limits(max_depth=3)).start()
    assert end == Hangup("error", "flow 'main', node 'deeper': subflows nested more than 3 deep")


# --------------------------------------------------------------- language
def test_language_choice_default_and_invalid(tmp_path: Path) -> None:
    text = """
flow: main
language: en
languages: [en, es, ja]
start: lang
nodes:
  lang:
    type: language
    prompt: "For English press 1. Para español oprima 2."
    options: {"1": en, "2": es, "3": ja}
    timeout: 3
    default: ja
    next: hi
  hi: {type: say, text: {en: Hello, es: Hola, ja: Konnichiwa}}
"""
    fs = flowset(tmp_path, text)
    d = Driver(new_run(fs))
    assert d.expect(Play).barge_in
    d.answer(PlayResult("2"))
    assert d.expect(Play).parts == (SayText("Hola", "es"),)
    assert d.run.language == "es"

    d = Driver(new_run(fs))
    d.expect(Play, NOPLAY)
    assert d.expect(CollectDigits) == CollectDigits(1, 3.0, 3.0, None)
    d.answer(timeout())
    assert d.expect(Play).parts == (SayText("Konnichiwa", "ja"),)

    fs = flowset(tmp_path, text.replace("    default: ja\n", ""))
    d = Driver(new_run(fs, language="es"))
    d.expect(Play, PlayResult("9"))  # not an option, no default: the flow's language
    assert d.expect(Play).parts == (SayText("Hello", "en"),)


# ------------------------------------------------------------------ guards
def test_goto_loop_without_caller_is_stopped(tmp_path: Path) -> None:
    fs = RawFlows(
        """
flow: main
start: a
nodes:
  a: {type: goto, target: b}
  b: {type: if, condition: "true", then: a, else: a}
"""
    )
    run = new_run(fs, limits=Limits(max_silent_steps=50))
    end = run.start()
    assert end.reason == "error" and len(run.path) == 50
    assert end.detail == (
        "flow 'main', node 'a': 50 nodes in a row without waiting on the caller; stopping"
        " (last: a -> b -> a -> b -> a -> b). A goto/if loop?"
    )


def test_step_limit_with_a_caller_in_the_loop(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
start: m
nodes:
  m: {type: menu, prompt: Again?, options: {"1": s}, no_input: s}
  s: {type: say, text: Again., next: m}
""",
    )
    run = new_run(fs, limits=Limits(max_steps=10))
    d = Driver(run)
    for _ in range(5):
        d.expect(Play, PlayResult("1"))
        d.expect(Play, NOPLAY)
    assert d.action.reason == "error"
    assert "10 nodes visited in one call; stopping" in d.action.detail
    assert len(run.path) == 10


def test_missing_target_and_missing_flow(tmp_path: Path) -> None:
    fs = RawFlows(
        """
flow: main
start: a
nodes:
  a: {type: goto, target: "nowhere:"}
"""
    )
    assert new_run(fs).start() == Hangup(
        "error", "flow 'main', node 'a': target 'nowhere:': there is no flow 'nowhere'"
    )
    with pytest.raises(FlowRuntimeError, match=r"no flow named 'zzz' \(flows: main\)"):
        new_run(fs, flow="zzz")


# ------------------------------------------------------------ the driver API
def test_routing_by_called_number_and_type_checks(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
start: a
nodes:
  a: {type: say, text: Main.}
""",
        """
flow: support
start: a
nodes:
  a: {type: say, text: Support.}
""",
        routes='routes:\n  - {number: "5000", flow: support}\ndefault: main\n',
    )
    run = new_run(fs)
    assert run.entry == "support"
    action = run.start()
    assert texts(action) == ["Support."]
    with pytest.raises(TypeError, match="Play is resumed with a PlayResult, not DigitsResult"):
        run.resume(key("1"), T0)
    with pytest.raises(RuntimeError, match="called twice"):
        run.start()
    run2 = FlowRun(fs, caller="x", called="7777", call_id="c2", now=T0)
    assert run2.entry == "main"
    with pytest.raises(ValueError, match="timezone-aware"):
        FlowRun(fs, caller="x", called="1", call_id="c", now=datetime(2026, 1, 1))


def test_caller_hang_up_mid_menu(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, MENU))
    run.start()
    end = run.caller_hung_up(T0 + timedelta(seconds=3))
    assert end == Hangup("caller_hangup", "main:menu") and run.finished
    assert run.caller_hung_up(T0) is end


def test_missing_node_is_an_error_naming_where_it_came_from() -> None:
    fs = RawFlows(
        """
flow: main
start: a
nodes:
  a: {type: goto, target: zzz}
"""
    )
    assert new_run(fs).start() == Hangup(
        "error", "flow 'main' has no node 'zzz': fix the target that leads here (after ['a'])"
    )


def test_scope_has_every_variable_the_validator_knows(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, MENU), caller_name="Alice Smith")
    run.start()
    scope = run.scope()
    assert set(scope) >= BUILTIN_VARIABLES
    assert scope["caller_name"] == "Alice Smith" and scope["node"] == "menu"
    assert scope["customer"] is None and scope["attempt"] == 1


def test_attempt_counts_tries_in_prompts(tmp_path: Path) -> None:
    fs = flowset(
        tmp_path,
        """
flow: main
start: m
nodes:
  m:
    type: menu
    prompt: "{% if attempt > 1 %}Try {{ attempt }}. {% endif %}Press 1."
    options: {"1": t}
    no_input: t
  t: {type: transfer, to: "sip:op@pbx", failed: bye}
  bye: {type: hangup, prompt: "Transfer ok {{ transfer_ok }}."}
""",
    )
    d = Driver(new_run(fs))
    assert texts(d.expect(Play)) == ["Press 1."]
    d.answer(NOPLAY)
    d.expect(CollectDigits, timeout())
    assert texts(d.expect(Play)) == ["Try 2. Press 1."]
    d.answer(PlayResult("1"))
    d.expect(Transfer, TransferResult(False, 486))
    assert texts(d.expect(Play)) == ["Transfer ok False."]
    assert d.run.scope()["attempt"] == 0


def test_engine_shutdown_is_not_a_caller_hang_up(tmp_path: Path) -> None:
    run = new_run(flowset(tmp_path, QUEUE))
    assert isinstance(run.start(), Enqueue)
    assert run.caller_hung_up(T0, by_engine=True) == Hangup("shutdown", "main:q")
