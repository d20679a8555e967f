"""Real calls through the shipped flows (flows/main.yaml, flows/support.yaml).

The engine is started as ``ivr serve`` would start it (its default
application loads the flows folder, renders every prompt with the real TTS,
looks customers up in a real SQLite contacts file) and is called by real
peers on 127.0.0.1:

* baresip (a softphone) presses RFC 4733 digits when the engine has reached
  a node (the ``callcore_flow_node_visits_total`` counter of that node moves),
  and its own dump of the audio it received is checked;
* SIPp plays a scripted caller stream (``play_pcap_audio``): RFC 4733 events
  in one call, in-band DTMF tones (PCMU only, no telephone-event) in another,
  at times computed from the real lengths of the rendered prompts; the
  engine's own capture of what it sent is checked.

Every call is then checked in three ways: the node path of the run as the
engine reports it (``GET /calls/recent``), the prompts the caller heard (each
expected prompt, rendered by the engine's own TTS / sound library, is found
in the received audio by normalised cross-correlation, in the order played;
prompts of paths not taken are not found) and what the call left behind
(voicemail WAV and metadata).

Time of day: the shipped flows check business hours against the real clock,
so each test serves a copy of flows/ in which only the ``hours`` nodes'
``schedule``/``holidays`` are rewritten (ruamel round trip; every other node
is checked to be identical to the shipped one): ``open`` (every day
00:00-24:00, no holidays), ``closed`` (no opening hours) or ``holiday``
(open all day, but yesterday, today and tomorrow in New York are holidays).

Queues: no agent signs in during these tests, so the copy's queues.yaml
sends callers on at once when no agent is signed in (``no_agents:
overflow`` on every queue; nothing else in it changes): the flows' overflow
branches are taken without waiting out each queue's ``max_wait`` (90 s for
the operator). Agents answering real calls are the ACD's own tests.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
import pytest
from ruamel.yaml import YAML

from engine.app import Engine
from ivr.actions import SayText
from ivr.loader import load_flowset
from ivr.model import Flow, HoursNode
from media.g711 import codec_by_name
from media.prompts.tones import beep, dtmf_tone
from recordings.contacts import SqliteContacts
from tests.conftest import FLOWS, engine_config, recordings_finished
from tests.peers.baresip import Baresip, dominant_frequency, read_wav
from tests.peers.sipp import Sipp
from tests.rtp_pcap import write_pcap

pytestmark = pytest.mark.peer

RATE = 8000
NEW_YORK = ZoneInfo("America/New_York")
Hours = Literal["open", "closed", "holiday"]

ANA = {"name": "Ana García", "phone": "+1 212 555 0142", "account": "40012345", "tier": "vip"}
ROBERT = {"name": "Robert Stone", "phone": "+1 646 555 0199", "account": "12345678"}


# ------------------------------------------------------------------ flows
def served_flows(dest: Path, hours: Hours, today: date) -> Path:
    """A copy of flows/ whose ``hours`` nodes are set to ``hours`` (see module doc)."""
    shutil.copytree(FLOWS, dest, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.py"))
    yaml = YAML()  # round trip: comments, order and quoting kept
    yaml.width = 4096
    yaml.preserve_quotes = True
    all_day = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    near = [(today + timedelta(days=k)).isoformat() for k in (-1, 0, 1)]
    queues = yaml.load(dest / "queues.yaml")
    for queue in queues["queues"].values():
        queue["no_agents"] = "overflow"
    with (dest / "queues.yaml").open("w") as fh:
        yaml.dump(queues, fh)
    for path in sorted(dest.glob("*.yaml")):
        if path.name in ("routes.yaml", "queues.yaml"):
            continue
        data = yaml.load(path)
        for node in data["nodes"].values():
            if node["type"] != "hours":
                continue
            node["schedule"] = {} if hours == "closed" else dict(all_day)
            node["holidays"] = near if hours == "holiday" else []
        with path.open("w") as fh:
            yaml.dump(data, fh)
    shipped, served = load_flowset(FLOWS), load_flowset(dest)
    assert shipped.flows.keys() == served.flows.keys()
    for name, flow in shipped.flows.items():
        _same_but_hours(flow, served.flows[name])
    safe = YAML(typ="safe")
    shipped_queues, served_queues = (safe.load(d / "queues.yaml") for d in (FLOWS, dest))
    for queue in (*shipped_queues["queues"].values(), *served_queues["queues"].values()):
        queue.pop("no_agents", None)
    assert shipped_queues == served_queues
    return dest


def _same_but_hours(shipped: Flow, served: Flow) -> None:
    assert shipped.nodes.keys() == served.nodes.keys()
    for node_id, node in shipped.nodes.items():
        other = served.nodes[node_id]
        if isinstance(node, HoursNode):
            assert isinstance(other, HoursNode)
            keep = ("timezone", "open", "closed", "holiday")
            assert [getattr(node, k) for k in keep] == [getattr(other, k) for k in keep]
        else:
            assert node == other, node_id
    assert shipped.model_dump(exclude={"nodes"}) == served.model_dump(exclude={"nodes"})


# ----------------------------------------------------------------- engine
@dataclass
class Served:
    """A running engine serving a copy of the shipped flows."""

    engine: Engine
    data: Path

    @property
    def sip_host(self) -> str:
        return self.engine.sip.host

    @property
    def sip_port(self) -> int:
        return self.engine.sip.port

    def visits(self, flow: str, node: str) -> int:
        value = self.engine.metrics.registry.get_sample_value(
            "callcore_flow_node_visits_total", {"flow": flow, "node": node}
        )
        return int(value or 0)

    async def wait_visit(self, flow: str, node: str, count: int = 1, timeout: float = 40) -> None:
        """Until the node was entered ``count`` times (a call reached it)."""
        deadline = time.monotonic() + timeout
        while self.visits(flow, node) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no call reached {flow}:{node} within {timeout:g} s; "
                    f"recent: {json.dumps(await self.recent(), indent=1)[-3000:]}"
                )
            await asyncio.sleep(0.05)

    async def recent(self) -> list[dict[str, Any]]:
        assert self.engine.http is not None
        url = f"http://127.0.0.1:{self.engine.http.port}/calls/recent?limit=10"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert isinstance(body, list)
        return body

    async def finished_run(self, timeout: float = 20) -> dict[str, Any]:
        """The flow record of the one call made (once it finished)."""
        deadline = time.monotonic() + timeout
        while True:
            calls = await self.recent()
            if calls and "flow" in calls[0] and calls[0]["flow"]["outcome"]:
                assert len(calls) == 1, calls
                flow = calls[0]["flow"]
                assert isinstance(flow, dict)
                return flow
            if time.monotonic() > deadline:
                raise AssertionError(f"no finished flow run: {calls}")
            await asyncio.sleep(0.1)

    async def say(self, text: str, language: str = "en") -> np.ndarray:
        """The audio the engine plays for ``text`` (its TTS, its cache)."""
        app = self.engine.flow_app
        assert app is not None
        prompt = await app.prompts.speech(SayText(text, language, None))
        return np.asarray(prompt.audio)

    async def sound(self, ref: str) -> np.ndarray:
        app = self.engine.flow_app
        assert app is not None
        return np.asarray((await app.prompts.file(ref)).audio)

    async def seconds(self, text: str, language: str = "en") -> float:
        return len(await self.say(text, language)) / RATE


ServeFactory = Callable[[Hours], Awaitable[Served]]


@pytest.fixture(scope="module")
def tts_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One TTS disk cache for the module's engines (prompts render once)."""
    return tmp_path_factory.mktemp("tts")


