"""Published flow versions, kept in the engine's SQLite database.

Every flow set that went live is one row of ``flow_versions`` (id 1, 2, ...)
with its digest, when and by what it was published (``source``: startup,
watch, api, cli, rollback), the unified diff against the version before it,
and every file's full text in ``flow_version_files``, so any version can be
restored byte for byte. Publishing the digest of the latest version again
records nothing (:meth:`VersionStore.publish` says so).

The store is synchronous (stdlib :mod:`sqlite3`, WAL journal, one connection
behind a lock, usable from a worker thread); the registry calls it through
:func:`asyncio.to_thread`. Several processes may share the file (the engine
and ``ivr flows rollback`` offline): a write takes the database lock for its
whole read-compare-insert, so two publishers never both get the same id.

Every database failure becomes a :class:`VersionStoreError` whose text names
the file, what was being done and how to fix it (corrupt, locked, read-only,
missing folder). :class:`UnknownVersion` is the one for a version id that
does not exist.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "DB_NAME",
    "SOURCES",
    "FlowVersion",
    "UnknownVersion",
    "VersionStore",
    "VersionStoreError",
    "VersionSummary",
    "diff_files",
    "format_time",
]

DB_NAME = "callcore.db"
"""File name of the engine's database inside the data folder."""

SOURCES = ("startup", "watch", "api", "cli", "rollback")
"""What may publish a version: the engine starting on changed files, the
folder watcher, the HTTP API, the ``ivr`` CLI, or a rollback."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flow_versions (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL,
    published_at REAL NOT NULL,
    source TEXT NOT NULL,
    author TEXT,
    changed TEXT NOT NULL,
    diff TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flow_versions_digest ON flow_versions (digest);
CREATE TABLE IF NOT EXISTS flow_version_files (
    version_id INTEGER NOT NULL REFERENCES flow_versions (id),
    path TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (version_id, path)
);
"""


class VersionStoreError(Exception):
    """The version database cannot be used; the text says which file, why and what to do."""


class UnknownVersion(VersionStoreError):
    """No flow version has this id."""

    def __init__(self, version_id: int, latest: int | None) -> None:
        self.version_id = version_id
        known = f"versions 1-{latest} exist" if latest else "no version is published yet"
        super().__init__(
            f"no flow version {version_id} ({known}); list them with `ivr flows history`"
        )


@dataclass(frozen=True)
class VersionSummary:
    """One line of the history: a version without its files and diff."""

    id: int
    digest: str
    published_at: float
    """Seconds since the epoch (as passed to :meth:`VersionStore.publish`)."""
    source: str
    author: str | None
    changed: tuple[str, ...]
    """Files added, removed or modified against the previous version."""


@dataclass(frozen=True)
class FlowVersion(VersionSummary):
    """A version with every file's text and the diff against the previous version."""

    files: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    diff: str = ""


def format_time(ts: float) -> str:
    """``published_at`` as ISO 8601 UTC to the second (``2025-01-31T09:30:00Z``)."""
    stamp = _dt.datetime.fromtimestamp(ts, _dt.UTC).replace(microsecond=0)
    return stamp.isoformat().replace("+00:00", "Z")


def diff_files(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """Unified diff of two file sets (``a/PATH`` -> ``b/PATH``) and the changed paths."""
    chunks: list[str] = []
    changed: list[str] = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        changed.append(path)
        lines = difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            (after or "").splitlines(keepends=True),
            fromfile=f"a/{path}" if before is not None else "/dev/null",
            tofile=f"b/{path}" if after is not None else "/dev/null",
        )
        for line in lines:
            chunks.append(
                line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            )
    return "".join(chunks), tuple(changed)


