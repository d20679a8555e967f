"""A recording's life after the call: access, legal hold, deletion, retention.

Every operation is written to the audit log (:mod:`recordings.audit`) in
the same transaction as its effect, so the log never misses a deletion nor
claims one that did not happen.

:meth:`RecordingAdmin.delete_recording` removes a call's recording together:
in one transaction its history interactions (voice, voicemail: the transcript
text and, through the FTS triggers, the search index rows), its transcription
jobs (they hold the caller's number and the transcript's path) and the
personal data of its recordings row (kept as ``deleted`` with when and why),
plus the audit row; then the files (WAV, transcript JSON/TXT/VTT/SRT,
voicemail audio and sidecar). A crash between the commit and the unlinks
leaves files of a ``deleted`` row: deleting again removes them. A recording
under legal hold is refused (409) until the hold is released.

:meth:`RecordingAdmin.apply_retention` deletes what the policy
(:mod:`recordings.retention`) says is due, and audits the run.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from recordings.audit import AuditLog
from recordings.retention import DAY, RetentionPolicy, decide
from recordings.store import RecordingStore, meta_from_row

__all__ = ["RecordingAdmin", "RecordingAdminError", "RetentionRun"]

log = structlog.get_logger("recordings.lifecycle")

TRANSCRIPT_SUFFIXES = (".json", ".txt", ".vtt", ".srt")


class RecordingAdminError(Exception):
    """A request that cannot be done; ``status`` is the HTTP status (404, 409, 410)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


@dataclass(frozen=True)
class RetentionRun:
    """What one retention pass did."""

    checked: int
    deleted: list[str]
    held: int
    failed: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "deleted": self.deleted,
            "held": self.held,
            "failed": self.failed,
        }


def _transcript_name(call_id: str) -> str:
    """The file stem the transcription workers give a call (recordings.worker)."""
    return re.sub(r"[^A-Za-z0-9._@-]", "_", call_id)[:120] or "call"


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
    return row.fetchone() is not None


