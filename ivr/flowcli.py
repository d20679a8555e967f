"""``ivr flows``: the published flow versions, from the database or a running engine.

::

    ivr flows history [--data DIR] [--limit N]
    ivr flows show VERSION [--diff] [--file NAME] [--data DIR]
    ivr flows rollback VERSION [--data DIR --flows DIR | --engine http://HOST:PORT]

``history`` and ``show`` read ``DATA/callcore.db`` directly (safe while an
engine runs: the database is in WAL mode). ``rollback`` works offline: the
stored files are validated in a staging copy, recorded as a new version
(source ``rollback``), then written into the flows folder (atomically, each
file; flow files the version does not have are removed; unpublished edits
are backed up first). A running engine picks the files up through its
watcher and serves that version. With ``--engine`` the running engine does
the rollback itself (``POST /flows/rollback/VERSION``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from engine.config import EngineConfig
from ivr.flowfiles import replace_flow_files, stage_overlay
from ivr.versions import DB_NAME, VersionStore, VersionStoreError, format_time

__all__ = ["flows"]


def _config(data: Path | None, flows_dir: Path | None) -> EngineConfig:
    try:
        cfg = EngineConfig.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    changes: dict[str, Any] = {}
    if data is not None:
        changes["data_dir"] = data
    if flows_dir is not None:
        changes["flows_dir"] = flows_dir
    return cfg.__class__(**{**cfg.__dict__, **changes})


def _open_store(cfg: EngineConfig, *, create: bool = False) -> VersionStore:
    path = cfg.data_dir / DB_NAME
    if not create and not path.exists():
        raise click.ClickException(
            f"no flow version database at {path}: pass the engine's data folder with --data"
            " (or CALLCORE_DATA_DIR)"
        )
    try:
        return VersionStore(path)
    except VersionStoreError as exc:
        raise click.ClickException(str(exc)) from None


_DATA = click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The engine's data folder (default: CALLCORE_DATA_DIR or var)",
)


@click.group()
def flows() -> None:
    """Published flow versions: history, show, rollback."""


@flows.command()
@_DATA
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Newest N versions only")
def history(data: Path | None, limit: int | None) -> None:
    """List published versions, newest first."""
    cfg = _config(data, None)
    with _open_store(cfg) as store:
        try:
            rows = store.history(limit)
        except VersionStoreError as exc:
            raise click.ClickException(str(exc)) from None
    if not rows:
        click.echo(f"no flow version published yet in {cfg.data_dir / DB_NAME}")
        return
    table = [("VERSION", "PUBLISHED (UTC)", "DIGEST", "SOURCE", "FILES CHANGED")]
    for v in rows:
        changed = ", ".join(v.changed) if v.changed else "-"
        table.append((str(v.id), format_time(v.published_at), v.digest[:12], v.source, changed))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
        )


@flows.command()
@click.argument("version", type=click.IntRange(min=1))
@click.option(
    "--diff", "show_diff", is_flag=True, help="Print the diff against the previous version"
)
@click.option("--file", "file_name", default=None, help="Print this file of the version, exactly")
@_DATA
def show(version: int, show_diff: bool, file_name: str | None, data: Path | None) -> None:
    """Show one version: when, what changed, its files (and the diff or one file)."""
    cfg = _config(data, None)
    with _open_store(cfg) as store:
        try:
            v = store.get(version)
        except VersionStoreError as exc:
            raise click.ClickException(str(exc)) from None
    if file_name is not None:
        if file_name not in v.files:
            raise click.ClickException(
                f"version {version} has no file {file_name!r}; it has {', '.join(sorted(v.files))}"
            )
        click.echo(v.files[file_name], nl=False)
        return
    click.echo(f"version    {v.id}")
    click.echo(f"published  {format_time(v.published_at)}")
    click.echo(f"source     {v.source}" + (f" ({v.author})" if v.author else ""))
    click.echo(f"digest     {v.digest}")
    click.echo(f"changed    {', '.join(v.changed) or '-'}")
    click.echo("files")
    for name in sorted(v.files):
        click.echo(f"  {name}  ({len(v.files[name].encode('utf-8'))} bytes)")
    if show_diff:
        click.echo("")
        click.echo(v.diff or "(no changes)", nl=not v.diff)


@flows.command()
@click.argument("version", type=click.IntRange(min=1))
@_DATA
@click.option(
    "--flows",
    "flows_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The flows folder to restore into (default: CALLCORE_FLOWS_DIR or flows)",
)
@click.option(
    "--engine",
    "engine_url",
    default=None,
    help="Ask a running engine instead (its HTTP API, e.g. http://127.0.0.1:8080)",
)
def rollback(
    version: int, data: Path | None, flows_dir: Path | None, engine_url: str | None
) -> None:
    """Restore VERSION's files and publish them as a new version (source rollback)."""
    if engine_url:
        _rollback_remote(engine_url, version)
        return
    cfg = _config(data, flows_dir)
    folder = cfg.flows_dir
    if not folder.is_dir():
        raise click.ClickException(f"flows folder {folder} does not exist: pass it with --flows")
    from engine.reload import default_loader
    from ivr.registry import relocate_diagnostics

    with _open_store(cfg) as store:
        try:
            target = store.get(version)
            latest = store.latest()
        except VersionStoreError as exc:
            raise click.ClickException(str(exc)) from None
        staging = cfg.data_dir / "flows-staging"
        staging.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix="cli-", dir=staging))
        try:
            stage_overlay(folder, target.files, dest)
            flowset = default_loader(cfg)(dest)
        except Exception as exc:
            diags = relocate_diagnostics(tuple(getattr(exc, "diagnostics", ())), dest, folder)
            for d in diags:
                click.echo(str(d), err=True)
            raise click.ClickException(
                f"version {version} does not validate any more"
                f"{'' if diags else f' ({exc})'}; nothing was changed"
            ) from None
        finally:
            shutil.rmtree(dest, ignore_errors=True)
        try:
            new, created = store.publish(
                dict(target.files),
                digest=flowset.digest,
                now=time.time(),
                source="rollback",
                author=os.environ.get("USER") or "cli",
            )
        except VersionStoreError as exc:
            raise click.ClickException(f"{exc}; nothing was changed") from None
        known = dict(latest.files) if latest else {}
        backup = staging / "backup" / f"{int(time.time() * 1000)}"
        try:
            written, removed, saved = replace_flow_files(
                folder, target.files, known=known, backup=backup
            )
        except OSError as exc:
            raise click.ClickException(
                f"version {new.id} is recorded but {folder} could not be written ({exc}); "
                "fix the folder's permissions and run the same rollback again"
            ) from None
    what = f"published as version {new.id}" if created else f"already the latest (version {new.id})"
    click.echo(f"version {version} restored into {folder}: {what}")
    click.echo(f"  written: {', '.join(written) or '-'}")
    click.echo(f"  removed: {', '.join(removed) or '-'}")
    if saved:
        click.echo(f"  unpublished edits saved under {backup}: {', '.join(saved)}")
    click.echo("A running engine watching this folder picks it up within a second.")


def _rollback_remote(url: str, version: int) -> None:
    endpoint = f"{url.rstrip('/')}/flows/rollback/{version}?author=cli"
    request = urllib.request.Request(endpoint, method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read().decode("utf-8"))
        except ValueError:
            body = {"error": f"HTTP {exc.code} {exc.reason}"}
        for d in body.get("diagnostics", []):
            click.echo(d.get("text", str(d)), err=True)
        raise click.ClickException(f"{url}: {body.get('error', exc.reason)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(
            f"cannot reach the engine at {url} ({reason}); is it running? Without --engine the"
            " rollback works on the data and flows folders directly"
        ) from None
    if body.get("status") == "published":
        click.echo(f"version {version} restored by {url}: live version is now {body['version']}")
    else:
        click.echo(
            f"version {version} is what {url} already serves (live version {body['version']})"
        )
