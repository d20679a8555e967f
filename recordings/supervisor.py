"""The engine's own transcription workers: started, watched, restarted and stopped by it.

``ivr serve`` runs :class:`WorkerSupervisor` on its event loop (so does
``ivr transcribe-workers`` on a machine of its own): N worker processes
(:func:`recordings.worker.worker_main`, ``spawn``, niced, one model each)
that drain the job queue in ``DATA/callcore.db``.

* A worker that dies (killed, crashed, could not load its model) is reaped,
  logged (``transcription.worker_died`` with its exit code or signal) and
  started again after a back-off that doubles with each death in a row
  (1 s, 2 s, 4 s ... at most 5 min; a worker that ran a minute starts the
  count again). The job it held goes back to the queue at once
  (:meth:`recordings.jobs.JobQueue.abandon`): no waiting for its lease.
* Workers exit with the engine however it ends: :meth:`WorkerSupervisor.stop`
  (SIGTERM/Ctrl-C of the engine) asks them to finish their job in hand, then
  after its grace terminates the stragglers (their jobs are given back
  without using an attempt); if the engine is killed, the kernel ends them
  (``PR_SET_PDEATHSIG``, and each worker checks its parent between jobs).
* ``/metrics``: ``callcore_transcription_jobs{status}`` (queued, running,
  done, failed: rows of the queue), ``callcore_transcription_queue_depth``
  (queued, waiting for a worker), ``callcore_transcription_workers`` (alive)
  and ``callcore_transcription_worker_restarts_total``; the queue is counted
  off the event loop every ``counts_every`` seconds, the scrape reads those.

Processes are started from the event loop's thread: the parent-death signal
follows the thread that forked, and that thread lives as long as the engine.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue as queue_mod
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from recordings.jobs import JobQueue
from recordings.stt import SttError, model_folder
from recordings.worker import LOAD_FAILED, WorkerConfig, worker_main

__all__ = ["Backoff", "WorkerSupervisor", "describe_exit"]

log = structlog.get_logger("recordings.supervisor")

STATUSES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class Backoff:
    """How long to wait before starting a dead worker again (pure)."""

    base: float = 1.0
    """Seconds before the first restart."""
    cap: float = 300.0
    """Longest wait between restarts."""
    stable: float = 60.0
    """A worker that ran this long before dying starts the count again."""

    def delay(self, deaths_in_a_row: int) -> float:
        """Seconds to wait after the ``deaths_in_a_row``-th death in a row (1, 2, ...)."""
        return min(self.cap, self.base * 2.0 ** max(0, deaths_in_a_row - 1))


def describe_exit(code: int | None) -> str:
    """A process exit code as words: ``killed by SIGKILL``, ``exit code 3 (...)``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == LOAD_FAILED:
        return f"exit code {code} (the model did not load)"
    return f"exit code {code}"


@dataclass
class _Slot:
    """One worker position: the process in it now and its history."""

    index: int
    generation: int = 0
    proc: Any = None
    worker: str = ""
    started: float = 0.0
    deaths: int = 0
    """Deaths in a row (reset when a worker ran ``Backoff.stable`` seconds)."""
    restart_at: float | None = None
    last_exit: str | None = None
    last_error: str | None = None
    ready: bool = False
    """The process in the slot now has loaded its model."""
    load_error: str | None = None
    """Why the process in the slot now could not load its model (``last_error`` stays)."""
    pids: list[int] = field(default_factory=list)


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Gauge(
            "callcore_transcription_jobs",
            "Transcription jobs in the queue (DATA/callcore.db), by status",
            ["status"],
            registry=registry,
        )
        self.depth = Gauge(
            "callcore_transcription_queue_depth",
            "Recordings waiting for a transcription worker (status queued)",
            registry=registry,
        )
        self.workers = Gauge(
            "callcore_transcription_workers",
            "Transcription worker processes alive",
            registry=registry,
        )
        self.restarts = Counter(
            "callcore_transcription_worker_restarts",
            "Transcription worker processes started again after one died",
            registry=registry,
        )


