"""The history over HTTP, fed by a real call: a SIPp call lands in its caller's
timeline by itself, the transcript handed over later (as the transcription
workers do) becomes searchable, chat/e-mail/SMS come in through the API, and
bad requests get 400/404/409 naming the field."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from recordings.store import RecordingStore
from recordings.worker import find_history
from tests.conftest import engine_config
from tests.peers.sipp import Sipp

FLOWS = Path(__file__).parent / "data" / "flows_sipp"
pytestmark = pytest.mark.peer


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = Engine(engine_config(tmp_path, flows_dir=FLOWS))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


async def _http(engine: Engine, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    assert engine.http is not None
    url = f"http://127.0.0.1:{engine.http.port}{path}"
    async with aiohttp.ClientSession() as session:
        kwargs: dict[str, Any] = {}
        if isinstance(body, str):
            kwargs["data"] = body
        elif body is not None:
            kwargs["json"] = body
        async with session.request(method, url, **kwargs) as resp:
            return resp.status, await resp.json()


async def test_call_lands_in_the_timeline_beside_messages_and_is_searchable(
    served: Engine,
) -> None:
    engine = served
    sipp = Sipp("uac_pcap", remote=f"{engine.sip.host}:{engine.sip.port}", service="5000")
    result = await sipp.run_async()
    assert result.ok, result.summary()
    store = RecordingStore(engine.config.data_dir / "callcore.db")
    for _ in range(100):
        rows = store.list()
        if rows and rows[0].status == "complete":
            break
        await asyncio.sleep(0.05)
    (row,) = store.list()
    assert engine.recorder is not None
    await asyncio.to_thread(engine.recorder.drain)  # listeners have run

    # The caller (SIPp's From: sip:sipp@127.0.0.1) is a contact with the call on its timeline.
    status, body = await _http(
        engine,
        "POST",
        "/history/interactions",
        {
            "channel": "chat",
            "contact": {"sip": "sip:sipp@127.0.0.1", "email": "sipp@example.com"},
            "occurred_at": "2030-01-01T09:00:00Z",
            "body": "Following up on my call about the voicemail box.",
            "external_id": "chat-1",
        },
    )
    assert status == 201, body
    contact = body["contact_id"]
    status, again = await _http(
        engine,
        "POST",
        "/history/interactions",
        {
            "channel": "chat",
            "contact": {"email": "sipp@example.com"},
            "occurred_at": "2030-01-01T09:00:00Z",
            "body": "Following up on my call about the voicemail box.",
            "external_id": "chat-1",
        },
    )
    assert status == 200 and again == {"id": body["id"], "contact_id": contact, "created": False}
    status, timeline = await _http(engine, "GET", f"/history/contacts/{contact}/timeline")
    assert status == 200, timeline
    channels = [(i["channel"], i["external_id"]) for i in timeline["interactions"]]
    assert channels == [("chat", "chat-1"), ("voice", row.call_id)]
    voice = timeline["interactions"][1]
    assert voice["meta"]["recording"] == row.path and voice["meta"]["flow"] == "menu"
    assert voice["meta"]["disposition"] == "caller_hangup" and voice["body"] == ""

    # The transcription worker's hook: the same store, found the way the worker finds it.
    sink = find_history("auto", engine.config.data_dir / "callcore.db")
    assert sink is not None
    sink.attach_transcript(
        row.call_id,
        {
            "segments": [
                {"speaker": "caller", "text": "I want to change my billing address."},
                {"speaker": "agent", "text": "Press one for A, or two for B."},
            ],
            "summary": {"words": 16},
        },
    )
    status, found = await _http(engine, "GET", "/history/search?q=billing+address")
    assert status == 200, found
    assert [r["external_id"] for r in found["results"]] == [row.call_id]
    assert "[billing] [address]" in found["results"][0]["snippet"]
    status, found = await _http(engine, "GET", f"/history/search?q=voicemail&contact={contact}")
    assert [r["channel"] for r in found["results"]] == ["chat"]

    # A second contact turns out to be the same person: merge.
    status, other = await _http(
        engine,
        "POST",
        "/history/interactions",
        {"channel": "sms", "contact": {"phone": "+1 212 555 0199"}, "occurred_at":
         "2030-01-02T09:00:00Z", "body": "New number, same person."},
    )  # fmt: skip
    assert status == 201
    status, merged = await _http(
        engine,
        "POST",
        "/history/contacts/merge",
        {"into": contact, "from": other["contact_id"], "by": "test"},
    )
    assert status == 200 and merged["merged_ids"] == [other["contact_id"]]
    status, timeline = await _http(
        engine, "GET", f"/history/contacts/{other['contact_id']}/timeline?limit=2"
    )
    assert [i["channel"] for i in timeline["interactions"]] == ["sms", "chat"]
    assert timeline["contact"]["id"] == contact

    # Refusals name the field; nothing is stored.
    for method, path, payload, code, field in [
        ("POST", "/history/interactions", "{not json", 400, "body"),
        ("POST", "/history/interactions", {"channel": "sms"}, 400, "contact"),
        ("POST", "/history/interactions", {"channel": "sms", "contact": {"id": 999},
         "occurred_at": "2030-01-01T00:00:00Z", "body": "x"}, 404, "contact.id"),
        ("GET", "/history/contacts/999/timeline", None, 404, "id"),
        ("GET", "/history/contacts/abc/timeline", None, 400, "id"),
        ("GET", f"/history/contacts/{contact}/timeline?limit=0", None, 400, "limit"),
        ("GET", f"/history/contacts/{contact}/timeline?before=yesterday", None, 400, "before"),
        ("GET", "/history/search", None, 400, "q"),
        ("GET", "/history/search?q=%21%21", None, 400, "q"),
        ("POST", "/history/contacts/merge", {"into": contact}, 400, "from"),
        ("POST", "/history/contacts/merge", {"into": contact, "from": contact}, 409, "from"),
    ]:  # fmt: skip
        status, body = await _http(engine, method, path, payload)
        assert (status, body.get("field")) == (code, field), (path, payload, body)
        assert body["error"]
    status, timeline = await _http(engine, "GET", f"/history/contacts/{contact}/timeline")
    assert len(timeline["interactions"]) == 3
