"""A durable queue of transcription jobs in SQLite (``DATA/callcore.db``, WAL mode).

One row per recording to transcribe. A worker *claims* a job with a lease
(``worker`` id, ``lease_until = now + lease``); while the lease holds, no other
worker gets it. ``complete`` and ``fail`` are accepted only from the worker
that holds the lease, so a worker that was presumed dead and comes back cannot
overwrite the result of the one that took over.

* ``fail(error)`` puts the job back in the queue (after ``backoff * attempts``
  seconds) until ``max_attempts`` claims were used; then it stays ``failed``.
  Every error is kept in the row (``errors``, newest last) and the newest in
  ``last_error``, so ``ivr``/SQL users see why a job is stuck.
* A lease that expired (the worker crashed or hung) makes the job claimable
  again; the expiry is recorded as an error of that attempt. A job whose
  attempts are used up when its lease expires becomes ``failed``.
* Time is passed in (``now``, seconds since the epoch, float): the queue never
  reads a clock, so tests drive leases and back-off exactly.

Each call opens its own short transaction; a claim runs in ``BEGIN IMMEDIATE``
so two processes never claim the same job.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["Job", "JobError", "JobQueue", "JobStatus"]

JobStatus = Literal["queued", "running", "done", "failed"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS transcription_jobs (
    id INTEGER PRIMARY KEY,
    recording TEXT NOT NULL,
    call_id TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    available_at REAL NOT NULL,
    worker TEXT,
    lease_until REAL,
    last_error TEXT,
    errors TEXT NOT NULL DEFAULT '[]',
    result TEXT,
    enqueued_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    UNIQUE (recording, call_id)
);
CREATE INDEX IF NOT EXISTS transcription_jobs_ready
    ON transcription_jobs(status, available_at);
"""


class JobError(RuntimeError):
    """A job operation that cannot be done (unknown job, lease lost, bad database)."""


@dataclass(frozen=True)
class Job:
    """One row of the queue, as read."""

    id: int
    recording: str
    call_id: str
    context: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    available_at: float
    worker: str | None
    lease_until: float | None
    last_error: str | None
    errors: list[str]
    result: str | None
    enqueued_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        data["context"] = json.loads(data["context"])
        data["errors"] = json.loads(data["errors"])
        return cls(**data)


