# SPDX-License-Identifier: Apache-2.0
"""Wiring: `create_app(settings)` builds the aiohttp application with its resources opened and
closed in cleanup contexts: Redis, the NATS publisher, the backend HTTP session, the chain
client, the outbox drainer and the stale-request sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from eth_account import Account as EthAccount
from nats.aio.client import Client as NatsClient

from zg_gateway.config import GatewaySettings
from zg_gateway.keys import BACKEND, HEALTH, METRICS, OUTBOX, SERVICE
from zg_gateway.marketplace import marketplace_routes
from zg_gateway.metrics import GatewayMetrics
from zg_gateway.middlewares import error_middleware, tracing_middleware
from zg_gateway.outbox import OutboxDrainer
from zg_gateway.proxy import BackendClient
from zg_gateway.routes import routes
from zg_gateway.service import ALIVE_PREFIX, GatewayService
from zg_shared.bus import SERVING_STREAM
from zg_shared.chain import ServingClient, connect
from zg_shared.deployment import bind, require_streams
from zg_shared.health import HealthServer
from zg_shared.redisconn import REDIS_AWAY, redis_client
from zg_shared.telemetry import Telemetry, setup_telemetry

SERVICE_NAME = "zg-gateway"
STOP_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


async def _every(
    name: str, seconds: float, stop: asyncio.Event, step: Callable[[], Awaitable[None]]
) -> None:
    """Runs `step` every `seconds` until `stop`; a failure (Redis away for a moment) is
    logged, and the next run catches up."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stop.wait()
        if stop.is_set():
            return
        try:
            await step()
        except REDIS_AWAY as exc:  # a failover: expected, and the next run catches up
            log.warning("%s skipped: Redis unavailable (%s: %s)", name, type(exc).__name__, exc)
        except Exception:
            log.exception("%s failed", name)


def create_app(settings: GatewaySettings, *, telemetry: Telemetry | None = None) -> web.Application:
    telemetry = telemetry or setup_telemetry(SERVICE_NAME)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware, tracing_middleware(telemetry.tracer("zg_gateway"))],
    )
    app[METRICS] = GatewayMetrics(telemetry.meter("zg_gateway"))
    # A blocking pool: a burst of requests waits for a connection instead of failing.
    redis = redis_client(settings, max_connections=settings.redis_max_connections)
    w3 = connect(settings.rpc_url) if settings.serving_address else None
    serving = ServingClient(w3, settings.serving_address) if w3 is not None else None
    receipt_signer = EthAccount.from_key(settings.receipt_private_key.get_secret_value())
    previous = settings.previous_receipt_private_key
    service = GatewayService(
        settings,
        redis,
        serving,
        receipt_signer,
        previous_receipt_key=EthAccount.from_key(previous.get_secret_value()) if previous else None,
    )
    app[SERVICE] = service
    outbox = OutboxDrainer(
        redis,
        telemetry.tracer("zg_gateway.outbox"),
        instance=service.instance,
        alive_prefix=ALIVE_PREFIX,
        worker=settings.worker_index,
        reclaim_every_s=settings.sweep_every_s,
    )
    app[OUTBOX] = outbox
    connection: list[NatsClient] = []

    async def resources(app: web.Application) -> AsyncIterator[None]:
        if w3 is not None:  # before anything is served: no dev keys off a local chain
            settings.check_chain(await w3.eth.chain_id)
        bus = settings.nats_access()
        if w3 is not None:  # refuses another deployment's state (zg_shared.deployment)
            await bind(
                w3, settings.serving_address, settings.rpc_url, redis, bus, [SERVING_STREAM.name]
            )
        else:  # the admin step made the stream; the gateway's NATS user may not
            await require_streams(bus, [SERVING_STREAM.name])
        client = await bus.connect(name=SERVICE_NAME)
        connection.append(client)
        outbox.js = client.jetstream()
        app[BACKEND] = BackendClient()
        if health is not None:
            await health.start()
        stop = asyncio.Event()
        await service.beat()  # before anything is admitted under this process's name
        background = [
            asyncio.create_task(outbox.run(stop), name="outbox"),
            asyncio.create_task(
                _every("heartbeat", settings.alive_ttl_s / 3, stop, service.beat), name="heartbeat"
            ),
        ]
        if settings.worker_index == 0:  # one sweeper is enough
            sweep = _every("stale-request sweep", settings.sweep_every_s, stop, service.sweep)
            background.append(asyncio.create_task(sweep, name="sweeper"))
        yield
        # Stop by signal rather than cancellation, so no loop is cut off mid-publish.
        stop.set()
        outbox.notify()
        _, late = await asyncio.wait(background, timeout=STOP_TIMEOUT_S)
        for task in late:
            task.cancel()
        # Whatever finished during shutdown is still in the outbox: one last drain.
        with contextlib.suppress(Exception):
            await app[OUTBOX].drain_once()
            await app[OUTBOX].release()
        await app[BACKEND].close()
        if health is not None:
            await health.stop()
        await client.close()
        await redis.aclose(close_connection_pool=True)  # built from a pool: not closed by default
        if w3 is not None:
            await w3.provider.disconnect()

    app.cleanup_ctx.append(resources)
    app.add_routes(routes)
    app.add_routes(marketplace_routes)

    async def redis_ready() -> None:
        await redis.ping()

    async def nats_ready() -> None:
        if not connection or not connection[0].is_connected:
            raise ConnectionError("not connected to NATS")
        await connection[0].flush(timeout=1)

    async def chain_ready() -> None:
        if w3 is not None:
            await w3.eth.block_number

    # Health and metrics on an internal port of their own, never on the users' port: readiness
    # names what failed, and /metrics what is served. Worker 0 serves them for the process.
    checks = {"redis": redis_ready, "nats": nats_ready, "chain": chain_ready}
    health = (
        HealthServer(settings.http_host, settings.health_port, checks)
        if settings.worker_index == 0
        else None
    )
    app[HEALTH] = health
    return app
