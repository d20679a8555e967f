"""The ``ivr`` command line: serve the engine, validate flows, write the flow JSON Schema."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import click
import structlog

from acd.cli import acd as acd_cli
from engine.config import TRANSCRIBE_BACKENDS, EngineConfig, parse_hostport, parse_range
from ivr.flowcli import flows
from ivr.simcli import simulate, test_flows
from ivr.versions import VersionStoreError
from recordings.cli import transcribe, transcribe_jobs, transcribe_workers
from recordings.history import HistoryError
from recordings.jobs import JobError
from recordings.store import RecordingStoreError


def _hostport(what: str):  # type: ignore[no-untyped-def]
    def convert(_ctx: click.Context, _param: click.Parameter, value: str | None):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        try:
            return parse_hostport(value, what=what)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


@click.group()
@click.option("--log-level", default="info", show_default=True, help="debug, info, warning")
@click.option(
    "--json-logs/--console-logs", default=None, help="Log format (default: JSON unless a terminal)"
)
@click.pass_context
def cli(ctx: click.Context, log_level: str, json_logs: bool | None) -> None:
    """Contact-center voice engine: SIP/RTP core, YAML IVR flows, ACD, recordings."""
    from engine.logs import configure_logging

    configure_logging(log_level, json=json_logs)
    ctx.ensure_object(dict)


@cli.command()
@click.option(
    "--sip", "sip", default=None, callback=_hostport("--sip"), help="SIP listen HOST:PORT (UDP+TCP)"
)
@click.option(
    "--http", "http", default=None, callback=_hostport("--http"), help="HTTP API HOST:PORT"
)
@click.option("--data", "data", type=click.Path(path_type=Path), default=None, help="Data folder")
@click.option(
    "--flows", "flows", type=click.Path(path_type=Path), default=None, help="Flows folder"
)
@click.option("--rtp-ports", default=None, help="RTP port range LOW-HIGH")
@click.option(
    "--ring", "ring", type=float, default=None, help="Seconds of 180 Ringing before answer"
)
@click.option(
    "--transcribe-workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Transcription worker processes the engine runs (niced, restarted if they die;"
    " default 1 or CALLCORE_TRANSCRIBE_WORKERS; 0: none)",
)
@click.option(
    "--transcribe-backend",
    type=click.Choice(TRANSCRIBE_BACKENDS),
    default=None,
    help="default: faster-whisper with the packaged Whisper tiny.en; vosk: a vosk model",
)
@click.option(
    "--transcribe-model",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Model folder of that backend (vosk: else CALLCORE_VOSK_MODEL)",
)
@click.option(
    "--realtime",
    type=click.IntRange(0, 99),
    default=None,
    help="Real-time priority (SCHED_RR 1-99) of the media loop, as a PBX runs its media"
    " (needs root or CAP_SYS_NICE; default 0 = off, or CALLCORE_REALTIME)",
)
@click.option(
    "--native",
    is_flag=True,
    help="Run the media loop's hot path from its mypyc build (make media-native; about a"
    " third less CPU); refused when its sources changed since the build",
)
def serve(
    sip: tuple[str, int] | None,
    http: tuple[str, int] | None,
    data: Path | None,
    flows: Path | None,
    rtp_ports: str | None,
    ring: float | None,
    transcribe_workers: int | None,
    transcribe_backend: str | None,
    transcribe_model: Path | None,
    realtime: int | None,
    native: bool,
) -> None:
    """Start the engine in one asyncio process; Ctrl-C / SIGTERM hang up every call and exit.

    The engine also runs the transcription workers (see --transcribe-workers):
    recorded calls become text records in DATA/transcripts and land in the
    customer history.
    """
    if native:
        from media import native as compiled

        try:
            where = compiled.enable()
        except compiled.NativeBuildError as exc:
            raise click.ClickException(str(exc)) from None
        structlog.get_logger("ivr.cli").info("media.native", build=str(where))
    from engine.app import run_engine

    try:
        cfg = EngineConfig.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    changes: dict[str, object] = {}
    if sip:
        changes.update(sip_host=sip[0], sip_port=sip[1])
    if http:
        changes.update(http_host=http[0], http_port=http[1])
    if data is not None:
        changes["data_dir"] = data
    if flows is not None:
        changes["flows_dir"] = flows
    if ring is not None:
        changes["ring_seconds"] = ring
    if rtp_ports:
        try:
            low, high = parse_range(rtp_ports, what="--rtp-ports")
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        changes.update(rtp_low=low, rtp_high=high)
    if transcribe_workers is not None:
        changes["transcribe_workers"] = transcribe_workers
    if transcribe_backend is not None:
        changes["transcribe_backend"] = transcribe_backend
    if transcribe_model is not None:
        changes["transcribe_model"] = str(transcribe_model)
    if realtime is not None:
        changes["realtime"] = realtime
    cfg = dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]
    if cfg.transcribe_workers:
        from recordings.stt import SttError, model_folder

        try:
            model_folder(cfg.transcribe_backend, cfg.transcribe_model or None)
        except SttError as exc:
            raise click.ClickException(
                f"cannot start the transcription workers: {exc}"
                " (or run without them: --transcribe-workers 0)"
            ) from None
    try:
        run_engine(cfg)
    except VersionStoreError as exc:
        raise click.ClickException(f"cannot start: {exc}") from None
    except (HistoryError, RecordingStoreError, JobError, sqlite3.DatabaseError) as exc:
        raise click.ClickException(
            f"cannot start: {exc}. Move the damaged database aside (the engine then starts"
            " a new one) or restore it from a backup."
        ) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot start: {exc}. Stop what uses that address or pick another "
            "with --sip / --http / --rtp-ports."
        ) from None


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1)")
@click.option(
    "--sounds",
    "sounds",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Where sound:NAME is looked up after FOLDER/prompts (repeatable; default: the "
    "engine's sounds_dirs, CALLCORE_SOUNDS_DIRS)",
)
def validate(path: Path, strict: bool, sounds: tuple[Path, ...]) -> None:
    """Check a flows folder (or one file in it): errors, then warnings, one per line.

    Exit status 1 when there are errors (or warnings, with --strict), else 0.
    """
    from ivr.diagnostics import errors, warnings
    from ivr.loader import check_file, check_flowset
    from media.prompts.sounds import SoundLibrary

    folder = path if path.is_dir() else path.parent
    try:
        roots = list(sounds) or list(EngineConfig.from_env().sounds_dirs)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    library = SoundLibrary([folder / "prompts", *roots])
    if path.is_dir():
        flowset, diags = check_flowset(path, sounds=library)
    else:
        flowset, diags = check_file(path, sounds=library)
    errs, warns = errors(diags), warnings(diags)
    for d in errs:
        click.echo(str(d))
    for d in warns:
        click.echo(str(d))
    nflows = f"{len(flowset.flows)} flows, " if flowset is not None else ""
    summary = (
        f"{path}: {nflows}{len(errs)} error{'s' if len(errs) != 1 else ''}, "
        f"{len(warns)} warning{'s' if len(warns) != 1 else ''}"
    )
    click.echo(summary)
    if errs or (strict and warns):
        raise SystemExit(1)


@cli.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File to write (default: standard output)",
)
@click.option("--routes", is_flag=True, help="The schema of routes.yaml instead of a flow file")
def schema(output: Path | None, routes: bool) -> None:
    """Print or write the JSON Schema of flow files (flows/schema.json)."""
    from ivr.schema import schema_text

    text = schema_text("routes" if routes else "flow")
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


# ---------------------------------------------------------------- ivr graph
@cli.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File to write (default: standard output)",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["svg", "png", "dot"]),
    default=None,
    help="Output format (default: from the -o suffix, else svg)",
)
@click.option("--flow", "flow_name", default=None, help="With a folder: draw only this flow")
def graph(path: Path, output: Path | None, fmt: str | None, flow_name: str | None) -> None:
    """Draw a flow file (or every flow of a folder) as a diagram (Graphviz).

    Nodes are shaped and coloured by type; edges carry the digit or branch
    (1, no_input, found, overflow...); targets in other flows are dashed.
    """
    from ivr.graphcli import draw

    try:
        data = draw(path, fmt=fmt, output=output, flow_name=flow_name, warn=_stderr)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if output is None:
        click.echo(data, nl=False)
    else:
        output.write_bytes(data)
        click.echo(f"wrote {output}", err=True)


def _stderr(text: str) -> None:
    click.echo(text, err=True)


cli.add_command(flows)
cli.add_command(simulate)
cli.add_command(test_flows)

# ---------------------------------------------------------------- ivr acd (acd/cli.py)
cli.add_command(acd_cli)

# ------------------------------------------------------- ivr transcribe (recordings/cli.py)
cli.add_command(transcribe)
cli.add_command(transcribe_workers)
cli.add_command(transcribe_jobs)


def main() -> None:
    """Entry point of the ``ivr`` console script."""
    cli(obj={})
