"""Semantic checks of a flows folder: one test per check, each on real YAML
files in tmp_path, asserting the exact file:line:column, message and fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from ivr.loader import check_file, check_flowset, load_flowset
from media.prompts.sounds import SoundLibrary
from tests.conftest import FLOWS
from tests.ivr_folder import GOODBYE, make_folder, report

# GOODBYE to append to a test's flow text, which ends in 8 spaces of indentation
BYE = "  " + textwrap.indent(GOODBYE, " " * 8).lstrip(" ")

SOUNDS = Path("/usr/share/asterisk/sounds/en")
DATA = Path(__file__).parent / "data" / "flows"


def test_example_folder_is_clean_and_routes() -> None:
    flowset, diags = check_flowset(DATA, sounds=SoundLibrary([DATA / "prompts", SOUNDS]))
    assert diags == []
    assert flowset is not None
    assert sorted(flowset.flows) == ["billing", "main"]
    assert flowset.flow_for("2000").flow == "billing"
    assert flowset.flow_for("555").flow == "main"


def test_start_must_be_a_node(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: welcom
        nodes:
          welcome:
            type: say
            text: Hi
            next: bye
        """
        + BYE,
    )
    assert report(folder) == [
        "main.yaml:2:8: error: start node 'welcom' is not a node of flow 'main' "
        "(fix: did you mean 'welcome'? nodes: bye, welcome)"
    ]


def test_unknown_node_target(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: menu
        nodes:
          menu:
            type: menu
            prompt: Sales press 1.
            options:
              1: salse
            no_input: bye
          sales:
            type: queue
            queue: sales
        """
        + BYE,
    )
    assert report(folder) == [
        "main.yaml:8:10: error: node 'menu' (menu): target 'salse' is not a node of flow "
        "'main' (fix: did you mean 'sales'? nodes: bye, menu, sales)",
        "main.yaml:10:3: warning: node 'sales' is never reached from start 'menu' "
        "(fix: make a target point to it, or delete it)",
    ]


def test_targets_into_other_flows(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: menu
        nodes:
          menu:
            type: menu
            prompt: Choose.
            options:
              1: "billing:"
              2: "biling:"
              3: "billing:pay"
              4: "billing:nope"
              5: ":"
            no_input: bye
        """
        + BYE,
        files={
            "billing.yaml": """\
            flow: billing
            start: pay
            nodes:
              pay:
                type: hangup
            """
        },
    )
    assert report(folder) == [
        "main.yaml:9:10: error: node 'menu' (menu): target 'biling:': there is no flow "
        "'biling' (fix: did you mean 'billing'? flows: billing, main)",
        "main.yaml:11:10: error: node 'menu' (menu): target 'billing:nope': flow 'billing' "
        "has no node 'nope' (fix: nodes of billing: pay)",
        "main.yaml:12:10: error: node 'menu' (menu): empty target "
        "(fix: write `node`, `flow:` or `flow:node`)",
    ]


