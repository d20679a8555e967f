"""HTTP routes of the recorder: a call's recording state and its secure pause.

``GET  /calls/{call_id}/recording``         live state (seconds, paused, pause spans)
``POST /calls/{call_id}/recording/pause``   start a secure pause (PCI DSS); body optional:
                                            ``{"reason": "card", "by": "agent:alice"}``
``POST /calls/{call_id}/recording/resume``  end it
``POST /acd/agents/{agent}/recording/pause|resume``  the same on the call the agent is
                                            on (the agent's desktop button)

Errors: 404 no call with that id is being recorded (or the agent is on no call),
409 already paused / not paused, 400 a body that is not a JSON object or a bad
field (named).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from recordings.recorder import Recorder, RecordingError

__all__ = ["add_recording_routes"]


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not JSON: {exc}"}), content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}),
            content_type="application/json",
        )
    for name in ("reason", "by"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 64):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": f"{name} must be a text of 1 to 64 characters"}),
                content_type="application/json",
            )
    return body


def add_recording_routes(
    app: web.Application,
    recorder: Recorder,
    agent_call: Callable[[str], str | None] | None = None,
) -> None:
    """Add the recording routes (see module docstring) to ``app``; ``agent_call``
    gives the call an agent is on (the ACD), for the agent routes. Add them
    before the ``/acd/`` sub-application, which would otherwise answer first."""

    async def state(request: web.Request) -> web.Response:
        try:
            return web.json_response(recorder.state(request.match_info["call_id"]))
        except RecordingError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)

    def target(request: web.Request) -> tuple[str, str]:
        """(call id, who) of a request on a call or on an agent."""
        if "agent" not in request.match_info:
            return request.match_info["call_id"], "api"
        agent = request.match_info["agent"]
        call_id = agent_call(agent) if agent_call is not None else None
        if call_id is None:
            raise RecordingError(404, f"agent {agent!r} is not on a call")
        return call_id, f"agent:{agent}"

    async def pause(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            call_id, who = target(request)
            span = recorder.pause(
                call_id, by=body.get("by") or who, reason=body.get("reason") or "pci"
            )
        except RecordingError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response({"call_id": call_id, "paused": True, "span": span.as_dict()})

    async def resume(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            call_id, who = target(request)
            span = recorder.resume(call_id, by=body.get("by") or who)
        except RecordingError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response({"call_id": call_id, "paused": False, "span": span.as_dict()})

    app.router.add_get("/calls/{call_id}/recording", state)
    app.router.add_post("/calls/{call_id}/recording/pause", pause)
    app.router.add_post("/calls/{call_id}/recording/resume", resume)
    if agent_call is not None:
        app.router.add_post("/acd/agents/{agent}/recording/pause", pause)
        app.router.add_post("/acd/agents/{agent}/recording/resume", resume)