class RecordingAdmin:
    """Access, holds, deletion and retention of the recordings in ``data_dir``
    (database ``db``: the recordings table, history, job queue and audit log)."""

    def __init__(self, data_dir: Path, db: Path, audit: AuditLog) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = Path(db)
        self.store = RecordingStore(db)
        self.audit = audit

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=10.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            db.close()
            raise
        db.execute("COMMIT")
        db.close()

    @staticmethod
    def _row(db: sqlite3.Connection, call_id: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM recordings WHERE call_id = ?", (call_id,)).fetchone()
        if row is None:
            raise RecordingAdminError(404, f"no recording of call {call_id!r}")
        return row

    # --------------------------------------------------------------- access
    def access(self, call_id: str, *, actor: str, what: str, now: float) -> dict[str, Any]:
        """The recording's metadata, the access audited (``what``: metadata, audio).
        Raises 404 (unknown), 410 (audio of a deleted recording)."""
        with self._tx() as db:
            row = self._row(db, call_id)
            if what == "audio" and row["status"] == "deleted":
                raise RecordingAdminError(410, f"the recording of call {call_id!r} was deleted")
            AuditLog.append_in(
                db, "recording.access", call_id, actor=actor, at=now, details={"what": what}
            )
        return meta_from_row(row).as_dict() | {"deleted_at": row["deleted_at"]}

    def transcript(self, call_id: str, *, actor: str, now: float) -> Path:
        """The text record (JSON) of ``call_id``, the access audited (``transcript``).

        Raises 404 (unknown call, or not transcribed yet: the job's state is
        named), 410 (deleted)."""
        with self._tx() as db:
            row = self._row(db, call_id)
            if row["status"] == "deleted":
                raise RecordingAdminError(410, f"the recording of call {call_id!r} was deleted")
            job = None
            if _has_table(db, "transcription_jobs"):
                job = db.execute(
                    "SELECT status, result, last_error FROM transcription_jobs WHERE call_id = ?"
                    " ORDER BY id DESC LIMIT 1",
                    (call_id,),
                ).fetchone()
            if job is None or job["status"] != "done" or not job["result"]:
                state = "no transcription job" if job is None else f"job {job['status']}"
                if job is not None and job["last_error"]:
                    state += f" ({job['last_error']})"
                raise RecordingAdminError(404, f"call {call_id!r} has no transcript yet: {state}")
            AuditLog.append_in(
                db, "recording.access", call_id, actor=actor, at=now, details={"what": "transcript"}
            )
        return Path(job["result"])

    # ---------------------------------------------------------- legal hold
    def set_legal_hold(
        self, call_id: str, on: bool, *, actor: str, reason: str, now: float
    ) -> dict[str, Any]:
        """Put ``call_id``'s recording under legal hold (``on``) or release it."""
        with self._tx() as db:
            row = self._row(db, call_id)
            if row["status"] == "deleted":
                raise RecordingAdminError(410, f"the recording of call {call_id!r} was deleted")
            db.execute("UPDATE recordings SET legal_hold = ? WHERE call_id = ?", (int(on), call_id))
            AuditLog.append_in(
                db,
                "recording.hold" if on else "recording.release",
                call_id,
                actor=actor,
                at=now,
                details={"reason": reason},
            )
        log.info("recording.legal_hold", call_id=call_id, on=on, actor=actor, reason=reason)
        return {"call_id": call_id, "legal_hold": on}

    # ------------------------------------------------------------- deletion
    def delete_recording(
        self, call_id: str, *, actor: str, reason: str, now: float
    ) -> dict[str, Any]:
        """Delete the audio, transcript and search index rows of ``call_id`` together
        (see module docstring). Raises 404 (unknown), 409 (legal hold)."""
        with self._tx() as db:
            row = self._row(db, call_id)
            if row["legal_hold"]:
                raise RecordingAdminError(
                    409,
                    f"the recording of call {call_id!r} is under legal hold:"
                    ' release the hold first (POST .../hold {"on": false})',
                )
            meta = json.loads(row["meta"] or "{}")
            files = [f for f in self._files(db, row, meta) if f.exists()]
            interactions = 0
            if _has_table(db, "interactions"):
                interactions = db.execute(
                    "DELETE FROM interactions WHERE external_id = ? AND channel IN"
                    " ('voice', 'voicemail')",
                    (call_id,),
                ).rowcount
            jobs = 0
            if _has_table(db, "transcription_jobs"):
                jobs = db.execute(
                    "DELETE FROM transcription_jobs WHERE call_id = ?", (call_id,)
                ).rowcount
            already = row["status"] == "deleted"
            kept = {
                "call_id": call_id,
                "status": "deleted",
                "started_at": row["started_at"],
                "duration": row["duration"],
                "queue": row["queue"],
                "disposition": row["disposition"],
                "deleted_reason": reason if not already else meta.get("deleted_reason"),
                "files": [str(f) for f in files],
            }
            db.execute(
                "UPDATE recordings SET status = 'deleted', deleted_at = COALESCE(deleted_at, ?),"
                " caller = '', called = '', agent = NULL, flow = NULL, flow_version = NULL,"
                " meta = ? WHERE call_id = ?",
                (now, json.dumps(kept, sort_keys=True), call_id),
            )
            AuditLog.append_in(
                db,
                "recording.delete",
                call_id,
                actor=actor,
                at=now,
                details={
                    "reason": reason,
                    "files": [f.name for f in files],
                    "interactions": interactions,
                    "jobs": jobs,
                    "again": already,
                },
            )
        removed = []
        for path in files:
            try:
                path.unlink()
                removed.append(str(path))
            except FileNotFoundError:
                continue
            except OSError as exc:  # left for the next pass; the row says deleted already
                log.error("recording.unlink_failed", path=str(path), error=str(exc))
        log.info(
            "recording.deleted",
            call_id=call_id,
            actor=actor,
            reason=reason,
            files=len(removed),
            interactions=interactions,
        )
        return {
            "call_id": call_id,
            "deleted": True,
            "files": removed,
            "interactions": interactions,
            "jobs": jobs,
        }

    def _files(self, db: sqlite3.Connection, row: sqlite3.Row, meta: dict[str, Any]) -> list[Path]:
        """Every file of the recording: audio, transcript set, voicemail audio + sidecar."""
        call_id = row["call_id"]
        files = [Path(row["path"])]
        for path in meta.get("files") or []:  # a deletion that was cut short
            files.append(Path(path))
        results = []
        if _has_table(db, "transcription_jobs"):
            results = [
                Path(r["result"])
                for r in db.execute(
                    "SELECT result FROM transcription_jobs WHERE call_id = ? AND result IS NOT NULL"
                    " AND result != ''",
                    (call_id,),
                )
            ]
        day = datetime.fromtimestamp(row["started_at"], UTC)
        stem = _transcript_name(call_id)
        for when in (day, day + timedelta(days=1)):
            results.append(self.data_dir / "transcripts" / f"{when:%Y/%m/%d}" / f"{stem}.json")
        for result in results:
            files += [result.with_suffix(s) for s in TRANSCRIPT_SUFFIXES]
        voicemail = meta.get("voicemail") or {}
        if voicemail.get("audio"):
            audio = Path(voicemail["audio"])
            files += [audio, audio.with_suffix(".json")]
        unique: list[Path] = []
        for path in files:
            if path not in unique:
                unique.append(path)
        return unique

    # ------------------------------------------------------------ retention
    def apply_retention(
        self, policy: RetentionPolicy, *, now: float, actor: str = "retention"
    ) -> RetentionRun:
        """Delete every recording the policy says is due at ``now``; audit the run."""
        days = [d for d in (policy.default, *policy.queues.values()) if d > 0]
        if not days:
            return RetentionRun(0, [], 0, [])
        cutoff = now - min(days) * DAY
        with self.store.connect() as db:
            rows = db.execute(
                "SELECT * FROM recordings WHERE status IN ('complete', 'recovered')"
                " AND started_at < ? ORDER BY started_at",
                (cutoff,),
            ).fetchall()
        deleted: list[str] = []
        failed: list[str] = []
        held = 0
        for row in rows:
            meta = meta_from_row(row)
            decision = decide(meta, policy, now)
            if meta.legal_hold:
                held += 1
            if not decision.delete:
                continue
            try:
                self.delete_recording(meta.call_id, actor=actor, reason=decision.reason, now=now)
                deleted.append(meta.call_id)
            except RecordingAdminError as exc:  # a hold set in the meantime
                failed.append(f"{meta.call_id}: {exc}")
        result = RetentionRun(len(rows), deleted, held, failed)
        self.audit.append(
            "retention.run",
            "*",
            actor=actor,
            at=now,
            details={"checked": len(rows), "deleted": len(deleted), "held": held},
        )
        log.info("retention.run", checked=len(rows), deleted=len(deleted), held=held)
        return result
