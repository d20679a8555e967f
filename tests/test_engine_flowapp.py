"""The flow driver's pieces that need no phone call.

* lookups against a real HTTP server on 127.0.0.1 and a real SQLite file;
* prompts: prerender of a loaded flow set with espeak-ng (English and a
  Spanish voice), files under the flows folder (reloaded when changed,
  refused outside it), Asterisk sounds, dynamic texts;
* GET /calls/recent, the URI helpers.
(The whole driver on real calls: tests/test_engine_flow_sipp.py.)
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from engine.flowapp import FlowApplication, FlowCallRecord, recent_calls, transfer_uri, uri_user
from engine.flowprompts import PromptError, PromptLibrary, prerender
from engine.http import build_app
from engine.metrics import EngineMetrics
from ivr.actions import Lookup, PlayFile, SayText, Silence, Tone
from ivr.loader import load_flowset
from media.call import CallInfo
from media.prompts.sounds import SoundLibrary
from media.prompts.tones import tone
from media.prompts.tts import TtsRenderer
from recordings.contacts import SqliteContacts

SOUNDS = Path("/usr/share/asterisk/sounds/en")
NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)


def write_wav(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(audio.astype("<i2").tobytes())


def library(tmp_path: Path, folder: Path | None = None) -> PromptLibrary:
    tts = TtsRenderer(tmp_path / "tts", use_pyttsx3=False)
    return PromptLibrary(flows_dir=folder or tmp_path, sounds=SoundLibrary([SOUNDS]), tts=tts)


def app(tmp_path: Path, directory: Any = None) -> FlowApplication:
    return FlowApplication(
        lambda: None,  # type: ignore[arg-type,return-value]
        library(tmp_path),
        EngineMetrics(),
        voicemail_dir=tmp_path / "vm",
        directory=directory,
    )


# ------------------------------------------------------------------ lookups
@pytest.fixture
async def crm() -> AsyncIterator[str]:
    """A CRM-like JSON API on a free port."""

    async def customer(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key == "81312345678":
            return web.json_response({"name": "Aiko", "tier": "vip"})
        if key == "broken":
            return web.json_response({"error": "db down"}, status=500)
        if key == "list":
            return web.json_response([1, 2])
        if key == "text":
            return web.Response(text="<html>")
        if key == "slow":
            await asyncio.sleep(2)
            return web.json_response({})
        return web.json_response({"error": "no such customer"}, status=404)

    server = web.Application()
    server.router.add_get("/customers/{key}", customer)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/customers"
    finally:
        await runner.cleanup()


async def test_http_lookup_found_missing_and_failures(tmp_path: Path, crm: str) -> None:
    flows = app(tmp_path)
    try:

        async def get(key: str, timeout: float = 2.0) -> Any:
            return await flows.lookup(Lookup("http", key, f"{crm}/{key}", timeout))

        found = await get("81312345678")
        assert (found.record, found.error) == ({"name": "Aiko", "tier": "vip"}, None)
        missing = await get("0000")
        assert (missing.record, missing.error) == (None, None)
        assert (await get("broken")).error == f"HTTP 500 from {crm}/broken"
        assert (await get("list")).error == f"{crm}/list did not return a JSON object"
        assert (await get("text")).error.startswith("JSONDecodeError")
        started = time.monotonic()
        slow = await get("slow", timeout=0.3)
        assert slow.error == f"timed out after 0.3 s: {crm}/slow"
        assert time.monotonic() - started < 1.5
        refused = await flows.lookup(Lookup("http", "x", "http://127.0.0.1:9/x", 1.0))
        assert refused.record is None and refused.error.startswith("ClientConnectorError")
    finally:
        await flows.close()


async def test_history_lookup_in_sqlite_and_its_failures(tmp_path: Path) -> None:
    contacts = SqliteContacts(tmp_path / "contacts.sqlite3")
    contacts.add(name="Aiko", phones=["+81 3-1234-5678"], tier="vip", now=NOW)
    flows = app(tmp_path, contacts)
    got = await flows.lookup(Lookup("history", "+81312345678", None, 2.0))
    assert got.error is None and got.record is not None and got.record["name"] == "Aiko"
    assert (await flows.lookup(Lookup("history", "+1555", None, 2.0))).record is None

    class Broken:
        def get(self, key: str) -> None:
            raise OSError("disk I/O error")

    class Slow:
        def get(self, key: str) -> None:
            time.sleep(0.5)

    got = await app(tmp_path, Broken()).lookup(Lookup("history", "x", None, 1.0))
    assert got.error == "OSError: disk I/O error"
    got = await app(tmp_path, Slow()).lookup(Lookup("history", "x", None, 0.1))
    assert got.error == "timed out after 0.1 s"
    got = await app(tmp_path).lookup(Lookup("history", "x", None, 1.0))
    assert got.error == "no customer directory is configured"


# ------------------------------------------------------------------ prompts
FLOW = """\
flow: main
languages: [en, es]
start: hi
nodes:
  hi:
    type: say
    text: {en: Welcome., es: Bienvenido.}
    next: m
  m:
    type: menu
    prompt:
      - say: "Hello {{ caller }}."
      - play: prompts/jingle.wav
      - play: sound:vm-intro
      - silence: 200
      - tone: beep
      - say: Press one.
    options: {"1": hi}
    no_input: bye
  bye: {type: hangup, prompt: Welcome.}
