"""ACD metrics on real calls: Prometheus /metrics, GET /acd/queues and /acd/intervals.

The engine serves tests/data/flows_acd (dial 6000: a greeting, then the
``help`` queue, SL 20 s) with one agent, ``ann``, a baresip in auto-answer
mode. Three SIPp callers:

* A is answered at once (the agent is available) and talks until the agent
  hangs up;
* B joins while the agent talks to A, so it waits (and gets a real wait
  estimate: the agent is busy for up to the AHT) until A is over and the
  wrap-up (3 s) has passed;
* C hangs up after ~3 s in the line: an abandon, and a short one (< 5 s).

While B waits, /metrics shows one caller waiting, its longest wait, the
queue's EWT and the agent on a call. At the end /metrics, /acd/queues and
/acd/intervals report the two answered calls with their waits (checked
against the router's records in the engine's database), the abandon, SL and
SL2 (Asterisk definitions), the EWT error of each answered call and the
agent's interval figures. Then the engine is stopped and a new one started
on the same data folder: the day's intervals and the call counters are the
same.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acd.model import CallState
from acd.records import CallAbandoned, CallAnswered, CallCompleted, CallEnqueued
from engine.app import Engine
from tests.test_acd_real_calls import (  # noqa: F401 (desk_factory: fixture)
    CALLER_1,
    CALLER_2,
    RATE,
    Desk,
    _until,
    _wait_sipp,
    desk_factory,
)

pytestmark = pytest.mark.peer


async def _metrics(desk: Desk) -> str:
    assert desk.engine.http is not None
    url = f"http://127.0.0.1:{desk.engine.http.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.text()


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with exactly these labels (None: absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def _calls(text: str, outcome: str) -> float | None:
    return _sample(text, "callcore_acd_calls_total", queue="help", outcome=outcome)


async def test_metrics_and_intervals_report_real_calls_and_survive_a_restart(
    desk_factory: Callable[..., Any],  # noqa: F811 (the fixture imported above)
) -> None:
    desk: Desk = await desk_factory()
    acd = desk.acd
    await desk.state("ann", "ready")

    # ---- A: answered at once
    run_a = await desk.caller("a", CALLER_1, "uac_queue_wait_bye.xml").start_async()
    first = await _until(lambda: next(iter(acd.answered), None), 20, "caller A bridged")

    # ---- B: waits while the agent talks to A
    run_b = await desk.caller("b", CALLER_2, "uac_queue_wait_bye.xml").start_async()

    def b_waiting() -> str | None:
        for call in acd.router.calls():
            if call.id != first and call.state is CallState.WAITING:
                return call.id
        return None

    second = await _until(b_waiting, 20, "caller B waiting")
    await asyncio.sleep(1.0)
    live = await _metrics(desk)
    estimate = acd.router.queue_estimate("help", acd.now())
    assert _sample(live, "callcore_acd_waiting", queue="help") == 1
    assert _sample(live, "callcore_acd_callbacks_waiting", queue="help") == 0
    longest = _sample(live, "callcore_acd_longest_wait_seconds", queue="help")
    assert longest is not None and 0.9 < longest < 10
    ewt = _sample(live, "callcore_acd_ewt_seconds", queue="help")
    # the agent is on a call (AHT 120 s): B is served at its end, a caller joining
    # now (position 2) one AHT later
    assert ewt is not None and estimate is not None and ewt == pytest.approx(estimate, abs=2)
    assert 200 < ewt < 240
    assert _sample(live, "callcore_acd_agents", state="on_call") == 1
    assert _sample(live, "callcore_acd_agents", state="available") == 0
    assert _sample(live, "callcore_acd_queue_agents", queue="help", state="on_call") == 1
    assert _sample(live, "callcore_acd_service_level", queue="help") == 1.0  # A, in 20 s
    assert _sample(live, "callcore_acd_service_level_target", queue="help") == 0.8
    assert _sample(live, "callcore_acd_service_level_seconds", queue="help") == 20
    (help_queue,) = await desk.get("/acd/queues")
    assert (help_queue["waiting"], help_queue["agents"]["on_call"]) == (1, 1)
    assert help_queue["longest_wait"] > 0.9
    assert (help_queue["today"]["offered"], help_queue["today"]["answered"]) == (2, 1)

    # ---- C: hangs up ~3 s after joining (the greeting takes ~2.3 s of its 5 s)
    caller_c = desk.caller(
        "c", CALLER_2[: 6 * RATE], "uac_inband.xml", 5, codec="PCMU", pcap="inband.pcap"
    )
    result_c = await _wait_sipp(await caller_c.start_async(), 30)
    assert result_c.ok, result_c.summary()

    # ---- the agent ends A; after the wrap-up B is answered; the agent ends B
    await asyncio.to_thread(desk.agent.hangup)
    result_a = await _wait_sipp(run_a, 30)
    assert result_a.ok, result_a.summary()
    await _until(lambda: second in acd.answered, 20, "caller B bridged after the wrap-up")
    await asyncio.sleep(2.0)
    await asyncio.to_thread(desk.agent.hangup)
    result_b = await _wait_sipp(run_b, 30)
    assert result_b.ok, result_b.summary()
    await _until(
        lambda: acd.router.agent("ann").state.value == "available", 15, "the agent available"
    )
    records = await _until(
        lambda: (r := desk.records()) and sum(isinstance(x, CallCompleted) for x in r) == 2 and r,
        5,
        "both completed calls saved",
    )
    enqueued = [r for r in records if isinstance(r, CallEnqueued)]
    answered = [r for r in records if isinstance(r, CallAnswered)]
    (abandoned,) = [r for r in records if isinstance(r, CallAbandoned)]
    assert [r.call for r in answered] == [first, second]
    assert len(enqueued) == 3
    assert answered[0].wait < 2 and 5 < answered[1].wait < 20  # B: A's talk + wrap-up
    assert answered[0].ewt is not None and answered[0].ewt < 1  # an agent was free
    assert answered[1].ewt is not None and 100 < answered[1].ewt <= 120  # one AHT, less A's talk
    assert 1.0 < abandoned.wait < 5.0  # short abandon

    # ---- /metrics after the calls
    text = await _metrics(desk)
    assert {o: _calls(text, o) for o in ("offered", "answered", "answered_in_sl")} == {
        "offered": 3,
        "answered": 2,
        "answered_in_sl": 2,
    }
    assert {o: _calls(text, o) for o in ("abandoned", "abandoned_in_sl", "short_abandoned")} == {
        "abandoned": 1,
        "abandoned_in_sl": 1,
        "short_abandoned": 1,
    }
    assert _calls(text, "completed") == 2
    waits = [r.wait for r in answered]
    assert _sample(text, "callcore_acd_answer_wait_seconds_count", queue="help") == 2
    total = _sample(text, "callcore_acd_answer_wait_seconds_sum", queue="help")
    assert total == pytest.approx(sum(waits), abs=1e-6)
    # B's wait is in the 10 s bucket or the 20 s one, A's in the first
    first_bucket = _sample(text, "callcore_acd_answer_wait_seconds_bucket", queue="help", le="5.0")
    assert first_bucket == 1
    errors = [r.ewt - r.wait for r in answered if r.ewt is not None]
    assert _sample(text, "callcore_acd_ewt_error_seconds_count", queue="help") == 2
    absolute = _sample(text, "callcore_acd_ewt_abs_error_seconds_sum", queue="help")
    assert absolute == pytest.approx(sum(abs(e) for e in errors), abs=1e-6)
    assert _sample(text, "callcore_acd_ewt_abs_error_seconds_count", queue="help") == 2
    # A: predicted 0 s, waited a ring; B: predicted ~115 s, waited ~10 s
    assert _sample(text, "callcore_acd_ewt_error_seconds_bucket", queue="help", le="0.0") == 1
    assert _sample(text, "callcore_acd_ewt_error_seconds_bucket", queue="help", le="60.0") == 1
    assert _sample(text, "callcore_acd_abandon_wait_seconds_count", queue="help") == 1
    assert _sample(text, "callcore_acd_service_level", queue="help") == 1.0
    assert _sample(text, "callcore_acd_service_level2", queue="help") == 1.0
    assert _sample(text, "callcore_acd_asa_seconds", queue="help") == pytest.approx(
        sum(waits) / 2, abs=1e-6
    )
    assert _sample(text, "callcore_acd_waiting", queue="help") == 0
    assert _sample(text, "callcore_acd_agents", state="available") == 1

    # ---- /acd/queues: today's figures
    (help_queue,) = await desk.get("/acd/queues")
    today = help_queue["today"]
    assert (today["offered"], today["answered"], today["abandoned"]) == (3, 2, 1)
    assert (today["short_abandons"], today["handled"]) == (1, 2)
    assert (today["sl"], today["sl2"]) == (1.0, 1.0)
    assert help_queue["service_level"]["today"] == 1.0
    assert today["asa"] == pytest.approx(sum(waits) / 2, abs=1e-3)
    assert today["ewt_error"]["samples"] == 2
    assert today["ewt_error"]["bias"] == pytest.approx(sum(errors) / 2, abs=1e-3)

    # ---- /acd/intervals: the day's 15-minute intervals per queue and per agent
    day = datetime.fromtimestamp(acd.now(), UTC).date().isoformat()
    history = await desk.get(f"/acd/intervals?date={day}")
    assert history["interval"] == 900 and history["date"] == day
    rows = [row for row in history["queues"] if row["queue"] == "help"]
    assert 1 <= len(rows) <= 2  # the calls may straddle a quarter hour
    assert all(row["start"] % 900 == 0 for row in rows)
    assert sum(row["offered"] for row in rows) == 3
    totals = history["totals"]["help"]
    assert (totals["offered"], totals["answered"], totals["abandoned"]) == (3, 2, 1)
    assert (totals["sl"], totals["sl2"], totals["short_abandons"]) == (1.0, 1.0, 1)
    assert totals["ewt_error"]["samples"] == 2
    agent_rows = [row for row in history["agents"] if row["agent"] == "ann"]
    assert sum(row["handled"] for row in agent_rows) == 2
    assert sum(row["answered"] for row in agent_rows) == 2
    on_call = sum(row["on_call_s"] for row in agent_rows)
    assert on_call > 3  # A's and B's talk
    assert sum(row["wrap_up_s"] for row in agent_rows) == pytest.approx(6.0, abs=0.5)
    assert all(0 < row["occupancy"] <= 1 for row in agent_rows if row["occupancy"] is not None)
    status, body = await desk.http("GET", "/acd/intervals?date=23-11-2026")
    assert status == 400 and "YYYY-MM-DD" in body["error"]
    status, body = await desk.http("GET", f"/acd/intervals?date={day}&queue=nope")
    assert status == 404 and "help" in body["error"]
    other = await desk.get("/acd/intervals?date=2001-01-01")
    assert other["queues"] == [] and other["totals"] == {}

    # ---- restart on the same data folder: the day's intervals and counters stay
    config = desk.engine.config
    await desk.engine.stop()
    desk.engine = Engine(config)
    await desk.engine.start()
    again = await desk.get(f"/acd/intervals?date={day}")
    assert again["totals"] == history["totals"]
    assert [r for r in again["queues"] if r["queue"] == "help"] == rows
    agent_again = [row for row in again["agents"] if row["agent"] == "ann"]
    for key in ("handled", "answered", "offered", "talk", "wrap_up", "on_call_s", "wrap_up_s"):
        assert sum(r[key] for r in agent_again) == pytest.approx(
            sum(r[key] for r in agent_rows), abs=1e-3
        ), key
    text = await _metrics(desk)
    assert (_calls(text, "offered"), _calls(text, "answered"), _calls(text, "abandoned")) == (
        3,
        2,
        1,
    )
    assert _calls(text, "short_abandoned") == 1
    assert _sample(text, "callcore_acd_service_level", queue="help") == 1.0
    assert _sample(text, "callcore_acd_agents", state="available") == 1  # ann came back ready
    (help_queue,) = await desk.get("/acd/queues")
    assert help_queue["today"]["offered"] == 3 and help_queue["today"]["sl"] == 1.0
    assert not math.isnan(help_queue["today"]["asa"])
