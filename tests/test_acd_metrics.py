"""Metric definitions on hand-built event sequences (every expected figure worked by hand)."""

from __future__ import annotations

import math

import pytest

from acd.metrics import AcdMetrics, MetricsConfig


def _waits(m: AcdMetrics, queue: str, answered: list[float], abandoned: list[float]) -> None:
    """Callers entering ``queue`` at t=0, answered or abandoning after the given waits."""
    for i, w in enumerate(answered):
        m.enqueued(f"a{i}", queue, 0.0)
        m.answered(f"a{i}", f"agent{i}", w)
    for i, w in enumerate(abandoned):
        m.enqueued(f"x{i}", queue, 0.0)
        m.abandoned(f"x{i}", w)


def test_sl_sl2_and_sl_of_offered_follow_asterisk() -> None:
    m = AcdMetrics(MetricsConfig(default_sl_threshold=20.0, short_abandon=5.0))
    # answered after 10 s (in SL) and 30 s (out); abandoned after 15 s (in SL),
    # 3 s (in SL, short) and 40 s (out)
    _waits(m, "sales", answered=[10.0, 30.0], abandoned=[15.0, 3.0, 40.0])
    c = m.queue_totals("sales")
    assert (c.offered, c.answered, c.abandoned) == (5, 2, 3)
    assert (c.answered_in_sl, c.abandoned_in_sl, c.short_abandons) == (1, 2, 1)
    assert c.sl == pytest.approx(1 / 2)  # answered within / answered
    assert c.sl2 == pytest.approx((1 + 2) / (2 + 3))  # (answered + abandoned within) / both
    assert c.sl_offered == pytest.approx(1 / 5)
    assert c.abandon_rate == pytest.approx(3 / 5)
    assert c.abandon_rate_excluding_short == pytest.approx(2 / 4)
    assert c.asa == pytest.approx(20.0)
    assert c.average_abandon_time == pytest.approx((15 + 3 + 40) / 3)
    assert c.max_wait == 40.0


def test_threshold_edges_are_those_of_app_queue() -> None:
    m = AcdMetrics(MetricsConfig(sl_threshold={"vip": 10.0}, short_abandon=5.0))
    # exactly at the threshold counts as within (<=); exactly 5 s is not a short abandon (<)
    _waits(m, "vip", answered=[10.0, 10.001], abandoned=[5.0, 4.999])
    c = m.queue_totals("vip")
    assert c.answered_in_sl == 1
    assert c.abandoned_in_sl == 2
    assert c.short_abandons == 1
    # the default threshold (20 s) applies to other queues
    _waits(m, "other", answered=[15.0], abandoned=[])
    assert m.queue_totals("other").sl == 1.0


def test_aht_counts_talk_hold_and_wrap_up() -> None:
    m = AcdMetrics()
    m.enqueued("c1", "q", 0.0)
    m.answered("c1", "ann", 5.0)
    m.completed("c1", "ann", 155.0, talk=100.0, hold=20.0, wrap_up=30.0)
    m.enqueued("c2", "q", 10.0)
    m.answered("c2", "ann", 160.0)
    m.completed("c2", "ann", 370.0, talk=200.0, hold=0.0, wrap_up=10.0)
    q = m.queue_totals("q")
    assert q.handled == 2
    assert q.aht == pytest.approx((100 + 20 + 30 + 200 + 0 + 10) / 2)
    a = m.agent_totals("ann")
    assert (a.answered, a.handled) == (2, 2)
    assert a.aht == pytest.approx(180.0)
    assert (a.talk, a.hold, a.wrap_up) == (300.0, 20.0, 40.0)


def test_queue_figures_belong_to_the_entry_interval_agent_figures_to_their_own() -> None:
    m = AcdMetrics(MetricsConfig(interval=900.0))
    m.enqueued("c", "q", 890.0)  # enters in [0, 900)
    m.answered("c", "bob", 910.0)  # answered in [900, 1800)
    m.completed("c", "bob", 1000.0, talk=90.0)
    rows = list(m.interval_rows())
    assert [(q, s) for q, s, _ in rows] == [("q", 0.0)]
    assert rows[0][2].answered == 1 and rows[0][2].handled == 1
    assert rows[0][2].wait_answered == pytest.approx(20.0)
    agent_rows = {(a, s): c for a, s, c in m.agent_rows()}
    assert set(agent_rows) == {("bob", 900.0)}
    assert agent_rows[("bob", 900.0)].answered == 1


