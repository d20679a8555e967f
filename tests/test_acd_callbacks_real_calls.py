"""Callbacks on real calls: press 1 while waiting, hang up, get called back.

The engine serves tests/data/flows_acd with the ``help`` queue node offering
a callback (``callback: {digit: "1", after: 1}``) and queues.yaml's
``callbacks: {dial: "sip:{number}@127.0.0.1:PORT"}`` pointing at a second
baresip, the customer's phone (user 5551234, the caller's number). The
agent, ``ann``, is a baresip in auto-answer mode that starts not ready, so
the caller waits.

The caller is SIPp calling from 5551234 (PCMU + telephone-event), pressing
1 (RFC 4733) while the offer plays. Checked from the outside and inside:

* the caller heard the offer and then the confirmation (in the engine's
  recording of the call), and the engine hung up (SIPp got the BYE);
* the router keeps the callback in line (GET /acd/callbacks, /metrics);
* when the agent becomes ready the engine rings the agent, and once the
  agent answers it calls the customer back and bridges them: each baresip
  hears what the other sends;
* the attempt, the records (answered and completed as a callback) and the
  Prometheus counters;
* a customer who does not answer in time: the attempt is saved as failed,
  the agent freed, and the callback is tried again after ``retry_after``.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from acd.records import CallAnswered, CallbackRequested, CallCompleted
from acd.store import MetricsStore
from engine.app import Engine
from ivr.actions import SayText
from recordings.recorder import safe_name
from recordings.store import RecordingStore
from tests.conftest import engine_config, engine_garbage_cycles, recordings_finished
from tests.peers.baresip import Baresip, read_wav, write_wav
from tests.peers.sipp import Sipp
from tests.rtp_pcap import write_pcap
from tests.test_acd_metrics_real_calls import _metrics, _sample
from tests.test_acd_real_calls import (
    AGENT,
    CALLER_2,
    FLOWS,
    RATE,
    SCENARIOS,
    Desk,
    _queues_yaml,
    _until,
)
from tests.test_engine_sipp import _best_correlation
from tests.test_flows_real_calls import CallerStream

pytestmark = pytest.mark.peer

NUMBER = "5551234"
CONFIRM = "Thank you. We will call you back when it is your turn. Goodbye."
OFFER = "To be called back when it is your turn, without losing your place in line, press 1."
HELP_FLOW = f"""\
flow: help
start: hello
nodes:
  hello:
    type: say
    text: Thank you for calling the help desk.
    next: line
  line:
    type: queue
    queue: help
    next: thanks
    overflow: sorry
    callback: {{digit: "1", after: 1, confirm: "{CONFIRM}"}}
  thanks: {{type: say, text: Thank you for calling. Goodbye.}}
  sorry: {{type: say, text: "Sorry, nobody can take your call now. Goodbye."}}
"""


@pytest.fixture
async def callback_desk(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Starts the agent and customer baresips and an engine offering callbacks."""
    started: list[tuple[Desk, Baresip]] = []

    async def start(*, customer_answers: bool = True, **callbacks: Any) -> tuple[Desk, Baresip]:
        root = tmp_path / f"desk{len(started)}"
        root.mkdir()
        write_wav(root / "agent.wav", AGENT)
        write_wav(root / "customer.wav", CALLER_2)
        agent = Baresip(
            auto_answer=True,
            source_wav=root / "agent.wav",
            duration=150,
            run_dir=root / "agent",
        )
        customer = Baresip(
            auto_answer=customer_answers,
            user=NUMBER,
            source_wav=root / "customer.wav",
            duration=150,
            run_dir=root / "customer",
        )
        await asyncio.to_thread(agent.start)
        await asyncio.to_thread(customer.start)
        flows = root / "flows"
        shutil.copytree(FLOWS, flows)
        (flows / "help.yaml").write_text(HELP_FLOW)
        settings = {
            "dial": f'"sip:{{number}}@127.0.0.1:{customer.sip_port}"',
            "ring_timeout": 10,
            "attempts": 3,
            "retry_after": 60,
            **callbacks,
        }
        section = "\ncallbacks:\n" + "".join(f"  {k}: {v}\n" for k, v in settings.items())
        (flows / "queues.yaml").write_text(_queues_yaml(agent.sip_uri) + section)
        engine = Engine(engine_config(root, flows_dir=flows))
        await engine.start()
        desk = Desk(engine, agent, root)
        started.append((desk, customer))
        return desk, customer

    try:
        yield start
    finally:
        for desk, customer in started:
            await desk.engine.stop()
            await asyncio.to_thread(desk.agent.stop)
            await asyncio.to_thread(customer.stop)


