"""HTTP routes of the recorder: a call's recording state and its secure pause, and
(:func:`add_admin_routes`) the recordings after the call.

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

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from recordings.lifecycle import RecordingAdmin, RecordingAdminError
from recordings.recorder import Recorder, RecordingError
from recordings.retention import RetentionPolicy
from recordings.textrecord import RecordError, TextRecord, load_record, to_srt, to_text, to_webvtt

__all__ = ["add_admin_routes", "add_recording_routes"]


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


EXPORTS: dict[str, tuple[Callable[[TextRecord], str], str]] = {
    "json": (TextRecord.to_json, "application/json"),
    "txt": (to_text, "text/plain"),
    "vtt": (to_webvtt, "text/vtt"),
    "srt": (to_srt, "application/x-subrip"),
}
"""Formats of ``GET /recordings/{call_id}/transcript`` and their content types."""


def add_admin_routes(
    app: web.Application,
    admin: RecordingAdmin,
    *,
    policy: Callable[[], RetentionPolicy],
    wall: Callable[[], float],
    retention_status: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Recordings after the call: listing, audited access, legal hold, deletion,
    retention, the audit log and its check.

    ``GET    /recordings``                      newest first (``?limit=1..1000``, ``?status=``)
    ``GET    /recordings/audit``                audit rows (``?subject=CALL``)
    ``GET    /recordings/audit/verify``         check the hash chain: ``{ok, rows, first_bad}``
    ``GET    /recordings/retention``            the policy in force, its source, the errors
                                               of the last queues.yaml refused
    ``POST   /recordings/retention/run``        apply the retention policy now
    ``GET    /recordings/{call_id}``            metadata (audited access)
    ``GET    /recordings/{call_id}/audio``      the WAV (audited access; 410 once deleted)
    ``GET    /recordings/{call_id}/transcript`` the text record (audited access), as
                                               ``?format=json`` (default), ``txt``, ``vtt``, ``srt``
    ``POST   /recordings/{call_id}/hold``       ``{"on": true|false, "reason": ..., "by": ...}``
    ``DELETE /recordings/{call_id}``            audio, transcript, index rows (409 on hold)

    Who acts is ``?by=`` (or the body's ``by``), else ``api``.
    """

    def actor(request: web.Request, body: dict[str, Any] | None = None) -> str:
        who = (body or {}).get("by") or request.query.get("by") or "api"
        if not isinstance(who, str) or len(who) > 64:
            raise RecordingAdminError(400, "by must be a text of at most 64 characters")
        return who

    def fail(exc: RecordingAdminError) -> web.Response:
        return web.json_response({"error": str(exc)}, status=exc.status)

    async def listing(request: web.Request) -> web.Response:
        raw = request.query.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            return web.json_response(
                {"error": f"limit must be a whole number from 1 to 1000, got {raw!r}"}, status=400
            )
        status = request.query.get("status")
        rows = await asyncio.to_thread(admin.store.list, limit=int(raw), status=status)
        return web.json_response([r.as_dict() for r in rows])

    async def audit_rows(request: web.Request) -> web.Response:
        subject = request.query.get("subject")
        rows = await asyncio.to_thread(admin.audit.entries, subject)
        return web.json_response([r.as_dict() for r in rows])

    async def audit_verify(_request: web.Request) -> web.Response:
        report = await asyncio.to_thread(admin.audit.verify)
        return web.json_response(report.as_dict(), status=200 if report.ok else 409)

    async def retention(request: web.Request) -> web.Response:
        try:
            who = actor(request)
        except RecordingAdminError as exc:
            return fail(exc)
        run = await asyncio.to_thread(admin.apply_retention, policy(), now=wall(), actor=who)
        return web.json_response(run.as_dict())

    async def retention_policy(_request: web.Request) -> web.Response:
        if retention_status is not None:
            return web.json_response(retention_status())
        current = policy()
        return web.json_response({"default_days": current.default, "queues": dict(current.queues)})

    async def metadata(request: web.Request) -> web.Response:
        try:
            who = actor(request)
            meta = await asyncio.to_thread(
                admin.access, request.match_info["call_id"], actor=who, what="metadata", now=wall()
            )
        except RecordingAdminError as exc:
            return fail(exc)
        return web.json_response(meta)

    async def audio(request: web.Request) -> web.StreamResponse:
        try:
            who = actor(request)
            meta = await asyncio.to_thread(
                admin.access, request.match_info["call_id"], actor=who, what="audio", now=wall()
            )
        except RecordingAdminError as exc:
            return fail(exc)
        return web.FileResponse(meta["path"], headers={"Content-Type": "audio/wav"})

    async def transcript(request: web.Request) -> web.Response:
        fmt = request.query.get("format", "json")
        if fmt not in EXPORTS:
            return web.json_response(
                {"error": f"format must be one of {', '.join(EXPORTS)}, got {fmt!r}"}, status=400
            )
        try:
            who = actor(request)
            path = await asyncio.to_thread(
                admin.transcript, request.match_info["call_id"], actor=who, now=wall()
            )
            record = await asyncio.to_thread(load_record, path)
        except RecordingAdminError as exc:
            return fail(exc)
        except (RecordError, OSError) as exc:  # damaged or removed by hand: say which file
            return web.json_response({"error": f"cannot read the transcript: {exc}"}, status=500)
        if fmt == "json":
            return web.Response(text=record.to_json(), content_type="application/json")
        render, content_type = EXPORTS[fmt]
        return web.Response(text=render(record), content_type=content_type)

    async def hold(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            on = body.get("on")
            if not isinstance(on, bool):
                raise RecordingAdminError(400, "on must be true (hold) or false (release)")
            result = await asyncio.to_thread(
                admin.set_legal_hold,
                request.match_info["call_id"],
                on,
                actor=actor(request, body),
                reason=body.get("reason") or "",
                now=wall(),
            )
        except RecordingAdminError as exc:
            return fail(exc)
        return web.json_response(result)

    async def delete(request: web.Request) -> web.Response:
        try:
            result = await asyncio.to_thread(
                admin.delete_recording,
                request.match_info["call_id"],
                actor=actor(request),
                reason=request.query.get("reason", "deleted on request"),
                now=wall(),
            )
        except RecordingAdminError as exc:
            return fail(exc)
        return web.json_response(result)

    app.router.add_get("/recordings", listing)
    app.router.add_get("/recordings/audit", audit_rows)
    app.router.add_get("/recordings/audit/verify", audit_verify)
    app.router.add_get("/recordings/retention", retention_policy)
    app.router.add_post("/recordings/retention/run", retention)
    app.router.add_get("/recordings/{call_id}", metadata)
    app.router.add_get("/recordings/{call_id}/audio", audio)
    app.router.add_get("/recordings/{call_id}/transcript", transcript)
    app.router.add_post("/recordings/{call_id}/hold", hold)
    app.router.add_delete("/recordings/{call_id}", delete)