@pytest.fixture
async def serve(tmp_path: Path, tts_cache: Path) -> AsyncIterator[ServeFactory]:
    """Starts an engine on a copy of the shipped flows with the given hours."""
    engines: list[Engine] = []

    async def start(hours: Hours) -> Served:
        today = datetime.now(NEW_YORK).date()
        flows = served_flows(tmp_path / "flows", hours, today)
        data = tmp_path / "data"
        data.mkdir()
        (data / "tts").symlink_to(tts_cache, target_is_directory=True)
        contacts = SqliteContacts(data / "callcore.db")
        now = datetime.now(UTC)
        contacts.add(
            name=ANA["name"],
            phones=[ANA["phone"]],
            account=ANA["account"],
            tier=ANA["tier"],
            language="en",
            now=now,
        )
        contacts.add(
            name=ROBERT["name"],
            phones=[ROBERT["phone"]],
            account=ROBERT["account"],
            tier="standard",
            language="es",
            now=now,
        )
        engine = Engine(engine_config(tmp_path, flows_dir=flows, data_dir=data))
        await engine.start()
        engines.append(engine)
        assert engine.flow_app is not None, "the engine did not load the shipped flows"
        return Served(engine, data)

    try:
        yield start
    finally:
        for engine in engines:
            await engine.stop()


