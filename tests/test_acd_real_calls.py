"""The ACD on real calls: SIPp callers queue through a flow, a baresip agent answers.

The engine serves tests/data/flows_acd (dial 6000: a greeting, then the
``help`` queue) with a queues.yaml whose one agent, ``ann``, is a baresip in
auto-answer mode on a free port. Callers are SIPp processes that offer PCMA
and talk all along (a pcap of real speech written per caller); baresip
answers in PCMU, so the bridge re-codes both ways. Everything is checked
from the outside as well as from the engine's own records:

* the announcements each caller heard: the engine's record of what it
  played, and the same speech found (normalised cross-correlation) in the RTP
  the caller's SIPp received (dumpcap on loopback);
* the bridge: baresip's recording of what it received holds the caller's
  speech (and not the other caller's), the caller's received RTP holds what
  baresip sent, the caller's SIP INFO digit reaches baresip as RFC 4733;
* the ACD's records in the engine's SQLite file: answered in arrival order
  with their waits, completed with wrap-up, the agent back to available.
"""

from __future__ import annotations

import asyncio
import gc
import re
import shutil
import subprocess
import time
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from acd.records import (
    AgentStateRecord,
    CallAbandoned,
    CallAnswered,
    CallCompleted,
    CallEnqueued,
    CallOffered,
    CallOverflowed,
    CallRequeued,
    Record,
)
from acd.store import MetricsStore
from engine.acd_announce import comfort_tone
from engine.acd_runtime import AcdRuntime
from engine.app import Engine
from media.g711 import alaw_decode
from media.prompts.audio import load_audio
from media.prompts.tones import silence
from recordings.recorder import safe_name
from tests.conftest import engine_config, engine_garbage_cycles, recordings_finished
from tests.peers.baresip import Baresip, read_wav, write_wav
from tests.peers.capture import RtpCapture
from tests.peers.sipp import Sipp, SippResult
from tests.rtp_pcap import rtp_packets, write_pcap
from tests.test_engine_sipp import _best_correlation, _pcap_audio

pytestmark = pytest.mark.peer

FLOWS = Path(__file__).parent / "data" / "flows_acd"
SCENARIOS = Path(__file__).parent / "scenarios"
SOUNDS = Path("/usr/share/asterisk/sounds/en")
RATE = 8000
TSHARK_PAYLOADS = ("-T", "fields", "-e", "udp.payload")


# ------------------------------------------------------------------ audio
def _sounds(*names: str) -> np.ndarray:
    """Asterisk's recorded prompts, one after the other, 200 ms apart."""
    parts = []
    for name in names:
        parts += [load_audio(SOUNDS / f"{name}.wav"), silence(200)]
    return np.concatenate(parts)


def _looped(pcm: np.ndarray, seconds: float) -> np.ndarray:
    reps = int(np.ceil(seconds * RATE / len(pcm)))
    return np.tile(pcm, reps)[: int(seconds * RATE)]


CALLER_1 = _looped(_pcap_audio(), 90)  # SIPp's own speech recording (g711a.pcap)
CALLER_2 = _looped(
    _sounds("conf-onlyperson", "call-waiting", "basic-pbx-ivr-main", "cannot-complete-as-dialed"),
    90,
)
AGENT = _sounds(
    "agent-loginok", "auth-thankyou", "queue-thankyou", "pls-hold-while-try", "call-fwd-on-busy"
)