class VersionStore:
    """The flow version history in one SQLite file (see module docstring)."""

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        """Open (creating if needed) the database at ``path``; WAL journal.

        Raises :class:`VersionStoreError` when the file is not a database, is
        locked longer than ``timeout`` seconds, or cannot be created.
        """
        self.path = Path(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VersionStoreError(
                f"cannot create the data folder {self.path.parent}: {exc.strerror}. "
                "Create it or pass another --data folder."
            ) from None
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "opening") from None
        try:
            with self._op("opening"):
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._db.executescript(_SCHEMA)
        except VersionStoreError:
            self._db.close()
            raise
        self.journal_mode = str(mode)

    # ------------------------------------------------------------- errors
    def _error(self, exc: sqlite3.Error, what: str) -> VersionStoreError:
        text = str(exc)
        low = text.lower()
        where = f"flow version database {self.path}"
        if "locked" in low or "busy" in low:
            return VersionStoreError(
                f"{where} is locked by another process ({what} waited {self.timeout:g} s): "
                f"retry, or find the holder with `fuser {self.path}`"
            )
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return VersionStoreError(
                f"{where} is damaged ({text}) while {what}. Stop the engine, move the "
                "file aside and restore it from a backup (the flow history lives in it); "
                "a new empty database is created when the file is missing"
            )
        if "readonly" in low or "read-only" in low:
            return VersionStoreError(
                f"{where} is read-only ({text}) while {what}: give the engine's user "
                "write access to the file and its folder"
            )
        if "unable to open" in low:
            return VersionStoreError(
                f"cannot open {where} ({text}): check that its folder exists and is writable"
            )
        return VersionStoreError(f"{where}: {text} while {what}")

    @contextmanager
    def _op(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                with suppress(sqlite3.Error):
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                raise self._error(exc, what) from None

    # ------------------------------------------------------------- writes
    def publish(
        self,
        files: Mapping[str, str],
        *,
        digest: str,
        now: float,
        source: str,
        author: str | None = None,
    ) -> tuple[FlowVersion, bool]:
        """Record ``files`` as the next version; ``(version, True)``.

        When ``digest`` is the latest version's digest nothing is written and
        ``(latest, False)`` is returned: identical contents are not
        republished. ``now`` is the publication time (epoch seconds).
        """
        if source not in SOURCES:
            raise ValueError(f"source {source!r} is not one of {', '.join(SOURCES)}")
        with self._op("publishing a flow version") as db:
            db.execute("BEGIN IMMEDIATE")
            latest = self._latest_row(db)
            if latest is not None and latest[1] == digest:
                db.execute("COMMIT")
                return self._load(db, latest), False
            previous = self._files(db, latest[0]) if latest is not None else {}
            diff, changed = diff_files(previous, files)
            cur = db.execute(
                "INSERT INTO flow_versions (digest, published_at, source, author, changed, diff)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (digest, float(now), source, author, json.dumps(list(changed)), diff),
            )
            version_id = cur.lastrowid
            assert version_id is not None
            db.executemany(
                "INSERT INTO flow_version_files (version_id, path, content) VALUES (?, ?, ?)",
                [(version_id, path, files[path]) for path in sorted(files)],
            )
            db.execute("COMMIT")
        version = FlowVersion(
            id=version_id,
            digest=digest,
            published_at=float(now),
            source=source,
            author=author,
            changed=changed,
            files=MappingProxyType(dict(files)),
            diff=diff,
        )
        return version, True

    # -------------------------------------------------------------- reads
    def latest(self) -> FlowVersion | None:
        """The newest version, or None when nothing was published."""
        with self._op("reading the latest flow version") as db:
            row = self._latest_row(db)
            return self._load(db, row) if row is not None else None

    def get(self, version_id: int) -> FlowVersion:
        """Version ``version_id`` with its files and diff; :class:`UnknownVersion` if none."""
        with self._op(f"reading flow version {version_id}") as db:
            row = db.execute(
                "SELECT id, digest, published_at, source, author, changed, diff"
                " FROM flow_versions WHERE id = ?",
                (version_id,),
            ).fetchone()
            if row is None:
                latest = self._latest_row(db)
                raise UnknownVersion(version_id, int(str(latest[0])) if latest else None)
            return self._load(db, row)

    def history(self, limit: int | None = None) -> list[VersionSummary]:
        """Versions newest first (at most ``limit``), without files or diffs."""
        sql = (
            "SELECT id, digest, published_at, source, author, changed"
            " FROM flow_versions ORDER BY id DESC"
        )
        with self._op("listing flow versions") as db:
            if limit is not None:
                rows = db.execute(sql + " LIMIT ?", (int(limit),)).fetchall()
            else:
                rows = db.execute(sql).fetchall()
        return [
            VersionSummary(
                id=r[0],
                digest=r[1],
                published_at=r[2],
                source=r[3],
                author=r[4],
                changed=tuple(json.loads(r[5])),
            )
            for r in rows
        ]

    def find_digest(self, digest: str) -> int | None:
        """The newest version id with this digest, or None."""
        with self._op("looking up a flow digest") as db:
            row = db.execute(
                "SELECT MAX(id) FROM flow_versions WHERE digest = ?", (digest,)
            ).fetchone()
        return row[0] if row and row[0] is not None else None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> VersionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _latest_row(db: sqlite3.Connection) -> tuple[object, ...] | None:
        row: tuple[object, ...] | None = db.execute(
            "SELECT id, digest, published_at, source, author, changed, diff"
            " FROM flow_versions ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return row

    @staticmethod
    def _files(db: sqlite3.Connection, version_id: object) -> dict[str, str]:
        rows = db.execute(
            "SELECT path, content FROM flow_version_files WHERE version_id = ? ORDER BY path",
            (version_id,),
        ).fetchall()
        return {str(p): str(c) for p, c in rows}

    def _load(self, db: sqlite3.Connection, row: tuple[object, ...]) -> FlowVersion:
        version_id, digest, published_at, source, author, changed, diff = row
        assert isinstance(version_id, int) and isinstance(changed, str)
        return FlowVersion(
            id=version_id,
            digest=str(digest),
            published_at=float(published_at),  # type: ignore[arg-type]
            source=str(source),
            author=None if author is None else str(author),
            changed=tuple(json.loads(changed)),
            files=MappingProxyType(self._files(db, version_id)),
            diff=str(diff),
        )
