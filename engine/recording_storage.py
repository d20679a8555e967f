"""The engine's recording storage, built inside the recorder's storage process.

:func:`engine_storage` is the picklable factory :class:`recordings.storage.ProcessRunner`
calls in its child: the recordings table, the audit log, and the two
listeners of a finished recording (the caller's history timeline and, when
transcription is on, the transcription job queue), all on ``DATA/callcore.db``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from recordings.audit import AuditLog
from recordings.history import HistoryStore
from recordings.jobs import JobQueue
from recordings.metadata import RecordingMeta, transcription_context
from recordings.storage import RecordingListener, RecordingStorage
from recordings.store import RecordingStore

log = structlog.get_logger("engine.recording_storage")


class TranscriptionQueueListener:
    """Recorder listener: queue each finished recording for the transcription workers
    (the job queue of :mod:`recordings.jobs`), as of the recording's end (like the
    history's interaction, no clock is read here)."""

    def __init__(self, db: Path) -> None:
        self.queue = JobQueue(db)

    def __call__(self, meta: RecordingMeta) -> None:
        if meta.duration <= 0:
            return
        now = meta.ended_at if meta.ended_at is not None else meta.started_at
        job = self.queue.enqueue(
            Path(meta.path), meta.call_id, now=now, context=transcription_context(meta)
        )
        log.info("recording.queued_for_transcription", call_id=meta.call_id, job=job)


class AuditListener:
    """Recorder events into the hash-chained audit log, at the time they happened."""

    def __init__(self, db: Path) -> None:
        self.log = AuditLog(db)

    def __call__(self, event: str, key: str, details: Mapping[str, Any], at: float) -> None:
        actor = str(details.get("by") or "engine")
        self.log.append(event, key, actor=actor, at=at, details=details)


def engine_storage(db: Path, region: str, transcribe: bool) -> RecordingStorage:
    """Rows, audit and listeners of the engine's recordings on ``db``."""
    listeners: list[RecordingListener] = [HistoryStore(db, region=region).record_call]
    if transcribe:
        listeners.append(TranscriptionQueueListener(db))
    return RecordingStorage(RecordingStore(db), listeners=listeners, audit=AuditListener(db))
