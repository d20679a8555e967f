"""Real calls from SIPp through IVR flows (tests/data/flows_sipp).

* menu (5000): SIPp's uac_pcap presses 1 about 8 s into the call; the flow
  goes menu -> a, the prompt the caller heard is the rendered TTS text
  (found in the engine's capture), and /calls/recent, /metrics and the logs
  say so;
* voicemail (5001): the caller's speech (SIPp's g711a.pcap) is recorded
  until its digit 1, into data/voicemail/test-5001/<call-id>.wav + .json;
* barge-in (5003): the digit cuts a 15 s menu prompt and chooses at once;
* transfer (5002): REFER to sip:2000@<SIPp's address>; a caller phone that
  accepts it (202 + NOTIFY 200) is transferred, one that declines (603)
  takes the flow's ``failed`` branch; both get our BYE.
"""

from __future__ import annotations

import asyncio
import gc
import json
import wave
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from engine.app import Engine
from engine.flowapp import FlowApplication
from ivr.actions import SayText
from tests.conftest import engine_config, engine_garbage_cycles
from tests.peers.sipp import Sipp
from tests.test_engine_sipp import _best_correlation, _capture, _pcap_audio

FLOWS = Path(__file__).parent / "data" / "flows_sipp"
SCENARIOS = Path(__file__).parent / "scenarios"

pytestmark = pytest.mark.peer


@pytest.fixture
async def flow_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = Engine(engine_config(tmp_path, flows_dir=FLOWS))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


async def _get(engine: Engine, path: str) -> Any:
    assert engine.http is not None
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{engine.http.port}{path}") as resp,
    ):
        assert resp.status == 200, await resp.text()
        if resp.content_type == "application/json":
            return await resp.json()
        return await resp.text()


async def _flow_record(engine: Engine) -> dict[str, Any]:
    """The flow run of the one finished call (its task finishes just after the BYE)."""
    for _ in range(50):
        calls = await _get(engine, "/calls/recent")
        if calls and "flow" in calls[0]:
            assert len(calls) == 1, calls
            flow: dict[str, Any] = calls[0]["flow"]
            return flow
        await asyncio.sleep(0.1)
    raise AssertionError(f"no flow run listed: {calls}")


def _app(engine: Engine) -> FlowApplication:
    assert isinstance(engine.flow_app, FlowApplication)
    return engine.flow_app


async def test_menu_digit_from_sipp_reaches_the_node(flow_engine: Engine) -> None:
    sipp = Sipp("uac_pcap", remote=f"{flow_engine.sip.host}:{flow_engine.sip.port}", service="5000")
    result = await sipp.run_async()
    assert result.ok, result.summary()
    record = await _flow_record(flow_engine)
    assert record["flow"] == "menu" and record["called"] == "5000"
    assert record["caller"] == "sipp"
    assert [p["node"] for p in record["path"]] == ["menu", "a"]
    assert record["outcome"] == "caller_hangup"  # SIPp hangs up while "You chose A" plays
    calls = await _get(flow_engine, "/calls/recent?limit=5")
    assert calls[0]["digits"] == "1"
    metrics = await _get(flow_engine, "/metrics")
    assert 'callcore_flow_node_visits_total{flow="menu",node="a"} 1.0' in metrics
    assert 'callcore_flow_node_visits_total{flow="menu",node="b"}' not in metrics
    assert 'callcore_flow_calls_total{flow="menu",outcome="caller_hangup"} 1.0' in metrics
    # What the engine sent the caller starts with the menu prompt, rendered by TTS.
    prompt = await _app(flow_engine).prompts.speech(SayText("Press 1 for A, or 2 for B.", "en"))
    sent = _capture(flow_engine)[:, 1]
    assert _best_correlation(prompt.audio, sent) > 0.9


async def test_voicemail_records_the_callers_speech(flow_engine: Engine) -> None:
    sipp = Sipp("uac_pcap", remote=f"{flow_engine.sip.host}:{flow_engine.sip.port}", service="5001")
    result = await sipp.run_async()
    assert result.ok, result.summary()
    record = await _flow_record(flow_engine)
    assert [p["node"] for p in record["path"]] == ["record", "thanks"]
    folder = flow_engine.config.data_dir / "voicemail" / "test-5001"
    wavs = sorted(folder.glob("*.wav"))
    assert len(wavs) == 1, wavs
    with wave.open(str(wavs[0])) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, 8000, 2)
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    meta = json.loads(wavs[0].with_suffix(".json").read_text())
    assert meta["mailbox"] == "test-5001" and meta["caller"] == "sipp"
    assert meta["called"] == "5001" and meta["flow"] == "message"
    assert meta["seconds"] == pytest.approx(len(audio) / 8000)
    # The digit comes ~8 s after the answer; the beep took 0.25 s; received
    # audio reaches the capture in 1 s batches (up to ~1 s around the ends).
    assert 6.0 <= meta["seconds"] <= 9.5, meta
    speech = _pcap_audio()
    assert _best_correlation(speech[8000 * 2 : 8000 * 5], audio) > 0.9