def test_subflow_flow_and_node_must_exist(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: a
        nodes:
          a:
            type: subflow
            flow: pin
            node: ask
            next: b
          b:
            type: subflow
            flow: pinn
            next: bye
        """
        + BYE,
        files={
            "pin.yaml": """\
            flow: pin
            start: get
            nodes:
              get:
                type: return
            """
        },
    )
    assert report(folder) == [
        "main.yaml:7:11: error: node 'a' (subflow): flow 'pin' has no node 'ask' "
        "(fix: nodes of pin: get)",
        "main.yaml:11:11: error: node 'b' (subflow): there is no flow 'pinn' "
        "(fix: did you mean 'pin'? flows: main, pin)",
    ]


SIMPLE = (
    """\
flow: main
start: bye
nodes:
"""
    + GOODBYE
)


def test_routes_name_existing_flows_once(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        SIMPLE,
        routes="routes:\n"
        "  - {number: '1000', flow: main}\n"
        "  - {number: '2000', flow: mian}\n"
        "  - {number: '1000', flow: main}\n"
        "default: support\n",
    )
    assert report(folder) == [
        "routes.yaml:3:28: error: route '2000': there is no flow 'mian' "
        "(fix: did you mean 'main'? flows: main)",
        "routes.yaml:4:14: error: number '1000' is routed twice (first in route 1) "
        "(fix: keep one route per number)",
        "routes.yaml:5:10: error: default: there is no flow 'support' (fix: flows: main)",
    ]


def test_missing_routes_file_is_an_error(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, SIMPLE, routes=None)
    assert report(folder) == [
        "routes.yaml: error: routes.yaml is missing: no call can be routed to a flow "
        "(fix: create routes.yaml with `default: <flow name>` "
        "(and `routes:` per number))"
    ]


def test_flow_names_are_unique(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, SIMPLE, files={"zz_copy.yaml": SIMPLE})
    assert report(folder) == [
        "zz_copy.yaml:1:7: error: flow 'main' is already defined in main.yaml "
        "(fix: give each flow its own name in `flow:`)"
    ]


def test_unreachable_node_is_a_warning_and_the_set_loads(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: bye
        nodes:
          orphan:
            type: say
            text: Nobody hears this.
            next: bye
        """
        + BYE,
    )
    flowset = load_flowset(folder)
    assert [str(w).replace(f"{folder}/", "") for w in flowset.warnings] == [
        "main.yaml:4:3: warning: node 'orphan' is never reached from start 'bye' "
        "(fix: make a target point to it, or delete it)"
    ]


def test_nodes_entered_from_other_flows_are_reachable(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: a
        nodes:
          a:
            type: goto
            target: "other:side"
        """,
        files={
            "other.yaml": """\
            flow: other
            start: top
            nodes:
              top:
                type: hangup
              side:
                type: say
                text: Entered from main only.
                next: top
            """
        },
    )
    # other:top is its start; side is entered from main: nothing unreachable
    assert report(folder) == []


def test_menu_needs_a_no_input_path(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: menu
        nodes:
          menu:
            type: menu
            prompt: Press 1.
            retries: 1
            options: {1: bye}
          menu2:
            type: menu
            prompt: Press 1.
            options: {1: bye}
            invalid: bye
        """
        + BYE,
    )
    assert report(folder) == [
        "main.yaml:4:3: error: node 'menu' (menu): no `no_input:` (nor `invalid:`): after 2 "
        "tries without a digit the call has nowhere to go (fix: add `no_input: <node>` "
        "(e.g. a goodbye hangup node or a transfer); it also catches wrong digits unless "
        "`invalid:` is given)",
        "main.yaml:9:3: warning: node 'menu2' is never reached from start 'menu' "
        "(fix: make a target point to it, or delete it)",
    ]


def test_gather_needs_no_input_and_next_outside_subflows(tmp_path: Path) -> None:
    gather = """\
        flow: {name}
        start: pin
        nodes:
          pin:
            type: gather
            prompt: Your PIN?
            variable: pin
            {extra}
        """
    folder = make_folder(
        tmp_path,
        gather.format(name="main", extra="next: bye") + BYE,
        files={
            "asker.yaml": gather.format(name="asker", extra="no_input: pin"),
            "caller.yaml": """\
            flow: caller
            start: s
            nodes:
              s:
                type: subflow
                flow: asker
                next: s
            """,
            "lonely.yaml": gather.format(name="lonely", extra="no_input: pin"),
        },
        routes="default: main\nroutes:\n  - {number: '1', flow: caller}\n"
        "  - {number: '2', flow: lonely}\n",
    )
    assert report(folder) == [
        "lonely.yaml:4:3: warning: node 'pin' (gather): no `next:`: the call hangs up once "
        "the digits are collected (fix: add `next: <node>` (the node that uses 'pin'))",
        "main.yaml:4:3: error: node 'pin' (gather): no `no_input:` (nor `invalid:`): when "
        "the tries run out without digits the call has nowhere to go (fix: add "
        "`no_input: <node>`; it also catches invalid input unless `invalid:` is given)",
    ]


