"""ACD metrics kept in the engine's SQLite database, so they survive a restart.

:class:`MetricsStore` writes what :class:`acd.metrics.AcdMetrics` holds:

* ``acd_queue_intervals``: one row per queue and interval (every
  :class:`~acd.metrics.QueueCounters` field is a column), upserted;
* ``acd_agent_intervals``: one row per agent and interval, upserted;
* ``acd_live``: the live state (callers waiting and since when, calls in
  service, agent states and since when, last EWT per queue, and the router's
  snapshot when given), replaced whole on every save: it is small (one row per
  waiting call and per agent);
* ``acd_records``: the router's records (acd.records), appended: the event
  log behind every figure;
* ``acd_callback_attempts``: one row per customer leg the engine placed for
  a callback (number, agent, SIP status, outcome), appended.

:meth:`MetricsStore.save` writes only the interval rows changed since the last
save (``AcdMetrics.dirty_queues``/``dirty_agents``) in one transaction; :meth:`MetricsStore.load`
rebuilds an aggregator with the same figures. The database is the engine's
(``DATA/callcore.db``, WAL journal, shared with the flow version store); the
tables are prefixed ``acd_``. Every database failure is a
:class:`MetricsStoreError` naming the file, what was being done and how to fix it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import fields
from pathlib import Path
from typing import Any

from acd.metrics import (
    AcdMetrics,
    AgentCounters,
    CallInService,
    MetricsConfig,
    QueueCounters,
    WaitingCall,
)
from acd.records import Record, record_from_dict, record_to_dict

__all__ = ["CALLBACK_ATTEMPT_FIELDS", "MetricsStore", "MetricsStoreError"]

_QUEUE_COLS = [f.name for f in fields(QueueCounters)]
_AGENT_COLS = [f.name for f in fields(AgentCounters)]


def _col_type(cls: type, name: str) -> str:
    return "INTEGER" if getattr(cls(), name).__class__ is int else "REAL"


def _schema() -> str:
    q = ",\n    ".join(f"{c} {_col_type(QueueCounters, c)} NOT NULL" for c in _QUEUE_COLS)
    a = ",\n    ".join(f"{c} {_col_type(AgentCounters, c)} NOT NULL" for c in _AGENT_COLS)
    return f"""
