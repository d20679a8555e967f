"""HTTP API of flow versions (an aiohttp sub-application mounted at ``/flows/``).

======  ===========================  =============================================
GET     /flows/versions              versions, newest first (``?limit=N``)
GET     /flows/versions/{id}         one version with its diff (``?files=1``: texts)
GET     /flows/status                live version, last error with diagnostics
POST    /flows/rollback/{id}         restore version {id} and publish it
POST    /flows/validate              body: the YAML of one flow -> diagnostics
======  ===========================  =============================================

Every error is JSON ``{"error": TEXT, ...}`` with a status that says whose
fault it is: 400 bad request, 404 unknown version or path, 405 wrong method,
409 a rollback refused by validation (diagnostics included), 503 the version
database is unusable.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ivr.registry import FlowRegistry, diagnostic_dict
from ivr.versions import FlowVersion, UnknownVersion, VersionStoreError, VersionSummary, format_time

__all__ = ["flows_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_FLOW_NAME = re.compile(r"""^flow:[ \t]*["']?([A-Za-z_][A-Za-z0-9_\-]*)""", re.MULTILINE)
_MAX_BODY = 1 << 20


def _error(status: int, text: str, **extra: Any) -> web.Response:
    return web.json_response({"error": text, **extra}, status=status)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 405:
            allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
            return _error(405, f"{request.method} is not allowed on {request.path}; use {allowed}")
        if exc.status == 404:
            return _error(
                404,
                f"no such endpoint {request.path}; see GET /flows/versions, /flows/status,"
                " POST /flows/rollback/{id}, /flows/validate",
            )
        return _error(exc.status, exc.text or exc.reason)
    except VersionStoreError as exc:
        status = 404 if isinstance(exc, UnknownVersion) else 503
        return _error(status, str(exc))


def _summary(v: VersionSummary, live: int | None) -> dict[str, Any]:
    return {
        "id": v.id,
        "digest": v.digest,
        "published_at": v.published_at,
        "published": format_time(v.published_at),
        "source": v.source,
        "author": v.author,
        "changed": list(v.changed),
        "live": v.id == live,
    }


def _version_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or int(raw) < 1:
        raise web.HTTPBadRequest(
            text=f"version id {raw!r} is not a positive integer; list them with GET /flows/versions"
        )
    return int(raw)


def flows_app(
    registry: FlowRegistry[Any], *, clock: Callable[[], float] = time.time
) -> web.Application:
    """The ``/flows/`` sub-application over ``registry`` (``clock`` stamps rollbacks)."""
    store = registry.store

    def live_id() -> int | None:
        live = registry.live()
        return live.version if live else None

    async def versions(request: web.Request) -> web.Response:
        raw = request.query.get("limit")
        if raw is not None and (not raw.isdigit() or int(raw) < 1):
            raise web.HTTPBadRequest(text=f"limit {raw!r} is not a positive integer")
        rows = await asyncio.to_thread(store.history, int(raw) if raw else None)
        live = live_id()
        return web.json_response({"live": live, "versions": [_summary(v, live) for v in rows]})

    async def version(request: web.Request) -> web.Response:
        v: FlowVersion = await asyncio.to_thread(store.get, _version_id(request))
        body = _summary(v, live_id())
        body["diff"] = v.diff
        body["files"] = sorted(v.files)
        if request.query.get("files") in ("1", "true", "yes"):
            body["contents"] = dict(v.files)
        return web.json_response(body)

    async def status(_request: web.Request) -> web.Response:
        return web.json_response(registry.status())

    async def rollback(request: web.Request) -> web.Response:
        version_id = _version_id(request)
        result = await registry.rollback(
            version_id, now=clock(), author=request.query.get("author") or "api"
        )
        body = result.as_dict()
        if result.status == "invalid":
            assert result.error is not None
            return _error(
                409,
                f"version {version_id} was not restored: {result.error.message}",
                diagnostics=body["error"]["diagnostics"],
                live=result.version,
            )
        return web.json_response(body)

    async def validate(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > _MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(
                max_size=_MAX_BODY, actual_size=request.content_length
            )
        raw = await request.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _error(400, f"the body is not UTF-8 text ({exc}); send the flow's YAML")
        if not text.strip():
            return _error(
                400,
                "empty body: send the YAML of one flow (Content-Type: application/yaml),"
                " e.g. curl --data-binary @flows/main.yaml",
            )
        name = request.query.get("file") or _file_for(text, registry)
        parts = name.split("/")
        if (
            name.startswith("/")
            or ".." in parts
            or "" in parts
            or not name.endswith((".yaml", ".yml"))
        ):
            return _error(400, f"file {name!r} must be a .yaml path inside the flows folder")
        diags = await registry.validate({name: text})
        found = [diagnostic_dict(d) if not isinstance(d, str) else {"text": d} for d in diags]
        errors = [d for d in found if d.get("severity", "error") == "error"]
        body = {"ok": not errors, "file": name, "diagnostics": found}
        if errors:
            body["error"] = f"{len(errors)} error(s) in {name}; nothing was changed"
            return web.json_response(body, status=400)
        return web.json_response(body)

    app = web.Application(middlewares=[_json_errors], client_max_size=_MAX_BODY)
    app.router.add_get("/versions", versions)
    app.router.add_get("/versions/{id}", version)
    app.router.add_get("/status", status)
    app.router.add_post("/rollback/{id}", rollback)
    app.router.add_post("/validate", validate)
    return app


def _file_for(text: str, registry: FlowRegistry[Any]) -> str:
    """The file a flow text belongs to: the live file declaring the same flow, else NAME.yaml."""
    m = _FLOW_NAME.search(text)
    if m is None:
        return "candidate.yaml"
    name = m.group(1)
    live = registry.live()
    if live is not None:
        for rel, src in sorted(live.flowset.sources.items()):
            other = _FLOW_NAME.search(src)
            if other is not None and other.group(1) == name:
                return rel
    return f"{name}.yaml"