def test_agent_state_time_splits_at_interval_boundaries_and_gives_occupancy() -> None:
    m = AcdMetrics(MetricsConfig(interval=900.0))
    for state, at in [
        ("available", 0.0),
        ("ringing", 850.0),  # alias of reserved
        ("talking", 860.0),  # alias of on_call
        ("wrap_up", 1000.0),
        ("available", 1030.0),
        ("break", 1700.0),  # alias of not_ready
    ]:
        m.agent_state_changed("eve", state, at)
    m.flush(1800.0)
    first = m.agent_totals("eve", 0.0, 900.0)
    assert (first.available_s, first.reserved_s, first.on_call_s) == (850.0, 10.0, 40.0)
    assert first.occupancy == pytest.approx(50 / 900)
    second = m.agent_totals("eve", 900.0, 1800.0)
    assert (second.on_call_s, second.wrap_up_s, second.available_s) == (100.0, 30.0, 670.0)
    assert second.not_ready_s == 100.0
    # not-ready time is staffed but neither busy nor available
    assert second.occupancy == pytest.approx(130 / 800)
    assert second.staffed_s == 900.0
    # flushing twice books nothing twice
    m.flush(1800.0)
    assert m.agent_totals("eve").staffed_s == 1800.0


def test_offline_time_is_not_staffed() -> None:
    m = AcdMetrics()
    m.agent_state_changed("zed", "available", 0.0)
    m.agent_state_changed("zed", "logged_out", 100.0)
    m.agent_state_changed("zed", "available", 400.0)
    m.flush(500.0)
    assert m.agent_totals("zed").staffed_s == 200.0


def test_ewt_error_on_answered_calls_only() -> None:
    m = AcdMetrics()
    m.enqueued("c1", "q", 0.0, ewt=30.0)
    m.answered("c1", "a", 10.0)  # predicted 30, waited 10: +20
    m.enqueued("c2", "q", 0.0, ewt=5.0)
    m.answered("c2", "a", 25.0)  # predicted 5, waited 25: -20
    m.enqueued("c3", "q", 0.0, ewt=60.0)
    m.abandoned("c3", 2.0)  # censored: the wait it would have had is unknown
    m.enqueued("c4", "q", 0.0)
    m.answered("c4", "a", 7.0)  # no prediction given
    c = m.queue_totals("q")
    assert c.ewt_samples == 2
    assert c.ewt_mae == pytest.approx(20.0)
    assert c.ewt_bias == pytest.approx(0.0)


def test_overflow_counts_in_both_queues_and_measures_each_wait() -> None:
    m = AcdMetrics()
    m.enqueued("c", "first", 0.0)
    m.overflowed("c", 60.0, to_queue="second")
    m.answered("c", "amy", 75.0)
    a, b = m.queue_totals("first"), m.queue_totals("second")
    assert (a.offered, a.overflowed, a.answered, a.abandoned) == (1, 1, 0, 0)
    assert (b.offered, b.answered) == (1, 1)
    assert b.wait_answered == pytest.approx(15.0)
    assert math.isnan(a.sl)


def test_callback_keeps_the_entry_time() -> None:
    m = AcdMetrics()
    m.enqueued("c", "q", 0.0)
    m.callback_requested("c", 30.0)
    m.answered("c", "amy", 400.0)
    c = m.queue_totals("q")
    assert (c.callbacks_requested, c.callbacks_answered) == (1, 1)
    assert c.wait_answered == pytest.approx(400.0)


def test_transfers_count_on_queue_and_agent() -> None:
    m = AcdMetrics()
    m.enqueued("c", "q", 0.0)
    m.answered("c", "amy", 1.0)
    m.transferred("c", "amy", 50.0)
    m.completed("c", "amy", 60.0, talk=49.0, wrap_up=10.0)
    assert m.queue_totals("q").transfers == 1
    assert m.agent_totals("amy").transfers == 1


