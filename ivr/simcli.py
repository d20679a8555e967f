"""``ivr simulate`` and ``ivr test-flows``: walk flows in the terminal.

Both run the same :class:`~ivr.runtime.FlowRun` the engine runs on calls,
with a scripted caller (:mod:`ivr.scripted`) instead of a phone line.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

__all__ = ["simulate", "test_flows"]

EXIT_FAILED = 1
EXIT_UNUSABLE = 2


def _load(folder: Path) -> Any:
    """The folder's FlowSet; exits 2 printing every diagnostic when it does not load."""
    from engine.config import EngineConfig
    from ivr.loader import FlowSetError, load_flowset
    from media.prompts.sounds import SoundLibrary

    sounds = SoundLibrary([folder / "prompts", *EngineConfig.from_env().sounds_dirs])
    try:
        return load_flowset(folder, sounds=sounds)
    except FlowSetError as exc:
        click.echo(f"{folder}: the flows do not load:", err=True)
        for diag in exc.diagnostics:
            click.echo(f"  {diag}", err=True)
        sys.exit(EXIT_UNUSABLE)


def _flow_name(path: Path) -> str:
    from ivr.yamldoc import YamlError, load_yaml

    try:
        data = load_yaml(path).data
    except YamlError as exc:
        raise click.ClickException(str(exc.diagnostic)) from None
    name = data.get("flow") if isinstance(data, dict) else None
    if not isinstance(name, str):
        raise click.ClickException(f"{path}: no `flow:` name: is this a flow file?")
    return name


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    raw = text
    if text.startswith("@"):
        try:
            raw = Path(text[1:]).read_text()
        except OSError as exc:
            raise click.BadParameter(f"{what}: cannot read {text[1:]}: {exc.strerror}") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{what}: not JSON ({exc})") from None


def _when(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)  # the CLI is the shell: reading the clock is its job
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"--at: {text!r} is not an ISO date-time") from None
    if when.tzinfo is None:
        raise click.BadParameter(f"--at: {text!r} needs a UTC offset, e.g. {text}+09:00")
    return when


