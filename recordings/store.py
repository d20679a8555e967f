"""The recordings table: one row per recorded call, in the engine's SQLite database.

A row is inserted when the recording starts (status ``recording``, with who
called whom and the WAV path) and completed when the call ends (status
``complete`` and the full :class:`~recordings.metadata.RecordingMeta`). A row
still ``recording`` when the engine starts belongs to a call the engine died
in: the recorder repairs its WAV and marks it ``recovered``.

Every call opens its own connection (usable from any thread); WAL mode, so
readers never wait for the recorder's writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recordings.metadata import RecordingMeta

__all__ = ["RecordingStore", "RecordingStoreError", "meta_from_row"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    call_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    duration REAL NOT NULL DEFAULT 0,
    caller TEXT NOT NULL DEFAULT '',
    called TEXT NOT NULL DEFAULT '',
    flow TEXT,
    flow_version TEXT,
    queue TEXT,
    wait REAL,
    agent TEXT,
    disposition TEXT NOT NULL DEFAULT '',
    legal_hold INTEGER NOT NULL DEFAULT 0,
    deleted_at REAL,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS recordings_status ON recordings(status);
CREATE INDEX IF NOT EXISTS recordings_started ON recordings(started_at);
"""

_COLUMNS = (
    "call_id",
    "path",
    "status",
    "started_at",
    "ended_at",
    "duration",
    "caller",
    "called",
    "flow",
    "flow_version",
    "queue",
    "wait",
    "agent",
    "disposition",
    "legal_hold",
)


class RecordingStoreError(RuntimeError):
    """The recordings table cannot be used (the message names the database and the fix)."""


class RecordingStore:
    """The ``recordings`` table of the database at ``path`` (created when missing)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise RecordingStoreError(
                f"{self.path}: cannot open the recordings table: {exc}"
                " (check the file is a SQLite database and writable)"
            ) from None

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode, closed on exit."""
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield db
        finally:
            db.close()

    def start(self, meta: RecordingMeta) -> str:
        """Insert the row of a recording that starts; returns its key. A call id
        already stored (a PBX that reuses ids) gets ``~2``, ``~3`` ... appended."""
        with self.connect() as db:
            base = meta.call_id
            for n in range(1, 1000):
                key = base if n == 1 else f"{base}~{n}"
                try:
                    db.execute(
                        "INSERT INTO recordings (call_id, path, status, started_at, caller,"
                        " called, meta) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            key,
                            meta.path,
                            meta.status,
                            meta.started_at,
                            meta.caller,
                            meta.called,
                            _json({**meta.as_dict(), "call_id": key}),
                        ),
                    )
                    return key
                except sqlite3.IntegrityError:
                    continue
        raise RecordingStoreError(f"{self.path}: call id {base!r} is stored 999 times")

    def finish(self, meta: RecordingMeta) -> None:
        """Write the full metadata of a finished (or recovered) recording."""
        values = meta.as_dict()
        with self.connect() as db:
            cur = db.execute(
                "UPDATE recordings SET path=?, status=?, started_at=?, ended_at=?, duration=?,"
                " caller=?, called=?, flow=?, flow_version=?, queue=?, wait=?, agent=?,"
                " disposition=?, meta=? WHERE call_id=?",
                (
                    meta.path,
                    meta.status,
                    meta.started_at,
                    meta.ended_at,
                    meta.duration,
                    meta.caller,
                    meta.called,
                    meta.flow,
                    meta.flow_version,
                    meta.queue,
                    meta.wait,
                    meta.agent,
                    meta.disposition,
                    _json(values),
                    meta.call_id,
                ),
            )
            if cur.rowcount == 0:  # the start row was never written (a failed insert)
                db.execute(
                    f"INSERT INTO recordings ({', '.join(_COLUMNS)}, meta)"
                    f" VALUES ({', '.join('?' for _ in _COLUMNS)}, ?)",
                    (*(values[c] for c in _COLUMNS), _json(values)),
                )

    def update_meta(self, call_id: str, fields: Mapping[str, Any]) -> None:
        """Merge ``fields`` into the stored metadata of ``call_id`` (e.g. pause spans as
        they happen, so a recording recovered after a crash keeps them)."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT meta FROM recordings WHERE call_id = ?", (call_id,)).fetchone()
            if row is not None:
                data = json.loads(row["meta"] or "{}")
                data.update(fields)
                db.execute(
                    "UPDATE recordings SET meta = ? WHERE call_id = ?", (_json(data), call_id)
                )
            db.execute("COMMIT")

    def get(self, call_id: str) -> RecordingMeta | None:
        """The metadata of ``call_id``'s recording, None when there is none."""
        with self.connect() as db:
            row = db.execute("SELECT * FROM recordings WHERE call_id = ?", (call_id,)).fetchone()
        return None if row is None else meta_from_row(row)

    def unfinished(self) -> list[RecordingMeta]:
        """Recordings still marked ``recording`` (at start-up: the engine died in them)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT * FROM recordings WHERE status = 'recording' ORDER BY started_at"
            ).fetchall()
        return [meta_from_row(r) for r in rows]

    def list(self, *, limit: int = 100, status: str | None = None) -> list[RecordingMeta]:
        """Newest recordings first."""
        sql = "SELECT * FROM recordings"
        args: tuple[Any, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (status,)
        with self.connect() as db:
            rows = db.execute(sql + " ORDER BY started_at DESC LIMIT ?", (*args, limit))
            return [meta_from_row(r) for r in rows.fetchall()]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def meta_from_row(row: sqlite3.Row) -> RecordingMeta:
    """The :class:`RecordingMeta` of one row of the recordings table."""
    data = json.loads(row["meta"] or "{}")
    for column in _COLUMNS:  # the columns are authoritative (status, hold, deletion)
        data[column] = row[column]
    data["legal_hold"] = bool(row["legal_hold"])
    known = set(RecordingMeta.__dataclass_fields__)
    return RecordingMeta(**{k: v for k, v in data.items() if k in known})
