# SPDX-License-Identifier: Apache-2.0
"""`/healthz`, `/readyz` and `/metrics` for every service.

`/healthz` says the process is alive (the event loop answers). `/readyz` runs the service's
readiness checks (NATS connected, Redis answers, chain reachable...) and returns 503 with the
failing ones until all pass. `/metrics` is the Prometheus exposition of the OpenTelemetry
metrics, OpenMetrics with exemplars for a scraper that asks for it (zg_shared.exposition).
The gateway adds these routes to its own aiohttp app; the other services run them on a small
aiohttp server of their own (`HealthServer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry

from zg_shared.exposition import exposition
from zg_shared.redaction import redact

ReadinessCheck = Callable[[], Awaitable[object]]
CHECK_TIMEOUT_S = 2.0


async def _run_check(check: ReadinessCheck) -> str | None:
    """None when the check passes; else why it failed."""
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"timed out after {CHECK_TIMEOUT_S}s"
    except Exception as exc:  # a readiness probe reports any failure, it never raises
        return redact(f"{type(exc).__name__}: {exc}")
    return None


def add_health_routes(
    app: web.Application,
    checks: Mapping[str, ReadinessCheck],
    registry: CollectorRegistry = REGISTRY,
) -> None:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        names = list(checks)
        results = await asyncio.gather(*(_run_check(checks[n]) for n in names))
        failed = {n: why for n, why in zip(names, results, strict=True) if why is not None}
        if failed:
            return web.json_response({"status": "unavailable", "failed": failed}, status=503)
        return web.json_response({"status": "ready", "checks": names})

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = exposition(registry, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


class HealthServer:
    """The health and metrics endpoints on their own port, for services without HTTP APIs."""

    def __init__(self, host: str, port: int, checks: Mapping[str, ReadinessCheck]) -> None:
        self._app = web.Application()
        add_health_routes(self._app, checks)
        self._runner = web.AppRunner(self._app, access_log=None)
        self._host, self._port = host, port
        self.port: int | None = None

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        await self._runner.cleanup()