@pytest.mark.parametrize(
    ("scenario", "outcome", "nodes"),
    [
        ("uac_refer_accept.xml", "transfer", ["away"]),
        ("uac_refer_decline.xml", "hangup", ["away", "refused"]),
    ],
)
async def test_transfer_by_refer(
    flow_engine: Engine, scenario: str, outcome: str, nodes: list[str]
) -> None:
    gc.collect()  # what earlier tests left is not this call's (engine_garbage_cycles)
    sipp = Sipp(
        SCENARIOS / scenario,
        remote=f"{flow_engine.sip.host}:{flow_engine.sip.port}",
        service="5002",
        timeout=30,
        trace_msg=True,
    )
    result = await sipp.run_async()
    assert result.ok, result.summary()
    record = await _flow_record(flow_engine)
    assert [p["node"] for p in record["path"]] == nodes
    assert record["outcome"] == outcome
    assert result.message_trace is not None
    trace = result.message_trace.read_text(errors="replace")
    assert f"Refer-To: <sip:2000@127.0.0.1:{sipp.port}>" in trace
    # A transferred (or refused) call leaves nothing for a full collection.
    assert not engine_garbage_cycles()


async def test_barge_in_digit_stops_a_long_prompt(flow_engine: Engine) -> None:
    sipp = Sipp("uac_pcap", remote=f"{flow_engine.sip.host}:{flow_engine.sip.port}", service="5003")
    result = await sipp.run_async()
    assert result.ok, result.summary()
    record = await _flow_record(flow_engine)
    # SIPp presses 1 about 8 s in and hangs up about 9 s in: only a key that
    # cuts the prompt reaches node a before that.
    assert [p["node"] for p in record["path"]] == ["menu", "a"]
    flowset = _app(flow_engine).current()
    text = " ".join(str(flowset.flows["barge"].nodes["menu"].prompt).split())
    prompt = await _app(flow_engine).prompts.speech(SayText(text, "en"))
    started, chosen = (datetime.fromisoformat(p["at"]) for p in record["path"])
    assert prompt.duration > 12.0
    assert 7.0 < (chosen - started).total_seconds() < 10.0


async def test_engine_started_on_broken_flows_greets_then_serves_the_first_valid_save(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    for name in ("menu.yaml", "routes.yaml"):
        (folder / name).write_text((FLOWS / name).read_text())
    (folder / "routes.yaml").write_text('routes:\n  - {number: "5000", flow: menu}\n')
    good = (folder / "menu.yaml").read_text()
    (folder / "menu.yaml").write_text(good.replace("start: menu", "start: nowhere"))
    eng = Engine(engine_config(tmp_path, flows_dir=folder))
    await eng.start()
    try:
        app = _app(eng)
        assert not app.serving  # no valid version yet: the greeting answers
        remote = f"{eng.sip.host}:{eng.sip.port}"
        first = await Sipp("uac_pcap", remote=remote, service="5000").run_async()
        assert first.ok, first.summary()
        calls = await _get(eng, "/calls/recent")
        assert len(calls) == 1 and "flow" not in calls[0]  # answered by the greeting
        status = await _get(eng, "/flows/status")
        assert "nowhere" in json.dumps(status)  # the refusal names the bad target
        (folder / "menu.yaml").write_text(good)  # the admin fixes and saves
        for _ in range(100):
            if app.serving:
                break
            await asyncio.sleep(0.1)
        assert app.serving
        second = await Sipp("uac_pcap", remote=remote, service="5000").run_async()
        assert second.ok, second.summary()
        for _ in range(50):
            calls = await _get(eng, "/calls/recent")
            if "flow" in calls[0]:
                break
            await asyncio.sleep(0.1)
        assert [p["node"] for p in calls[0]["flow"]["path"]] == ["menu", "a"]
    finally:
        await eng.stop()