CREATE TABLE IF NOT EXISTS acd_queue_intervals (
    queue TEXT NOT NULL,
    start REAL NOT NULL,
    length REAL NOT NULL,
    {q},
    PRIMARY KEY (queue, start)
);
CREATE TABLE IF NOT EXISTS acd_agent_intervals (
    agent TEXT NOT NULL,
    start REAL NOT NULL,
    length REAL NOT NULL,
    {a},
    PRIMARY KEY (agent, start)
);
CREATE TABLE IF NOT EXISTS acd_live (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS acd_records (
    id INTEGER PRIMARY KEY,
    t REAL NOT NULL,
    kind TEXT NOT NULL,
    call TEXT,
    agent TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS acd_records_call ON acd_records (call);
CREATE TABLE IF NOT EXISTS acd_callback_attempts (
    id INTEGER PRIMARY KEY,
    callback TEXT NOT NULL,
    call TEXT NOT NULL,
    queue TEXT NOT NULL,
    number TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    agent TEXT,
    started REAL NOT NULL,
    ended REAL NOT NULL,
    status INTEGER,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS acd_callback_attempts_callback ON acd_callback_attempts (callback);
"""


CALLBACK_ATTEMPT_FIELDS = (
    "callback",
    "call",
    "queue",
    "number",
    "attempt",
    "agent",
    "started",
    "ended",
    "status",
    "outcome",
)
"""Columns of ``acd_callback_attempts``: ``callback`` is the caller's first call
id (the same for every attempt), ``call`` the router's id of this attempt,
``status`` the SIP status of the customer's leg (None: not dialled),
``outcome`` ``connected``, ``failed``, ``agent_gone`` or ``no_target``."""


class MetricsStoreError(RuntimeError):
    """The metrics database cannot be read or written (the text says why and what to do)."""


class MetricsStore:
    """ACD interval rows and live state in the SQLite file at ``path`` (WAL journal)."""

    def __init__(self, path: Path | str, *, timeout: float = 5.0) -> None:
        """Open (creating if needed) the database and its ``acd_`` tables."""
        self.path = Path(path)
        self.timeout = timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MetricsStoreError(
                f"cannot create the data folder {self.path.parent}: {exc.strerror}. "
                "Create it or pass another --data folder."
            ) from None
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc, "opening") from None
        try:
            with self._op("opening"):
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_schema())
        except MetricsStoreError:
            self._db.close()
            raise
        self.journal_mode = str(mode)

    def close(self) -> None:
        """Close the connection (saved data stays in the file)."""
        self._db.close()

    def __enter__(self) -> MetricsStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _error(self, exc: sqlite3.Error, what: str) -> MetricsStoreError:
        text = str(exc)
        low = text.lower()
        where = f"ACD metrics database {self.path}"
        if "locked" in low or "busy" in low:
            return MetricsStoreError(
                f"{where} is locked by another process ({what} waited {self.timeout:g} s): "
                f"retry, or find the holder with `fuser {self.path}`"
            )
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return MetricsStoreError(
                f"{where} is damaged ({text}) while {what}: stop the engine, move the file "
                "aside and restore it from a backup; a missing file is created empty"
            )
        if "readonly" in low or "read-only" in low:
            return MetricsStoreError(
                f"{where} is read-only ({text}) while {what}: give the engine's user write "
                "access to the file and its folder"
            )
        return MetricsStoreError(f"{where}: {text} while {what}")

    @contextmanager
    def _op(self, what: str) -> Iterator[sqlite3.Connection]:
        try:
            yield self._db
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise self._error(exc, what) from None

    # ------------------------------------------------------------- save
    def save(
        self,
        metrics: AcdMetrics,
        *,
        router: dict[str, Any] | None = None,
        records: Sequence[Record] = (),
    ) -> int:
        """Write the changed interval rows and the whole live state; returns rows written.

        ``router`` (a :meth:`acd.core.Router.snapshot`) is kept with the live
        state (read back by :meth:`load_router`); ``records`` are appended to
        ``acd_records``, the ACD's event log (read back by :meth:`records`)."""
        length = metrics.config.interval
        q_sql = (
            f"INSERT OR REPLACE INTO acd_queue_intervals (queue, start, length, "
            f"{', '.join(_QUEUE_COLS)}) VALUES ({', '.join('?' * (3 + len(_QUEUE_COLS)))})"
        )
        a_sql = (
            f"INSERT OR REPLACE INTO acd_agent_intervals (agent, start, length, "
            f"{', '.join(_AGENT_COLS)}) VALUES ({', '.join('?' * (3 + len(_AGENT_COLS)))})"
        )
        q_rows = []
        a_rows = []
        for name, start in metrics.dirty_queues:
            qc = metrics.queue_intervals[(name, start)]
            q_rows.append((name, start, length, *(getattr(qc, c) for c in _QUEUE_COLS)))
        for name, start in metrics.dirty_agents:
            ac = metrics.agent_intervals[(name, start)]
            a_rows.append((name, start, length, *(getattr(ac, c) for c in _AGENT_COLS)))
        live = list(self._live_rows(metrics))
        if router is not None:
            live.append(("router", "snapshot", json.dumps(router)))
        logged = [
            (
                r.t,
                r.kind,
                getattr(r, "call", None),
                getattr(r, "agent", None),
                json.dumps(record_to_dict(r)),
            )
            for r in records
        ]
        with self._op("saving ACD metrics") as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(q_sql, q_rows)
            db.executemany(a_sql, a_rows)
            db.execute("DELETE FROM acd_live")
            db.executemany("INSERT INTO acd_live (kind, key, data) VALUES (?, ?, ?)", live)
            db.executemany(
                "INSERT INTO acd_records (t, kind, call, agent, data) VALUES (?, ?, ?, ?, ?)",
                logged,
            )
            db.execute("COMMIT")
        metrics.clear_dirty()
        return len(q_rows) + len(a_rows)

    @staticmethod
    def _live_rows(m: AcdMetrics) -> Iterator[tuple[str, str, str]]:
        for call_id, w in m.waiting.items():
            data = [w.queue, w.since, w.start, w.ewt, w.callback]
            yield "waiting", call_id, json.dumps(data)
        for call_id, s in m.in_service.items():
            yield "in_service", call_id, json.dumps([s.queue, s.start, s.agent, s.callback])
        for agent, (state, since) in m.agent_state.items():
            booked = m.agent_booked[agent]
            data2 = [state, since, booked, m.agent_call.get(agent)]
            yield "agent", agent, json.dumps(data2)
        for queue, ewt in m.last_ewt.items():
            yield "last_ewt", queue, json.dumps(ewt)

    # -------------------------------------------------------- callbacks
    def add_callback_attempt(self, attempt: dict[str, Any]) -> None:
        """Append one customer leg of a callback (keys: :data:`CALLBACK_ATTEMPT_FIELDS`)."""
        missing = [f for f in CALLBACK_ATTEMPT_FIELDS if f not in attempt]
        if missing:
            raise ValueError(f"callback attempt without {', '.join(missing)}")
        cols = ", ".join(CALLBACK_ATTEMPT_FIELDS)
        marks = ", ".join("?" * len(CALLBACK_ATTEMPT_FIELDS))
        with self._op("saving a callback attempt") as db:
            db.execute(
                f"INSERT INTO acd_callback_attempts ({cols}) VALUES ({marks})",
                tuple(attempt[f] for f in CALLBACK_ATTEMPT_FIELDS),
            )

    def callback_attempts(
        self, callback: str | None = None, *, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Saved callback attempts in the order written (of one ``callback``, or
        started at or after ``since``, when given)."""
        cols = ", ".join(CALLBACK_ATTEMPT_FIELDS)
        sql = f"SELECT {cols} FROM acd_callback_attempts"
        where: list[str] = []
        args: list[Any] = []
        if callback is not None:
            where.append("callback = ?")
            args.append(callback)
        if since is not None:
            where.append("started >= ?")
            args.append(since)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._op("reading callback attempts") as db:
            rows = db.execute(sql + " ORDER BY id", args).fetchall()
        return [dict(zip(CALLBACK_ATTEMPT_FIELDS, row, strict=True)) for row in rows]

    # ------------------------------------------------------------- load
    def load_router(self) -> dict[str, Any] | None:
        """The router snapshot saved with the live state (None: none saved)."""
        with self._op("loading the ACD router state") as db:
            row = db.execute(
                "SELECT data FROM acd_live WHERE kind = 'router' AND key = 'snapshot'"
            ).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return data if isinstance(data, dict) else None

    def records(self, call: str | None = None) -> list[Record]:
        """The logged ACD records in the order written (of one ``call`` when given)."""
        sql = "SELECT data FROM acd_records"
        args: tuple[str, ...] = ()
        if call is not None:
            sql += " WHERE call = ?"
            args = (call,)
        with self._op("reading ACD records") as db:
            rows = db.execute(sql + " ORDER BY id", args).fetchall()
        return [record_from_dict(json.loads(data)) for (data,) in rows]

    def load(self, config: MetricsConfig | None = None) -> AcdMetrics:
        """A new aggregator holding everything saved (raises if interval lengths differ)."""
        m = AcdMetrics(config)
        length = m.config.interval
        with self._op("loading ACD metrics") as db:
            lengths = {
                row[0]
                for table in ("acd_queue_intervals", "acd_agent_intervals")
                for row in db.execute(f"SELECT DISTINCT length FROM {table}")
            }
            if lengths - {length}:
                raise MetricsStoreError(
                    f"ACD metrics database {self.path} holds intervals of "
                    f"{sorted(lengths)} s but the metrics are configured for {length:g} s: "
                    "set the interval back, or move the file aside to start new history"
                )
            cols = ", ".join(_QUEUE_COLS)
            for queue, start, *vals in db.execute(
                f"SELECT queue, start, {cols} FROM acd_queue_intervals"
            ):
                m.queue_intervals[(queue, start)] = QueueCounters(*vals)
            cols = ", ".join(_AGENT_COLS)
            for agent, start, *vals in db.execute(
                f"SELECT agent, start, {cols} FROM acd_agent_intervals"
            ):
                m.agent_intervals[(agent, start)] = AgentCounters(*vals)
            live = db.execute("SELECT kind, key, data FROM acd_live ORDER BY rowid").fetchall()
        waiting = sorted(
            ((key, json.loads(data)) for kind, key, data in live if kind == "waiting"),
            key=lambda item: item[1][1],  # by entry time: the queues stay in arrival order
        )
        for call_id, (queue, since, start, ewt, callback) in waiting:
            m.waiting[call_id] = WaitingCall(queue, since, start, ewt, callback)
            m.queue_waiting.setdefault(queue, {})[call_id] = since
        for kind, key, data in live:
            value = json.loads(data)
            if kind == "in_service":
                queue, start, agent, callback = value
                m.in_service[key] = CallInService(queue, start, agent, callback)
            elif kind == "agent":
                state, since, booked, call_id = value
                m.agent_state[key] = (state, since)
                m.agent_booked[key] = booked
                if call_id is not None:
                    m.agent_call[key] = call_id
            elif kind == "last_ewt":
                m.last_ewt[key] = value
        return m
