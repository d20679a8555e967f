"""Transcription workers: processes that turn queued recordings into text records.

The engine calls :func:`recording_finished` when a call's recording is closed:
it only adds a row to the job queue in ``DATA/callcore.db`` (a few ms; call it
off the event loop). Worker processes (:class:`TranscriptionWorkers`, started
with ``spawn`` and niced so live calls keep the CPU) each load a transcriber
once, then loop: claim a job (lease), read the WAV, renew the lease for the
audio's length, transcribe each channel (left caller, right agent/IVR), write
the text record and its exports atomically, hand the record to the history
store when there is one, complete the job. An exception fails the job with
its text (retried up to the queue's limit); a worker that dies leaves a lease
that expires, and another worker takes the job.

Outputs per call, in ``DATA/transcripts/YYYY/MM/DD/``: ``CALL.json`` (the
text record), ``CALL.txt``, ``CALL.vtt``, ``CALL.srt``.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import queue as queue_mod
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any, Protocol

import structlog

from recordings.audio import read_wav
from recordings.jobs import Job, JobQueue
from recordings.stt import Transcriber, open_transcriber, transcribe_channels
from recordings.textrecord import TextRecord, build_record, to_srt, to_text, to_webvtt

__all__ = [
    "TranscriptSink",
    "TranscriptionWorkers",
    "WorkerConfig",
    "WorkerStartError",
    "find_history",
    "process_next",
    "recording_finished",
    "transcribe_recording",
    "write_record",
]

log = structlog.get_logger("recordings.worker")

SPEAKERS = ("caller", "agent")


class WorkerStartError(RuntimeError):
    """Workers that could not load their model (the message has each worker's error)."""


class TranscriptSink(Protocol):
    """Where finished transcripts go besides the files (the omnichannel history)."""

    def attach_transcript(self, call_id: str, text_record: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs (picklable: it crosses to ``spawn`` children)."""

    data_dir: Path
    """DATA: the queue is ``callcore.db`` there, records go to ``transcripts/``."""
    backend: str = "default"
    model_dir: Path | None = None
    cpu_threads: int = 1
    """Threads per worker's model: one per worker keeps N workers on N cores."""
    lease: float = 60.0
    """Seconds a claim holds before another worker may take the job; a heartbeat thread
    renews it every third of that while the job runs."""
    max_rtf: float = 3.0
    """Renewals stop after ``lease + max_rtf * audio seconds``: a hung job's lease expires."""
    backoff: float = 30.0
    """Seconds per attempt before a failed job is offered again."""
    poll: float = 1.0
    """Seconds to sleep when the queue is empty."""
    nice: int = 10
    """Added to the worker's niceness so the media path wins the CPU."""
    history: str | None = "auto"
    """``auto``: recordings.history when it exists; ``module:callable``: a factory taking
    the database path; None: no history store."""
    speakers: tuple[str, ...] = SPEAKERS
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the workers (e.g. CALLCORE_VOSK_MODEL)."""

    @property
    def db_path(self) -> Path:
        return self.data_dir / "callcore.db"

    @property
    def out_dir(self) -> Path:
        return self.data_dir / "transcripts"


def recording_finished(
    data_dir: Path | str,
    recording: Path | str,
    call_id: str,
    *,
    now: float,
    context: Mapping[str, Any] | None = None,
) -> int:
    """Hook for the recorder: queue ``recording`` of ``call_id`` for transcription.

    ``context`` is what the engine knows (see recordings.textrecord.build_record:
    metadata, ivr_path, dtmf, pauses, queue). Returns the job id; calling it
    twice for the same recording returns the same job. Blocking (SQLite):
    run it in an executor from the event loop.
    """
    queue = JobQueue(Path(data_dir) / "callcore.db")
    return queue.enqueue(Path(recording), call_id, now=now, context=dict(context or {}))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]", "_", name)[:120] or "call"


def transcribe_recording(
    transcriber: Transcriber,
    path: Path,
    call_id: str,
    *,
    context: Mapping[str, Any] | None = None,
    speakers: tuple[str, ...] = SPEAKERS,
    created_at: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> TextRecord:
    """The text record of the WAV at ``path`` (mono or stereo), each channel on its own."""
    audio = read_wav(path)
    started = clock()
    channels = transcribe_channels(transcriber, audio.pcm, audio.rate, speakers)
    spent = clock() - started
    ctx = dict(context or {})
    meta = dict(ctx.get("metadata") or {})
    meta.setdefault("recording", str(path))
    meta.update(channels=audio.channels, rate=audio.rate)
    ctx["metadata"] = meta
    return build_record(
        call_id,
        channels,
        duration=audio.duration,
        backend=transcriber.name,
        speakers=speakers[: audio.channels],
        context=ctx,
        created_at=created_at,
        processing_seconds=spent,
    )


def write_record(record: TextRecord, folder: Path) -> Path:
    """Write ``CALL.json`` and its ``.txt``/``.vtt``/``.srt`` into ``folder`` (atomic renames)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / _safe(record.call_id)
    outputs = {
        ".txt": to_text(record),
        ".vtt": to_webvtt(record),
        ".srt": to_srt(record),
        ".json": record.to_json(),  # last: its presence means the set is complete
    }
    for suffix, text in outputs.items():
        target = base.with_suffix(suffix)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    return base.with_suffix(".json")


def find_history(spec: str | None, db_path: Path) -> TranscriptSink | None:
    """The history store named by ``spec`` (see WorkerConfig.history), or None."""
    if spec is None:
        return None
    if spec != "auto":
        module_name, _, attr = spec.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        sink: TranscriptSink = factory(db_path)
        return sink
    try:
        mod = importlib.import_module("recordings.history")
    except ModuleNotFoundError as exc:
        if exc.name == "recordings.history":
            return None
        raise
    for name in ("open_history", "HistoryStore", "History", "SqliteHistory"):
        factory = getattr(mod, name, None)
        if callable(factory):
            obj = factory(db_path)
            if callable(getattr(obj, "attach_transcript", None)):
                return obj
    if callable(getattr(mod, "attach_transcript", None)):
        return mod
    log.warning("history.unusable", module="recordings.history", fix="expose attach_transcript")
    return None


def process_next(
    queue: JobQueue,
    transcriber: Transcriber,
    worker: str,
    cfg: WorkerConfig,
    *,
    history: TranscriptSink | None = None,
    wall: Callable[[], float] = time.time,
) -> Job | None:
    """Claim one job and carry it through; returns the job as it ended (None: queue empty)."""
    job = queue.claim(worker, now=wall(), lease=cfg.lease)
    if job is None:
        return None
    jlog = log.bind(job=job.id, call_id=job.call_id, worker=worker, attempt=job.attempts)
    jlog.info("transcription.started", recording=job.recording)
    path = Path(job.recording)
    budget = cfg.lease + cfg.max_rtf * _wav_seconds(path)
    stop_beat = threading.Event()
    beat = threading.Thread(
        target=_heartbeat,
        args=(queue, job.id, worker, cfg.lease, budget, stop_beat, wall),
        name=f"lease-{job.id}",
        daemon=True,
    )
    beat.start()
    try:
        now = wall()
        record = transcribe_recording(
            transcriber,
            path,
            job.call_id,
            context=job.context,
            speakers=cfg.speakers,
            created_at=datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        )
        day = datetime.fromtimestamp(job.enqueued_at, UTC)
        out = write_record(record, cfg.out_dir / f"{day:%Y/%m/%d}")
        if history is not None:
            history.attach_transcript(job.call_id, record.model_dump(mode="json"))
        stop_beat.set()
        beat.join()
        queue.complete(job.id, worker, now=wall(), result=str(out))
    except Exception as exc:
        stop_beat.set()
        beat.join()
        error = f"{type(exc).__name__}: {exc}"
        jlog.error("transcription.failed", error=error)
        try:
            return queue.fail(job.id, worker, error, now=wall())
        except Exception as lost:  # lease lost meanwhile: the other worker owns it now
            jlog.error("transcription.fail_not_recorded", error=str(lost))
            return queue.get(job.id)
    jlog.info(
        "transcription.done",
        record=str(out),
        seconds=record.metadata.duration,
        rtf=record.transcription.real_time_factor,
        segments=len(record.segments),
    )
    return queue.get(job.id)


def _heartbeat(
    queue: JobQueue,
    job_id: int,
    worker: str,
    lease: float,
    budget: float,
    stop: threading.Event,
    wall: Callable[[], float],
) -> None:
    """Renew the lease every ``lease / 3`` s for at most ``budget`` s (a hung job then expires)."""
    started = wall()
    while not stop.wait(lease / 3):
        if wall() - started > budget:
            log.warning("transcription.over_budget", job=job_id, budget=round(budget, 1))
            return
        try:
            queue.renew(job_id, worker, now=wall(), lease=lease)
        except Exception as exc:
            log.error("transcription.lease_lost", job=job_id, error=str(exc))
            return


def _wav_seconds(path: Path) -> float:
    """Audio length from the header (for the lease); 0 when unreadable (read_wav reports)."""
    import wave

    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / max(1, w.getframerate())
    except Exception:
        return 0.0


LOAD_FAILED = 3
"""Exit code of a worker that could not load its model."""


def _die_with_parent(parent: int) -> None:
    """Exit when ``parent`` (the engine) is gone, even if it was killed with SIGKILL:
    the kernel sends us SIGTERM when it dies (Linux ``PR_SET_PDEATHSIG``)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # died before the line above took effect
        os._exit(0)


def worker_main(
    cfg: WorkerConfig,
    worker: str,
    stop: EventType,
    ready: Any = None,
    max_jobs: int = 0,
    parent: int | None = None,
) -> None:
    """Entry point of a worker process: nice, load the model once, loop until ``stop``.

    ``ready`` (a multiprocessing queue) gets ``(worker, None)`` once the model is
    loaded, or ``(worker, error)`` when it cannot be, and the process exits with
    :data:`LOAD_FAILED`. With ``parent`` (the engine's pid) the worker exits
    when that process dies, however it dies (no orphans transcribing on).
    """
    from engine.logs import configure_logging

    if parent is not None:
        _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the parent stops us
    configure_logging(os.environ.get("CALLCORE_LOG_LEVEL", "info"), json=True)
    os.environ.update(cfg.env)
    if cfg.nice and parent is None:
        os.nice(cfg.nice)
    elif cfg.nice and parent is not None:  # the parent may have niced us already (at once)
        want = min(19, os.getpriority(os.PRIO_PROCESS, parent) + cfg.nice)
        if os.getpriority(os.PRIO_PROCESS, 0) < want:
            os.setpriority(os.PRIO_PROCESS, 0, want)
    try:
        queue = JobQueue(cfg.db_path, backoff=cfg.backoff)
        transcriber = open_transcriber(cfg.backend, cfg.model_dir, cpu_threads=cfg.cpu_threads)
        history = find_history(cfg.history, cfg.db_path)
    except Exception as exc:
        log.error("worker.failed", worker=worker, error=str(exc))
        if ready is not None:
            ready.put((worker, f"{type(exc).__name__}: {exc}"))
        sys.exit(LOAD_FAILED)
    log.info("worker.ready", worker=worker, backend=transcriber.name, pid=os.getpid())
    if ready is not None:
        ready.put((worker, None))
    done = 0
    while not stop.is_set():
        if parent is not None and os.getppid() != parent:
            log.warning("worker.orphaned", worker=worker, parent=parent)
            break
        job = process_next(queue, transcriber, worker, cfg, history=history)
        if job is None:
            stop.wait(cfg.poll)
            continue
        done += 1
        if max_jobs and done >= max_jobs:
            break
    log.info("worker.stopped", worker=worker, jobs=done)


class TranscriptionWorkers:
    """N worker processes on one queue; ``start()``, then ``stop()`` (or use ``with``)."""

    def __init__(self, cfg: WorkerConfig, processes: int = 1, *, name: str = "stt") -> None:
        self.cfg = cfg
        self.processes = processes
        self.name = name
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._ready = self._ctx.Queue()
        self._procs: list[Any] = []

    def start(self, wait: float | None = 120.0) -> TranscriptionWorkers:
        """Start the processes; with ``wait``, return once every model is loaded.

        A worker that cannot load its model raises :class:`WorkerStartError`
        with its error (after stopping the others). The workers exit when this
        process dies; call it from a thread that lives as long as they should
        (the main thread): Linux signals the death of the thread that forked.
        """
        JobQueue(self.cfg.db_path)  # create the table before the children race to
        host = os.uname().nodename
        for i in range(self.processes):
            worker = f"{host}:{self.name}-{i}:{os.getpid()}"
            proc = self._ctx.Process(
                target=worker_main,
                args=(self.cfg, worker, self._stop, self._ready, 0, os.getpid()),
                name=f"{self.name}-{i}",
            )
            proc.start()
            self._procs.append(proc)
        if wait is not None:
            self.wait_ready(wait)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Block until every worker has loaded its model (WorkerStartError otherwise)."""
        deadline = time.monotonic() + timeout
        errors = []
        for _ in self._procs:
            try:
                worker, error = self._ready.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue_mod.Empty:
                errors.append(f"not ready after {timeout:.0f} s")
                break
            if error is not None:
                errors.append(f"{worker}: {error}")
        if errors:
            self.stop(timeout=5)
            raise WorkerStartError("transcription workers did not start: " + "; ".join(errors))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def alive(self) -> int:
        return sum(1 for p in self._procs if p.is_alive())

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the workers to finish their job in hand and exit; terminate stragglers."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for p in self._procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self._procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        self._procs.clear()

    def __enter__(self) -> TranscriptionWorkers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
