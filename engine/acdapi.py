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
GET     /acd/intervals?date=YYYY-MM-DD  the day's 15-minute intervals per queue and per
        [&queue=Q][&agent=A]         agent (SL, SL2, ASA, AHT, abandons, short
                                     abandons, overflows, callbacks, EWT error,
                                     occupancy) and the day's totals; default today
                                     (UTC days); from the engine's database, so they
                                     survive restarts
GET     /acd/callbacks               callbacks waiting their turn, being served or
                                     waiting to retry, and today's customer legs
======  ===========================  ==============================================

Errors are JSON ``{"error": TEXT}``: 400 a malformed request (the text says
what to send), 404 an unknown agent or call, 405 a wrong method, 409 a change
the agent's state does not allow now (e.g. not_ready while logged out).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict, fields
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from acd.metrics import AgentCounters, QueueCounters
from acd.model import AgentState, Call, CallState
from acd.store import MetricsStoreError
from engine.acd_metrics import day_totals
from engine.acd_runtime import STATE_REQUESTS, AcdRequestError

if TYPE_CHECKING:
    from engine.acd_runtime import AcdRuntime

__all__ = [
    "acd_app",
    "agent_view",
    "agents_view",
    "calls_view",
    "intervals_view",
    "queue_figures",
    "queues_view",
]

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
    by_queue: dict[str, list[Call]] = {}
    for call in router.calls():
        by_queue.setdefault(call.queue, []).append(call)
    out = []
    for name, queue in router.config.queues.items():
        mine = by_queue.get(name, [])
        waiting = [c for c in mine if c.state is CallState.WAITING]
        by_state = dict.fromkeys((s.value for s in AgentState), 0)
        for agent in router.members(name):
            by_state[agent.state.value] += 1
        today = day_totals(acd.metrics, name, day)
        out.append(
            {
                "queue": name,
                "waiting": len(waiting),
                "callbacks_waiting": sum(1 for c in waiting if c.callback is not None),
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
                "today": queue_figures(today),
            }
        )
    return out


def queue_figures(c: QueueCounters) -> dict[str, Any]:
    """Counters and derived figures of one queue over some intervals."""
    return {
        "offered": c.offered,
        "answered": c.answered,
        "answered_in_sl": c.answered_in_sl,
        "abandoned": c.abandoned,
        "abandoned_in_sl": c.abandoned_in_sl,
        "short_abandons": c.short_abandons,
        "overflowed": c.overflowed,
        "handled": c.handled,
        "transfers": c.transfers,
        "callbacks_requested": c.callbacks_requested,
        "callbacks_answered": c.callbacks_answered,
        "sl": _number(c.sl),
        "sl2": _number(c.sl2),
        "sl_offered": _number(c.sl_offered),
        "asa": _number(c.asa),
        "max_wait": _number(c.max_wait),
        "average_abandon_time": _number(c.average_abandon_time),
        "abandon_rate": _number(c.abandon_rate),
        "abandon_rate_excluding_short": _number(c.abandon_rate_excluding_short),
        "aht": _number(c.aht),
        "talk": _number(c.talk),
        "hold": _number(c.hold),
        "wrap_up": _number(c.wrap_up),
        "ewt_error": {
            "samples": c.ewt_samples,
            "mae": _number(c.ewt_mae),
            "bias": _number(c.ewt_bias),
        },
        "announce_error": {"samples": c.announce_samples, "mae": _number(c.announce_mae)},
    }


def _agent_figures(c: AgentCounters) -> dict[str, Any]:
    out: dict[str, Any] = {
        f.name: (getattr(c, f.name) if f.type in (int, "int") else _number(getattr(c, f.name)))
        for f in fields(c)
    }
    out["aht"] = _number(c.aht)
    out["staffed_s"] = _number(c.staffed_s)
    out["occupancy"] = _number(c.occupancy)
    return out


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def intervals_view(
    acd: AcdRuntime, day: date, *, queue: str | None = None, agent: str | None = None
) -> dict[str, Any]:
    """The intervals of ``day`` (UTC, as the metrics cut days) per queue and per
    agent, with the day's totals per queue; ``queue``/``agent`` filter."""
    metrics = acd.metrics
    metrics.flush(acd.now())  # agents' time in their current state, up to now
    start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    start = metrics.day_start(start + 43200.0)
    end = start + 86400.0
    queues = []
    for (name, begin), counters in sorted(
        metrics.queue_intervals.items(), key=lambda item: (item[0][1], item[0][0])
    ):
        if start <= begin < end and (queue is None or name == queue):
            queues.append(
                {"queue": name, "start": begin, "at": _iso(begin), **queue_figures(counters)}
            )
    agents = []
    for (name, begin), agent_counters in sorted(
        metrics.agent_intervals.items(), key=lambda item: (item[0][1], item[0][0])
    ):
        if start <= begin < end and (agent is None or name == agent):
            figures = _agent_figures(agent_counters)
            agents.append({"agent": name, "start": begin, "at": _iso(begin), **figures})
    names = sorted({q["queue"] for q in queues})
    return {
        "date": day.isoformat(),
        "start": start,
        "interval": metrics.config.interval,
        "queues": queues,
        "agents": agents,
        "totals": {name: queue_figures(day_totals(metrics, name, start)) for name in names},
    }


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
                "/acd/calls, /acd/intervals, /acd/callbacks, /acd/status, "
                "POST /acd/agents/{id}/state",
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

    async def get_intervals(request: web.Request) -> web.Response:
        text = request.query.get("date")
        if text is None:
            day = datetime.fromtimestamp(acd.now(), UTC).date()
        else:
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise AcdRequestError(
                    400, f"date must be YYYY-MM-DD (e.g. 2026-11-23), not {text!r}"
                ) from None
        queue = request.query.get("queue")
        known_queues = sorted({*acd.router.config.queues, *acd.metrics.queues()})
        if queue is not None and queue not in known_queues:
            known = ", ".join(known_queues) or "none"
            raise AcdRequestError(404, f"unknown queue {queue!r} (known: {known})")
        agent = request.query.get("agent")
        if agent is not None and agent not in acd.router.config.agents:
            known = ", ".join(acd.router.config.agents) or "none"
            raise AcdRequestError(404, f"unknown agent {agent!r} (known: {known})")
        return web.json_response(intervals_view(acd, day, queue=queue, agent=agent))

    async def get_callbacks(_request: web.Request) -> web.Response:
        now = acd.now()
        day = acd.metrics.day_start(now)
        attempts: list[dict[str, Any]] = []
        if acd.store is not None:
            try:
                attempts = acd.store.callback_attempts(since=day)
            except MetricsStoreError as exc:
                raise AcdRequestError(503, str(exc)) from None
        return web.json_response({"callbacks": acd.callbacks_view(), "attempts_today": attempts})

    app = web.Application(middlewares=[_json_errors])
    app.router.add_get("/queues", get_queues)
    app.router.add_get("/agents", get_agents)
    app.router.add_get("/agents/{id}", get_agent)
    app.router.add_post("/agents/{id}/state", post_state)
    app.router.add_post("/agents/{id}/heartbeat", post_heartbeat)
    app.router.add_get("/status", get_status)
    app.router.add_get("/calls", get_calls)
    app.router.add_get("/calls/{id}/announcements", get_announcements)
    app.router.add_get("/intervals", get_intervals)
    app.router.add_get("/callbacks", get_callbacks)
    return app
