"""The live flow set: publish, swap, roll back, without dropping a call.

:class:`FlowRegistry` holds one immutable :class:`LiveFlows` (the flow set,
its version id and digest). Reading it is one attribute load
(:meth:`FlowRegistry.current`, :meth:`FlowRegistry.live`); a call takes it
once when it starts and keeps it to the end, so a call never sees two
versions. Publishing replaces it with one reference assignment on the event
loop, after everything slow is done::

    load + validate (loader, worker thread)    -> refused: diagnostics logged,
    prerender static prompts (TTS)                kept as last_error, the
    record the version (SQLite, worker thread)    previous version serves on
    swap (one assignment), notify listeners

Publishes run one at a time (an asyncio lock), so the watcher, the API and a
rollback never interleave. Identical contents are not republished (the
digest of the live set, then of the latest stored version, is compared).

A rollback writes the stored version's files back into the flows folder
(validated first in a staging folder; each file replaced atomically; flow
files the version does not have are removed, after a backup of any
unpublished edits) and publishes them as a new version with source
``rollback``, so the folder, the database and the running set agree.

At start-up the folder is published (source ``startup``); when it is
invalid and a version is stored, that last good version is served from a
staging copy and the error stays visible in :meth:`FlowRegistry.status`.

The loader and the prerender step are injected (``load(folder) ->
FlowSet``, ``async prerender(flowset)``), so this module only needs a flow
set to have ``sources`` (relative path -> text) and ``digest``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ivr.flowfiles import exact_sources, read_flow_files, replace_flow_files, stage_overlay
from ivr.versions import FlowVersion, VersionStore, VersionStoreError

__all__ = [
    "FlowRegistry",
    "FlowSetLike",
    "LiveFlows",
    "NoFlowsPublished",
    "PublishError",
    "PublishResult",
    "ReloadMetrics",
    "diagnostic_dict",
    "relocate_diagnostics",
]

log = structlog.get_logger("ivr.registry")


class FlowSetLike(Protocol):
    """What the registry needs of a flow set."""

    @property
    def sources(self) -> Mapping[str, str]: ...

    @property
    def digest(self) -> str: ...


F = TypeVar("F", bound=FlowSetLike)

Status = Literal["published", "unchanged", "invalid"]


class NoFlowsPublished(LookupError):
    """No valid flow set has been published yet."""


@dataclass(frozen=True)
class LiveFlows(Generic[F]):
    """The flow set calls start on, with the version it was published as."""

    flowset: F
    version: int
    digest: str
    published_at: float
    source: str


@dataclass(frozen=True)
class PublishError:
    """Why a publish was refused (kept as ``last_error`` for the API and CLI)."""

    at: float
    source: str
    message: str
    diagnostics: tuple[Mapping[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "at": self.at,
            "source": self.source,
            "message": self.message,
            "diagnostics": [dict(d) for d in self.diagnostics],
        }


@dataclass(frozen=True)
class PublishResult:
    """What one publish did."""

    status: Status
    version: int | None
    """The live version after the publish (None when nothing ever went live)."""
    digest: str | None
    changed: tuple[str, ...] = ()
    error: PublishError | None = None
    validation_seconds: float = 0.0
    reload_seconds: float | None = None
    """File saved -> swapped, when the caller said when the files were saved."""
    swap_seconds: float | None = None
    """Publish start -> swapped (validation, prerender, recording)."""
    prerender_seconds: float | None = None
    """Rendering the new version's prompts (before the swap)."""
    record_seconds: float | None = None
    """Recording the version in the database."""
    assign_seconds: float | None = None
    """The swap itself: the reference assignment plus the swap listeners."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = dataclasses.asdict(self)
        out["changed"] = list(self.changed)
        out["error"] = self.error.as_dict() if self.error else None
        return out


class ReloadMetrics:
    """Prometheus metrics of flow publishing (registered on the engine's registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
        self.reload_seconds = Histogram(
            "callcore_flow_reload_seconds",
            "Flow file saved -> new version swapped in (watcher publishes)",
            buckets=buckets,
            registry=r,
        )
        self.swap_seconds = Histogram(
            "callcore_flow_publish_seconds",
            "Publish started -> swapped (validation, prompt prerender, recording)",
            buckets=buckets,
            registry=r,
        )
        self.validation_seconds = Histogram(
            "callcore_flow_validation_seconds",
            "Time to load and validate the flows folder",
            buckets=buckets,
            registry=r,
        )
        self.publishes = Counter(
            "callcore_flow_publishes_total",
            "Flow publishes by outcome (published, unchanged, invalid)",
            ["outcome"],
            registry=r,
        )
        self.version = Gauge("callcore_flow_version", "Version id of the live flow set", registry=r)


def diagnostic_dict(diag: object) -> dict[str, Any]:
    """A loader diagnostic as JSON: its text plus whichever location fields it has."""
    out: dict[str, Any] = {"text": str(diag)}
    for name in ("file", "path", "line", "column", "col", "message", "hint", "severity", "code"):
        value = getattr(diag, name, None)
        if value is not None and not callable(value):
            out[name] = value if isinstance(value, int | float | bool) else str(value)
    return out


def _diagnostics_of(exc: BaseException) -> tuple[Any, ...]:
    diags = getattr(exc, "diagnostics", None)
    if diags is None:
        return ()
    try:
        return tuple(diags)
    except TypeError:
        return ()


def relocate_diagnostics(diags: tuple[Any, ...], staged: Path, folder: Path) -> tuple[Any, ...]:
    """Diagnostics of a staging folder, shown against the real flows folder."""
    out = []
    for d in diags:
        file = getattr(d, "file", None)
        if dataclasses.is_dataclass(d) and not isinstance(d, type) and isinstance(file, Path):
            with contextlib.suppress(ValueError):
                d = dataclasses.replace(d, file=folder / file.relative_to(staged))
        out.append(d)
    return tuple(out)


class _Refused(Exception):
    """A staged candidate failed to load; ``diagnostics`` point into the real folder."""

    def __init__(self, message: str, diagnostics: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


class FlowRegistry(Generic[F]):
    """Holds the live flow set and publishes new ones (see module docstring)."""

    def __init__(
        self,
        folder: Path,
        *,
        store: VersionStore,
        load: Callable[[Path], F],
        prerender: Callable[[F], Awaitable[object]] | None = None,
        staging: Path,
        metrics: ReloadMetrics | None = None,
        clock: Callable[[], float] = time.time,
        perf: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``folder``: the flows folder; ``staging``: a scratch folder of our own
        (candidates are validated there, backups of overwritten edits kept
        there). ``clock`` (wall, comparable with file mtimes) timestamps the
        swap for the reload metric; ``perf`` times the steps."""
        self.folder = Path(folder)
        self.store = store
        self.staging = Path(staging)
        self.metrics = metrics or ReloadMetrics()
        self._load = load
        self.prerender = prerender
        self._clock = clock
        self._perf = perf
        self._live: LiveFlows[F] | None = None
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[LiveFlows[F]], None]] = []
        self._result_listeners: list[Callable[[PublishResult], None]] = []
        self.last_error: PublishError | None = None
        self.last_result: PublishResult | None = None

    # -------------------------------------------------------------- reads
    def current(self) -> F:
        """The live flow set (O(1)); :class:`NoFlowsPublished` before the first publish."""
        live = self._live
        if live is None:
            raise NoFlowsPublished(self._no_flows_text())
        return live.flowset

    def live(self) -> LiveFlows[F] | None:
        """The live flow set with its version id and digest (one immutable object)."""
        return self._live

    def subscribe(self, listener: Callable[[LiveFlows[F]], None]) -> None:
        """Call ``listener(live)`` right after every swap (on the event loop)."""
        self._listeners.append(listener)

    def on_result(self, listener: Callable[[PublishResult], None]) -> None:
        """Call ``listener(result)`` after every publish, refused ones included."""
        self._result_listeners.append(listener)

    def status(self) -> dict[str, Any]:
        """JSON-ready state: live version, last error with its diagnostics."""
        live = self._live
        return {
            "folder": str(self.folder),
            "version": live.version if live else None,
            "digest": live.digest if live else None,
            "published_at": live.published_at if live else None,
            "source": live.source if live else None,
            "last_error": self.last_error.as_dict() if self.last_error else None,
            "last_result": self.last_result.as_dict() if self.last_result else None,
        }

    def _no_flows_text(self) -> str:
        why = f": {self.last_error.message}" if self.last_error else ""
        return f"no valid flow set is published from {self.folder}{why}"

    # ------------------------------------------------------------ publish
    async def start(self, *, now: float) -> PublishResult:
        """Publish the folder (source ``startup``); fall back to the last stored version."""
        result = await self.publish(now=now, source="startup")
        if self._live is not None:
            return result
        try:
            stored = await asyncio.to_thread(self.store.latest)
        except VersionStoreError as exc:
            log.error("flows.store_unavailable", error=str(exc))
            return result
        if stored is None:
            return result
        async with self._lock:
            fallback = await self._serve_stored(stored)
        return fallback or result

    async def _serve_stored(self, stored: FlowVersion) -> PublishResult | None:
        dest = self.staging / f"stored-v{stored.id}"
        try:
            await asyncio.to_thread(stage_overlay, self.folder, stored.files, dest)
            flowset = await asyncio.to_thread(self._load, dest)
            if self.prerender is not None:
                await self.prerender(flowset)
        except Exception as exc:
            log.error("flows.stored_version_unusable", version=stored.id, error=str(exc))
            return None
        self._swap(LiveFlows(flowset, stored.id, flowset.digest, stored.published_at, "startup"))
        log.warning(
            "flows.serving_stored_version",
            version=stored.id,
            digest=stored.digest[:12],
            folder=str(self.folder),
            reason="the flows folder is invalid; fix it and save, or roll back",
        )
        result = PublishResult("unchanged", stored.id, flowset.digest, error=self.last_error)
        self.last_result = result
        return result

    async def publish(
        self,
        files: Mapping[str, str] | None = None,
        *,
        now: float,
        source: str,
        author: str | None = None,
        saved_at: float | None = None,
    ) -> PublishResult:
        """Publish the flows folder, or ``files`` (a complete flow set) written into it.

        ``now`` is the publication time recorded with the version;
        ``saved_at`` (epoch seconds, e.g. the newest file mtime) feeds the
        saved -> swapped metric. Never raises for bad flows: the result (and
        :attr:`last_error`) carries the refusal.
        """
        async with self._lock:
            started = self._perf()
            if files is not None:
                refused = await self._write_candidate(files, now=now, source=source)
                if refused is not None:
                    return refused
            return await self._publish_folder(
                now=now, source=source, author=author, saved_at=saved_at, started=started
            )

    async def rollback(
        self, version_id: int, *, now: float, author: str | None = None
    ) -> PublishResult:
        """Restore version ``version_id`` into the folder and publish it (source ``rollback``).

        Raises :class:`~ivr.versions.UnknownVersion` for an id never published.
        """
        version = await asyncio.to_thread(self.store.get, version_id)
        log.info("flows.rollback", to_version=version_id, digest=version.digest[:12])
        return await self.publish(dict(version.files), now=now, source="rollback", author=author)

    async def validate(self, files: Mapping[str, str]) -> tuple[Any, ...]:
        """Diagnostics for the live flow set with ``files`` replaced or added (nothing is changed).

        Errors when the candidate is refused (a plain string when the loader
        failed without diagnostics), else its warnings (empty when clean).
        """
        live = self._live
        base = dict(live.flowset.sources) if live else read_flow_files(self.folder)
        base.update(files)
        self.staging.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix="validate-", dir=self.staging))
        try:
            await asyncio.to_thread(stage_overlay, self.folder, base, dest)
            flowset = await asyncio.to_thread(self._load, dest)
        except Exception as exc:
            return relocate_diagnostics(_diagnostics_of(exc), dest, self.folder) or (str(exc),)
        finally:
            await asyncio.to_thread(_rmtree, dest)
        return relocate_diagnostics(tuple(getattr(flowset, "warnings", ())), dest, self.folder)

    # ------------------------------------------------------------ helpers
    async def _write_candidate(
        self, files: Mapping[str, str], *, now: float, source: str
    ) -> PublishResult | None:
        """Validate ``files`` in staging, then write them into the folder. None when written."""
        live = self._live
        dest = self.staging / "candidate"
        try:
            await asyncio.to_thread(stage_overlay, self.folder, files, dest)
            await asyncio.to_thread(self._load, dest)
        except Exception as exc:
            diags = relocate_diagnostics(_diagnostics_of(exc), dest, self.folder)
            if not diags:
                return self._refuse(exc, now=now, source=source, validation=0.0)
            errors = sum(1 for d in diags if getattr(d, "severity", "error") == "error")
            return self._refuse(
                _Refused(str(exc), diags),
                now=now,
                source=source,
                validation=0.0,
                message=f"the files to publish have {errors} error(s); nothing was written"
                + (f" and the live version {live.version} keeps serving" if live else ""),
            )
        finally:
            await asyncio.to_thread(_rmtree, dest)
        try:
            await asyncio.to_thread(self._replace_folder_files, files, live, now)
        except OSError as exc:
            return self._refuse(
                exc,
                now=now,
                source=source,
                validation=0.0,
                message=f"cannot write the flows folder {self.folder}: {exc}. "
                "Check its permissions; nothing was changed in what runs",
            )
        return None

    def _replace_folder_files(
        self, files: Mapping[str, str], live: LiveFlows[F] | None, now: float
    ) -> None:
        backup = self.staging / "backup" / f"{int(now * 1000)}"
        known = dict(live.flowset.sources) if live else {}
        written, removed, saved = replace_flow_files(self.folder, files, known=known, backup=backup)
        if saved:
            log.warning("flows.unpublished_edits_saved", files=saved, backup=str(backup))
        log.info("flows.files_written", written=written, removed=removed)

    async def _publish_folder(
        self,
        *,
        now: float,
        source: str,
        author: str | None,
        saved_at: float | None,
        started: float,
    ) -> PublishResult:
        t0 = self._perf()
        try:
            flowset = await asyncio.to_thread(self._load, self.folder)
        except Exception as exc:
            return self._refuse(exc, now=now, source=source, validation=self._perf() - t0)
        validation = self._perf() - t0
        for warning in getattr(flowset, "warnings", ()):
            log.warning("flows.warning", source=source, diagnostic=str(warning))
        self.metrics.validation_seconds.observe(validation)
        live = self._live
        if live is not None and flowset.digest == live.digest:
            self.last_error = None
            return self._done(
                PublishResult("unchanged", live.version, live.digest, validation_seconds=validation)
            )
        t1 = self._perf()
        if self.prerender is not None:
            try:
                await self.prerender(flowset)
            except Exception as exc:
                return self._refuse(
                    exc,
                    now=now,
                    source=source,
                    validation=validation,
                    message=f"prompts could not be rendered ({exc}); fix the TTS set-up "
                    "or the prompt texts and save again",
                )
        t2 = self._perf()
        try:
            files = await asyncio.to_thread(exact_sources, self.folder, flowset.sources)
            version, created = await asyncio.to_thread(
                self.store.publish,
                files,
                digest=flowset.digest,
                now=now,
                source=source,
                author=author,
            )
        except VersionStoreError as exc:
            return self._refuse(exc, now=now, source=source, validation=validation)
        t3 = self._perf()
        self._swap(LiveFlows(flowset, version.id, flowset.digest, now, source))
        swapped_perf = self._perf()
        swapped_wall = self._clock()
        self.last_error = None
        swap = swapped_perf - started
        self.metrics.swap_seconds.observe(swap)
        reload = None
        if saved_at is not None:
            reload = max(0.0, swapped_wall - saved_at)
            self.metrics.reload_seconds.observe(reload)
        changed = version.changed if created else ()
        log.info(
            "flows.published",
            version=version.id,
            new_version=created,
            digest=flowset.digest[:12],
            source=source,
            changed=list(changed),
            validation_ms=round(validation * 1000, 2),
            prerender_ms=round((t2 - t1) * 1000, 2),
            record_ms=round((t3 - t2) * 1000, 2),
            publish_ms=round(swap * 1000, 2),
            reload_ms=None if reload is None else round(reload * 1000, 2),
        )
        return self._done(
            PublishResult(
                "published",
                version.id,
                flowset.digest,
                changed=changed,
                validation_seconds=validation,
                reload_seconds=reload,
                swap_seconds=swap,
                prerender_seconds=t2 - t1,
                record_seconds=t3 - t2,
                assign_seconds=swapped_perf - t3,
            )
        )

    def _swap(self, live: LiveFlows[F]) -> None:
        self._live = live  # the swap: one reference assignment on the event loop
        self.metrics.version.set(live.version)
        for listener in list(self._listeners):
            try:
                listener(live)
            except Exception:
                log.exception("flows.listener_failed")

    def _refuse(
        self,
        exc: BaseException,
        *,
        now: float,
        source: str,
        validation: float,
        message: str | None = None,
    ) -> PublishResult:
        diags = _diagnostics_of(exc)
        live = self._live
        errors = [d for d in diags if getattr(d, "severity", "error") == "error"]
        serving = f"the live version {live.version} keeps serving" if live else "nothing is live"
        text = message or (
            f"{len(errors)} error(s) in {self.folder}; {serving}"
            if diags
            else f"{type(exc).__name__}: {exc}; {serving}"
        )
        for diag in diags:
            if getattr(diag, "severity", "error") == "error":
                log.error("flows.invalid", source=source, diagnostic=str(diag))
            else:
                log.warning("flows.warning", source=source, diagnostic=str(diag))
        log.error(
            "flows.refused",
            source=source,
            error=text,
            live_version=live.version if live else None,
        )
        error = PublishError(now, source, text, tuple(diagnostic_dict(d) for d in diags))
        self.last_error = error
        return self._done(
            PublishResult(
                "invalid",
                live.version if live else None,
                live.digest if live else None,
                error=error,
                validation_seconds=validation,
            )
        )

    def _done(self, result: PublishResult) -> PublishResult:
        self.metrics.publishes.labels(result.status).inc()
        self.last_result = result
        for listener in list(self._result_listeners):
            try:
                listener(result)
            except Exception:
                log.exception("flows.listener_failed")
        return result


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
