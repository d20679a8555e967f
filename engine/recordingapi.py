"""HTTP routes of the recorder: a call's recording state and its secure pause.

``GET  /calls/{call_id}/recording``         live state (seconds, paused, pause spans)
``POST /calls/{call_id}/recording/pause``   start a secure pause (PCI DSS); body optional:
                                            ``{"reason": "card", "by": "agent:alice"}``
``POST /calls/{call_id}/recording/resume``  end it

Errors: 404 no call with that id is being recorded, 409 already paused / not
paused, 400 a body that is not a JSON object or a bad field (named).
"""

from __future__ import annotations

import json
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


def add_recording_routes(app: web.Application, recorder: Recorder) -> None:
    """Add the recording routes (see module docstring) to ``app``."""

    async def state(request: web.Request) -> web.Response:
        try:
            return web.json_response(recorder.state(request.match_info["call_id"]))
        except RecordingError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)

    async def pause(request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        body = await _body(request)
        try:
            span = recorder.pause(
                call_id, by=body.get("by") or "api", reason=body.get("reason") or "pci"
            )
        except RecordingError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response({"call_id": call_id, "paused": True, "span": span.as_dict()})

    async def resume(request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        body = await _body(request)
        try:
            span = recorder.resume(call_id, by=body.get("by") or "api")
        except RecordingError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response({"call_id": call_id, "paused": False, "span": span.as_dict()})

    app.router.add_get("/calls/{call_id}/recording", state)
    app.router.add_post("/calls/{call_id}/recording/pause", pause)
    app.router.add_post("/calls/{call_id}/recording/resume", resume)
