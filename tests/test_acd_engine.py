"""The ACD inside a running engine, without calls: the supervisor API's
answers and errors, agent states kept across a restart in the engine's
SQLite file, and queues.yaml changes applied live (or refused, keeping the
configuration in force).

The engine serves a copy of tests/data/flows_acd (its agent's phone is never
rung here).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from acd.records import AgentStateRecord
from acd.store import MetricsStore
from engine.app import Engine
from tests.conftest import engine_config

FLOWS = Path(__file__).parent / "data" / "flows_acd"


async def _call(engine: Engine, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    assert engine.http is not None
    url = f"http://127.0.0.1:{engine.http.port}{path}"
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as resp:
        return resp.status, await resp.json()


async def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    shutil.copytree(FLOWS, folder)
    return folder


@pytest.fixture
async def start(tmp_path: Path, flows: Path) -> AsyncIterator[Callable[[], Any]]:
    """Starts engines on the same flows folder and data folder."""
    running: list[Engine] = []

    async def go() -> Engine:
        engine = Engine(engine_config(tmp_path, flows_dir=flows))
        await engine.start()
        running.append(engine)
        return engine

    try:
        yield go
    finally:
        for engine in running:
            await engine.stop()


async def test_agent_state_requests_and_their_errors(start: Callable[[], Any]) -> None:
    engine: Engine = await start()
    state = "/acd/agents/ann/state"

    status, body = await _call(engine, "POST", "/acd/agents/nobody/state", json={"state": "ready"})
    assert (status, body) == (404, {"error": "unknown agent 'nobody' (known: ann)"})
    status, body = await _call(engine, "POST", state, data=b"{state: ready")
    assert status == 400 and body["error"].startswith("body is not JSON (")
    status, body = await _call(engine, "POST", state, json=["ready"])
    assert status == 400 and "body must be a JSON object" in body["error"]
    status, body = await _call(engine, "POST", state, json={})
    assert status == 400
    assert body["error"].startswith('missing "state": one of login, ready, not_ready, logout')
    status, body = await _call(engine, "POST", state, json={"state": "sleeping"})
    assert (status, body["error"]) == (
        400,
        "state must be one of login, ready, not_ready, logout, not 'sleeping'",
    )
    status, body = await _call(engine, "POST", state, json={"state": "ready", "mood": "good"})
    assert (status, body["error"]) == (
        400,
        "unknown field 'mood': only state and reason are accepted",
    )
    status, body = await _call(engine, "POST", state, json={"state": "not_ready", "reason": 5})
    assert (status, body["error"]) == (400, "reason must be text, not int")
    status, body = await _call(engine, "POST", state, json={"state": "ready", "reason": "x"})
    assert (status, body["error"]) == (400, "a reason goes with not_ready only, not with ready")
    status, body = await _call(engine, "POST", state, json={"state": "not_ready"})
    assert (status, body["error"]) == (
        409,
        "agent 'ann' is logged out: log in first (state login or ready)",
    )
    status, body = await _call(engine, "GET", state)
    assert status == 405 and body["error"] == f"GET is not allowed on {state}; use POST"
    status, body = await _call(engine, "GET", "/acd/nothing")
    assert status == 404 and body["error"].startswith("no such endpoint /acd/nothing")

    # The transitions, each answered with the agent as it is now.
    steps = [
        ({"state": "login"}, ("not_ready", "login")),
        ({"state": "ready"}, ("available", "ready")),
        ({"state": "not_ready", "reason": "lunch"}, ("not_ready", "lunch")),
        ({"state": "ready"}, ("available", "ready")),
        ({"state": "logout"}, ("offline", "logout")),
    ]
    for request, expected in steps:
        status, body = await _call(engine, "POST", state, json=request)
        assert status == 200, body
        assert (body["state"], body["reason"]) == expected, request
        assert body["uri"] == "sip:agent@127.0.0.1:5999" and body["skills"] == {"help": 1}
    status, queues = await _call(engine, "GET", "/acd/queues")
    assert status == 200
    assert [(q["queue"], q["waiting"], q["staffed"], q["ewt"]) for q in queues] == [
        ("help", 0, 0, None)
    ]
    assert queues[0]["agents"]["offline"] == 1
    assert queues[0]["service_level"] == {"seconds": 20.0, "target": 0.8, "today": None}


async def test_agent_state_survives_a_restart(start: Callable[[], Any], tmp_path: Path) -> None:
    first: Engine = await start()
    await _call(first, "POST", "/acd/agents/ann/state", json={"state": "login"})
    status, body = await _call(
        first, "POST", "/acd/agents/ann/state", json={"state": "not_ready", "reason": "lunch"}
    )
    assert status == 200 and body["state"] == "not_ready"
    since = body["since"]
    await first.stop()

    second: Engine = await start()
    status, agents = await _call(second, "GET", "/acd/agents")
    assert status == 200
    (ann,) = agents
    assert (ann["state"], ann["reason"], ann["since"]) == ("not_ready", "lunch", since)
    with MetricsStore(tmp_path / "data" / "callcore.db") as store:
        changes = [
            (r.old, r.new, r.reason) for r in store.records() if isinstance(r, AgentStateRecord)
        ]
    assert changes == [("offline", "not_ready", "login"), ("not_ready", "not_ready", "lunch")]


async def test_queues_yaml_changes_apply_live(start: Callable[[], Any], flows: Path) -> None:
    engine: Engine = await start()
    await _call(engine, "POST", "/acd/agents/ann/state", json={"state": "login"})
    await _call(
        engine, "POST", "/acd/agents/ann/state", json={"state": "not_ready", "reason": "training"}
    )
    path = flows / "queues.yaml"
    original = path.read_text()
    path.write_text(
        original.replace("wrap_up: 3", "wrap_up: 7")
        + '  bob: {skills: {help: 1}, uri: "sip:bob@127.0.0.1:5998"}\n'
    )

    async def agents() -> list[tuple[str, str, str | None]]:
        status, body = await _call(engine, "GET", "/acd/agents")
        assert status == 200
        return [(a["agent"], a["state"], a["reason"]) for a in body]

    deadline = time.monotonic() + 15
    while len(await agents()) < 2:
        assert time.monotonic() < deadline, "the new queues.yaml was not applied"
        await asyncio.sleep(0.1)
    assert await agents() == [("ann", "not_ready", "training"), ("bob", "offline", None)]
    assert engine.acd is not None and engine.acd.router.config.queues["help"].wrap_up == 7

    # A file the ACD cannot use is refused; what is in force stays.
    path.write_text(original.replace('uri: "sip:agent@127.0.0.1:5999"', "uri: 5999"))
    acd = engine.acd
    await _until(lambda: acd.config_error, 15, "the broken queues.yaml to be refused")
    status, body = await _call(engine, "GET", "/acd/status")
    assert status == 200
    (problem,) = body["config_error"]
    assert problem.startswith(f"{path}:11:33: error: agent 'ann' uri must be a SIP URI")
    assert body["agents"] == ["ann", "bob"]
    assert await agents() == [("ann", "not_ready", "training"), ("bob", "offline", None)]


async def test_heartbeats_keep_a_leased_agent_logged_in(
    flows: Path, start: Callable[[], Any]
) -> None:
    path = flows / "queues.yaml"
    path.write_text(path.read_text().replace('uri: "sip:', 'lease: 1.5, uri: "sip:'))
    engine: Engine = await start()
    beat = "/acd/agents/ann/heartbeat"
    status, body = await _call(engine, "POST", beat)
    assert (status, body["error"]) == (409, "agent 'ann' is logged out: log in first")
    status, body = await _call(engine, "POST", "/acd/agents/ann/state", json={"state": "ready"})
    assert body["state"] == "available" and body["lease_until"] is not None
    for _ in range(3):  # 3 s of heartbeats every 0.75 s: a 1.5 s lease never runs out
        await asyncio.sleep(0.75)
        status, body = await _call(engine, "POST", beat)
        assert status == 200 and body["state"] == "available", body
    status, body = await _call(engine, "POST", beat, json={"ttl": "long"})
    assert (status, body["error"]) == (400, "ttl must be a number of seconds, not 'long'")
    status, body = await _call(engine, "POST", beat, json={"ttl": 0.5, "x": 1})
    assert (status, body["error"]) == (400, "unknown field 'x': only ttl is accepted")
    status, body = await _call(engine, "POST", beat, json={"ttl": 0.5})
    assert status == 200 and body["lease_until"] - body["since"] > 0
    await asyncio.sleep(1.0)  # no more heartbeats: offline once the 0.5 s lease ran out
    status, body = await _call(engine, "GET", "/acd/agents/ann")
    assert (body["state"], body["reason"]) == ("offline", "lease_expired")