class WorkerSupervisor:
    """``processes`` transcription workers of the engine (see module docstring).

    ``await start()`` on the engine's event loop, ``await stop()`` when it stops.
    """

    def __init__(
        self,
        cfg: WorkerConfig,
        processes: int,
        *,
        registry: CollectorRegistry | None = None,
        backoff: Backoff | None = None,
        poll: float = 0.5,
        counts_every: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        name: str = "stt",
    ) -> None:
        if processes < 0:
            raise ValueError(f"transcription workers must be 0 or more, got {processes}")
        self.cfg = cfg
        self.processes = processes
        self.backoff = backoff or Backoff()
        self.poll = poll
        self.counts_every = counts_every
        self.clock = clock
        self.wall = wall
        self.name = name
        self.metrics = _Metrics(registry or CollectorRegistry())
        self.restarts = 0
        self.error: str | None = None
        """Why no worker was started (the model folder cannot be found), else None."""
        self.counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self._slots = [_Slot(i) for i in range(processes)]
        self._ctx = multiprocessing.get_context("spawn")
        self._stop: Any = None
        self._ready: Any = None
        self._queue: JobQueue | None = None
        self._task: asyncio.Task[None] | None = None
        self._counted_at = float("-inf")
        self._stopping = False

    # ---------------------------------------------------------------- life
    async def start(self) -> None:
        """Check the model folder, create the queue table, start the processes.

        Returns at once: the workers load their model in the background
        (``transcription.worker_ready`` in the log). A model that cannot be
        found is logged with the fix and no worker is started; the engine
        keeps recording and queueing (the jobs wait for workers).
        """
        if not self.processes:
            return
        try:
            await asyncio.to_thread(model_folder, self.cfg.backend, self.cfg.model_dir)
        except SttError as exc:
            self.error = str(exc)
            log.error(
                "transcription.workers_not_started",
                error=self.error,
                hint="fix the model setting (--transcribe-model, CALLCORE_TRANSCRIBE_MODEL) and"
                " restart; recordings stay queued until workers run",
            )
            return
        self._queue = await asyncio.to_thread(JobQueue, self.cfg.db_path, backoff=self.cfg.backoff)
        self._stop = self._ctx.Event()
        self._ready = self._ctx.Queue()
        for slot in self._slots:
            self._spawn(slot)
        log.info(
            "transcription.workers_started",
            processes=self.processes,
            backend=self.cfg.backend,
            nice=self.cfg.nice,
            pids=self.pids,
        )
        self._task = asyncio.ensure_future(self._watch())

    def _spawn(self, slot: _Slot) -> int | None:
        """Start the process of ``slot`` (on the event loop's thread, see module docstring);
        returns its pid."""
        slot.generation += 1
        slot.worker = (
            f"{os.uname().nodename}:{self.name}-{slot.index}.{slot.generation}:{os.getpid()}"
        )
        proc = self._ctx.Process(
            target=worker_main,
            args=(self.cfg, slot.worker, self._stop, self._ready, 0, os.getpid()),
            name=f"{self.name}-{slot.index}",
            daemon=True,  # a last resort: multiprocessing ends daemons at interpreter exit
        )
        proc.start()
        if self.cfg.nice and proc.pid is not None:  # at once, not after the child's imports
            try:
                own = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PROCESS, proc.pid, min(19, own + self.cfg.nice))
            except OSError:  # already gone: reaped at the next check
                pass
        slot.proc = proc
        slot.started = self.clock()
        slot.restart_at = None
        slot.ready = False
        slot.load_error = None
        if proc.pid is not None:
            slot.pids.append(proc.pid)
        return proc.pid

    async def stop(self, grace: float = 5.0) -> None:
        """Ask every worker to finish its job in hand and exit; after ``grace`` seconds
        terminate the rest (SIGTERM, then SIGKILL) and give their jobs back."""
        if self._stopping:
            return
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._stop is None:
            return
        self._stop.set()
        running = [s for s in self._slots if s.proc is not None]
        deadline = self.clock() + grace
        while any(s.proc.is_alive() for s in running) and self.clock() < deadline:
            await asyncio.sleep(0.05)
        cut_short = [s for s in running if s.proc.is_alive()]
        for slot in cut_short:
            log.warning("transcription.worker_terminated", worker=slot.worker, pid=slot.proc.pid)
            slot.proc.terminate()
        deadline = self.clock() + 3.0
        while any(s.proc.is_alive() for s in cut_short) and self.clock() < deadline:
            await asyncio.sleep(0.05)
        for slot in cut_short:
            if slot.proc.is_alive():
                slot.proc.kill()
                await asyncio.to_thread(slot.proc.join, 5.0)
        if cut_short and self._queue is not None:
            for slot in cut_short:
                await asyncio.to_thread(
                    self._queue.abandon,
                    slot.worker,
                    f"worker {slot.worker} stopped with the engine mid-job",
                    now=self.wall(),
                    charge=False,
                )
        for slot in running:
            slot.proc.join(0)
            slot.proc.close()
            slot.proc = None
        self.metrics.workers.set(0)
        self._ready.close()
        self._ready.join_thread()
        log.info("transcription.workers_stopped", terminated=len(cut_short))

    # ------------------------------------------------------------ watching
    async def _watch(self) -> None:
        while True:
            try:
                await self._check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("transcription.supervisor_error", hint="the next check tries again")
            await asyncio.sleep(self.poll)

    async def _check(self) -> None:
        """One round: read the workers' ready messages, reap the dead, start the due,
        refresh the queue counts."""
        self._drain_ready()
        now = self.clock()
        for slot in self._slots:
            if slot.proc is not None and not slot.proc.is_alive():
                await self._reap(slot, now)
            if slot.proc is None and slot.restart_at is not None and now >= slot.restart_at:
                if self._stopping:
                    return
                pid = self._spawn(slot)
                self.restarts += 1
                self.metrics.restarts.inc()
                log.info(
                    "transcription.worker_restarted",
                    worker=slot.worker,
                    pid=pid,
                    restarts=self.restarts,
                )
        self.metrics.workers.set(self.alive())
        if now - self._counted_at >= self.counts_every and self._queue is not None:
            self._counted_at = now
            self.counts = await asyncio.to_thread(self._queue.counts)
            for status in STATUSES:
                self.metrics.jobs.labels(status).set(self.counts.get(status, 0))
            self.metrics.depth.set(self.counts.get("queued", 0))

    def _drain_ready(self) -> None:
        if self._ready is None:
            return
        while True:
            try:
                worker, error = self._ready.get_nowait()
            except (queue_mod.Empty, OSError, EOFError):
                return
            slot = next((s for s in self._slots if s.worker == worker), None)
            if error is None:
                if slot is not None:
                    slot.ready = True
                log.info("transcription.worker_ready", worker=worker)
                continue
            if slot is not None:
                slot.last_error = slot.load_error = error
            log.error(
                "transcription.worker_load_failed",
                worker=worker,
                error=error,
                hint="check the model (--transcribe-backend/--transcribe-model); the worker is"
                " started again with back-off",
            )

    async def _reap(self, slot: _Slot, now: float) -> None:
        proc = slot.proc
        code = proc.exitcode
        pid = proc.pid
        proc.join(0)
        proc.close()
        slot.proc = None
        ran = now - slot.started
        slot.deaths = 1 if ran >= self.backoff.stable else slot.deaths + 1
        delay = self.backoff.delay(slot.deaths)
        slot.restart_at = now + delay
        slot.last_exit = describe_exit(code)
        released: list[int] = []
        if self._queue is not None:
            released = await asyncio.to_thread(
                self._queue.abandon,
                slot.worker,
                f"worker {slot.worker} (pid {pid}) died: {slot.last_exit}",
                now=self.wall(),
            )
        log.error(
            "transcription.worker_died",
            worker=slot.worker,
            pid=pid,
            exit=slot.last_exit,
            ran_seconds=round(ran, 1),
            jobs_requeued=released,
            restart_in=delay,
            deaths_in_a_row=slot.deaths,
            hint=slot.last_error or "started again after the back-off; see the worker's log above",
        )

    async def wait_ready(self, timeout: float) -> list[str]:
        """Wait until every worker has loaded its model; returns the errors of those
        that could not (empty: all ready), or a timeout error."""
        deadline = self.clock() + timeout
        while True:
            self._drain_ready()
            errors = [f"{s.worker}: {s.load_error}" for s in self._slots if s.load_error]
            if errors or all(s.ready for s in self._slots):
                return errors
            if self.clock() > deadline:
                return [f"not ready after {timeout:.0f} s"]
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------- reading
    @property
    def pids(self) -> list[int]:
        """PIDs of the worker processes now running (or started and not yet reaped)."""
        return [s.proc.pid for s in self._slots if s.proc is not None and s.proc.pid]

    def alive(self) -> int:
        """Worker processes alive."""
        return sum(1 for s in self._slots if s.proc is not None and s.proc.is_alive())

    def status(self) -> dict[str, Any]:
        """JSON-ready state for ``/health``: processes, pids, restarts, queue counts."""
        return {
            "processes": self.processes,
            "alive": self.alive(),
            "pids": self.pids,
            "restarts": self.restarts,
            "backend": self.cfg.backend,
            "jobs": dict(self.counts),
            "error": self.error,
            "last_exit": {s.index: s.last_exit for s in self._slots if s.last_exit},
            "last_error": {s.index: s.last_error for s in self._slots if s.last_error},
        }