# ------------------------------------------------------------------ audio
def locate(
    reference: np.ndarray, signal: np.ndarray, *, earliest: bool = False
) -> tuple[float, int]:
    """(peak normalised cross-correlation, lag in samples) of ``reference`` in ``signal``.

    ``earliest``: of the places that match as well as the peak (within 0.01; a
    prompt played twice matches twice), the first."""
    ref = reference.astype(np.float64)
    # zeros after the end: a prompt cut short by the end of the call still matches
    sig = np.pad(signal.astype(np.float64), (0, len(ref)))
    n = len(ref) + len(sig)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(sig, size) * np.conj(np.fft.rfft(ref, size)), size)
    # normalise by the energy of each window of the signal (a loud passage
    # elsewhere must not hide a match)
    energy = np.concatenate([[0.0], np.cumsum(sig * sig)])
    starts = np.arange(len(sig) - len(ref) + 1)
    windows = np.sqrt(np.maximum(energy[starts + len(ref)] - energy[starts], 1e-9))
    scores = corr[: len(starts)] / (windows * np.linalg.norm(ref))
    lag = int(np.argmax(scores))
    if earliest:
        lag = int(np.argmax(scores >= scores[lag] - 0.01))
    return float(scores[lag]), lag


def assert_heard_in_order(
    signal: np.ndarray, prompts: list[tuple[str, np.ndarray]], floor: float = 0.8
) -> list[int]:
    """Each prompt is in ``signal`` (correlation above ``floor``), each one after
    the end of the one before; returns where each starts (samples)."""
    lags: list[int] = []
    report = []
    start = 0
    for name, audio in prompts:
        score, lag = locate(audio, signal[start:], earliest=True)
        lag += start
        report.append(f"{name}: {score:.3f} at {lag / RATE:.2f} s")
        assert score > floor, "; ".join(report)
        lags.append(lag)
        start = lag + max(0, len(audio) - RATE // 10)
    return lags


def assert_not_heard(
    signal: np.ndarray, name: str, audio: np.ndarray, ceiling: float = 0.5
) -> None:
    score, lag = locate(audio, signal)
    assert score < ceiling, f"{name} was heard ({score:.3f} at {lag / RATE:.2f} s)"


def path_of(run: dict[str, Any]) -> list[str]:
    """``node`` or ``flow:node`` (outside the entry flow) for every node entered."""
    entry = run["flow"]
    return [p["node"] if p["flow"] == entry else f"{p['flow']}:{p['node']}" for p in run["path"]]


def voicemails(data: Path, mailbox: str) -> list[tuple[Path, dict[str, Any]]]:
    folder = data / "voicemail" / mailbox
    return [
        (p, json.loads(p.with_suffix(".json").read_text())) for p in sorted(folder.glob("*.wav"))
    ]


def wav_mono(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.reshape(-1, w.getnchannels())[:, 0]


# ---------------------------------------------------------------- baresip
def _start_phone(user: str, tone_hz: float, duration: float) -> Baresip:
    return Baresip(user=user, tone_hz=tone_hz, duration=duration).start()


async def test_known_vip_caller_billing_overflow_leaves_voicemail(serve: ServeFactory) -> None:
    """baresip as Ana (VIP, known by her number): English, billing, VIP queue,
    nobody free -> voicemail (her 440 Hz tone is the message) -> goodbye."""
    served = await serve("open")
    phone = await asyncio.to_thread(_start_phone, ANA["phone"].replace(" ", ""), 440.0, 120)
    try:
        target = f"sip:5000@{served.sip_host}:{served.sip_port}"
        await asyncio.to_thread(phone.dial, target)
        await asyncio.to_thread(phone.wait_for_event, "CALL_ESTABLISHED", 10)
        await served.wait_visit("main", "choose_language")
        await asyncio.to_thread(phone.send_dtmf, "1")
        await served.wait_visit("main", "main_menu")
        await asyncio.to_thread(phone.send_dtmf, "1")
        await served.wait_visit("main", "billing_busy")
        await asyncio.sleep(3.0)  # hear the start of it, then barge in
        await asyncio.to_thread(phone.send_dtmf, "1")
        await served.wait_visit("main", "billing_voicemail")
        vm_prompt = "Please leave your name, account number and phone number after the tone."
        # the prompt, the beep, then 3 s of message
        await asyncio.sleep(await served.seconds(vm_prompt) + 0.25 + 3.0)
        await asyncio.to_thread(phone.send_dtmf, "#")
        await served.wait_visit("main", "goodbye_en")
        await asyncio.to_thread(phone.wait_for_event, "CALL_CLOSED", 20)  # the engine hangs up
        await asyncio.sleep(0.5)
        received_path = phone.received_wav
        assert received_path is not None, phone.log()
        received, rate = read_wav(received_path)
    finally:
        await asyncio.to_thread(phone.stop)
    assert rate == RATE
    run = await served.finished_run()
    assert path_of(run) == [
        "welcome",
        "choose_language",
        "hours",
        "lookup_caller",
        "greet_customer",
        "main_menu",
        "billing",
        "billing_priority",
        "billing_vip",
        "billing_busy",
        "billing_voicemail",
        "goodbye",
        "goodbye_en",
    ]
    assert run["outcome"] == "hangup"
    assert run["caller"] == "+12125550142" and run["called"] == "5000"

    heard = np.asarray(received)
    assert_heard_in_order(
        heard,
        [
            ("welcome", await served.say("Thank you for calling Northwind Telecom.")),
            ("greeting by name", await served.say("Welcome back, Ana García.")),
            (
                "billing hold",
                await served.say("Please hold while we connect you with our billing team."),
            ),
            (
                "billing busy (its first 2 s: cut by the key)",
                (
                    await served.say(
                        "All of our billing specialists are helping other customers. To leave a "
                        "message and have us call you back, press 1. To speak with an operator, "
                        "press 0."
                    )
                )[: 2 * RATE],
            ),
            ("voicemail prompt", await served.say(vm_prompt)),
            ("beep", np.asarray(beep())),
            ("thanks", await served.say("Thank you for calling Northwind Telecom.")),
            ("goodbye", await served.sound("sound:goodbye")),
        ],
    )
    assert_not_heard(
        heard,
        "the account prompt",
        await served.say(
            "If you are a Northwind customer, please enter your account number, followed by the "
            "pound key. If not, please hold."
        ),
    )

    [(wav, meta)] = voicemails(served.data, "billing")
    assert meta["caller"] == "+12125550142" and meta["mailbox"] == "billing"
    message = wav_mono(wav)
    assert 2.0 < len(message) / RATE < 6.0, len(message) / RATE
    assert abs(dominant_frequency(message[RATE // 2 :]) - 440) < 10


async def test_after_hours_spanish_caller_leaves_voicemail(serve: ServeFactory) -> None:
    """Closed (no opening hours): baresip presses 2 (Espanol), hears the
    hours in Spanish, leaves a message (her 523 Hz tone), #, goodbye in Spanish."""
    served = await serve("closed")
    phone = await asyncio.to_thread(_start_phone, "sip-caller", 523.0, 120)
    try:
        await asyncio.to_thread(phone.dial, f"sip:5000@{served.sip_host}:{served.sip_port}")
        await asyncio.to_thread(phone.wait_for_event, "CALL_ESTABLISHED", 10)
        await served.wait_visit("main", "choose_language")
        await asyncio.sleep(await served.seconds("For English, press 1.") + 0.5)
        await asyncio.to_thread(phone.send_dtmf, "2")
        await served.wait_visit("main", "general_voicemail")
        await asyncio.sleep(await served.seconds(GENERAL_VM_ES, "es") + 0.25 + 2.5)
        await asyncio.to_thread(phone.send_dtmf, "#")
        await served.wait_visit("main", "goodbye_es")
        await asyncio.to_thread(phone.wait_for_event, "CALL_CLOSED", 20)
        await asyncio.sleep(0.5)
        received_path = phone.received_wav
        assert received_path is not None, phone.log()
        heard = np.asarray(read_wav(received_path)[0])
    finally:
        await asyncio.to_thread(phone.stop)
    run = await served.finished_run()
    assert path_of(run) == [
        "welcome",
        "choose_language",
        "hours",
        "after_hours",
        "general_voicemail",
        "goodbye",
        "goodbye_es",
    ]
    assert run["outcome"] == "hangup"
    say = served.say
    assert_heard_in_order(
        heard,
        [
            ("welcome", await say("Thank you for calling Northwind Telecom.")),
            ("for English", await say("For English, press 1.")),
            ("closed (es)", await say(AFTER_HOURS_ES, "es")),
            ("voicemail prompt (es)", await say(GENERAL_VM_ES, "es")),
            ("beep", np.asarray(beep())),
            ("goodbye (es)", await say("Gracias por llamar a Northwind Telecom. Adiós.", "es")),
        ],
    )
    assert_not_heard(heard, "the English closed message", await say(AFTER_HOURS_EN))
    [(wav, meta)] = voicemails(served.data, "general")
    assert meta["caller"] == "sip-caller"
    message = wav_mono(wav)
    assert 1.5 < len(message) / RATE < 5.0, len(message) / RATE
    assert abs(dominant_frequency(message[RATE // 2 :]) - 523) < 10


async def test_holiday_caller_hangs_up_during_the_message_voicemail_kept(
    serve: ServeFactory,
) -> None:
    """Holiday (open hours, but today is a holiday): baresip presses nothing
    (English by default after the language timeout), hears the holiday
    message, and hangs up 2.5 s into its message: the voicemail is kept."""
    served = await serve("holiday")
    phone = await asyncio.to_thread(_start_phone, "sip-caller", 659.0, 120)
    try:
        await asyncio.to_thread(phone.dial, f"sip:5000@{served.sip_host}:{served.sip_port}")
        await asyncio.to_thread(phone.wait_for_event, "CALL_ESTABLISHED", 10)
        await served.wait_visit("main", "general_voicemail", timeout=60)
        await asyncio.sleep(await served.seconds(GENERAL_VM_EN) + 0.25 + 2.5)
        await asyncio.to_thread(phone.hangup)
        await asyncio.to_thread(phone.wait_for_event, "CALL_CLOSED", 20)
        await asyncio.sleep(0.5)
        received_path = phone.received_wav
        assert received_path is not None, phone.log()
        heard = np.asarray(read_wav(received_path)[0])
    finally:
        await asyncio.to_thread(phone.stop)
    run = await served.finished_run()
    assert path_of(run) == [
        "welcome",
        "choose_language",
        "hours",
        "holiday_closed",
        "general_voicemail",
    ]
    # hanging up is how a message usually ends: the run ends as a voicemail
    assert (run["outcome"], run["detail"]) == ("voicemail", "general")
    say = served.say
    assert_heard_in_order(
        heard,
        [
            ("welcome", await say("Thank you for calling Northwind Telecom.")),
            ("language prompt", await say("For English, press 1.")),
            ("para espanol", await say("Para español, oprima el 2.", "es")),
            (
                "holiday",
                await say(
                    "Our offices are closed today for the holiday. We will be happy to help you on "
                    "our next business day."
                ),
            ),
            ("voicemail prompt", await say(GENERAL_VM_EN)),
            ("beep", np.asarray(beep())),
        ],
    )
    assert_not_heard(heard, "the closed-hours message", await say(AFTER_HOURS_EN))
    [(wav, meta)] = voicemails(served.data, "general")
    message = wav_mono(wav)
    assert 1.5 < len(message) / RATE < 4.5, len(message) / RATE
    assert abs(dominant_frequency(message[RATE // 2 :]) - 659) < 10
    assert meta["seconds"] == pytest.approx(len(message) / RATE)


AFTER_HOURS_EN = (
    "Our offices are now closed. We are open Monday to Friday from 8 AM to 8 PM, and "
    "Saturday from 9 AM to 1 PM, Eastern time."
)
AFTER_HOURS_ES = (
    "Nuestras oficinas están cerradas. Atendemos de lunes a viernes de 8 de la mañana a 8 de "
    "la noche, y los sábados de 9 de la mañana a 1 de la tarde, hora del este."
)
GENERAL_VM_ES = (
    "Por favor, deje su nombre, su número de teléfono y un breve mensaje después del tono. "
    "Oprima numeral al terminar."
)

# ------------------------------------------------------------------- SIPp
SCENARIOS = Path(__file__).parent / "scenarios"
EVENT_PT = 101
KEY_MS = 100  # in-band tone length
EVENT_FRAMES = 8  # RFC 4733: 8 updates of 20 ms (160 ms), then 3 end packets
EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


@dataclass
class CallerStream:
    """What a scripted SIPp caller sends: silence, speech and key presses at
    given seconds from the start of the call, as one RTP stream (PCMU)."""

    seconds: float
    keys: list[tuple[float, str]]
    speech: list[tuple[float, np.ndarray]]

    def press(self, at: float, digits: str, spacing: float = 0.3) -> float:
        """Keys ``digits`` from ``at`` (seconds), ``spacing`` apart; returns the last one's time."""
        for i, digit in enumerate(digits):
            self.keys.append((at + i * spacing, digit))
        return at + (len(digits) - 1) * spacing

    def audio(self, inband: bool) -> np.ndarray:
        pcm = np.zeros(int(self.seconds * RATE), dtype=np.int16)
        for at, sound in self.speech:
            start = int(at * RATE)
            pcm[start : start + len(sound)] = sound[: len(pcm) - start]
        if inband:
            for at, digit in self.keys:
                tone = dtmf_tone(digit, KEY_MS)
                start = int(at * RATE)
                pcm[start : start + len(tone)] = tone
        return pcm

    def packets(self, mode: Literal["rfc4733", "inband"]) -> list[tuple[float, bytes]]:
        """The RTP packets, one every 20 ms; with ``rfc4733`` each key replaces
        11 audio packets by telephone-event packets (marker on the first,
        3 end packets), sequence numbers running on."""
        pcmu = codec_by_name("PCMU")
        pcm = self.audio(inband=mode == "inband")
        frames = len(pcm) // 160
        events: dict[int, tuple[int, int]] = {}  # frame -> (event code, frame index in event)
        if mode == "rfc4733":
            for at, digit in self.keys:
                first = round(at / 0.02)
                for j in range(EVENT_FRAMES + 3):
                    events[first + j] = (EVENT_CODES[digit], j)
        out: list[tuple[float, bytes]] = []
        ssrc = 0x5EED4733
        for i in range(frames):
            if i in events:
                code, j = events[i]
                start = i - j
                end = j >= EVENT_FRAMES
                duration = min(j + 1, EVENT_FRAMES) * 160
                header = struct.pack(
                    "!BBHII",
                    0x80,
                    (0x80 if j == 0 else 0) | EVENT_PT,
                    i & 0xFFFF,
                    start * 160,
                    ssrc,
                )
                payload = struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)
            else:
                header = struct.pack(
                    "!BBHII", 0x80, (0x80 if i == 0 else 0), i & 0xFFFF, i * 160, ssrc
                )
                payload = pcmu.encode(pcm[i * 160 : (i + 1) * 160])
            out.append((1.0 + i * 0.02, header + payload))
        return out


async def engine_capture(served: Served) -> tuple[np.ndarray, np.ndarray]:
    """(what the engine received, what it sent) of the one call, from its recording."""
    await recordings_finished(served.engine)
    files = sorted((served.data / "recordings").rglob("*.wav"))
    assert len(files) == 1, files
    with wave.open(str(files[0])) as w:
        assert w.getnchannels() == 2 and w.getframerate() == RATE
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return data[:, 0], data[:, 1]


async def run_sipp_caller(
    served: Served,
    tmp_path: Path,
    scenario: str,
    caller: str,
    stream: CallerStream,
    mode: Literal["rfc4733", "inband"],
    number: str = "5000",
) -> None:
    run_dir = tmp_path / "sipp"
    run_dir.mkdir()
    write_pcap(run_dir / "flow_caller.pcap", stream.packets(mode))
    sipp = Sipp(
        SCENARIOS / scenario,
        remote=f"{served.sip_host}:{served.sip_port}",
        service=number,
        extra_args=["-key", "caller", caller],
        timeout=stream.seconds + 60,
        run_dir=run_dir,
    )
    result = await sipp.run_async()
    assert result.ok, result.summary() + f" recent={await served.recent()}"


async def test_spanish_unknown_caller_gives_account_support_back_to_main_sales_sipp(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """SIPp (RFC 4733): Spanish, unknown number, account 12345678# -> Robert,
    support, 9 back to the main menu, sales, nobody free -> voicemail, #."""
    served = await serve("open")
    s = served.seconds
    welcome = await s("Thank you for calling Northwind Telecom.")
    greet = await s("Bienvenido de nuevo, Robert Stone.", "es")
    sales = await s("Por favor espere al próximo representante de ventas disponible.", "es")
    sales_vm = await s(
        "Nuestro equipo de ventas está ocupado. Deje su nombre y número de teléfono después "
        "del tono y le llamaremos en un día hábil.",
        "es",
    )
    hello = await served.sound("sound:hello-world")
    stream = CallerStream(0, [], [])
    english = await s("For English, press 1.")
    t = stream.press(welcome + english + 0.8, "2")  # Espanol, during "Para espanol..."
    t = stream.press(t + 2.0, "12345678#")  # during the account prompt
    t = stream.press(t + 0.3 + greet + 2.0, "2")  # support, during the main menu
    t = stream.press(t + 2.0, "9")  # back, during the support menu
    t = stream.press(t + 2.0, "3")  # sales, during the main menu
    recording = t + 0.3 + sales + sales_vm + 0.25
    stream.speech.append((recording + 1.0, hello))
    t = stream.press(recording + 1.0 + len(hello) / RATE + 1.0, "#")
    stream.seconds = t + 8.0
    await run_sipp_caller(served, tmp_path, "uac_flow_rfc4733.xml", "sipp", stream, "rfc4733")

    run = await served.finished_run()
    assert path_of(run) == [
        "welcome",
        "choose_language",
        "hours",
        "lookup_caller",
        "ask_account",
        "lookup_account",
        "greet_customer",
        "main_menu",
        "support:support_hours",
        "support:support_menu",
        "main_menu",
        "sales",
        "sales_queue",
        "sales_voicemail",
        "goodbye",
        "goodbye_es",
    ]
    assert run["outcome"] == "hangup" and run["caller"] == "sipp"
    assert served.engine.calls is not None
    digits = served.engine.calls.finished_calls[-1].digits
    assert [(d, src) for _, d, src in digits] == [(d, "rfc4733") for d in "212345678#293#"]

    received, sent = await engine_capture(served)
    say = served.say
    first = 3 * RATE // 2  # prompts cut by a key: their first 1.5 s
    assert_heard_in_order(
        sent,
        [
            ("welcome", await say("Thank you for calling Northwind Telecom.")),
            ("for English", await say("For English, press 1.")),
            ("para espanol (cut)", (await say("Para español, oprima el 2.", "es"))[: RATE // 2]),
            (
                "account (es)",
                (await say(ASK_ACCOUNT_ES, "es"))[:first],
            ),
            ("greeting (es)", await say("Bienvenido de nuevo, Robert Stone.", "es")),
            ("main menu (es)", (await say(MAIN_MENU_ES, "es"))[:first]),
            ("support menu (es)", (await say(SUPPORT_MENU_ES, "es"))[:first]),
            ("main menu again (es)", (await say(MAIN_MENU_ES, "es"))[:first]),
            (
                "sales (es)",
                await say("Por favor espere al próximo representante de ventas disponible.", "es"),
            ),
            (
                "sales voicemail (es)",
                await say(
                    "Nuestro equipo de ventas está ocupado. Deje su nombre y número de teléfono "
                    "después del tono y le llamaremos en un día hábil.",
                    "es",
                ),
            ),
            ("beep", np.asarray(beep())),
            ("goodbye (es)", await say("Gracias por llamar a Northwind Telecom. Adiós.", "es")),
        ],
    )
    assert_not_heard(sent, "the English main menu", await say(MAIN_MENU_EN))
    [(wav, meta)] = voicemails(served.data, "sales")
    assert meta["caller"] == "sipp"
    score, _ = locate(hello, wav_mono(wav))
    assert score > 0.9, score
    assert locate(hello, received)[0] > 0.9


async def test_inband_invalid_and_no_input_retries_reach_operator_transfer_refused_voicemail(
    serve: ServeFactory, tmp_path: Path
) -> None:
    """SIPp, PCMU only, in-band DTMF tones: Robert (known number), English;
    main menu 7 (invalid), nothing (no input), 8 (invalid): retries exhausted ->
    operator -> nobody free -> transfer to reception refused (603) -> general
    voicemail (he says Asterisk's "hello world") -> # -> goodbye."""
    served = await serve("open")
    s = served.seconds
    welcome = await s("Thank you for calling Northwind Telecom.")
    greet = await s("Welcome back, Robert Stone.")
    menu = await s(MAIN_MENU_EN)
    invalid = await s("Sorry, that is not a valid option.")
    no_selection = await s("Sorry, we did not receive your selection.")
    hold = len(await served.sound("sound:pls-hold-while-try")) / RATE
    unavailable = await s("Sorry, nobody is available to take your call at the moment.")
    vm_prompt = await s(GENERAL_VM_EN)
    hello = await served.sound("sound:hello-world")
    stream = CallerStream(0, [], [])
    t = stream.press(welcome + 1.2, "1")  # English, during "For English, press 1."
    t = stream.press(t + 0.3 + greet + 3.0, "7")  # not an option
    # then "not a valid option" + the menu, 6 s of silence (no input), then
    # "did not receive your selection" + the menu: 8 during it
    t = stream.press(t + 0.3 + invalid + menu + 6.0 + no_selection + 1.6, "8")
    recording = t + 0.3 + hold + 0.2 + unavailable + vm_prompt + 0.25
    stream.speech.append((recording + 1.0, hello))
    t = stream.press(recording + 1.0 + len(hello) / RATE + 1.0, "#")
    stream.seconds = t + 8.0
    caller = ROBERT["phone"].replace(" ", "")
    await run_sipp_caller(served, tmp_path, "uac_flow_inband_refer.xml", caller, stream, "inband")

    run = await served.finished_run()
    assert path_of(run) == [
        "welcome",
        "choose_language",
        "hours",
        "lookup_caller",
        "greet_customer",
        "main_menu",
        "operator",
        "reception_notice",
        "reception_notice_en",
        "reception",
        "reception_unavailable",
        "general_voicemail",
        "goodbye",
        "goodbye_en",
    ]
    assert run["outcome"] == "hangup" and run["caller"] == caller
    assert served.engine.calls is not None
    digits = served.engine.calls.finished_calls[-1].digits
    assert [(d, src) for _, d, src in digits] == [(d, "inband") for d in "178#"]

    received, sent = await engine_capture(served)
    say = served.say
    menu_audio = await say(MAIN_MENU_EN)
    cut = 3 * RATE // 2
    assert_heard_in_order(
        sent,
        [
            ("welcome", await say("Thank you for calling Northwind Telecom.")),
            ("greeting", await say("Welcome back, Robert Stone.")),
            ("main menu (cut by 7)", menu_audio[:cut]),
            ("not a valid option", await say("Sorry, that is not a valid option.")),
            ("main menu (whole: no key)", menu_audio),
            ("no selection", await say("Sorry, we did not receive your selection.")),
            ("main menu (cut by 8)", menu_audio[:RATE]),
            ("please hold (Asterisk)", await served.sound("sound:pls-hold-while-try")),
            (
                "nobody available",
                await say("Sorry, nobody is available to take your call at the moment."),
            ),
            ("voicemail prompt", await say(GENERAL_VM_EN)),
            ("beep", np.asarray(beep())),
            ("thanks", await say("Thank you for calling Northwind Telecom.")),
            ("goodbye (Asterisk)", await served.sound("sound:goodbye")),
        ],
    )
    [(wav, meta)] = voicemails(served.data, "general")
    assert meta["caller"] == caller and meta["flow"] == "main"
    message = wav_mono(wav)
    score, lag = locate(hello, message)
    assert score > 0.9, score
    assert 0.5 < lag / RATE < 2.0  # recorded from the beep on: his silence, then the words
    assert locate(hello, received)[0] > 0.9


GENERAL_VM_EN = (
    "Please leave your name, your phone number and a short message after the tone. Press "
    "pound when you are done."
)

ASK_ACCOUNT_ES = (
    "Si es cliente de Northwind, marque su número de cuenta, seguido de la tecla numeral. Si "
    "no, permanezca en la línea."
)
MAIN_MENU_EN = (
    "For billing and payments, press 1. For technical support, press 2. For new services "
    "and plans, press 3. To speak with an operator, press 0. To hear these options again, "
    "press star."
)
MAIN_MENU_ES = (
    "Para facturación y pagos, oprima 1. Para soporte técnico, oprima 2. Para nuevos "
    "servicios y planes, oprima 3. Para hablar con una operadora, oprima 0. Para escuchar "
    "estas opciones de nuevo, oprima asterisco."
)
SUPPORT_MENU_ES = (
    "Soporte técnico. Para internet, oprima 1. Para telefonía móvil, oprima 2. Para "
    "televisión, oprima 3. Para volver al menú principal, oprima 9."
)
