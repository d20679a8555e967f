"""The engine's HTTP API: ``/health``, Prometheus ``/metrics``, ``/calls/recent``.

A thin aiohttp shell: handlers read from the objects the composition root
passes in and hold no state of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from engine.metrics import EngineMetrics

HealthProbe = Callable[[], dict[str, Any]]
RecentCalls = Callable[[int], list[dict[str, Any]]]


def build_app(
    metrics: EngineMetrics, health: HealthProbe, recent_calls: RecentCalls | None = None
) -> web.Application:
    """An aiohttp application serving the engine's read-only endpoints.

    ``GET /calls/recent?limit=N`` (default 50, at most 1000): finished calls,
    newest first, with the flow path each took.
    """

    async def get_health(_request: web.Request) -> web.Response:
        body = health()
        status = 200 if body.get("status") == "ok" else 503
        return web.json_response(body, status=status)

    async def get_metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def get_recent(request: web.Request) -> web.Response:
        raw = request.query.get("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            return web.json_response(
                {"error": f"limit must be a whole number from 1 to 1000, got {raw!r}"}, status=400
            )
        return web.json_response(recent_calls(int(raw)) if recent_calls else [])

    app = web.Application()
    app.router.add_get("/health", get_health)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/calls/recent", get_recent)
    return app


class HttpServer:
    """Runs the API on ``host:port`` (port 0 picks a free one; see ``port``)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port
        self.port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        # aiohttp has no public accessor for the port it bound (port 0 in tests).
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self._runner.cleanup()