def test_loop_without_caller_input_is_an_error(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: hello
        nodes:
          hello:
            type: say
            text: Hello.
            next: count
          count:
            type: set
            values: {n: "n + 1"}
            next: check
          check:
            type: if
            condition: "n < 3"
            then: hello
            else: bye
          spin:
            type: goto
            target: spin
        """
        + BYE,
    )
    fix = (
        "(fix: put a menu or gather in the loop (or a say/play with barge_in: true), "
        "or end it with a hangup/transfer)"
    )
    assert report(folder) == [
        f"main.yaml:4:3: error: loop with no caller input: hello -> count -> check -> hello {fix}",
        f"main.yaml:17:3: error: loop with no caller input: spin -> spin {fix}",
        "main.yaml:17:3: warning: node 'spin' is never reached from start 'hello' "
        "(fix: make a target point to it, or delete it)",
    ]


def test_loops_through_waiting_nodes_are_fine(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        variables: {n: 0}
        start: menu
        nodes:
          menu:
            type: menu
            prompt: Press 1 to hear it again.
            options: {1: again}
            no_input: hold
          again:
            type: say
            text: Again.
            next: menu
          hold:
            type: queue
            queue: sales
            max_wait: 30
            overflow: still
          still:
            type: play
            audio: "sound:vm-intro"
            next: hold
          ad:
            type: say
            text: Press any key.
            barge_in: true
            next: ad2
          ad2:
            type: goto
            target: ad
          pin:
            type: subflow
            flow: asker
            next: pin
        """,
        files={
            "asker.yaml": """\
            flow: asker
            start: g
            nodes:
              g:
                type: gather
                prompt: PIN?
                variable: pin
                no_input: r
                next: r
              r:
                type: return
            """
        },
    )
    problems = [line for line in report(folder) if "loop" in line]
    assert problems == []


def test_loop_through_a_subflow_that_returns_at_once(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: again
        nodes:
          again:
            type: subflow
            flow: tally
            next: again
        """,
        files={
            "tally.yaml": """\
            flow: tally
            start: add
            nodes:
              add:
                type: set
                values: {hits: "1"}
            """
        },
    )
    assert report(folder) == [
        "main.yaml:4:3: error: loop with no caller input: again -> again (fix: put a menu or "
        "gather in the loop (or a say/play with barge_in: true), or end it with a "
        "hangup/transfer)"
    ]


def test_loop_across_flows(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: a
        nodes:
          a:
            type: goto
            target: "other:"
        """,
        files={
            "other.yaml": """\
            flow: other
            start: b
            nodes:
              b:
                type: hours
                timezone: UTC
                schedule: {mon: ["09:00-17:00"]}
                open: "main:a"
                closed: "main:"
            """
        },
    )
    assert report(folder) == [
        "main.yaml:4:3: error: loop with no caller input: a -> other:b -> a (fix: put a menu "
        "or gather in the loop (or a say/play with barge_in: true), or end it with a "
        "hangup/transfer)"
    ]


def test_missing_and_outside_audio_files(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: intro
        nodes:
          intro:
            type: play
            audio: [prompts/welcome.wav, prompts/welcom.wav]
            next: bye
          bye:
            type: hangup
            prompt:
              - play: /etc/passwd
              - play: ../secret.wav
              - play: "prompts/{{ language }}/bye.wav"
        """,
        files={"prompts/welcome.wav": "not checked as audio here"},
    )
    outside = (
        "(fix: put the file under the flows folder (e.g. prompts/) and give its path "
        "relative to that folder)"
    )
    assert report(folder) == [
        "main.yaml:6:34: error: node 'intro' (play): audio file 'prompts/welcom.wav' not "
        "found (looked for prompts/welcom.wav) (fix: did you mean 'welcome.wav'? paths are "
        "relative to the flows folder; sound:NAME plays Asterisk sounds)",
        f"main.yaml:11:15: error: node 'bye' (hangup): audio '/etc/passwd' is outside the "
        f"flows folder {outside}",
        f"main.yaml:12:15: error: node 'bye' (hangup): audio '../secret.wav' is outside the "
        f"flows folder {outside}",
    ]


def test_sound_names_resolve_in_the_engine_roots(tmp_path: Path) -> None:
    assert SOUNDS.is_dir(), f"{SOUNDS} missing: run scripts/bootstrap.sh"
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: a
        nodes:
          a:
            type: play
            audio: ["sound:vm-intro", "sound:digits/5", "sound:greeting", "sound:vm-intro2"]
            next: bye
        """
        + BYE,
    )
    library = SoundLibrary([FLOWS / "prompts", SOUNDS])
    assert report(folder, sounds=library) == [
        "main.yaml:6:67: error: node 'a' (play): sound 'vm-intro2' not found: looked for "
        f"vm-intro2{{.wav,.WAV,.sln,.ulaw,.alaw}} under {FLOWS / 'prompts'}, {SOUNDS} "
        "(fix: use a sound that exists (ls the roots listed) or ship a WAV under "
        "prompts)",
    ]
    # without a library only the form of the name is checked
    assert report(folder) == []


