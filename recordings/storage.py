"""The recorder's disk side: WAV files, rows, audit entries, listeners; on one worker.

:class:`RecordingStorage` does everything a recording needs from the disk,
one operation at a time and in order: open the file and insert the row
(:meth:`~RecordingStorage.start`), append audio blocks, close the file,
write the finished row and tell the listeners (history, transcription
queue), record pauses, repair what a crash left (:meth:`~RecordingStorage.recover`).
Recordings are named by a *token* (the file path, unique per recording) so
operations queued before the row's final key is known still find it.

:class:`ProcessRunner` carries the operations out, in submission order, in
one child process. The storage work is Python code (SQLite rows, JSON,
hashing the audit chain, listeners): on a thread it competed for the GIL
with the event loop. Measured with ``bench/media_load.py`` at 300 calls, a
storage thread put 12-22 % of the media clock's ticks more than 5 ms late
(send jitter p99 170-290 ms) against 0.09 % (p99 6.4 ms) without the
storage work; a ``ProcessPoolExecutor`` was worse still (42 %: its feeder
and manager threads wake for every block). So the loop itself pickles each
operation onto a non-blocking socket to the child, and no engine thread is
involved.

The child runs niced (:data:`STORAGE_NICE`): writing to its socket wakes
it, and at the engine's own priority the woken child often took the CPU
from the event loop there and then. py-spy of the engine under SIPp load
(150 calls, 100 at once): the loop's writes to the child cost 0.7-1.3 ms
per call for operations and 1.0-1.3 ms per call for audio, almost all of
it waiting to run again, against 0.03-0.17 and 0.2-0.5 ms with the child
at nice 10 or 19. Those waits hold up whatever media tick is due.

The child (``python -m recordings.storage_child``) builds its own
:class:`RecordingStorage` from a picklable factory (see
:func:`engine.recording_storage.engine_storage`), ignores SIGINT and
SIGTERM (the engine drains it on shutdown) and exits when the engine's end
of the socket closes, a kill -9 of the engine included.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from media.capture import Spans, StreamingWavWriter, decode_coded
from recordings.metadata import CallFacts, PauseSpan, RecordingMeta, build_metadata
from recordings.store import RecordingStore
from recordings.wavfile import WavError, empty_header, repair_wav

__all__ = [
    "AuditEvent",
    "ProcessRunner",
    "RecordingListener",
    "RecordingStorage",
    "StorageError",
]

log = structlog.get_logger("recordings.storage")

RATE = 8000

RecordingListener = Callable[[RecordingMeta], object]
"""Told about every finished or recovered recording (on the storage worker)."""

AuditEvent = Callable[[str, str, Mapping[str, Any], float], None]
"""``(event, key, details, at)`` for the audit log: start, pause, resume, finish,
recover; ``at`` is the Unix time of the event (passed in by the recorder, not
read when the worker gets to it)."""


class RecordingStorage:
    """Files, rows, audit and listeners of the recordings (one worker, in order)."""

    def __init__(
        self,
        store: RecordingStore,
        *,
        listeners: list[RecordingListener] | None = None,
        audit: AuditEvent | None = None,
    ) -> None:
        self.store = store
        self.listeners = listeners if listeners is not None else []
        self.audit = audit
        self._files: dict[str, StreamingWavWriter | None] = {}
        self._keys: dict[str, str] = {}

    # ------------------------------------------------------------ recording
    def start(self, meta: RecordingMeta) -> str:
        """Create the WAV at ``meta.path`` and insert its row; returns the stored
        key (the call id, ``~N`` appended when it was stored before)."""
        token = meta.path
        try:
            self._files[token] = StreamingWavWriter(Path(token), channels=2, rate=RATE)
        except OSError as exc:  # the row still says where it should be
            log.error("recording.open_failed", call_id=meta.call_id, error=str(exc))
            self._files[token] = None
        key = self.store.start(meta)
        if key != meta.call_id:  # the id was in the table already (an earlier run)
            log.warning("recording.key_suffixed", call_id=meta.call_id, key=key)
        self._keys[token] = key
        self._audit(
            "recording.start", key, {"path": meta.path, "caller": meta.caller}, meta.started_at
        )
        return key

    def audio_coded(self, token: str, codec: str, rx: bytes, tx: bytes, silent: Spans = ()) -> None:
        """Decode a G.711 batch (see :func:`media.capture.decode_coded`) and append it."""
        if self._files.get(token) is None:
            return
        self.audio(token, decode_coded(codec, rx, tx, silent))

    def audio(self, token: str, block: np.ndarray) -> None:
        """Append a stereo block to the recording's file."""
        writer = self._files.get(token)
        if writer is None:
            return
        try:
            writer.write(block)
        except OSError as exc:  # disk full: the call goes on, the recording stops growing
            log.error("recording.write_failed", call_id=self._keys.get(token), error=str(exc))

    def finish(
        self,
        token: str,
        facts: CallFacts,
        flow: Mapping[str, Any] | None,
        stays: list[dict[str, Any]],
        pauses: list[PauseSpan],
        at: float,
    ) -> RecordingMeta:
        """Close the file, write the full row, audit it (``at``: when the call and its
        application were over) and tell the listeners."""
        writer = self._files.pop(token, None)
        duration = 0.0
        if writer is not None:
            writer.close()
            duration = writer.frames / RATE
        key = self._keys.pop(token, facts.call_id)
        meta = build_metadata(
            replace(facts, call_id=key),
            path=token,
            duration=duration,
            flow=dict(flow) if flow is not None else None,
            queue_stays=stays,
            pauses=pauses,
        )
        self.store.finish(meta)
        self._audit(
            "recording.finish",
            meta.call_id,
            {"seconds": meta.duration, "disposition": meta.disposition},
            at,
        )
        log.info(
            "recording.finished",
            call_id=meta.call_id,
            seconds=meta.duration,
            disposition=meta.disposition,
            pauses=len(meta.pauses),
        )
        self._tell(meta)
        return meta

    def pauses_changed(
        self,
        token: str,
        event: str,
        pauses: list[PauseSpan],
        details: Mapping[str, Any],
        at: float,
    ) -> None:
        """Store the pause spans so far and audit the pause or resume (made at ``at``)."""
        key = self._keys.get(token)
        if key is None:
            return
        self.store.update_meta(key, {"pauses": [p.as_dict() for p in pauses]})
        self._audit(event, key, details, at)

    def noop(self) -> None:
        """Nothing: a marker that everything queued before it has run."""

    # ------------------------------------------------------ start-up repair
    def recover(self, now: float) -> list[RecordingMeta]:
        """Repair every recording left ``recording`` by an engine that died (run it
        before taking calls, at Unix time ``now``). Returns the recovered metadata."""
        recovered = []
        for row in self.store.unfinished():
            path = Path(row.path)
            seconds = 0.0
            repaired = False
            try:
                if not path.exists():
                    log.error("recording.missing", call_id=row.call_id, path=str(path))
                elif path.stat().st_size < len(empty_header()):
                    path.write_bytes(empty_header())  # killed before its header was written
                    repaired = True
                else:
                    result = repair_wav(path)
                    seconds, repaired = result.seconds, result.repaired
            except (OSError, WavError) as exc:
                log.error(
                    "recording.unrepairable",
                    call_id=row.call_id,
                    path=str(path),
                    error=str(exc),
                    hint="the file is kept as it is; inspect it by hand",
                )
            facts = CallFacts(
                call_id=row.call_id,
                caller=row.caller,
                called=row.called,
                caller_name=row.caller_name,
                started_at=row.started_at,
                end_reason="engine-died",
            )
            pauses = [PauseSpan(**p) for p in row.pauses]
            meta = build_metadata(
                facts, path=row.path, duration=seconds, pauses=pauses, status="recovered"
            )
            self.store.finish(meta)
            self._audit(
                "recording.recover",
                meta.call_id,
                {"seconds": round(seconds, 3), "header_repaired": repaired},
                now,
            )
            log.warning(
                "recording.recovered",
                call_id=row.call_id,
                path=row.path,
                seconds=round(seconds, 3),
                header_repaired=repaired,
            )
            recovered.append(meta)
            self._tell(meta)
        return recovered

    # ------------------------------------------------------------- helpers
    def _tell(self, meta: RecordingMeta) -> None:
        for listener in self.listeners:
            try:
                listener(meta)
            except Exception as exc:  # a broken listener never loses the recording
                log.error(
                    "recording.listener_failed",
                    call_id=meta.call_id,
                    listener=getattr(listener, "__qualname__", repr(listener)),
                    error=f"{type(exc).__name__}: {exc}",
                )

    def _audit(self, event: str, key: str, details: Mapping[str, Any], at: float) -> None:
        if self.audit is None:
            return
        try:
            self.audit(event, key, details, at)
        except Exception as exc:
            log.error("recording.audit_failed", event=event, call_id=key, error=str(exc))


