"""ACD metrics persistence on a real SQLite file: write, close, reopen, same figures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from acd.metrics import AcdMetrics, MetricsConfig
from acd.store import MetricsStore, MetricsStoreError


def _morning(m: AcdMetrics) -> None:
    """Calls across three intervals, two callers still waiting, agents in several states."""
    m.agent_state_changed("amy", "available", 0.0)
    m.agent_state_changed("bob", "available", 0.0)
    m.agent_state_changed("cat", "not_ready", 0.0)
    m.enqueued("c1", "sales", 100.0, ewt=15.0)
    m.offered("c1", "amy", 100.0)
    m.agent_state_changed("amy", "reserved", 100.0)
    m.answered("c1", "amy", 112.0)
    m.agent_state_changed("amy", "on_call", 112.0)
    m.enqueued("c2", "support", 800.0)
    m.abandoned("c2", 803.0)
    m.completed("c1", "amy", 1000.0, talk=700.0, hold=60.0, wrap_up=0.0)
    m.agent_state_changed("amy", "wrap_up", 1000.0)
    m.enqueued("c3", "sales", 1700.0, ewt=40.0)
    m.enqueued("c4", "sales", 1750.0)
    m.callback_requested("c4", 1760.0)
    m.enqueued("c5", "support", 1790.0)
    m.offered("c5", "bob", 1791.0)
    m.agent_state_changed("bob", "reserved", 1791.0)
    m.answered("c5", "bob", 1795.0)
    m.agent_state_changed("bob", "on_call", 1795.0)
    m.agent_state_changed("amy", "available", 1900.0)


def _rest(m: AcdMetrics) -> None:
    """What happens after the restart: needs the live state (waiting calls, call in service)."""
    m.answered("c3", "amy", 1960.0)
    m.answered("c4", "cat", 2000.0)
    m.completed("c5", "bob", 2100.0, talk=300.0, wrap_up=5.0)
    m.agent_state_changed("bob", "wrap_up", 2100.0)
    m.agent_state_changed("bob", "available", 2105.0)


def _figures(m: AcdMetrics, now: float) -> object:
    snap = m.snapshot(now)
    return (
        sorted((q, s, c) for q, s, c in m.interval_rows()),
        sorted((a, s, c) for a, s, c in m.agent_rows()),
        snap,
    )


def test_write_close_reopen_gives_the_same_figures(tmp_path: Path) -> None:
    db = tmp_path / "data" / "callcore.db"
    original = AcdMetrics()
    _morning(original)
    store = MetricsStore(db)
    assert store.journal_mode == "wal"
    written = store.save(original)
    assert written == len(original.queue_intervals) + len(original.agent_intervals)
    assert not original.dirty
    store.close()

    with MetricsStore(db) as again:
        restored = again.load()
    assert _figures(restored, 1800.0) == _figures(original, 1800.0)
    snap = restored.snapshot(1800.0)
    assert snap.queues["sales"].waiting == 2
    assert snap.queues["sales"].longest_wait == 100.0
    assert snap.agents["bob"].call_id == "c5"

    # the live state came back too: both go on identically after the "restart"
    _rest(original)
    _rest(restored)
    assert _figures(restored, 2700.0) == _figures(original, 2700.0)
    sales = restored.queue_totals("sales")
    assert (sales.answered, sales.callbacks_answered, sales.ewt_samples) == (3, 1, 2)
    assert sales.ewt_mae == pytest.approx((abs(15 - 12) + abs(40 - 260)) / 2)


def test_incremental_saves_write_only_changed_rows(tmp_path: Path) -> None:
    db = tmp_path / "callcore.db"
    m = AcdMetrics()
    _morning(m)
    with MetricsStore(db) as store:
        store.save(m)
        _rest(m)
        changed = len(m.dirty)
        assert store.save(m) == changed
        assert store.save(m) == 0  # nothing changed since
    with MetricsStore(db) as store:
        assert _figures(store.load(), 2700.0) == _figures(m, 2700.0)
    # other processes read it with plain sqlite3
    rows = sqlite3.connect(db).execute(
        "SELECT queue, start, offered, answered, abandoned FROM acd_queue_intervals "
        "ORDER BY start, queue"
    )
    assert rows.fetchall() == [
        ("sales", 0.0, 1, 1, 0),
        ("support", 0.0, 1, 0, 1),
        ("sales", 900.0, 2, 2, 0),
        ("support", 900.0, 1, 1, 0),
    ]


def test_interval_length_change_is_refused_with_a_fix(tmp_path: Path) -> None:
    db = tmp_path / "callcore.db"
    m = AcdMetrics(MetricsConfig(interval=900.0))
    _morning(m)
    with MetricsStore(db) as store:
        store.save(m)
    with (
        MetricsStore(db) as store,
        pytest.raises(MetricsStoreError, match=r"holds intervals of \[900.0\] s .* 1800 s"),
    ):
        store.load(MetricsConfig(interval=1800.0))


def test_damaged_file_is_reported_with_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "callcore.db"
    db.write_bytes(b"this is not a database, just text that is long enough " * 100)
    with pytest.raises(MetricsStoreError, match=r"is damaged .* restore it from a backup"):
        MetricsStore(db)