def test_invalid_sound_name(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: bye
        nodes:
          bye:
            type: hangup
            prompt: [{play: "sound:../../etc/passwd"}]
        """,
    )
    assert report(folder) == [
        "main.yaml:6:21: error: node 'bye' (hangup): invalid sound name "
        "'sound:../../etc/passwd': use a relative name such as sound:vm-intro or "
        "sound:digits/5 (fix: use a sound that exists (ls the roots listed) or ship a WAV "
        "under prompts)"
    ]


QUEUE_FLOW = """\
flow: main
start: q
nodes:
  q:
    type: queue
    queue: suport
"""


def test_unknown_queue(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, QUEUE_FLOW)
    assert report(folder) == [
        "main.yaml:6:12: error: node 'q' (queue): unknown queue 'suport' (not in "
        "queues.yaml) (fix: did you mean 'support'? queues: sales, support)"
    ]


def test_queue_without_queues_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, QUEUE_FLOW, queues=None)
    assert report(folder) == [
        "main.yaml:6:12: error: node 'q' (queue): unknown queue 'suport': "
        "queues.yaml does not exist (fix: create queues.yaml with "
        "`queues:` and `suport:` under it)"
    ]


def test_queues_file_without_queues_mapping(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, SIMPLE, queues="sales: {}\n")
    assert report(folder) == [
        "queues.yaml:1:1: error: queues.yaml has no `queues:` mapping of queue names "
        "(fix: write `queues:` then one indented `NAME:` per queue)"
    ]


def test_bad_time_zone(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: h
        nodes:
          h:
            type: hours
            timezone: Asia/Tokio
            schedule: {mon: ["09:00-17:00"]}
            open: bye
            closed: bye
        """
        + BYE,
    )
    assert report(folder) == [
        "main.yaml:6:15: error: node 'h' (hours): unknown time zone 'Asia/Tokio' (fix: did "
        "you mean 'Asia/Tokyo'? use an IANA name such as Europe/Paris or Asia/Tokyo)"
    ]


