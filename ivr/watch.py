"""Watching the flows folder: saved YAML -> one publish of the final state.

:class:`FlowWatcher` runs :func:`watchfiles.awatch` on the flows folder and
calls ``publish(saved_at, paths)`` once per burst of saves:

* only files the loader reads count (flow ``*.yaml``, ``routes.yaml``,
  ``queues.yaml`` directly in the folder: :func:`ivr.loader.is_flowset_file`;
  the folder is watched without its subfolders); editors' temp, swap, backup
  and lock files (``.x.yaml.swp``, ``x.yaml~``, ``.#x.yaml``, ``#x.yaml#``,
  ``4913``, ``*.tmp``, JetBrains ``___jb_tmp___``, gedit
  ``.goutputstream-*``, our own ``.callcore-*`` temp files) and anything in a
  hidden folder are ignored (:class:`FlowFileFilter`);
* debounce: after a change, further changes are gathered until the folder
  has been quiet for ``quiet`` seconds (at most ``max_wait`` seconds after
  the first), then one publish runs; changes that arrive during a publish
  give one more publish afterwards. The publish reads the folder, so it
  always sees the final state;
* ``saved_at`` is the newest modification time among the changed files that
  still exist (for the saved -> swapped metric).

A failing publish is logged and the watcher carries on; if the folder
cannot be watched (missing, permissions) the error is logged with the fix
and the watch is retried every ``retry`` seconds. :attr:`FlowWatcher.ready`
is set once the folder is being watched (tests wait on it before saving).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from watchfiles import Change, DefaultFilter, awatch

from ivr.flowfiles import TEMP_PREFIX, is_flow_file

__all__ = ["FlowFileFilter", "FlowWatcher", "PublishCallback"]

log = structlog.get_logger("ivr.watch")

PublishCallback = Callable[[float | None, frozenset[str]], Awaitable[object]]
"""``publish(saved_at, changed_paths)``: called once per debounced burst."""

_EDITOR_JUNK = re.compile(
    r"""(
        ^\.                    # hidden: vim .x.swp, emacs .#x, gedit .goutputstream-, ours
      | ~$                     # backups
      | ^\#.*\#$               # emacs autosave
      | ^4913$                 # vim's write-permission probe
      | \.(sw[a-p]|swx|tmp|temp|bak|orig|part|crdownload|kate-swp)$
      | ___jb_(tmp|old|bak)___$
    )""",
    re.VERBOSE,
)


class FlowFileFilter(DefaultFilter):
    """Lets through changes of the files the loader reads from ``folder`` (see module docstring)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = Path(folder)

    def __call__(self, change: Change, path: str) -> bool:
        if not super().__call__(change, path):
            return False
        p = Path(path)
        if p.name.startswith(TEMP_PREFIX) or _EDITOR_JUNK.search(p.name):
            return False
        return is_flow_file(self.folder, p)


class FlowWatcher:
    """Watches one flows folder and publishes debounced changes (see module docstring)."""

    def __init__(
        self,
        folder: Path,
        publish: PublishCallback,
        *,
        quiet: float = 0.15,
        max_wait: float = 2.0,
        step_ms: int = 50,
        retry: float = 2.0,
    ) -> None:
        self.folder = Path(folder)
        self._publish = publish
        self.quiet = quiet
        self.max_wait = max_wait
        self.step_ms = step_ms
        self.retry = retry
        self.ready = asyncio.Event()
        self.publishes = 0
        self.batches = 0
        self._stop = asyncio.Event()
        self._changes: asyncio.Queue[set[tuple[Change, str]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start watching (two tasks on the running loop)."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._watch(), name="flows-watch"),
            asyncio.create_task(self._debounce(), name="flows-publish"),
        ]

    async def stop(self) -> None:
        """Stop watching; a publish in progress is cancelled."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _watch(self) -> None:
        filt = FlowFileFilter(self.folder)
        while not self._stop.is_set():
            try:
                async for changes in awatch(
                    self.folder,
                    watch_filter=filt,
                    step=self.step_ms,
                    debounce=int(self.max_wait * 1000),
                    rust_timeout=250,
                    yield_on_timeout=True,
                    stop_event=self._stop,
                    recursive=False,
                ):
                    if not self.ready.is_set():
                        self.ready.set()
                        log.info("flows.watching", folder=str(self.folder))
                    if changes:
                        self.batches += 1
                        self._changes.put_nowait(changes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready.clear()
                log.error(
                    "flows.watch_failed",
                    folder=str(self.folder),
                    error=f"{type(exc).__name__}: {exc}",
                    fix="check that the flows folder exists and is readable; retrying",
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.retry)

    async def _debounce(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = set(await self._changes.get())
            deadline = loop.time() + self.max_wait
            while True:
                wait = min(self.quiet, deadline - loop.time())
                if wait <= 0:
                    break
                try:
                    batch |= await asyncio.wait_for(self._changes.get(), wait)
                except TimeoutError:
                    break
            paths = frozenset(path for _, path in batch)
            saved_at = _newest_mtime(paths)
            self.publishes += 1
            log.debug("flows.changed", files=sorted(paths))
            try:
                await self._publish(saved_at, paths)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("flows.publish_failed", files=sorted(paths))


def _newest_mtime(paths: frozenset[str]) -> float | None:
    newest: float | None = None
    for path in paths:
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            continue
        newest = mtime if newest is None else max(newest, mtime)
    return newest
