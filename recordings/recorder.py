"""The call recorder: every answered call as a stereo WAV plus a metadata row.

Files: ``DATA/recordings/YYYY/MM/DD/<call-id>.wav`` (UTC date of the answer),
16-bit PCM at 8 kHz, left channel what the caller sent, right channel what
the caller heard (IVR prompts, hold tone, the agent's voice while bridged).
The media session hands its decoded audio over every 500 ms
(:class:`media.capture.CallCapture`) and :class:`media.capture.StreamingWavWriter`
appends it and rewrites the header sizes each time, so the file on disk is a
valid WAV holding everything but the last half second at any moment.

Rows: :class:`recordings.store.RecordingStore` (``DATA/callcore.db``): a row
``recording`` when the call is answered, completed with the full
:class:`~recordings.metadata.RecordingMeta` (numbers, flow path and version,
queue stays, wait, agent, pauses, masked digits, disposition) when both the
audio is closed and the call's application (flow driver, ACD) has finished,
so everything they reported is in. The flow driver and the ACD report
through :meth:`Recorder.note_flow` and :meth:`Recorder.note_queue`.

Start-up repair (:meth:`Recorder.recover`): a row still ``recording`` belongs
to a call the engine died in (kill -9, power cut). Its WAV header is rewritten
from the file length (:func:`recordings.wavfile.repair_wav`) and the row is
marked ``recovered`` with the length found; listeners then see it like any
other finished recording.

Secure pause (PCI DSS): :meth:`Recorder.pause` / :meth:`Recorder.resume`
(from a flow node, an agent or the API) switch the call's media session into
its secure pause (see :mod:`media.session`: silence to the recording and to
the agent, no digits relayed) and keep the spans, in recording seconds, in
the metadata. Digits inside a span are masked in the row.

File writes, database rows and listeners (history store, transcription
queue) run in order on one storage worker (:mod:`recordings.storage`: a
thread, or in the engine a child process, so that none of it holds the
event loop's GIL); :meth:`Recorder.close` waits for them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from media.call import CallInfo
from media.capture import CallCapture, Spans
from media.session import MediaSession
from recordings.metadata import CallFacts, PauseSpan, RecordingMeta
from recordings.storage import ProcessRunner

__all__ = [
    "RATE",
    "Recorder",
    "RecordingError",
    "recording_path",
    "safe_name",
]

log = structlog.get_logger("recordings.recorder")

RATE = 8000
FLUSH_SAMPLES = RATE // 2
"""The capture writes to disk every half second (what a kill -9 can lose at most)."""


class RecordingError(Exception):
    """A pause/resume request that cannot be done; ``status`` is the HTTP status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def safe_name(call_id: str) -> str:
    """``call_id`` as a file name (letters, digits, ``-_.@~`` kept; at most 120 chars)."""
    return "".join(c if c.isalnum() or c in "-_.@~" else "_" for c in call_id)[:120] or "_"


def recording_path(root: Path, call_id: str, started: float) -> Path:
    """``root/YYYY/MM/DD/<call-id>.wav`` for a call answered at Unix time ``started``."""
    day = datetime.fromtimestamp(started, UTC)
    return root / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" / f"{safe_name(call_id)}.wav"


@dataclass(eq=False)
class _Active:
    """A recording in progress."""

    key: str
    """The recordings-table key (the call id; ``~N`` appended when the id was stored before)."""
    info: CallInfo
    session: MediaSession
    path: Path
    started_wall: float
    started_loop: float
    flow: dict[str, Any] | None = None
    stays: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[PauseSpan] = field(default_factory=list)
    paused_by: str | None = None
    end_reason: str = ""
    audio_closed: bool = False
    app_done: bool = False
    finished: bool = False


class _Sink:
    """The capture sink of one recording: hands each block to the storage worker.

    The event loop never touches the file or the database itself (see
    :mod:`recordings.storage`); the worker keeps the operations in order
    (open, writes, then close with the finished row).
    """

    def __init__(self, recorder: Recorder, active: _Active) -> None:
        self.recorder = recorder
        self.active = active

    def write(self, block: np.ndarray) -> None:
        self.recorder._post("audio", str(self.active.path), block)

    def write_coded(self, codec: str, rx: bytes, tx: bytes, silent: Spans) -> None:
        """G.711 as it was on the wire: the storage process decodes it (see media.capture)."""
        self.recorder._post("audio_coded", str(self.active.path), codec, rx, tx, silent)

    def close(self) -> None:
        self.active.audio_closed = True
        self.recorder._maybe_finish(self.active)