def test_snapshot_waiting_longest_wait_agents_and_today() -> None:
    day = 86400.0
    m = AcdMetrics(MetricsConfig(day_offset=3600.0))  # days start at 23:00 on the event clock
    # yesterday (site time): enqueued at 22:30 event clock = 23:30 site
    m.enqueued("old", "q", day - 5400.0)
    m.answered("old", "amy", day - 5390.0)
    # today: two callers waiting, one answered
    m.enqueued("c1", "q", day - 3000.0)
    m.enqueued("c2", "q", day - 2000.0)
    m.enqueued("c3", "q", day - 1000.0, ewt=42.0)
    m.answered("c1", "amy", day - 900.0)
    m.agent_state_changed("amy", "on_call", day - 900.0)
    m.agent_state_changed("bob", "available", day - 800.0)
    m.agent_state_changed("cat", "not_ready", day - 700.0)
    snap = m.snapshot(day)
    q = snap.queues["q"]
    assert q.waiting == 2
    assert q.longest_wait == 2000.0
    assert q.ewt == 42.0
    assert (q.today.offered, q.today.answered) == (3, 1)
    assert snap.agents_by_state["on_call"] == 1
    assert snap.agents_by_state["available"] == 1
    assert snap.agents_by_state["not_ready"] == 1
    assert snap.agents["amy"].call_id == "c1"
    assert snap.agents["amy"].since == day - 900.0


def test_bad_events_name_the_call() -> None:
    m = AcdMetrics()
    with pytest.raises(KeyError, match="'ghost', which is not waiting"):
        m.answered("ghost", "amy", 1.0)
    with pytest.raises(ValueError, match="call 'c': talk, hold and wrap-up must be >= 0"):
        m.completed("c", "amy", 5.0, talk=-1.0)
    with pytest.raises(ValueError, match="interval must be > 0"):
        MetricsConfig(interval=0)


def test_router_records_feed_the_same_figures() -> None:
    from acd import records as r

    m = AcdMetrics(MetricsConfig(default_sl_threshold=99.0))  # records carry the threshold
    m.feed_all(
        [
            r.AgentStateRecord(0.0, "amy", "offline", "available", 0.0),
            r.CallEnqueued(10.0, "c1", "sales", 0, 10.0, 1, 12.0),
            r.Announced(12.0, "c1", "sales", 1, 20.0),
            r.CallOffered(30.0, "c1", "sales", "amy", 20.0, 0, "longest_idle", "agent_free"),
            r.AgentStateRecord(30.0, "amy", "available", "reserved", 0.0),
            r.CallRequeued(45.0, "c1", "sales", "amy", "rna"),
            r.AgentStateRecord(45.0, "amy", "reserved", "not_ready", 30.0, "rna"),
            r.AgentStateRecord(50.0, "amy", "not_ready", "available", 45.0),
            r.CallOffered(50.0, "c1", "sales", "amy", 40.0, 0, "longest_idle", "agent_free"),
            r.AgentStateRecord(50.0, "amy", "available", "reserved", 50.0),
            r.CallAnswered(52.0, "c1", "sales", "amy", 42.0, 42.0, 12.0, 20.0, 0.8),
            r.AgentStateRecord(52.0, "amy", "reserved", "on_call", 50.0),
            r.CallEnqueued(60.0, "c2", "sales", 0, 60.0, 1, None),
            r.CallOverflowed(90.0, "c2", "sales", 30.0, "max_wait", "queue", "backup", "backup"),
            r.CallEnqueued(90.0, "c2", "backup", 0, 60.0, 1, 5.0, "sales"),
            r.CallAbandoned(93.0, "c2", "backup", 3.0, 33.0, 1, 5.0, 20.0, 0.8),
            r.AgentStateRecord(152.0, "amy", "on_call", "wrap_up", 52.0),
            r.CallCompleted(162.0, "c1", "sales", "amy", 90.0, 10.0, 10.0, 110.0),
            r.AgentStateRecord(162.0, "amy", "wrap_up", "available", 152.0),
        ]
    )
    sales = m.queue_totals("sales")
    assert (sales.offered, sales.answered, sales.overflowed, sales.abandoned) == (2, 1, 1, 0)
    assert sales.answered_in_sl == 0  # 42 s > the record's 20 s threshold
    assert sales.asa == 42.0
    assert sales.aht == 110.0
    assert sales.ewt_mae == 30.0  # predicted 12, waited 42
    assert sales.announce_mae == 20.0  # announced 20 at t=12, answered 40 s later
    backup = m.queue_totals("backup")
    assert (backup.offered, backup.abandoned, backup.short_abandons) == (1, 1, 1)
    assert backup.sl2 == 1.0
    m.flush(162.0)
    amy = m.agent_totals("amy")
    assert (amy.offered, amy.missed, amy.answered, amy.handled) == (2, 1, 1, 1)
    assert amy.reserved_s == 15.0 + 2.0
    assert amy.not_ready_s == 5.0
    assert amy.on_call_s == 100.0 and amy.wrap_up_s == 10.0