class _Channel(asyncio.Protocol):
    """The engine's end of the socket to the storage process: replies resolve futures."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiting: dict[int, Future[Any]] = {}

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for op_id, ok, value in read_frames(self.buffer):
            future = self.waiting.pop(op_id, None)
            if future is None:
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(StorageError(value))

    def connection_lost(self, exc: Exception | None) -> None:
        for future in self.waiting.values():
            future.set_exception(StorageError("the storage process ended"))
        self.waiting.clear()


NO_REPLY = 0
STORAGE_NICE = 10
"""Added to the engine's niceness for the storage process (see the module
docstring): it keeps a tenth of a contended CPU, and its wake-ups no longer
preempt the event loop. Recording writes can wait a few milliseconds; media
cannot."""
"""Operation id of :meth:`ProcessRunner.post` messages: the child does not answer."""


class StorageError(Exception):
    """An operation failed in the storage process (the text names it), or it died."""


def write_frame(obj: object) -> bytes:
    """One message: 4-byte big-endian length, then the pickle."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack(">I", len(data)) + data


def read_frames(buffer: bytearray) -> Iterator[Any]:
    """The complete messages at the front of ``buffer`` (consumed)."""
    while len(buffer) >= 4:
        (size,) = struct.unpack_from(">I", buffer)
        if len(buffer) < 4 + size:
            return
        data = bytes(buffer[4 : 4 + size])
        del buffer[: 4 + size]
        yield pickle.loads(data)


