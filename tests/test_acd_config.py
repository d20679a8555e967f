"""queues.yaml: what loads, and every refusal at file:line:column with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.config import AcdConfigError, check_config_text, load_config, parse_config
from acd.core import Router
from acd.model import Announcements, NoAgentsPolicy, OverflowAction, Requirement, Step

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
skills: [billing, sales, spanish]
groups: [team]
defaults: {ring_timeout: 12, wrap_up: 10}
queues:
  billing:
    priority: 2
    strategy: most_skilled
    service_level: {percent: 90, seconds: 15}
    max_wait: 300
    max_length: 40
    overflow: {action: queue, target: sales}
    no_agents: {after: 30}
    announce: {first: 20, every: 60, round_to: 30}
    aht: 240
    steps:
      - {skills: {billing: 4}, for: 30}
      - {skills: {billing: 2}, for: 60}
      - {groups: [team]}
  sales:
    skills: {sales: 1}
    wrap_up: 0
    no_agents: overflow
    overflow: voicemail-less
agents:
  ana: {skills: {billing: 5, spanish: 3}, groups: [team], wrap_up: 5, lease: 120}
  bo: {skills: {sales: 2}}
"""


def messages(text: str) -> list[str]:
    return [str(d) for d in check_config_text(text, Path("q.yaml"))]


def test_a_full_file_loads_into_the_model() -> None:
    text = GOOD.replace("overflow: voicemail-less", "overflow: {action: voicemail, target: sales}")
    config, warnings = parse_config(text, Path("q.yaml"))
    assert warnings == []
    billing = config.queues["billing"]
    assert billing.steps == (
        Step(Requirement((("billing", 4),)), 30.0),
        Step(Requirement((("billing", 2),)), 60.0),
        Step(Requirement((), frozenset({"team"}))),
    )
    assert (billing.priority, billing.strategy, billing.sl_target, billing.sl_threshold) == (
        2,
        "most_skilled",
        0.9,
        15.0,
    )
    assert (billing.max_wait, billing.max_length, billing.ring_timeout, billing.wrap_up) == (
        300.0,
        40,
        12.0,
        10.0,
    )
    assert billing.overflow == OverflowAction("queue", "sales")
    assert billing.no_agents == NoAgentsPolicy("after", 30.0)
    assert billing.announce == Announcements(first=20.0, every=60.0, round_to=30.0)
    sales = config.queues["sales"]
    assert sales.steps == (Step(Requirement((("sales", 1),))),)
    assert (sales.wrap_up, sales.no_agents, sales.overflow) == (
        0.0,
        NoAgentsPolicy("overflow"),
        OverflowAction("voicemail", "sales"),
    )
    ana = config.agents["ana"]
    assert (dict(ana.skills), ana.groups, ana.wrap_up, ana.lease) == (
        {"billing": 5, "spanish": 3},
        frozenset({"team"}),
        5.0,
        120.0,
    )
    Router(config)


