"""Hot reload of the flows folder, as the engine wires it.

:class:`FlowReload` owns the version store (``DATA/callcore.db``), the
:class:`~ivr.registry.FlowRegistry` and the folder
:class:`~ivr.watch.FlowWatcher`, and mounts the ``/flows/`` API
(:mod:`engine.flowapi`). The flow driver reads ``registry.current`` for each
new call and renders every version's prompts before it is swapped in
(:meth:`FlowReload.start` with the flow application).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from engine.config import EngineConfig
from engine.flowapi import flows_app
from ivr.loader import FlowSet, load_flowset
from ivr.registry import FlowRegistry, LiveFlows, PublishResult, ReloadMetrics
from ivr.versions import DB_NAME, VersionStore
from ivr.watch import FlowWatcher
from media.prompts.sounds import SoundLibrary

__all__ = ["FlowReload", "default_loader"]

log = structlog.get_logger("engine.reload")


def default_loader(config: EngineConfig) -> Callable[[Path], FlowSet]:
    """The loader the engine publishes with: ``sound:`` names checked against its roots."""
    sounds = SoundLibrary([config.flows_dir / "prompts", *config.sounds_dirs])
    return functools.partial(load_flowset, sounds=sounds)


class FlowReload:
    """Version store + registry + watcher of one engine (see module docstring).

    Raises :class:`~ivr.versions.VersionStoreError` when the database cannot
    be opened (corrupt, locked, unwritable): the text says how to fix it.
    """

    def __init__(
        self,
        config: EngineConfig,
        metrics: CollectorRegistry | None = None,
        *,
        load: Callable[[Path], FlowSet] | None = None,
        clock: Callable[[], float] = time.time,
        quiet: float = 0.15,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = VersionStore(config.data_dir / DB_NAME)
        self.registry: FlowRegistry[FlowSet] = FlowRegistry(
            config.flows_dir,
            store=self.store,
            load=load or default_loader(config),
            staging=config.data_dir / "flows-staging",
            metrics=ReloadMetrics(metrics),
            clock=clock,
        )
        self.watcher = FlowWatcher(config.flows_dir, self._changed, quiet=quiet)
        self._swaps: deque[tuple[float, int, str]] = deque(maxlen=4096)
        self.registry.subscribe(self._swapped)

    def _swapped(self, live: LiveFlows[FlowSet]) -> None:
        self._swaps.append((self.clock(), live.version, live.digest))

    def version_at(self, digest: str, when: float) -> int | None:
        """The version a call that started at ``when`` (epoch s) with ``digest`` ran:
        the last swap to that digest at or before ``when`` (a rollback gives an
        older digest a new version id), else the newest version with that digest."""
        for at, version, swapped in reversed(self._swaps):
            if swapped == digest and at <= when:
                return version
        return self.store.find_digest(digest)

    def add_versions(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add ``version`` to each flow record of ``GET /calls/recent`` items (in place)."""
        for item in calls:
            flow = item.get("flow")
            if isinstance(flow, dict) and flow.get("digest"):
                try:
                    when = datetime.fromisoformat(str(flow.get("started"))).timestamp()
                except ValueError:
                    when = self.clock()
                flow["version"] = self.version_at(str(flow["digest"]), when)
        return calls

    async def start(self, flow_app: Any | None = None) -> PublishResult:
        """Publish the folder (or serve the last stored version) and start watching it.

        With ``flow_app`` (an :class:`engine.flowapp.FlowApplication`) every
        version's prompts are rendered by it before the version goes live,
        and its new calls take their snapshot from ``registry.current`` once
        a version is live.
        """
        if flow_app is not None:
            prerender: Callable[[FlowSet], Awaitable[object]] = flow_app.prerender
            self.registry.prerender = prerender

            def use_registry(_live: LiveFlows[FlowSet]) -> None:
                flow_app.current = self.registry.current
                flow_app.serving = True

            self.registry.subscribe(use_registry)
        result = await self.registry.start(now=self.clock())
        live = self.registry.live()
        if flow_app is not None and live is not None:
            flow_app.current = self.registry.current
            flow_app.serving = True
        self.watcher.start()
        return result

    async def _changed(self, saved_at: float | None, _paths: frozenset[str]) -> None:
        await self.registry.publish(now=self.clock(), source="watch", saved_at=saved_at)

    def mount(self, app: web.Application) -> None:
        """Serve ``/flows/...`` (versions, status, rollback, validate) on ``app``."""
        app.add_subapp("/flows/", flows_app(self.registry, clock=self.clock))

    async def stop(self) -> None:
        """Stop watching and close the database."""
        await self.watcher.stop()
        self.store.close()