class ProcessRunner:
    """The operations in a child process (``python -m recordings.storage_child``)
    that builds its storage with ``factory``, a picklable callable (a
    module-level function or a ``functools.partial`` of one).

    No thread of the engine is involved: operations are pickled straight onto
    a non-blocking socket by the event loop, replies come back on it.
    Create it with :meth:`start` inside the running loop; :meth:`submit` may
    be called from another thread too (it hops onto the loop).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._channel: _Channel | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._closed = False
        self._posts: list[bytes] = []

    @classmethod
    async def start(
        cls,
        factory: Callable[[], RecordingStorage],
        *,
        log_level: str = "info",
        nice: int = STORAGE_NICE,
    ) -> ProcessRunner:
        """Spawn the storage process (``nice`` added to the engine's niceness,
        see :data:`STORAGE_NICE`) and connect to it."""
        runner = cls()
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            runner._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "recordings.storage_child",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        if nice:  # at once, before the child's imports
            with contextlib.suppress(OSError):  # already gone: the first submit says so
                own = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PROCESS, runner._process.pid, min(19, own + nice))
        transport, channel = await loop.create_unix_connection(_Channel, sock=ours)
        runner._loop, runner._transport, runner._channel = loop, transport, channel
        transport.write(write_frame((factory, log_level)))
        return runner

    def submit(self, op: str, *args: Any) -> Future[Any]:
        """Queue ``storage.<op>(*args)``; raises RuntimeError once closed."""
        if self._closed or self._transport is None or self._loop is None:
            raise RuntimeError("the recording storage process is closed")
        future: Future[Any] = Future()
        op_id = next(self._ids)
        frame = write_frame((op_id, op, args))

        def send() -> None:
            assert self._channel is not None and self._transport is not None
            if self._transport.is_closing():
                future.set_exception(StorageError("the storage process ended"))
                return
            self._channel.waiting[op_id] = future
            self._flush_posts()  # in order: audio posted before this operation goes first
            self._transport.write(frame)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            send()
        else:
            self._loop.call_soon_threadsafe(send)
        return future

    def post(self, op: str, *args: Any) -> None:
        """Queue ``storage.<op>(*args)`` with no reply (the child logs a failure):
        no future and no answer to read for the audio the loop hands over twice
        a second per call. From the event loop's thread only; RuntimeError once closed."""
        if self._closed or self._transport is None or self._transport.is_closing():
            raise RuntimeError("the recording storage process is closed")
        if not self._posts:  # one write (one wake-up of the child) per loop callback
            assert self._loop is not None
            self._loop.call_soon(self._flush_posts)
        self._posts.append(write_frame((NO_REPLY, op, args)))

    def _flush_posts(self) -> None:
        if self._posts and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(self._posts))
        self._posts.clear()

    async def aclose(self) -> None:
        """Wait for what is queued, then let the child exit (killed after 30 s)."""
        if self._closed:
            return
        with contextlib.suppress(StorageError):
            await asyncio.wrap_future(self.submit("noop"))
        self._closed = True
        assert self._transport is not None and self._process is not None
        self._transport.close()  # the child reads EOF and exits
        try:
            await asyncio.wait_for(self._process.wait(), 30.0)
        except TimeoutError:
            log.error("recording.storage_stuck", pid=self._process.pid, hint="killed")
            self._process.kill()
            await self._process.wait()


def serve(sock: socket.socket) -> None:
    """The storage process's loop: read operations, run them in order, reply."""
    from engine.logs import configure_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the engine drains us, then we exit
    buffer = bytearray()
    storage: RecordingStorage | None = None
    with sock:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return  # the engine closed its end (or died)
            buffer += data
            for message in read_frames(buffer):
                if storage is None:
                    factory, log_level = message
                    configure_logging(log_level)
                    storage = factory()
                    continue
                op_id, op, args = message
                try:
                    reply = (op_id, True, getattr(storage, op)(*args))
                except Exception as exc:
                    log.exception("recording.storage_failed", op=op)
                    reply = (op_id, False, f"{op}: {type(exc).__name__}: {exc}")
                if op_id != NO_REPLY:
                    sock.sendall(write_frame(reply))