class Recorder:
    """Records the engine's calls (see the module docstring).

    ``data_dir/recordings`` holds the files; ``runner`` (a
    :class:`recordings.storage.ProcessRunner`) writes them, the rows, the
    audit entries, and tells the listeners, in its child process. ``wall``
    and ``loop_time`` are the clocks (Unix seconds and the event loop's).
    """

    def __init__(
        self,
        data_dir: Path,
        runner: ProcessRunner,
        *,
        wall: Callable[[], float] = time.time,
        loop_time: Callable[[], float] | None = None,
    ) -> None:
        self.root = Path(data_dir) / "recordings"
        self.runner = runner
        self.wall = wall
        self._loop_time = loop_time
        self.active: dict[str, _Active] = {}
        """Recordings in progress by SIP call id."""
        self.finished = 0
        self._closed = False

    # ----------------------------------------------------------- recording
    def open(self, info: CallInfo, session: MediaSession) -> CallCapture:
        """Start recording ``info``'s call (just answered): the capture to give ``session``."""
        now = self.wall()
        loop_now = self._loop_time() if self._loop_time else asyncio.get_running_loop().time()
        path = recording_path(self.root, info.call_id, now)
        key = info.call_id
        n = 1
        while path.exists() or key in self.active:  # a reused call id: never overwrite
            n += 1
            key = f"{info.call_id}~{n}"
            path = recording_path(self.root, key, now)
        active = _Active(key, info, session, path, now, loop_now)
        self.active[info.call_id] = active
        meta = RecordingMeta(
            call_id=key,
            path=str(path),
            status="recording",
            started_at=now,
            caller=info.caller,
            called=info.callee,
            caller_name=info.caller_name,
        )
        self._submit("start", meta).add_done_callback(lambda f: self._keyed(active, f))
        log.info("recording.started", call_id=info.call_id, path=str(path))
        return CallCapture([_Sink(self, active)], flush_samples=FLUSH_SAMPLES)

    @staticmethod
    def _keyed(active: _Active, started: Future[Any]) -> None:
        if not started.cancelled() and started.exception() is None:
            active.key = started.result()  # "~N" appended when the id was stored before

    def note_flow(self, call_id: str, record: Mapping[str, Any]) -> None:
        """The flow driver's record of ``call_id``'s run (FlowCallRecord.as_dict())."""
        active = self.active.get(call_id)
        if active is not None:
            active.flow = dict(record)

    def note_queue(self, call_id: str, stay: Mapping[str, Any]) -> None:
        """One queue stay of ``call_id`` as the ACD saw it (Unix times)."""
        active = self.active.get(call_id)
        if active is not None:
            active.stays.append(dict(stay))

    def call_done(self, call_id: str, end_reason: str) -> None:
        """The call and its application are over: finish once the audio is closed too."""
        active = self.active.get(call_id)
        if active is None:
            return
        active.end_reason = end_reason
        active.app_done = True
        self._maybe_finish(active)

    def _maybe_finish(self, active: _Active) -> None:
        if active.finished or not (active.audio_closed and active.app_done):
            return
        active.finished = True
        if self.active.get(active.info.call_id) is active:
            del self.active[active.info.call_id]
        facts = CallFacts(
            call_id=active.key,
            caller=active.info.caller,
            called=active.info.callee,
            caller_name=active.info.caller_name,
            started_at=active.started_wall,
            digits=tuple(
                (t - active.started_loop, digit, source) for t, digit, source in active.info.digits
            ),
            end_reason=active.end_reason,
        )
        done = self._submit(
            "finish",
            str(active.path),
            facts,
            active.flow,
            list(active.stays),
            list(active.pauses),
            self.wall(),
        )
        done.add_done_callback(self._count)

    def _count(self, done: Future[Any]) -> None:
        if not done.cancelled() and done.exception() is None:
            self.finished += 1

    # -------------------------------------------------------- secure pause
    def pause(self, call_id: str, *, by: str, reason: str = "pci") -> PauseSpan:
        """Start a secure pause on ``call_id``'s recording (and its agent leg).

        Raises :class:`RecordingError`: 404 no such call being recorded, 409
        already paused."""
        active = self._find(call_id)
        if active.paused_by is not None:
            raise RecordingError(
                409, f"the recording of call {call_id!r} is already paused (by {active.paused_by})"
            )
        active.session.pause_capture()
        at = active.session.captured_samples / RATE
        span = PauseSpan(round(at, 3), None, reason, by)
        active.pauses.append(span)
        active.paused_by = by
        log.info("recording.paused", call_id=call_id, at=span.start, by=by, reason=reason)
        self._submit(
            "pauses_changed",
            str(active.path),
            "recording.pause",
            list(active.pauses),
            {"at": span.start, "by": by},
            self.wall(),
        )
        return span

    def resume(self, call_id: str, *, by: str) -> PauseSpan:
        """End the secure pause of ``call_id``. Raises :class:`RecordingError`
        (404 no such call, 409 not paused)."""
        active = self._find(call_id)
        if active.paused_by is None or not active.pauses:
            raise RecordingError(409, f"the recording of call {call_id!r} is not paused")
        session = active.session
        session.resume_capture()
        # The jitter buffer still holds audio of the pause: it stays masked too.
        tail = (max(1, session.jitter_ms // session.ptime) + 1) * session.ptime / 1000
        at = session.captured_samples / RATE + tail
        open_span = active.pauses[-1]
        span = PauseSpan(open_span.start, round(at, 3), open_span.reason, open_span.by)
        active.pauses[-1] = span
        active.paused_by = None
        log.info("recording.resumed", call_id=call_id, at=span.end, by=by)
        self._submit(
            "pauses_changed",
            str(active.path),
            "recording.resume",
            list(active.pauses),
            {"at": span.end, "by": by},
            self.wall(),
        )
        return span

    def paused(self, call_id: str) -> bool:
        """Whether ``call_id``'s recording is in a secure pause."""
        active = self.active.get(call_id)
        return active is not None and active.paused_by is not None

    def state(self, call_id: str) -> dict[str, Any]:
        """The live state of ``call_id``'s recording (for the API)."""
        active = self._find(call_id)
        return {
            "call_id": call_id,
            "recording": active.key,
            "path": str(active.path),
            "seconds": round(active.session.captured_samples / RATE, 3),
            "paused": active.paused_by is not None,
            "pauses": [p.as_dict() for p in active.pauses],
        }

    def _find(self, call_id: str) -> _Active:
        active = self.active.get(call_id)
        if active is None or active.audio_closed:
            raise RecordingError(404, f"no call {call_id!r} is being recorded")
        return active

    # ------------------------------------------------------ start-up repair
    def recover(self) -> list[RecordingMeta]:
        """Repair every recording left ``recording`` by an engine that died (blocking:
        run it before taking calls). Returns the recovered metadata."""
        recovered: list[RecordingMeta] = self.runner.submit("recover", self.wall()).result()
        return recovered

    # ------------------------------------------------------------- helpers
    def _submit(self, op: str, *args: Any) -> Future[Any]:
        try:
            future = self.runner.submit(op, *args)
        except RuntimeError as exc:  # after close() or a dead worker: never silently
            log.error(
                "recording.store_closed", job=op, error=str(exc), hint="a call ended after stop"
            )
            future = Future()
            future.set_exception(exc)
            return future
        future.add_done_callback(lambda f: self._failed(op, f))
        return future

    def _post(self, op: str, *args: Any) -> None:
        """Like :meth:`_submit` with no reply (audio: 2 a second per call); the
        storage process logs a failure itself."""
        try:
            self.runner.post(op, *args)
        except RuntimeError as exc:
            log.error(
                "recording.store_closed", job=op, error=str(exc), hint="a call ended after stop"
            )

    @staticmethod
    def _failed(op: str, done: Future[Any]) -> None:
        exc = None if done.cancelled() else done.exception()
        if exc is not None:
            log.error("recording.store_failed", job=op, error=f"{type(exc).__name__}: {exc}")

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued write and listener has run (blocking)."""
        self.runner.submit("noop").result(timeout)

    async def close(self, grace: float = 5.0) -> None:
        """Finish what is in progress (calls were hung up: their applications get
        ``grace`` seconds to report), wait for the queued writes, stop the thread
        (idempotent)."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(a.audio_closed for a in self.active.values()) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for active in list(self.active.values()):
            if active.audio_closed:  # the application never reported its end
                active.app_done = True
                self._maybe_finish(active)
        await asyncio.to_thread(self.drain, 30.0)
        await self.runner.aclose()