def test_bad_expressions_point_inside_the_expression(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: s
        nodes:
          s:
            type: set
            values:
              total: n +* 2
              quoted: "n == 'x"
              fine: "1"
            next: sw
          sw:
            type: switch
            cases:
              - when: "digits | nosuch"
                goto: bye
            default: i
          i:
            type: if
            condition: |
              caller == '1'
              and == 2
            then: bye
            else: talk
          talk:
            type: say
            text: "Hello {{ name "
            next: bye
        """
        + BYE,
    )
    expr_fix = "(fix: Jinja expression syntax, e.g. caller.startswith('+81') and digits == '1')"
    assert report(folder) == [
        f"main.yaml:7:17: error: node 's' (set): bad expression values.total: unexpected '*' "
        f"{expr_fix}",
        "main.yaml:8:21: error: node 's' (set): bad expression values.quoted: unexpected "
        f'character "\'" {expr_fix}',
        "main.yaml:14:25: error: node 'sw' (switch): bad expression cases[0].when: No filter "
        "named 'nosuch' (fix: see the Jinja built-in filters and tests, plus spell, "
        "only_digits, mask)",
        f"main.yaml:21:11: error: node 'i' (if): bad expression condition: unexpected '==' "
        f"{expr_fix}",
        "main.yaml:26:25: error: node 'talk' (say): bad template text: unexpected end of "
        "text, expected 'end of print statement' (fix: Jinja template syntax: "
        "{{ variable }}, {% if cond %}...{% endif %})",
    ]


def test_every_expression_kind_is_compiled(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: look
        nodes:
          look:
            type: lookup
            source: http
            key: "caller |"
            url: "https://crm/{{ key"
            found: menu
            not_found: menu
          menu:
            type: menu
            prompt:
              - say: {en: "{{ x ]}"}
              - play: "sound:digits/{{ d"
            no_input_prompt: "{% if %}"
            options: {1: xfer}
            no_input: bye
          xfer:
            type: transfer
            to: "sip:{{ agent @pbx"
        """
        + BYE,
    )
    lines = [line.split(" (fix:")[0] for line in report(folder)]
    assert lines == [
        "main.yaml:7:19: error: node 'look' (lookup): bad expression key: unexpected end of "
        "text, expected 'name'",
        "main.yaml:8:29: error: node 'look' (lookup): bad template url: unexpected end of "
        "text, expected 'end of print statement'",
        "main.yaml:14:25: error: node 'menu' (menu): bad template prompt[0].say.en: unexpected ']'",
        "main.yaml:15:33: error: node 'menu' (menu): bad template prompt[1].play: unexpected "
        "end of text, expected 'end of print statement'",
        "main.yaml:16:29: error: node 'menu' (menu): bad template no_input_prompt: "
        "Expected an expression, got 'end of statement block'",
        "main.yaml:21:23: error: node 'xfer' (transfer): bad template to: unexpected character '@'",
    ]


def test_repeat_digit_must_not_be_an_option(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: menu
        nodes:
          menu:
            type: menu
            prompt: Press 1, or star to repeat.
            options: {1: bye, "*": bye}
            repeat: "*"
            no_input: bye
        """
        + BYE,
    )
    assert report(folder) == [
        "main.yaml:8:13: error: node 'menu' (menu): repeat digit '*' is also an option "
        "(fix: pick a repeat digit no option uses (often '*' or '9'))"
    ]


def test_language_options_and_languages(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        language: en
        languages: [en, es]
        start: lang
        nodes:
          lang:
            type: language
            prompt: {en: English 1, es: Español 2, fr: Français 3}
            options:
              1: en
              22: es
              3: fr
            default: de
            next: bye
        """
        + BYE,
    )
    assert report(folder) == [
        "main.yaml:8:44: warning: node 'lang' (language): text in 'fr', which is not in the "
        "flow's languages ['en', 'es'] (fix: add 'fr' to `languages:` or remove this text)",
        "main.yaml:11:7: error: node 'lang' (language): option '22' is not one DTMF digit "
        "(fix: use one of 0-9, '*' or '#' (quote '*' and '#'))",
        "main.yaml:12:10: warning: node 'lang' (language): language 'fr' is not in the "
        "flow's languages ['en', 'es'] (fix: add 'fr' to `languages:` (and texts in it))",
        "main.yaml:13:14: warning: node 'lang' (language): default language 'de' is not in "
        "the flow's languages ['en', 'es'] (fix: add 'de' to `languages:`)",
    ]


def test_default_language_not_in_languages(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "language: ja\n" + SIMPLE)
    assert report(folder) == [
        "main.yaml:1:11: warning: default language 'ja' is not in languages ['en'] "
        "(fix: add 'ja' to `languages:`)"
    ]