@click.command()
@click.argument("target", type=click.Path(path_type=Path, exists=True))
@click.option("--flow", "flow_name", default=None, help="With a folder: start this flow")
@click.option("--caller", default="+15555550100", show_default=True, help="Calling number")
@click.option("--caller-name", default="", help="Caller display name")
@click.option(
    "--called",
    default="5000",
    show_default=True,
    help="Dialed number (picks the flow by routes.yaml unless a flow is given)",
)
@click.option(
    "--digits",
    default=None,
    help="Comma-separated input: 1,2,1234#; t or empty = timeout; h = hang up; !1 = barge-in",
)
@click.option("--at", "at", default=None, help="Time of the call, ISO with offset (default: now)")
@click.option("--lang", "language", default=None, help="Caller's language at the start")
@click.option(
    "--customer-json",
    default=None,
    help='Record every lookup finds: JSON or @file ("error" = lookups fail; none: not found)',
)
@click.option(
    "--queue-outcome",
    type=click.Choice(["answered", "overflow", "no_agents", "abandoned", "callback"]),
    default="no_agents",
    show_default=True,
)
@click.option("--transfer", type=click.Choice(["ok", "failed"]), default="ok", show_default=True)
@click.option(
    "--interactive/--no-interactive",
    default=None,
    help="Ask for digits when the script runs out (default: when stdin is a terminal)",
)
def simulate(
    target: Path,
    flow_name: str | None,
    caller: str,
    caller_name: str,
    called: str,
    digits: str | None,
    at: str | None,
    language: str | None,
    customer_json: str | None,
    queue_outcome: str,
    transfer: str,
    interactive: bool | None,
) -> None:
    """Walk a flow (a flow file, or a flows folder) as a caller would.

    Prints what the caller hears and where the call goes, asks for digits
    (or takes --digits), then shows the path and the variables.
    """
    from ivr.actions import CollectDigits
    from ivr.runtime import FlowRuntimeError
    from ivr.scripted import Event, Stubs, parse_digits, run_script

    folder = target if target.is_dir() else target.parent
    if target.is_file():
        flow_name = flow_name or _flow_name(target)
    flowset = _load(folder)
    customer = _json_arg(customer_json, "--customer-json")
    if customer is not None and customer != "error" and not isinstance(customer, dict):
        raise click.BadParameter('--customer-json: give a JSON object (or "error")')
    when = _when(at)
    if interactive is None:
        interactive = sys.stdin.isatty()

    def ask(want: CollectDigits) -> str | None:
        if not interactive:
            return None
        hint = f"up to {want.max_digits} digit(s)" + (
            f", {want.terminator} ends" if want.terminator else ""
        )
        answer: str = click.prompt(
            click.style(f"  digits ({hint}; Enter = wait {want.first_timeout:g} s, h = hang up)",
                        fg="cyan"),
            default="",
            show_default=False,
        )  # fmt: skip
        return answer.strip()

    last = [""]

    def show(event: Event) -> None:
        if event.node != last[0]:
            last[0] = event.node
            click.echo(click.style(f"-> {event.node}", bold=True))
        style = {"heard": "green", "error": "red", "end": "yellow"}.get(event.kind)
        label = {"heard": "hears"}.get(event.kind, event.kind)
        click.echo(f"   {label:9} " + click.style(event.detail, fg=style))

    click.echo(
        f"call from {caller} to {called} at {when.isoformat()}"
        + (f", language {language}" if language else "")
    )
    try:
        res = run_script(
            flowset,
            caller=caller,
            caller_name=caller_name,
            called=called,
            at=when,
            digits=parse_digits(digits) if digits is not None else [],
            stubs=Stubs(
                lookup=customer,
                queue=queue_outcome,  # type: ignore[arg-type]
                transfer=transfer == "ok",
            ),
            flow=flow_name,
            language=language,
            ask=ask,
            on_event=show,
        )
    except (FlowRuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    run = res.run
    click.echo("")
    click.echo(click.style("path:", bold=True) + " " + " -> ".join(res.path))
    shown = {"language": run.language, **run.variables}
    click.echo(click.style("variables:", bold=True))
    for name, value in shown.items():
        click.echo(f"  {name} = {json.dumps(value, ensure_ascii=False, default=str)}")
    ended = res.ended
    click.echo(
        click.style("ended:", bold=True) + f" {ended.reason}"
        + (f" ({ended.detail})" if ended.detail else "")
    )  # fmt: skip
    if ended.reason == "error":
        sys.exit(EXIT_FAILED)


@click.command("test-flows")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False), required=False)
@click.option("-k", "match", default=None, help="Only cases whose name contains this text")
@click.option("-q", "--quiet", is_flag=True, help="Print failures and the summary only")
def test_flows(folder: Path | None, match: str | None, quiet: bool) -> None:
    """Run the flow test cases (FOLDER/tests/*.test.yaml, FOLDER/*.test.yaml).

    Prints PASS/FAIL per case with what differed; exits 1 if any case
    failed, 2 if the flows or a case file cannot be used.
    """
    from engine.config import EngineConfig
    from ivr.flowtests import CaseFileError, discover, load_cases, run_cases

    folder = folder or EngineConfig.from_env().flows_dir
    if not folder.is_dir():
        raise click.ClickException(f"{folder} is not a folder: pass the flows folder")
    files = discover(folder)
    if not files:
        click.echo(
            f"no test cases in {folder}: write {folder}/tests/NAME.test.yaml"
            " (see ivr/flowtests.py for the format)",
            err=True,
        )
        sys.exit(EXIT_UNUSABLE)
    cases = []
    broken = False
    for path in files:
        try:
            cases.extend(load_cases(path))
        except CaseFileError as exc:
            broken = True
            for diag in exc.diagnostics:
                click.echo(str(diag), err=True)
    if broken:
        sys.exit(EXIT_UNUSABLE)
    if match:
        cases = [c for c in cases if match in c.case.name]
    flowset = _load(folder)
    results = run_cases(flowset, cases)
    failed = [r for r in results if not r.passed]
    for r in results:
        if r.passed and quiet:
            continue
        text = r.report()
        head, _, rest = text.partition("\n")
        click.echo(
            click.style(head, fg="green" if r.passed else "red") + ("\n" + rest if rest else "")
        )
    click.echo(
        f"{len(results) - len(failed)} passed, {len(failed)} failed"
        f" ({len(files)} file{'s' if len(files) != 1 else ''})"
    )
    if failed:
        sys.exit(EXIT_FAILED)