"""


async def test_prerender_texts_per_language_and_files(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "main.yaml").write_text(FLOW)
    (folder / "routes.yaml").write_text("default: main\n")
    write_wav(folder / "prompts" / "jingle.wav", tone((440,), 300))
    flowset = load_flowset(folder, sounds=SoundLibrary([folder / "prompts", SOUNDS]))
    lib = library(tmp_path, folder)
    try:
        report = await prerender(flowset, lib)
        # "Welcome." (twice in the flow: once), "Bienvenido." (voice es), "Press one.";
        # the template "Hello {{ caller }}." waits for a call.
        assert (report.speech, report.files, report.errors) == (3, 2, [])
        assert lib.tts is not None and lib.tts.syntheses == 2
        assert set(lib._voices) == {"es"} and lib._voices["es"].syntheses == 1
        welcome = await lib.speech(SayText("Welcome.", "en"))
        assert welcome.duration > 0.3
        bienvenido = await lib.speech(SayText("Bienvenido.", "es"))
        assert bienvenido is not welcome
        assert lib.tts.syntheses == 2  # both from the cache: a dict lookup per call
        # a dynamic text is rendered when a call reaches it, then cached
        await lib.speech(SayText("Hello +15550100.", "en"))
        await lib.speech(SayText("Hello +15550100.", "en"))
        assert lib.tts.syntheses == 3
        # every kind of part
        errors: list[str] = []
        parts = await lib.parts(
            [PlayFile("prompts/jingle.wav"), PlayFile("sound:vm-intro"), Silence(200), Tone()],
            lambda item, error: errors.append(error),
            folder=folder,
        )
        assert [len(p) for p in parts][:1] == [2400] and len(parts[2]) == 1600 and not errors
        assert len(parts[3]) == 2000  # the 250 ms beep
        # a changed file is read again by the next prerender
        write_wav(folder / "prompts" / "jingle.wav", tone((440,), 500))
        assert len(await lib.file("prompts/jingle.wav", folder=folder)) == 2400
        await prerender(flowset, lib)
        assert len(await lib.file("prompts/jingle.wav", folder=folder)) == 4000
    finally:
        lib.close()


async def test_prompt_failures_are_reported_and_skipped(tmp_path: Path) -> None:
    lib = library(tmp_path)
    try:
        errors: list[str] = []
        parts = await lib.parts(
            [PlayFile("../outside.wav"), PlayFile("sound:no-such-sound"), Tone()],
            lambda item, error: errors.append(error),
        )
        assert len(parts) == 1
        assert errors[0] == (
            f"play '../outside.wav': the file must be inside the flows folder {tmp_path.resolve()}"
        )
        assert errors[1].startswith("play 'sound:no-such-sound': sound 'no-such-sound' not found")
        with pytest.raises(PromptError, match=r"unknown TTS voice .no-such-voice-zz.: use"):
            await lib.speech(SayText("x", "en", voice="no-such-voice-zz"))
    finally:
        lib.close()
    with pytest.raises(PromptError, match="no TTS renderer is configured"):
        await PromptLibrary(flows_dir=tmp_path, sounds=SoundLibrary([]), tts=None).speech(
            SayText("x", "en")
        )


# ---------------------------------------------------------- recent, helpers
async def test_calls_recent_endpoint_and_merge() -> None:
    infos = [
        CallInfo(f"c{i}", f"sip:{i}@x", "sip:5000@e", ("127.0.0.1", 5060), "udp", 0.0, 1.8e9 + i)
        for i in range(3)
    ]
    infos[2].digits.append((1.0, "1", "rfc4733"))
    records = [FlowCallRecord("c2", "main", "d" * 64, "2", "5000", "t0", "t1", "queue", "sales")]
    listed = recent_calls(infos, records, limit=2)
    assert [c["call_id"] for c in listed] == ["c2", "c1"]
    assert listed[0]["digits"] == "1" and listed[0]["flow"]["outcome"] == "queue"
    assert "flow" not in listed[1]
    assert listed[1]["started"] == "2027-01-15T08:00:01+00:00"

    asked: list[int] = []

    def provider(limit: int) -> list[dict[str, Any]]:
        asked.append(limit)
        return listed[:limit]

    runner = web.AppRunner(build_app(EngineMetrics(), lambda: {"status": "ok"}, provider))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/calls/recent?limit=1") as resp:
                assert resp.status == 200 and [c["call_id"] for c in await resp.json()] == ["c2"]
            async with http.get(f"http://127.0.0.1:{port}/calls/recent?limit=0") as resp:
                assert resp.status == 400
                assert (await resp.json())["error"] == (
                    "limit must be a whole number from 1 to 1000, got '0'"
                )
        assert asked == [1]
    finally:
        await runner.cleanup()


def test_uri_helpers() -> None:
    assert uri_user("sip:5000@10.0.0.1:5060;transport=udp") == "5000"
    assert uri_user("<sip:+81312345678@pbx.example>") == "+81312345678"
    assert uri_user("sip:pbx.example") == "pbx.example"
    assert uri_user("tel:+15550100;phone-context=x") == "+15550100"
    assert uri_user("not a uri") == "not a uri"
    info = CallInfo("c", "sip:a@b", "sip:5000@e", ("10.0.0.5", 5060), "udp", 0.0, 0.0)
    assert transfer_uri("2000", info) == "sip:2000@10.0.0.5"
    assert transfer_uri("sip:sales@pbx.example", info) == "sip:sales@pbx.example"
    assert transfer_uri("tel:+15550100", info) == "tel:+15550100"
    info.remote_addr = ("::1", 5080)
    assert transfer_uri("2000", info) == "sip:2000@[::1]:5080"