def test_return_outside_a_subflow_is_a_warning(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: done
        nodes:
          done:
            type: return
        """,
    )
    assert report(folder) == [
        "main.yaml:4:3: warning: node 'done' returns, but no subflow node runs flow 'main' "
        "(fix: use a hangup (or goto) here, or run this flow from a subflow node)"
    ]


def test_variables_never_set_are_warnings(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        variables: {greeting: Hello}
        start: ask
        nodes:
          ask:
            type: subflow
            flow: account
            next: talk
          talk:
            type: say
            text: "{{ greeting }} {{ caller }}, account {{ acct }}, {{ balance }} {{ tier }}."
            next: bye
        """
        + BYE,
        files={
            "account.yaml": """\
            flow: account
            start: g
            nodes:
              g:
                type: gather
                prompt: Account?
                variable: acct
                next: s
                no_input: s
              s:
                type: set
                values: {balance: "customer.balance if customer else 0"}
            """
        },
    )
    assert report(folder) == [
        "main.yaml:11:11: warning: node 'talk' (say): variable 'tier' is never set (fix: set "
        "it (a set node, a gather/lookup `variable:`, or the flow's `variables:`); built in: "
        "attempt, call_id, called, caller, caller_name, customer, digits, flow, language, "
        "lookup_error, node, now, queue, queue_outcome, recording_paused, "
        "transfer_ok, voicemail)"
    ]


def test_set_value_that_reads_as_a_bare_name_hints_quoting(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: s
        nodes:
          s:
            type: set
            values: {team: Sales, quoted: "'Sales'", count: 3}
            next: bye
        """
        + BYE,
    )
    assert report(folder) == [
        "main.yaml:6:20: warning: node 's' (set): variable 'Sales' is never set (fix: a set "
        "value is an expression: for the text 'Sales' write \"'Sales'\"; else set the "
        "variable somewhere)"
    ]


def test_set_variable_names_must_be_identifiers(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: s
        nodes:
          s:
            type: set
            values:
              good_name: "1"
              bad-name: "2"
            next: bye
        """
        + BYE,
    )
    assert report(folder) == [
        "main.yaml:8:7: error: node 's' (set): 'bad-name' is not a variable name (fix: use "
        "letters, digits and '_', starting with a letter or '_')"
    ]


def test_unused_flow_is_a_warning(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, SIMPLE, files={"spare.yaml": SIMPLE.replace("main", "spare")})
    assert report(folder) == [
        "spare.yaml:1:7: warning: flow 'spare' is not used: no route and no other flow goes "
        "to it (fix: add a route in routes.yaml, or a `goto`/subflow to it)"
    ]


def test_check_file_reports_that_file_only(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        SIMPLE,
        files={
            "broken.yaml": "flow: broken\nstart: x\nnodes:\n  y: {type: hangup}\n",
        },
    )
    flowset, diags = check_file(folder / "main.yaml")
    assert flowset is None  # the folder as a whole has errors
    assert [str(d) for d in diags] == []
    _, diags = check_file(folder / "broken.yaml")
    assert [str(d).replace(f"{folder}/", "") for d in diags] == [
        "broken.yaml:1:7: warning: flow 'broken' is not used: no route and no other "
        "flow goes to it (fix: add a route in routes.yaml, or a `goto`/subflow to it)",
        "broken.yaml:2:8: error: start node 'x' is not a node of flow 'broken' (fix: nodes: y)",
    ]


