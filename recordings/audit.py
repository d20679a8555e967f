"""An append-only, hash-chained audit log of what happens to recordings.

Every row says who (``actor``) did what (``event``: ``recording.start``,
``recording.pause``, ``recording.resume``, ``recording.finish``,
``recording.recover``, ``recording.access``, ``recording.hold``,
``recording.release``, ``recording.delete``, ``retention.run`` ...) to which
recording (``subject``), when (``at``, Unix seconds) and with which details.
Each row carries ``hash = sha256(prev_hash + canonical row)`` where the
canonical row is the JSON of ``[id, at, event, subject, actor, details]``
(sorted keys, no spaces) and ``prev_hash`` is the previous row's hash (64
zeros for the first). Changing, removing or reordering any row breaks the
chain from there on: :meth:`AuditLog.verify` (``verify_audit_chain``) names
the first row that does not fit. Triggers refuse UPDATE and DELETE on the
table, so the engine itself can only append.

The hashing is pure (:func:`row_hash`, :func:`verify_rows`); :class:`AuditLog`
is the SQLite shell (``DATA/callcore.db``). :meth:`AuditLog.append_in` writes
inside a caller's transaction, so a deletion and its audit row commit together.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditLog",
    "AuditReport",
    "canonical",
    "row_hash",
    "verify_audit_chain",
    "verify_rows",
]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first row."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    subject TEXT NOT NULL,
    actor TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_subject ON audit_log(subject);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be changed');
END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be deleted');
END;
"""


@dataclass(frozen=True)
class AuditEntry:
    """One row of the log."""

    id: int
    at: float
    event: str
    subject: str
    actor: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "event": self.event,
            "subject": self.subject,
            "actor": self.actor,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class AuditReport:
    """The result of checking the chain."""

    ok: bool
    rows: int
    """Rows checked."""
    first_bad: int | None = None
    """Id of the first row that does not fit (None when the chain holds)."""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "first_bad": self.first_bad,
            "reason": self.reason,
        }


def canonical(
    entry_id: int, at: float, event: str, subject: str, actor: str, details: Mapping[str, Any]
) -> str:
    """The text a row's hash covers (see module docstring)."""
    return json.dumps(
        [entry_id, repr(float(at)), event, subject, actor, details],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def row_hash(
    prev_hash: str,
    entry_id: int,
    at: float,
    event: str,
    subject: str,
    actor: str,
    details: Mapping[str, Any],
) -> str:
    """``sha256(prev_hash + canonical row)`` as hex."""
    text = prev_hash + canonical(entry_id, at, event, subject, actor, details)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def verify_rows(rows: Iterable[AuditEntry]) -> AuditReport:
    """Check a chain given in id order (pure)."""
    prev = GENESIS
    count = 0
    last_id = 0
    for entry in rows:
        count += 1
        if entry.id <= last_id:
            return AuditReport(False, count, entry.id, f"row {entry.id} is out of order")
        if entry.prev_hash != prev:
            return AuditReport(
                False, count, entry.id, f"row {entry.id} does not follow the row before it"
                " (a row was removed, inserted or changed before it)",
            )  # fmt: skip
        expected = row_hash(
            prev, entry.id, entry.at, entry.event, entry.subject, entry.actor, entry.details
        )
        if entry.hash != expected:
            return AuditReport(False, count, entry.id, f"row {entry.id} was changed after writing")
        prev = entry.hash
        last_id = entry.id
    return AuditReport(True, count)


def _entry(row: sqlite3.Row) -> AuditEntry:
    try:
        details = json.loads(row["details"])
    except ValueError:
        details = {"unreadable": row["details"]}
    return AuditEntry(
        row["id"],
        row["at"],
        row["event"],
        row["subject"],
        row["actor"],
        details,
        row["prev_hash"],
        row["hash"],
    )


class AuditLog:
    """The ``audit_log`` table in the SQLite file at ``path`` (created when missing)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode, closed on exit."""
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @staticmethod
    def append_in(
        db: sqlite3.Connection,
        event: str,
        subject: str,
        *,
        actor: str,
        at: float,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append a row inside the transaction open on ``db`` (BEGIN IMMEDIATE, so
        no other writer can take the same place in the chain)."""
        data = json.loads(json.dumps(dict(details or {}), default=str))
        last = db.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
        prev = GENESIS if last is None else str(last["hash"])
        entry_id = 1 if last is None else int(last["id"]) + 1
        digest = row_hash(prev, entry_id, at, event, subject, actor, data)
        db.execute(
            "INSERT INTO audit_log (id, at, event, subject, actor, details, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry_id,
                at,
                event,
                subject,
                actor,
                json.dumps(data, sort_keys=True, ensure_ascii=False),
                prev,
                digest,
            ),
        )
        return AuditEntry(entry_id, at, event, subject, actor, data, prev, digest)

    def append(
        self,
        event: str,
        subject: str,
        *,
        actor: str,
        at: float,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one row in its own transaction."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                entry = self.append_in(db, event, subject, actor=actor, at=at, details=details)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return entry

    def entries(self, subject: str | None = None, *, limit: int = 1000) -> list[AuditEntry]:
        """Rows in id order (of one ``subject`` when given)."""
        with self.connect() as db:
            if subject is None:
                rows = db.execute("SELECT * FROM audit_log ORDER BY id LIMIT ?", (limit,))
            else:
                rows = db.execute(
                    "SELECT * FROM audit_log WHERE subject = ? ORDER BY id LIMIT ?",
                    (subject, limit),
                )
            return [_entry(r) for r in rows.fetchall()]

    def verify(self) -> AuditReport:
        """Check the whole chain (streamed in id order)."""
        with self.connect() as db:
            cursor = db.execute("SELECT * FROM audit_log ORDER BY id")
            return verify_rows(_entry(r) for r in cursor)


def verify_audit_chain(path: Path | str) -> AuditReport:
    """Check the audit chain of the database at ``path``."""
    return AuditLog(path).verify()
