"""HTTP API of the ACD for supervisors (an aiohttp sub-application at ``/acd/``).

======  ===========================  ==============================================
GET     /acd/queues                  per queue: waiting, ringing, talking, longest
                                     wait, agents by state, staffed, EWT of a caller
                                     joining now, AHT, today's SL/ASA/abandons
GET     /acd/agents                  every agent: state, reason, since, call, phone
GET     /acd/agents/{id}             one agent
POST    /acd/agents/{id}/state       ``{"state": "login"|"ready"|"not_ready"|"logout",
                                     "reason": "lunch"}`` -> the agent after the change
POST    /acd/agents/{id}/heartbeat   ``{}`` or ``{"ttl": 60}``: the agent's presence
                                     lease runs on (agents with ``lease:`` go offline
                                     without one)
GET     /acd/status                  the queues.yaml in force, or why the last one was refused
GET     /acd/calls                   calls in the ACD now, with the announcements heard
GET     /acd/calls/{id}/announcements  what one call heard (live or recent)
======  ===========================  ==============================================

Errors are JSON ``{"error": TEXT}``: 400 a malformed request (the text says
what to send), 404 an unknown agent or call, 405 a wrong method, 409 a change
the agent's state does not allow now (e.g. not_ready while logged out).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from acd.model import AgentState, CallState
from engine.acd_runtime import STATE_REQUESTS, AcdRequestError

if TYPE_CHECKING:
    from engine.acd_runtime import AcdRuntime

__all__ = ["acd_app", "agent_view", "agents_view", "calls_view", "queues_view"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MAX_BODY = 4096


def _number(value: float | None) -> float | None:
    """JSON-safe: NaN/None -> None, else rounded to ms."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(value, 3)


# ------------------------------------------------------------------ views
def agent_view(acd: AcdRuntime, name: str) -> dict[str, Any]:
    """One agent as the API shows it."""
    agent = acd.router.agent(name)
    now = acd.now()
    pending = agent.pending
    return {
        "agent": agent.name,
        "state": agent.state.value,
        "reason": agent.reason,
        "since": agent.state_since,
        "for": round(now - agent.state_since, 3),
        "call": agent.call,
        "pending": None if pending is None else {"state": pending[0].value, "reason": pending[1]},
        "uri": agent.config.uri,
        "skills": dict(agent.config.skills),
        "groups": sorted(agent.config.groups),
        "calls_handled": agent.calls_handled,
        "talk_time": round(agent.talk_time, 3),
        "wrap_until": agent.wrap_until,
        "lease_until": agent.lease_until,
    }


def agents_view(acd: AcdRuntime) -> list[dict[str, Any]]:
    """Every configured agent, in configuration order."""
    return [agent_view(acd, a.name) for a in acd.router.agents()]


def queues_view(acd: AcdRuntime) -> list[dict[str, Any]]:
    """Every queue: callers waiting, longest wait, agents by state, today's figures, EWT."""
    router = acd.router
    now = acd.now()
    day = acd.metrics.day_start(now)
    calls = router.calls()
    out = []
    for name, queue in router.config.queues.items():
        mine = [c for c in calls if c.queue == name]
        waiting = [c for c in mine if c.state is CallState.WAITING]
        by_state = dict.fromkeys((s.value for s in AgentState), 0)
        for agent in router.members(name):
            by_state[agent.state.value] += 1
        today = acd.metrics.queue_totals(name, day, day + 86400.0)
        out.append(
            {
                "queue": name,
                "waiting": len(waiting),
                "ringing": sum(1 for c in mine if c.state is CallState.RINGING),
                "talking": sum(1 for c in mine if c.state is CallState.ANSWERED),
                "longest_wait": round(max((now - c.entered_at for c in waiting), default=0.0), 3),
                "agents": by_state,
                "staffed": router.staffed(name),
                "ewt": _number(router.queue_estimate(name, now)),
                "aht": round(router.aht(name), 3),
                "service_level": {
                    "seconds": queue.sl_threshold,
                    "target": queue.sl_target,
                    "today": _number(today.sl),
                },
                "today": {
                    "offered": today.offered,
                    "answered": today.answered,
                    "abandoned": today.abandoned,
                    "overflowed": today.overflowed,
                    "asa": _number(today.asa),
                    "abandon_rate": _number(today.abandon_rate),
                    "aht": _number(today.aht),
                },
            }
        )
    return out