async def _press_one_caller(desk: Desk) -> Sipp:
    """A SIPp caller from 5551234 that presses 1 while the offer plays (and again
    later, in case the first came before it)."""
    assert desk.engine.flow_app is not None and desk.engine.sip is not None
    greeting = await desk.engine.flow_app.prompts.speech(
        SayText("Thank you for calling the help desk.", "en")
    )
    # Queued after the greeting: "You are next in line." (~1.5 s), then the offer
    # (~5 s). Both are rendered here first, so that the engine plays them without a
    # text-to-speech pause (the first render of a run, on a fresh CI machine, can
    # take seconds) and the key lands 2.5 s into the offer.
    position = await desk.acd.announcer.speak("You are next in line.", "en")
    offer = await desk.acd.announcer.speak(OFFER, "en")
    assert position is not None and offer is not None
    start = greeting.duration + position.duration + 2.5
    stream = CallerStream(start + 12.0, [], [])
    stream.press(start, "1")
    stream.press(start + 7.0, "1")
    run_dir = desk.root / "caller"
    run_dir.mkdir()
    write_pcap(run_dir / "flow_caller.pcap", stream.packets("rfc4733"))
    return Sipp(
        SCENARIOS / "uac_flow_rfc4733.xml",
        remote=f"127.0.0.1:{desk.engine.sip.port}",
        service="6000",
        extra_args=["-key", "caller", NUMBER],
        timeout=90,
        run_dir=run_dir,
    )


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.reshape(-1, w.getnchannels())


def _attempts(desk: Desk) -> list[dict[str, Any]]:
    with MetricsStore(desk.engine.config.data_dir / "callcore.db") as store:
        return store.callback_attempts()


async def _caller_leaves_a_callback(desk: Desk) -> str:
    """The caller presses 1, hears the confirmation and is hung up on; returns the call id."""
    acd = desk.acd
    await desk.state("ann", "login")  # logged in, not ready: nobody takes calls
    caller = await _press_one_caller(desk)
    result = await caller.run_async()
    assert result.ok, result.summary()  # the engine sent the BYE after the confirmation
    recent = await desk.get("/calls/recent")
    flow = recent[0]["flow"]
    assert flow["outcome"] == "callback"
    assert [step["node"] for step in flow["path"]] == ["hello", "line"]
    assert recent[0]["digits"].startswith("1")
    (callback,) = await _until(lambda: acd.callbacks_view(), 5, "the callback kept in line")
    cid = str(callback["call"])
    assert (callback["number"], callback["queue"], callback["attempts"]) == (NUMBER, "help", 0)
    heard = [p.text for p in acd.played[cid]]
    assert OFFER in heard and heard[-1] == CONFIRM
    routed = acd.router.call(cid)
    assert routed is not None and routed.callback == NUMBER
    assert acd.router.position(cid) == 1
    # what the caller heard (the engine's recording: right = what the caller heard)
    name = safe_name(recent[0]["call_id"]) + ".wav"
    folder = desk.engine.config.data_dir / "recordings"
    path = await _until(lambda: next(folder.rglob(name), None), 5, "the caller's recording")
    await recordings_finished(desk.engine)  # written by the recorder's storage process
    stereo = _wav(path)
    for text, seconds in ((OFFER, 1.5), (CONFIRM, None)):  # the key cut the offer short
        spoken = await acd.announcer.speak(text, "en", static=False)
        assert spoken is not None
        audio = np.asarray(spoken.audio)
        if seconds is not None:
            audio = audio[: int(seconds * RATE)]
        assert _best_correlation(audio, stereo[:, 1]) > 0.9, text
    api = await desk.get("/acd/callbacks")
    assert [c["call"] for c in api["callbacks"]] == [cid] and api["attempts_today"] == []
    text = await _metrics(desk)
    assert _sample(text, "callcore_acd_callbacks_waiting", queue="help") == 1
    assert _sample(text, "callcore_acd_waiting", queue="help") == 1
    assert _sample(text, "callcore_acd_callbacks_total", queue="help", event="offered") == 1
    assert _sample(text, "callcore_acd_callbacks_total", queue="help", event="requested") == 1
    return cid