# ------------------------------------------------------------------ ivr validate / ivr schema
def _cli(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from ivr.cli import cli

    result = CliRunner().invoke(cli, ["--log-level", "warning", *args], catch_exceptions=False)
    return result.exit_code, result.output


def _broken_folder(tmp_path: Path) -> Path:
    return make_folder(
        tmp_path,
        """\
        flow: main
        start: menu
        nodes:
          menu:
            type: menu
            prompt: Press 1.
            options: {1: nowhere}
            no_input: bye
          orphan:
            type: hangup
        """
        + BYE,
    )


def test_cli_validate_clean_folder() -> None:
    code, out = _cli("validate", str(DATA))
    assert code == 0
    assert out == f"{DATA}: 2 flows, 0 errors, 0 warnings\n"


def test_cli_validate_prints_errors_then_warnings_and_fails(tmp_path: Path) -> None:
    folder = _broken_folder(tmp_path)
    code, out = _cli("validate", str(folder))
    assert code == 1
    assert out.splitlines() == [
        f"{folder}/main.yaml:7:18: error: node 'menu' (menu): target 'nowhere' is not a node "
        "of flow 'main' (fix: nodes: bye, menu, orphan)",
        f"{folder}/main.yaml:9:3: warning: node 'orphan' is never reached from start 'menu' "
        "(fix: make a target point to it, or delete it)",
        f"{folder}: 1 error, 1 warning",
    ]


def test_cli_validate_strict_fails_on_warnings(tmp_path: Path) -> None:
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: bye
        nodes:
          spare:
            type: hangup
        """
        + BYE,
    )
    code, out = _cli("validate", str(folder))
    assert (code, out.splitlines()[-1]) == (0, f"{folder}: 1 flows, 0 errors, 1 warning")
    code, out = _cli("validate", "--strict", str(folder))
    assert (code, out.splitlines()[-1]) == (1, f"{folder}: 1 flows, 0 errors, 1 warning")


def test_cli_validate_one_file(tmp_path: Path) -> None:
    folder = _broken_folder(tmp_path)
    (folder / "other.yaml").write_text(
        "flow: other\nstart: x\nnodes:\n  x: {type: goto, target: 'main:bye'}\n"
    )
    code, out = _cli("validate", str(folder / "other.yaml"))
    assert code == 0  # main.yaml's error is not this file's
    assert out.splitlines() == [
        f"{folder}/other.yaml:1:7: warning: flow 'other' is not used: no route and no other "
        "flow goes to it (fix: add a route in routes.yaml, or a `goto`/subflow to it)",
        f"{folder}/other.yaml: 0 errors, 1 warning",
    ]
    code, out = _cli("validate", str(folder / "main.yaml"))
    assert code == 1
    assert out.splitlines()[-1] == f"{folder}/main.yaml: 1 error, 1 warning"


def test_cli_validate_checks_sounds_in_the_engine_roots(tmp_path: Path) -> None:
    assert SOUNDS.is_dir(), f"{SOUNDS} missing: run scripts/bootstrap.sh"
    folder = make_folder(
        tmp_path,
        """\
        flow: main
        start: bye
        nodes:
          bye:
            type: hangup
            prompt: [{play: "sound:vm-goodbye"}, {play: "sound:vm-goodby"}]
        """,
    )
    code, out = _cli("validate", "--sounds", str(SOUNDS), str(folder))
    assert code == 1
    assert out.splitlines() == [
        f"{folder}/main.yaml:6:49: error: node 'bye' (hangup): sound 'vm-goodby' not found: "
        f"looked for vm-goodby{{.wav,.WAV,.sln,.ulaw,.alaw}} under {folder}/prompts, {SOUNDS} "
        "(fix: use a sound that exists (ls the roots listed) or ship a WAV under "
        f"{folder}/prompts)",
        f"{folder}: 1 error, 0 warnings",
    ]


def test_cli_schema_prints_and_writes(tmp_path: Path) -> None:
    from ivr.schema import schema_text

    code, out = _cli("schema")
    assert (code, out) == (0, schema_text("flow"))
    target = tmp_path / "schema.json"
    code, _ = _cli("schema", "-o", str(target))
    assert code == 0
    assert target.read_text(encoding="utf-8") == (FLOWS / "schema.json").read_text()
    code, out = _cli("schema", "--routes")
    assert (code, out) == (0, (FLOWS / "routes.schema.json").read_text())


def test_installed_ivr_validate_command(tmp_path: Path) -> None:
    ivr = Path(sys.executable).parent / "ivr"
    assert ivr.is_file(), f"{ivr} missing: pip install -e . in the venv"
    ok = subprocess.run([str(ivr), "validate", str(DATA)], capture_output=True, text=True)
    assert (ok.returncode, ok.stdout) == (0, f"{DATA}: 2 flows, 0 errors, 0 warnings\n")
    folder = _broken_folder(tmp_path)
    bad = subprocess.run([str(ivr), "validate", str(folder)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[-1] == f"{folder}: 1 error, 1 warning"