def calls_view(acd: AcdRuntime) -> list[dict[str, Any]]:
    """Calls in the ACD now (waiting, ringing, talking), best ranked first."""
    router = acd.router
    now = acd.now()
    out = []
    for call in sorted(router.calls(), key=lambda c: c.rank):
        out.append(
            {
                "call": call.id,
                "queue": call.queue,
                "state": call.state.value,
                "position": router.position(call.id),
                "waited": round(now - call.enqueued_at, 3),
                "ewt": _number(router.estimate(call.id, now)),
                "agent": call.agent,
                "ringing": list(call.ringing),
                "announcements": [asdict(p) for p in acd.played.get(call.id, [])],
            }
        )
    return out


# ------------------------------------------------------------------- HTTP
def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AcdRequestError as exc:
        return _error(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 405:
            allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
            return _error(405, f"{request.method} is not allowed on {request.path}; use {allowed}")
        if exc.status == 404:
            return _error(
                404,
                f"no such endpoint {request.path}; see GET /acd/queues, /acd/agents, "
                "/acd/calls, /acd/status, POST /acd/agents/{id}/state",
            )
        return _error(exc.status, exc.text or exc.reason)


def acd_app(acd: AcdRuntime) -> web.Application:
    """The ``/acd/`` sub-application over ``acd`` (see the module docstring)."""

    async def get_queues(_request: web.Request) -> web.Response:
        return web.json_response(queues_view(acd))

    async def get_agents(_request: web.Request) -> web.Response:
        return web.json_response(agents_view(acd))

    def known_agent(request: web.Request) -> str:
        name = request.match_info["id"]
        if name not in acd.router.config.agents:
            known = ", ".join(acd.router.config.agents) or "none"
            raise AcdRequestError(404, f"unknown agent {name!r} (known: {known})")
        return name

    async def get_agent(request: web.Request) -> web.Response:
        return web.json_response(agent_view(acd, known_agent(request)))

    async def json_object(
        request: web.Request, example: str, fields: tuple[str, ...], empty: bool = False
    ) -> dict[str, Any]:
        raw = await request.content.read(_MAX_BODY + 1)
        if len(raw) > _MAX_BODY:
            raise AcdRequestError(400, f"body larger than {_MAX_BODY} bytes")
        if not raw.strip() and empty:
            return {}
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise AcdRequestError(400, f"body is not JSON ({exc}); send e.g. {example}") from None
        if not isinstance(body, dict):
            raise AcdRequestError(400, f"body must be a JSON object such as {example}")
        unknown = sorted(set(body) - set(fields))
        if unknown:
            accepted = " and ".join(fields) + (" is" if len(fields) == 1 else " are")
            raise AcdRequestError(400, f"unknown field {unknown[0]!r}: only {accepted} accepted")
        return body

    async def post_state(request: web.Request) -> web.Response:
        name = known_agent(request)
        example = '{"state": "not_ready", "reason": "lunch"}'
        body = await json_object(request, example, ("state", "reason"))
        state = body.get("state")
        if not isinstance(state, str):
            raise AcdRequestError(
                400, f'missing "state": one of {", ".join(STATE_REQUESTS)}, e.g. {example}'
            )
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise AcdRequestError(400, f"reason must be text, not {type(reason).__name__}")
        if reason is not None and state != "not_ready":
            raise AcdRequestError(400, f"a reason goes with not_ready only, not with {state}")
        acd.set_agent_state(name, state, reason)
        return web.json_response(agent_view(acd, name))

    async def get_status(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "config_file": str(acd.config_file),
                "config_error": acd.config_error,
                "queues": sorted(acd.router.config.queues),
                "agents": list(acd.router.config.agents),
                "calls": len(acd.router.calls()),
            }
        )

    async def post_heartbeat(request: web.Request) -> web.Response:
        name = known_agent(request)
        body = await json_object(request, '{"ttl": 60}', ("ttl",), empty=True)
        ttl = body.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)):
            raise AcdRequestError(400, f"ttl must be a number of seconds, not {ttl!r}")
        acd.heartbeat(name, None if ttl is None else float(ttl))
        return web.json_response(agent_view(acd, name))

    async def get_calls(_request: web.Request) -> web.Response:
        return web.json_response(calls_view(acd))

    async def get_announcements(request: web.Request) -> web.Response:
        call_id = request.match_info["id"]
        played = acd.played.get(call_id)
        if played is None:
            raise AcdRequestError(404, f"no call {call_id!r} in the ACD now or recently")
        return web.json_response([asdict(p) for p in played])

    app = web.Application(middlewares=[_json_errors])
    app.router.add_get("/queues", get_queues)
    app.router.add_get("/agents", get_agents)
    app.router.add_get("/agents/{id}", get_agent)
    app.router.add_post("/agents/{id}/state", post_state)
    app.router.add_post("/agents/{id}/heartbeat", post_heartbeat)
    app.router.add_get("/status", get_status)
    app.router.add_get("/calls", get_calls)
    app.router.add_get("/calls/{id}/announcements", get_announcements)
    return app
