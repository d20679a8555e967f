"""HTTP API of the omnichannel history (mounted at ``/history/``).

``POST /history/interactions``            store a chat, e-mail, SMS, social message (or any
                                          channel): body as :class:`InteractionIn`;
                                          201 ``{id, contact_id, created}`` (200 when the
                                          same channel + external_id was stored before)
``GET  /history/contacts/{id}``           the contact (a merged id gives the survivor)
``GET  /history/contacts/{id}/timeline``  its interactions, newest first
                                          (``?limit=1..500``, ``?before=ISO time``)
``GET  /history/search?q=TEXT``           full-text search (``&limit=1..100``, ``&contact=ID``,
                                          ``&order=rank|recent``: best or newest first)
``POST /history/contacts/merge``          ``{"into": ID, "from": ID, "by": "who"}``

Errors are JSON ``{"error": ..., "field": ...}`` with 400 (bad input, the
field named), 404 (unknown contact) or 409 (already one contact, identifier
taken). Every database call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from recordings.history import HistoryError, HistoryStore

__all__ = ["history_app"]


def _error(exc: HistoryError) -> web.Response:
    return web.json_response({"error": str(exc), "field": exc.field}, status=exc.status)


def _int(request: web.Request, name: str, low: int, high: int, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise HistoryError(f"{name} must be a whole number from {low} to {high}, got {raw!r}",
                           field=name)  # fmt: skip
    return int(raw)


def _contact_id(raw: str, field: str = "id") -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise HistoryError(f"contact id must be a positive whole number, got {raw!r}", field=field)
    return int(raw)


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except json.JSONDecodeError as exc:
        raise HistoryError(f"the body is not JSON: {exc}", field="body") from None


def history_app(
    store: HistoryStore, clock: Callable[[], datetime] | None = None
) -> web.Application:
    """The aiohttp sub-application serving ``store`` (see module docstring)."""
    now = clock or (lambda: datetime.now(UTC))

    async def ingest(request: web.Request) -> web.Response:
        try:
            body = await _json(request)
            result = await asyncio.to_thread(store.ingest, body, now=now())
        except HistoryError as exc:
            return _error(exc)
        return web.json_response(result, status=201 if result["created"] else 200)

    async def contact(request: web.Request) -> web.Response:
        try:
            cid = _contact_id(request.match_info["id"])
            return web.json_response(await asyncio.to_thread(store.contact, cid))
        except HistoryError as exc:
            return _error(exc)

    async def timeline(request: web.Request) -> web.Response:
        try:
            cid = _contact_id(request.match_info["id"])
            limit = _int(request, "limit", 1, 500, 50)
            before = None
            raw = request.query.get("before")
            if raw is not None:
                try:
                    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
                except ValueError:
                    raise HistoryError(
                        f"before must be an ISO time like 2024-05-01T10:00:00Z, got {raw!r}",
                        field="before",
                    ) from None
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                before = moment.timestamp()
            body = await asyncio.to_thread(store.timeline, cid, limit=limit, before=before)
        except HistoryError as exc:
            return _error(exc)
        return web.json_response(body)

    async def search(request: web.Request) -> web.Response:
        try:
            q = request.query.get("q", "")
            if not q.strip():
                raise HistoryError("give the text to search for: ?q=WORDS", field="q")
            if len(q) > 500:
                raise HistoryError("q is longer than 500 characters", field="q")
            limit = _int(request, "limit", 1, 100, 20)
            raw = request.query.get("contact")
            cid = None if raw is None else _contact_id(raw, "contact")
            order = request.query.get("order", "rank")
            if order not in ("rank", "recent"):
                raise HistoryError(f"order must be rank or recent, got {order!r}", field="order")
            results = await asyncio.to_thread(
                store.search,
                q,
                limit=limit,
                contact_id=cid,
                order="recent" if order == "recent" else "rank",
            )
        except HistoryError as exc:
            return _error(exc)
        return web.json_response({"q": q, "results": results})

    async def merge(request: web.Request) -> web.Response:
        try:
            body = await _json(request)
            if not isinstance(body, dict):
                raise HistoryError("the body must be a JSON object", field="body")
            ids = []
            for name in ("into", "from"):
                value = body.get(name)
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise HistoryError(f"{name} must be a contact id (a positive whole number)",
                                       field=name)  # fmt: skip
                ids.append(value)
            by = body.get("by", "")
            if not isinstance(by, str) or len(by) > 64:
                raise HistoryError("by must be a text of at most 64 characters", field="by")
            survivor = await asyncio.to_thread(store.merge, ids[0], ids[1], now=now(), by=by)
        except HistoryError as exc:
            return _error(exc)
        return web.json_response(survivor)

    app = web.Application()
    app.router.add_post("/interactions", ingest)
    app.router.add_post("/contacts/merge", merge)
    app.router.add_get("/contacts/{id}", contact)
    app.router.add_get("/contacts/{id}/timeline", timeline)
    app.router.add_get("/search", search)
    return app