async def test_callback_is_kept_then_the_agent_and_the_customer_are_bridged(
    callback_desk: Callable[..., Any],
) -> None:
    desk, customer = await callback_desk()
    acd = desk.acd
    gc.collect()  # what earlier tests left is not these calls' (engine_garbage_cycles)
    cid = await _caller_leaves_a_callback(desk)

    # The agent gets ready: the engine rings them, then calls the customer back.
    await desk.state("ann", "ready")
    await asyncio.to_thread(customer.wait_for_event, "CALL_ESTABLISHED", 20)
    item = await _until(
        lambda: (a := acd.answered.get(cid)) and a.get("callback") and a, 10, "callback bridged"
    )
    assert item["agent"] == "ann" and item["callback"]["number"] == NUMBER
    await asyncio.sleep(4.0)  # they talk
    await asyncio.to_thread(customer.hangup)  # the customer ends the call
    await _until(lambda: acd.answered[cid]["ended_at"] is not None, 10, "the callback to end")
    await asyncio.to_thread(desk.agent.wait_for_event, "CALL_CLOSED", 10)  # engine's BYE
    await _until(lambda: not acd.callbacks_view(), 10, "no callback left")

    # Media both ways: each phone heard what the other sent.
    (agent_heard,) = [read_wav(p)[0] for p in desk.agent.received_wavs]
    (agent_said,) = [read_wav(p)[0] for p in desk.agent.sent_wavs]
    (customer_heard,) = [read_wav(p)[0] for p in customer.received_wavs]
    (customer_said,) = [read_wav(p)[0] for p in customer.sent_wavs]
    assert len(agent_heard) > 3 * RATE and len(customer_heard) > 3 * RATE
    assert _best_correlation(agent_heard[RATE : 3 * RATE], customer_said) > 0.9
    assert _best_correlation(customer_heard[RATE : 3 * RATE], agent_said) > 0.9

    # The callback call is recorded like any call: left the customer, right the agent;
    # its row names the customer as the caller (their history).
    await recordings_finished(desk.engine, 2)  # the original call, then the callback
    rows = await asyncio.to_thread(
        lambda: RecordingStore(desk.engine.config.data_dir / "callcore.db").list(limit=10)
    )
    (row,) = [r for r in rows if r.caller == NUMBER and r.call_id != cid]
    assert row.status == "complete" and row.duration > 3, row
    stereo = _wav(Path(row.path))
    assert _best_correlation(customer_said[RATE : 3 * RATE], stereo[:, 0]) > 0.9
    assert _best_correlation(agent_said[RATE : 3 * RATE], stereo[:, 1]) > 0.9

    # The attempt, the records and the counters.
    (attempt,) = await _until(lambda: _attempts(desk), 5, "the attempt saved")
    assert (attempt["callback"], attempt["call"], attempt["number"]) == (cid, cid, NUMBER)
    assert (attempt["attempt"], attempt["agent"], attempt["status"]) == (1, "ann", 200)
    assert attempt["outcome"] == "connected"
    records = await _until(
        lambda: (r := desk.records()) and any(isinstance(x, CallCompleted) for x in r) and r,
        10,
        "the callback completed after wrap-up",
    )
    (requested,) = [r for r in records if isinstance(r, CallbackRequested)]
    (answered,) = [r for r in records if isinstance(r, CallAnswered)]
    (completed,) = [r for r in records if isinstance(r, CallCompleted)]
    assert requested.call == answered.call == completed.call == cid
    assert answered.callback and completed.callback and answered.agent == "ann"
    assert completed.talk > 3
    text = await _metrics(desk)
    for event, count in (("attempted", 1), ("connected", 1), ("requested", 1)):
        assert _sample(text, "callcore_acd_callbacks_total", queue="help", event=event) == count
    assert _sample(text, "callcore_acd_callbacks_total", queue="help", event="failed") is None
    assert _sample(text, "callcore_acd_calls_total", queue="help", outcome="callback_answered") == 1
    assert _sample(text, "callcore_acd_callbacks_waiting", queue="help") == 0
    (help_queue,) = await desk.get("/acd/queues")
    today = help_queue["today"]
    assert (today["callbacks_requested"], today["callbacks_answered"]) == (1, 1)
    # The outbound legs (agent and customer) leave nothing for a full collection.
    assert not engine_garbage_cycles()