def test_the_shipped_queues_file_loads_and_runs() -> None:
    config, warnings = load_config(ROOT / "flows" / "queues.yaml")
    assert warnings == []
    assert set(config.queues) == {"billing", "support", "sales", "operator"}
    router = Router(config)
    assert router.staffed("billing") == 0


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "strategy: most_skilled",
            "strategy: most_skiled",
            "q.yaml:7:15: error: queue 'billing': unknown strategy 'most_skiled' (fix: did you "
            "mean 'most_skilled'? (known: fewest_calls, least_talk_time, longest_idle, "
            "most_skilled, ring_all, round_robin))",
        ),
        (
            "{skills: {billing: 4}, for: 30}",
            "{skills: {biling: 4}, for: 30}",
            "q.yaml:16:19: error: unknown skill 'biling' in queue 'billing' step 1 (fix: did you "
            "mean 'billing'? (known: billing, sales, spanish); or add it to `skills:`)",
        ),
        (
            "{skills: {billing: 2}, for: 60}",
            "{skills: {billing: 2}}",
            "q.yaml:17:9: error: queue 'billing' step 2 has no `for:` (how long it stays in "
            "force) (fix: add `for: SECONDS`; only the last step may leave it out)",
        ),
        (
            "max_wait: 300",
            "max_wait: -5",
            "q.yaml:9:15: error: queue 'billing' max_wait must be greater than 0, not -5 (fix: "
            "give queue 'billing' max_wait a value greater than 0)",
        ),
        (
            "defaults: {ring_timeout: 12, wrap_up: 10}",
            "defaults: {ring_timeout: 0, wrap_up: 10}",
            "q.yaml:3:26: error: queue 'billing' ring_timeout must be greater than 0, not 0 "
            "(fix: give queue 'billing' ring_timeout a value greater than 0)",
        ),
        (
            "ana: {skills: {billing: 5, spanish: 3}",
            "ana: {skills: {billing: 7, spanish: 3}",
            "q.yaml:25:27: error: level of 'billing' in agent 'ana' must be a whole number 1-5, "
            "not 7 (fix: proficiency runs from 1 (basic) to 5 (expert))",
        ),
        (
            "groups: [team], wrap_up",
            "groups: [teem], wrap_up",
            "q.yaml:25:52: error: unknown group 'teem' in agent 'ana' (fix: did you mean "
            "'team'? (known: team); or add it to `groups:`)",
        ),
        (
            "overflow: {action: voicemail, target: x}",
            "overflow: {action: queue, target: billing}",
            "q.yaml:23:15: error: queue 'sales' overflows in a loop: sales -> billing -> sales "
            "(fix: end the chain with voicemail, transfer, flow or hangup)",
        ),
        (
            "  bo: {skills: {sales: 2}}",
            "  bo: {skills: {sales: 2}}\n  bo: {skills: {sales: 3}}",
            "q.yaml:27:3: error: duplicate key 'bo' (first at line 26) (fix: each key may "
            "appear once: remove or rename one)",
        ),
        (
            "skills: [billing, sales, spanish]",
            "skills: [billing, sales, spanish, sales]",
            "q.yaml:1:35: error: skill 'sales' is listed twice (fix: remove one of them)",
        ),
        (
            "    aht: 240",
            "    ahtt: 240",
            "q.yaml:14:5: error: unknown key 'ahtt' in queue 'billing' (fix: did you mean "
            "'aht'? (known: aht, announce, description, groups, max_length, max_wait, "
            "no_agents, overflow, priority, retention, ring_timeout, service_level, ...))",
        ),
    ],
)
def test_each_error_names_the_place_and_the_fix(old: str, new: str, expected: str) -> None:
    text = GOOD.replace("overflow: voicemail-less", "overflow: {action: voicemail, target: x}")
    assert old in text
    got = messages(text.replace(old, new))
    assert expected in got, got
    with pytest.raises(AcdConfigError, match="error"):
        parse_config(text.replace(old, new), Path("q.yaml"))


def test_a_step_no_configured_agent_can_meet_is_refused_with_the_best_candidate() -> None:
    text = GOOD.replace(
        "{skills: {billing: 4}, for: 30}", "{skills: {billing: 4, sales: 2}, for: 30}"
    )
    text = text.replace("overflow: voicemail-less", "overflow: hangup")
    assert messages(text) == [
        "q.yaml:16:9: error: queue 'billing' step 1 (billing>=4, sales>=2) matches no "
        "configured agent (fix: no single agent has all of these together: lower the levels "
        "or give an agent these skills)"
    ]
    text = text.replace("billing: 4, sales: 2", "billing: 4, spanish: 4")
    assert messages(text) == [
        "q.yaml:16:9: error: queue 'billing' step 1 (billing>=4, spanish>=4) matches no "
        "configured agent (fix: nobody has spanish>=4 (best: ana spanish=3): lower the levels "
        "or give an agent these skills)"
    ]


def test_warnings_do_not_refuse_the_file() -> None:
    text = GOOD.replace("{groups: [team]}", "{groups: [team], for: 10}")
    text = text.replace("overflow: voicemail-less", "overflow: flow")
    text = text[: text.index("\nagents:") + 1]
    config, warnings = parse_config(text, Path("q.yaml"))
    assert [str(w) for w in warnings] == [
        "q.yaml:4:1: warning: no agents in this file: routing steps cannot be checked against "
        "agents (fix: add `agents:` here unless they come from the database)",
        "q.yaml:18:26: warning: queue 'billing' step 3 is the last: it lasts until the caller "
        "leaves, `for` is ignored (fix: remove `for`, or add a step after it)",
    ]
    assert config.queues["billing"].steps[-1].duration is None


def test_missing_queues_and_unknown_overflow_action() -> None:
    assert messages("skills: [a]\n") == [
        "q.yaml:1:1: error: no `queues:` mapping (fix: add `queues:` with one indented "
        "`NAME:` per queue)"
    ]
    text = GOOD.replace("overflow: voicemail-less", "overflow: {action: voicemial, target: x}")
    assert (
        "q.yaml:23:24: error: queue 'sales': unknown overflow action 'voicemial' (fix: did you "
        "mean 'voicemail'? (known: flow, hangup, queue, transfer, voicemail))" in messages(text)
    )