def _received_audio(pcap: Path, port: int) -> np.ndarray:
    """The PCMA audio of the RTP sent to ``port`` in the capture, in arrival order."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", f"udp.dstport=={port}", *TSHARK_PAYLOADS],
        capture_output=True,
        timeout=120,
        check=True,
    )
    frames = []
    for line in out.stdout.decode().split():
        packet = bytes.fromhex(line.replace(":", ""))
        if len(packet) > 12 and packet[0] >> 6 == 2 and packet[1] & 0x7F == 8:
            frames.append(alaw_decode(packet[12:]))
    assert frames, f"no PCMA RTP to port {port} in {pcap}"
    return np.concatenate(frames)


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.reshape(-1, w.getnchannels())


# --------------------------------------------------------------- the desk
@dataclass
class Desk:
    """An engine serving flows_acd, its ACD and the baresip agent phone."""

    engine: Engine
    agent: Baresip
    root: Path

    @property
    def acd(self) -> AcdRuntime:
        assert self.engine.acd is not None, "the engine did not start its ACD"
        return self.engine.acd

    async def http(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.engine.http is not None
        url = f"http://127.0.0.1:{self.engine.http.port}{path}"
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, json=body) as resp,
        ):
            return resp.status, await resp.json()

    async def get(self, path: str) -> Any:
        status, body = await self.http("GET", path)
        assert status == 200, body
        return body

    async def state(self, agent: str, state: str, reason: str | None = None) -> dict[str, Any]:
        body = {"state": state} if reason is None else {"state": state, "reason": reason}
        status, view = await self.http("POST", f"/acd/agents/{agent}/state", body)
        assert status == 200, view
        assert isinstance(view, dict)
        return view

    async def agent_state(self, name: str = "ann") -> str:
        status, view = await self.http("GET", f"/acd/agents/{name}")
        assert status == 200, view
        return str(view["state"])

    def caller(
        self,
        name: str,
        pcm: np.ndarray,
        scenario: str,
        pause: float = 0,
        *,
        codec: str = "PCMA",
        pcap: str = "caller.pcap",
    ) -> Sipp:
        """A SIPp caller dialling 6000 that plays ``pcm`` from its answer
        (``pause``: the scenario's ``-d``, e.g. when it presses its digit)."""
        folder = self.root / name
        folder.mkdir()
        write_pcap(folder / pcap, rtp_packets(pcm, codec, 20, start=0.0))
        assert self.engine.sip is not None
        return Sipp(
            SCENARIOS / scenario,
            remote=f"127.0.0.1:{self.engine.sip.port}",
            service="6000",
            calls=1,
            pause_ms=int(pause * 1000) if pause else None,
            timeout=120,
            support_files=[folder / pcap],
            run_dir=folder / "sipp",
            trace_msg=True,
        )

    def records(self) -> list[Record]:
        with MetricsStore(self.engine.config.data_dir / "callcore.db") as store:
            return store.records()


def _call_ids(acd: AcdRuntime) -> list[str]:
    """Calls in the ACD, best ranked (first come) first."""
    return [c.id for c in sorted(acd.router.calls(), key=lambda c: c.rank)]


async def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def _queues_yaml(agent_uri: str, **queue: Any) -> str:
    text = (FLOWS / "queues.yaml").read_text().replace("sip:agent@127.0.0.1:5999", agent_uri)
    for key, value in queue.items():
        pattern = rf"(\n    {key}: )[^\n]*"
        if re.search(pattern, text):
            text = re.sub(pattern, rf"\g<1>{value}", text)
        else:
            text = text.replace(
                "\n    skills: {help: 1}", f"\n    skills: {{help: 1}}\n    {key}: {value}"
            )
    return text


@pytest.fixture
async def desk_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Starts baresip (the agent phone) and an engine on a copy of flows_acd."""
    started: list[Desk] = []

    async def start(*, auto_answer: bool = True, **queue: Any) -> Desk:
        root = tmp_path / f"desk{len(started)}"
        root.mkdir()
        source = root / "agent.wav"
        write_wav(source, AGENT)
        agent = Baresip(
            auto_answer=auto_answer, source_wav=source, duration=150, run_dir=root / "agent"
        )
        await asyncio.to_thread(agent.start)
        flows = root / "flows"
        shutil.copytree(FLOWS, flows)
        (flows / "queues.yaml").write_text(_queues_yaml(agent.sip_uri, **queue))
        engine = Engine(engine_config(root, flows_dir=flows))
        await engine.start()
        desk = Desk(engine, agent, root)
        started.append(desk)
        return desk

    try:
        yield start
    finally:
        for desk in started:
            await desk.engine.stop()
            await asyncio.to_thread(desk.agent.stop)


async def _wait_sipp(process: Any, timeout: float) -> SippResult:
    result: SippResult = await process.wait(timeout)
    return result


# ------------------------------------------------------------------ tests
async def test_callers_hear_position_and_wait_then_are_bridged_in_order(
    desk_factory: Callable[..., Any],
) -> None:
    desk: Desk = await desk_factory()
    acd = desk.acd
    gc.collect()  # what earlier tests left is not this test's (see the end)

    # The agent logs in, busy with training: nobody serves the queue yet.
    assert (await desk.state("ann", "login"))["state"] == "not_ready"
    view = await desk.state("ann", "not_ready", "training")
    assert (view["state"], view["reason"]) == ("not_ready", "training")

    caller1 = desk.caller("caller1", CALLER_1, "uac_queue_caller.xml", pause=20)
    caller2 = desk.caller("caller2", CALLER_2, "uac_queue_caller.xml", pause=32)
    caller1.prepare()
    caller2.prepare()
    capture = RtpCapture(
        ports=[caller1.media_port, caller2.media_port],
        direction="dst",
        snaplen=400,
        path=desk.root / "callers.pcapng",
    )
    await asyncio.to_thread(capture.start)
    try:
        run1 = await caller1.start_async()
        first = (await _until(lambda: _call_ids(acd), 20, "caller 1 in the queue"))[0]
        run2 = await caller2.start_async()
        second = await _until(
            lambda: next((c for c in _call_ids(acd) if c != first), None),
            20,
            "caller 2 in the queue",
        )
        await _until(
            lambda: acd.played.get(first) and acd.played.get(second),
            20,
            "an announcement to each caller",
        )
        # Nobody serves the queue: positions only, no wait estimate.
        one, two = acd.played[first][0], acd.played[second][0]
        assert (one.text, one.position, one.ewt) == ("You are next in line.", 1, None)
        assert (two.text, two.position, two.ewt) == ("You are number 2 in line.", 2, None)
        queues = await desk.get("/acd/queues")
        (help_queue,) = queues
        assert help_queue["waiting"] == 2 and help_queue["ewt"] is None
        assert help_queue["agents"]["not_ready"] == 1 and help_queue["longest_wait"] > 0
        await asyncio.sleep(two.seconds + 0.5)  # caller 2 hears all of it

        # Ready: the engine rings baresip, which answers; caller 1 is bridged.
        ready_at = acd.now()
        await desk.state("ann", "ready")
        await _until(lambda: first in acd.answered, 10, "caller 1 bridged to the agent")
        assert acd.answered[first]["agent"] == "ann"
        assert (acd.answered[first]["caller_codec"], acd.answered[first]["agent_codec"]) == (
            "PCMA",
            "PCMU",
        )
        agents = await desk.get("/acd/agents")
        assert [(a["agent"], a["state"], a["call"]) for a in agents] == [("ann", "on_call", first)]

        # Caller 2 now hears an estimate: the agent is busy for up to the AHT (120 s).
        with_ewt = await _until(
            lambda: next((p for p in acd.played[second] if p.ewt is not None), None),
            15,
            "an announcement with a wait estimate to caller 2",
        )
        assert with_ewt.text == "You are next in line. Your wait is less than 2 minutes."
        assert with_ewt.position == 1 and 100 < with_ewt.ewt < 120
        await asyncio.sleep(with_ewt.seconds + 0.5)

        # Caller 1's digit (SIP INFO) reaches the agent as RFC 4733.
        dtmf = await asyncio.to_thread(
            desk.agent.wait_for_event, lambda e: e.get("type") == "CALL_DTMF_START", 30
        )
        assert dtmf["param"] == "5"
        # The agent holds the call (re-INVITE): the caller hears the comfort tone.
        held_at = acd.now()
        assert (await asyncio.to_thread(desk.agent.command, "hold"))["ok"]
        await asyncio.sleep(1.5)
        assert (await asyncio.to_thread(desk.agent.command, "resume"))["ok"]
        await asyncio.sleep(1.5)
        events_before = len(desk.agent.events)
        await asyncio.to_thread(desk.agent.hangup)  # the agent ends call 1
        result1 = await _wait_sipp(run1, 40)
        assert result1.ok, result1.summary()
        await _until(
            lambda: acd.answered[first]["ended_at"] is not None, 5, "call 1 to end in the ACD"
        )
        assert await desk.agent_state() in ("wrap_up", "reserved", "on_call")

        # After wrap-up the agent takes caller 2, who waited all along.
        await _until(lambda: second in acd.answered, 15, "caller 2 bridged after wrap-up")
        dtmf2 = await asyncio.to_thread(
            desk.agent.wait_for_event,
            lambda e: e.get("type") == "CALL_DTMF_START",
            30,
            events_before,
        )
        assert dtmf2["param"] == "5"
        await asyncio.sleep(2.0)
        await asyncio.to_thread(desk.agent.hangup)
        result2 = await _wait_sipp(run2, 40)
        assert result2.ok, result2.summary()
        deadline = time.monotonic() + 10
        while await desk.agent_state() != "available":
            assert time.monotonic() < deadline, "agent not available after wrap-up"
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(capture.stop)

    # -------- the ACD's records, as saved in the engine's database
    records = await _until(
        lambda: (r := desk.records()) and sum(isinstance(x, CallCompleted) for x in r) == 2 and r,
        5,
        "both completed calls saved",
    )
    enqueued = [r for r in records if isinstance(r, CallEnqueued)]
    answered = [r for r in records if isinstance(r, CallAnswered)]
    completed = [r for r in records if isinstance(r, CallCompleted)]
    assert [r.call for r in enqueued] == [first, second]
    assert [r.position for r in enqueued] == [1, 2]
    assert [r.call for r in answered] == [first, second]  # arrival order
    assert all(r.agent == "ann" for r in answered)
    assert answered[0].wait == pytest.approx(ready_at - enqueued[0].t, abs=1.5)
    assert answered[1].wait > answered[0].wait + 10  # waited through call 1 and wrap-up
    assert [r.call for r in completed] == [first, second]
    assert all(r.wrap_up == pytest.approx(3.0, abs=0.3) and r.talk > 3 for r in completed)
    assert completed[0].hold == pytest.approx(1.5, abs=0.4) and completed[1].hold == 0
    states = [(r.old, r.new) for r in records if isinstance(r, AgentStateRecord)]
    assert states[-3:] == [
        ("reserved", "on_call"),
        ("on_call", "wrap_up"),
        ("wrap_up", "available"),
    ]

    # -------- audio, agent side: baresip heard each caller, and only that caller
    heard_by_agent = [read_wav(p)[0] for p in desk.agent.received_wavs]
    said_by_agent = [read_wav(p)[0] for p in desk.agent.sent_wavs]
    assert len(heard_by_agent) == len(said_by_agent) == 2
    for index, (mine, other) in enumerate(((CALLER_1, CALLER_2), (CALLER_2, CALLER_1))):
        heard = heard_by_agent[index]
        assert len(heard) > 4 * RATE
        window = heard[RATE : 3 * RATE]
        assert _best_correlation(window, mine) > 0.9, f"agent did not hear caller {index + 1}"
        assert _best_correlation(window, other) < 0.5

    # -------- audio, caller side: SIPp received the agent's voice and the announcements
    for index, (run, said) in enumerate(((caller1, said_by_agent[0]), (caller2, said_by_agent[1]))):
        received = _received_audio(capture.path, run.media_port)
        assert _best_correlation(said[RATE : 3 * RATE], received) > 0.9, (
            f"caller {index + 1} did not hear the agent"
        )
    received2 = _received_audio(capture.path, caller2.media_port)
    for played in acd.played[second][:2]:
        spoken = await acd.announcer.speak(played.text)
        assert spoken is not None
        assert _best_correlation(np.asarray(spoken.audio), received2) > 0.9, played.text

    # -------- the engine's capture of caller 1: left the caller, right what they heard
    name = safe_name(first) + ".wav"
    await recordings_finished(desk.engine, 2)
    stereo = _wav(next((desk.engine.config.data_dir / "recordings").rglob(name)))
    assert _best_correlation(CALLER_1[2 * RATE : 4 * RATE], stereo[:, 0]) > 0.9
    assert _best_correlation(said_by_agent[0][RATE : 3 * RATE], stereo[:, 1]) > 0.9
    assert desk.engine.calls is not None
    (info,) = [i for i in desk.engine.calls.finished_calls if i.call_id == first]
    assert acd.clock is not None
    hold = int((acd.clock.loop_time(held_at) - info.started) * RATE)
    # The capture starts at the stream's first clock tick, up to a period after
    # the call's start: look from a little before the hold.
    window = stereo[hold - int(0.1 * RATE) : hold + int(1.5 * RATE), 1]
    assert _best_correlation(comfort_tone()[: int(0.6 * RATE)], window) > 0.9

    # -------- the bridged calls, waiters and agent legs left no reference cycles
    await asyncio.sleep(1.0)  # the last transports close on later loop passes
    assert not engine_garbage_cycles()


async def test_ring_no_answer_cancels_then_the_caller_overflows_to_the_flow(
    desk_factory: Callable[..., Any],
) -> None:
    desk: Desk = await desk_factory(auto_answer=False, ring_timeout=3, max_wait=12)
    await desk.state("ann", "ready")
    caller = desk.caller("caller", CALLER_1, "uac_queue_wait_bye.xml")
    run = await caller.start_async()
    # The engine rings the agent's phone; nobody picks up; after 3 s it cancels.
    await asyncio.to_thread(
        desk.agent.wait_for_event, lambda e: e.get("type") == "CALL_INCOMING", 20
    )
    await asyncio.to_thread(desk.agent.wait_for_event, lambda e: e.get("type") == "CALL_CLOSED", 10)
    view = await desk.get("/acd/agents/ann")
    assert (view["state"], view["reason"]) == ("not_ready", "rna")
    # Nobody else: after max_wait the flow takes its overflow branch and says goodbye.
    result = await _wait_sipp(run, 40)
    assert result.ok, result.summary()
    recent = await desk.get("/calls/recent")
    flow = recent[0]["flow"]
    assert [step["node"] for step in flow["path"]] == ["hello", "line", "sorry"]
    records = await _until(
        lambda: [r for r in desk.records() if isinstance(r, CallOverflowed)] and desk.records(),
        5,
        "the overflow saved",
    )
    offered = [r for r in records if isinstance(r, CallOffered)]
    requeued = [r for r in records if isinstance(r, CallRequeued)]
    (overflowed,) = [r for r in records if isinstance(r, CallOverflowed)]
    assert [(r.agent, r.trigger) for r in offered] == [("ann", "call_arrived")]
    assert [(r.agent, r.reason) for r in requeued] == [("ann", "rna")]
    assert requeued[0].t - offered[0].t == pytest.approx(3.0, abs=0.1)
    assert (overflowed.reason, overflowed.action) == ("max_wait", "flow")
    assert overflowed.wait == pytest.approx(12.0, abs=0.1)
    assert not any(isinstance(r, CallAnswered) for r in records)


async def test_caller_who_hangs_up_while_waiting_is_abandoned(
    desk_factory: Callable[..., Any],
) -> None:
    desk: Desk = await desk_factory()  # the agent stays logged out: nobody serves
    caller = desk.caller(
        "caller", CALLER_2[: 20 * RATE], "uac_inband.xml", 10, codec="PCMU", pcap="inband.pcap"
    )
    result = await _wait_sipp(await caller.start_async(), 40)  # SIPp hangs up after 10 s
    assert result.ok, result.summary()
    records = await _until(
        lambda: [r for r in desk.records() if isinstance(r, CallAbandoned)] and desk.records(),
        5,
        "the abandon saved",
    )
    (enqueued,) = [r for r in records if isinstance(r, CallEnqueued)]
    (abandoned,) = [r for r in records if isinstance(r, CallAbandoned)]
    assert (abandoned.call, abandoned.position, abandoned.ewt) == (enqueued.call, 1, None)
    assert 5.0 < abandoned.wait < 10.0 and not abandoned.while_ringing
    recent = await desk.get("/calls/recent")
    assert recent[0]["flow"]["outcome"] == "abandoned"
    queues = await desk.get("/acd/queues")
    assert (queues[0]["waiting"], queues[0]["today"]["abandoned"]) == (0, 1)
    # What the caller heard while waiting: the announcement, then the comfort tone.
    played = desk.acd.played[enqueued.call]
    assert [p.text for p in played][:2] == ["You are next in line."] * 2
    name = safe_name(enqueued.call) + ".wav"
    await recordings_finished(desk.engine)
    heard = _wav(next((desk.engine.config.data_dir / "recordings").rglob(name)))[:, 1]
    spoken = await desk.acd.announcer.speak(played[0].text)
    assert spoken is not None
    assert _best_correlation(np.asarray(spoken.audio), heard) > 0.9
    assert _best_correlation(comfort_tone()[: int(0.6 * RATE)], heard) > 0.9