class JobQueue:
    """The transcription job table in the SQLite file at ``path``.

    ``max_attempts``: claims a job gets before it stays failed. ``backoff``:
    seconds per attempt before a failed job is offered again.
    """

    def __init__(self, path: Path | str, *, max_attempts: int = 3, backoff: float = 30.0) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.path = Path(path)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JobError(
                f"{self.path}: cannot open the job queue ({exc}); check that the file is a "
                "SQLite database and is writable"
            ) from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    def close(self) -> None:
        """Nothing is held open between calls (each one opens and closes the file)."""

    # -- producers -----------------------------------------------------------------

    def enqueue(
        self,
        recording: Path | str,
        call_id: str,
        *,
        now: float,
        context: dict[str, Any] | None = None,
    ) -> int:
        """Queue ``recording`` of ``call_id``; returns the job id.

        Enqueuing the same (recording, call id) again returns the existing job
        (a hook fired twice does not transcribe twice).
        """
        rec = str(recording)
        ctx = json.dumps(context or {}, sort_keys=True)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT id FROM transcription_jobs WHERE recording = ? AND call_id = ?",
                    (rec, call_id),
                ).fetchone()
                if row is not None:
                    db.execute("COMMIT")
                    return int(row["id"])
                cur = db.execute(
                    "INSERT INTO transcription_jobs (recording, call_id, context, max_attempts,"
                    " available_at, enqueued_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (rec, call_id, ctx, self.max_attempts, now, now),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    # -- workers -------------------------------------------------------------------

    def claim(self, worker: str, *, now: float, lease: float = 120.0) -> Job | None:
        """The oldest ready job, leased to ``worker`` until ``now + lease``; None if none.

        Ready: queued and due, or running with an expired lease (its worker is
        presumed dead; the expiry is logged as that attempt's error).
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                job = self._claim_locked(db, worker, now, lease)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return job

    def _claim_locked(
        self, db: sqlite3.Connection, worker: str, now: float, lease: float
    ) -> Job | None:
        while True:
            row = db.execute(
                "SELECT * FROM transcription_jobs WHERE (status = 'queued' AND available_at <= ?)"
                " OR (status = 'running' AND lease_until <= ?) ORDER BY available_at, id LIMIT 1",
                (now, now),
            ).fetchone()
            if row is None:
                return None
            errors = json.loads(row["errors"])
            if row["status"] == "running":
                msg = (
                    f"attempt {row['attempts']}: lease of worker {row['worker']} expired at "
                    f"{row['lease_until']:.3f} (worker crashed or hung)"
                )
                errors.append(msg)
                if row["attempts"] >= row["max_attempts"]:
                    db.execute(
                        "UPDATE transcription_jobs SET status = 'failed', worker = NULL,"
                        " lease_until = NULL, last_error = ?, errors = ?, finished_at = ?"
                        " WHERE id = ?",
                        (msg, json.dumps(errors), now, row["id"]),
                    )
                    continue
                db.execute(
                    "UPDATE transcription_jobs SET last_error = ?, errors = ? WHERE id = ?",
                    (msg, json.dumps(errors), row["id"]),
                )
            db.execute(
                "UPDATE transcription_jobs SET status = 'running', attempts = attempts + 1,"
                " worker = ?, lease_until = ?, started_at = ? WHERE id = ?",
                (worker, now + lease, now, row["id"]),
            )
            got = db.execute(
                "SELECT * FROM transcription_jobs WHERE id = ?", (row["id"],)
            ).fetchone()
            return Job._from_row(got)

    def renew(self, job_id: int, worker: str, *, now: float, lease: float) -> None:
        """Extend ``worker``'s lease on a running job to ``now + lease``."""
        self._update_owned(
            job_id,
            worker,
            now,
            "UPDATE transcription_jobs SET lease_until = ? WHERE id = ?",
            (now + lease, job_id),
        )

    def complete(self, job_id: int, worker: str, *, now: float, result: str = "") -> None:
        """Mark the job done; ``result`` (e.g. the text record's path) is stored with it."""
        self._update_owned(
            job_id,
            worker,
            now,
            "UPDATE transcription_jobs SET status = 'done', result = ?, worker = NULL,"
            " lease_until = NULL, finished_at = ? WHERE id = ?",
            (result, now, job_id),
        )

    def fail(self, job_id: int, worker: str, error: str, *, now: float) -> Job:
        """Record ``error``; re-queue after back-off or, attempts used up, mark failed."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = self._owned(db, job_id, worker, now)
                errors = json.loads(row["errors"])
                msg = f"attempt {row['attempts']}: {error}"
                errors.append(msg)
                if row["attempts"] >= row["max_attempts"]:
                    db.execute(
                        "UPDATE transcription_jobs SET status = 'failed', worker = NULL,"
                        " lease_until = NULL, last_error = ?, errors = ?, finished_at = ?"
                        " WHERE id = ?",
                        (msg, json.dumps(errors), now, job_id),
                    )
                else:
                    db.execute(
                        "UPDATE transcription_jobs SET status = 'queued', worker = NULL,"
                        " lease_until = NULL, last_error = ?, errors = ?, available_at = ?"
                        " WHERE id = ?",
                        (msg, json.dumps(errors), now + self.backoff * row["attempts"], job_id),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.get(job_id)

    def abandon(self, worker: str, error: str, *, now: float, charge: bool = True) -> list[int]:
        """The jobs leased to ``worker``, a worker known to be gone (its process was
        reaped), go back to the queue at once instead of when their lease expires,
        in their place (they were due already: the next claim takes them).

        ``error`` is recorded as that attempt's error. With ``charge`` the attempt
        counts (a job whose attempts are used up becomes ``failed``: a recording
        that kills its worker every time must not kill them for ever); without
        it (the engine stopped the worker itself) the attempt is given back.
        Returns the ids of the jobs released.
        """
        released: list[int] = []
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    "SELECT * FROM transcription_jobs WHERE status = 'running' AND worker = ?",
                    (worker,),
                ).fetchall()
                for row in rows:
                    errors = json.loads(row["errors"])
                    msg = f"attempt {row['attempts']}: {error}"
                    errors.append(msg)
                    if charge and row["attempts"] >= row["max_attempts"]:
                        db.execute(
                            "UPDATE transcription_jobs SET status = 'failed', worker = NULL,"
                            " lease_until = NULL, last_error = ?, errors = ?, finished_at = ?"
                            " WHERE id = ?",
                            (msg, json.dumps(errors), now, row["id"]),
                        )
                    else:
                        db.execute(
                            "UPDATE transcription_jobs SET status = 'queued', worker = NULL,"
                            " lease_until = NULL, last_error = ?, errors = ?,"
                            " available_at = MIN(available_at, ?), attempts = ? WHERE id = ?",
                            (
                                msg,
                                json.dumps(errors),
                                now,
                                row["attempts"] if charge else max(0, row["attempts"] - 1),
                                row["id"],
                            ),
                        )
                    released.append(int(row["id"]))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return released

    def retry(self, job_id: int, *, now: float) -> None:
        """Put a failed job back in the queue with a fresh set of attempts (operator action)."""
        with self._connect() as db:
            cur = db.execute(
                "UPDATE transcription_jobs SET status = 'queued', attempts = 0, available_at = ?,"
                " finished_at = NULL WHERE id = ? AND status = 'failed'",
                (now, job_id),
            )
            if cur.rowcount != 1:
                raise JobError(f"job {job_id}: only a failed job can be retried")

    def _owned(self, db: sqlite3.Connection, job_id: int, worker: str, now: float) -> sqlite3.Row:
        row = db.execute("SELECT * FROM transcription_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobError(f"job {job_id}: no such job")
        if row["status"] != "running" or row["worker"] != worker:
            raise JobError(
                f"job {job_id}: worker {worker} does not hold its lease (status {row['status']},"
                f" worker {row['worker']}); its lease expired and the job was taken over"
            )
        if row["lease_until"] is not None and row["lease_until"] < now:
            raise JobError(
                f"job {job_id}: lease of worker {worker} expired at {row['lease_until']:.3f}"
                f" (now {now:.3f}); renew the lease more often than it expires"
            )
        return row

    def _update_owned(
        self, job_id: int, worker: str, now: float, sql: str, params: tuple[Any, ...]
    ) -> None:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._owned(db, job_id, worker, now)
                db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- reading -------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        """The job ``job_id`` (JobError if there is none)."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM transcription_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobError(f"job {job_id}: no such job")
        return Job._from_row(row)

    def jobs(self, status: JobStatus | None = None) -> list[Job]:
        """All jobs (or those in ``status``), oldest first."""
        with self._connect() as db:
            if status is None:
                rows = db.execute("SELECT * FROM transcription_jobs ORDER BY id").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM transcription_jobs WHERE status = ? ORDER BY id", (status,)
                ).fetchall()
        return [Job._from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs per status (every status present, zero when none)."""
        out = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        with self._connect() as db:
            for row in db.execute(
                "SELECT status, count(*) AS n FROM transcription_jobs GROUP BY status"
            ):
                out[row["status"]] = row["n"]
        return out