async def test_unanswered_callback_is_recorded_and_tried_again(
    callback_desk: Callable[..., Any],
) -> None:
    desk, customer = await callback_desk(
        customer_answers=False, ring_timeout=3, retry_after=2, attempts=2
    )
    acd = desk.acd
    cid = await _caller_leaves_a_callback(desk)
    await desk.state("ann", "ready")

    # Attempt 1: the agent answers, the customer's phone rings 3 s unanswered.
    await asyncio.to_thread(customer.wait_for_event, "CALL_INCOMING", 20)
    closed = await asyncio.to_thread(customer.wait_for_event, "CALL_CLOSED", 10)
    assert closed["type"] == "CALL_CLOSED"
    (failed,) = await _until(lambda: _attempts(desk), 5, "the failed attempt saved")
    assert (failed["attempt"], failed["outcome"], failed["status"]) == (1, "failed", 408)
    assert failed["ended"] - failed["started"] == pytest.approx(3.0, abs=0.5)
    # The agent is freed at once (no wrap-up for a call that never reached anyone).
    await _until(lambda: acd.router.agent("ann").state.value == "available", 5, "the agent freed")
    (waiting,) = acd.callbacks_view()
    assert (waiting["attempts"], waiting["retry_at"] is not None) == (1, True)

    # Attempt 2, 2 s later: the callback rejoins the line, the agent takes it,
    # and this time the customer answers.
    seen = len(customer.events)
    await asyncio.to_thread(
        customer.wait_for_event, lambda e: e.get("type") == "CALL_INCOMING", 20, seen
    )
    await asyncio.to_thread(customer.answer)
    retry_id = f"{cid}~2"
    await _until(
        lambda: (a := acd.answered.get(retry_id)) and a.get("callback"), 10, "retry bridged"
    )
    await asyncio.sleep(3.0)
    await asyncio.to_thread(desk.agent.hangup)  # the agent ends it this time
    await _until(lambda: acd.answered[retry_id]["ended_at"] is not None, 10, "the retry to end")
    attempts = await _until(lambda: len(a := _attempts(desk)) == 2 and a, 5, "both attempts")
    assert [(a["attempt"], a["call"], a["outcome"], a["status"]) for a in attempts] == [
        (1, cid, "failed", 408),
        (2, retry_id, "connected", 200),
    ]
    assert {a["callback"] for a in attempts} == {cid}
    await asyncio.to_thread(
        customer.wait_for_event, lambda e: e.get("type") == "CALL_CLOSED", 10, seen
    )
    await asyncio.sleep(0.5)  # baresip finishes its recordings
    customer_heard = read_wav(customer.received_wavs[-1])[0]
    agent_said = read_wav(desk.agent.sent_wavs[-1])[0]
    assert _best_correlation(customer_heard[RATE : 2 * RATE], agent_said) > 0.9
    text = await _metrics(desk)
    for event, count in (("attempted", 2), ("failed", 1), ("connected", 1), ("requested", 1)):
        assert _sample(text, "callcore_acd_callbacks_total", queue="help", event=event) == count
    api = await desk.get("/acd/callbacks")
    assert api["callbacks"] == [] and len(api["attempts_today"]) == 2


async def test_callback_waiting_through_a_restart_is_still_called_back(
    callback_desk: Callable[..., Any],
) -> None:
    desk, customer = await callback_desk()
    cid = await _caller_leaves_a_callback(desk)

    # The engine restarts on the same data folder: the callback keeps its place.
    config = desk.engine.config
    await desk.engine.stop()
    desk.engine = Engine(config)
    await desk.engine.start()
    acd = desk.acd
    (callback,) = acd.callbacks_view()
    assert (callback["call"], callback["number"], callback["attempts"]) == (cid, NUMBER, 0)
    routed = acd.router.call(cid)
    assert routed is not None and routed.callback == NUMBER and routed.state.value == "waiting"
    assert await desk.agent_state() == "not_ready"  # as it was saved
    text = await _metrics(desk)
    assert _sample(text, "callcore_acd_callbacks_waiting", queue="help") == 1

    # The agent gets ready: the customer is called back and bridged.
    await desk.state("ann", "ready")
    await asyncio.to_thread(customer.wait_for_event, "CALL_ESTABLISHED", 20)
    await _until(lambda: (a := acd.answered.get(cid)) and a.get("callback"), 10, "callback bridged")
    await asyncio.sleep(2.0)
    await asyncio.to_thread(customer.hangup)
    await _until(lambda: acd.answered[cid]["ended_at"] is not None, 10, "the callback to end")
    (attempt,) = await _until(lambda: _attempts(desk), 5, "the attempt saved")
    assert (attempt["call"], attempt["outcome"], attempt["status"]) == (cid, "connected", 200)
    assert not acd.callbacks_view()


async def test_callback_is_given_up_after_its_last_attempt(
    callback_desk: Callable[..., Any],
) -> None:
    desk, customer = await callback_desk(customer_answers=False, ring_timeout=2, attempts=1)
    acd = desk.acd
    cid = await _caller_leaves_a_callback(desk)
    await desk.state("ann", "ready")
    await asyncio.to_thread(customer.wait_for_event, "CALL_INCOMING", 20)
    await asyncio.to_thread(customer.wait_for_event, "CALL_CLOSED", 10)  # our CANCEL
    (attempt,) = await _until(lambda: _attempts(desk), 5, "the attempt saved")
    assert (attempt["call"], attempt["outcome"], attempt["status"]) == (cid, "failed", 408)
    await _until(lambda: not acd.callbacks_view(), 5, "the callback given up")
    assert acd.router.call(cid) is None
    await _until(lambda: acd.router.agent("ann").state.value == "available", 5, "the agent freed")
    text = await _metrics(desk)
    for event, count in (("attempted", 1), ("failed", 1), ("given_up", 1)):
        assert _sample(text, "callcore_acd_callbacks_total", queue="help", event=event) == count
    assert _sample(text, "callcore_acd_callbacks_total", queue="help", event="connected") is None
    await asyncio.sleep(1.0)  # nothing rings the customer again
    assert sum(e.get("type") == "CALL_INCOMING" for e in customer.events) == 1
