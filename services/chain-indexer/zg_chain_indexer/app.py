# SPDX-License-Identifier: Apache-2.0
"""Wiring: RPC, Redis, the publishing broker, the follower task, health and telemetry.
`create_app(settings)` builds it all; nothing connects until the app starts."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from faststream import FastStream
from faststream.nats import NatsBroker
from redis.asyncio import Redis

from zg_chain_indexer.checkpoint import CheckpointStore
from zg_chain_indexer.config import IndexerSettings
from zg_chain_indexer.follower import Follower, FollowerConfig
from zg_chain_indexer.metrics import IndexerMetrics
from zg_chain_indexer.projection import Projection
from zg_chain_indexer.stream import published_positions
from zg_shared.bus import CHAIN_STREAM, publish_event, service_broker
from zg_shared.chain.client import ServingClient, connect
from zg_shared.chain.events import LogPosition
from zg_shared.deployment import bind
from zg_shared.events.base import Event
from zg_shared.health import HealthServer
from zg_shared.redisconn import redis_client
from zg_shared.telemetry import Telemetry, setup_telemetry

SERVICE_NAME = "zg-chain-indexer"
# On SIGTERM the follower finishes the publish in hand (a few seconds at most) before exiting.
GRACEFUL_TIMEOUT_S = 15.0

log = logging.getLogger(__name__)


@dataclass
class IndexerApp:
    app: FastStream
    broker: NatsBroker
    health: HealthServer
    follower: Follower
    redis: Redis
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()


def create_app(settings: IndexerSettings, *, telemetry: Telemetry | None = None) -> IndexerApp:
    telemetry = telemetry or setup_telemetry(SERVICE_NAME)
    broker = service_broker(settings.nats_access(), SERVICE_NAME, telemetry, GRACEFUL_TIMEOUT_S)
    w3 = connect(settings.rpc_url, timeout=settings.rpc_timeout_s)
    serving = ServingClient(w3, settings.serving_address)
    redis = redis_client(settings)

    async def publish(event: Event) -> bool:
        ack = await publish_event(broker, event)
        return bool(ack is not None and ack.duplicate)

    async def published(limit: int) -> list[LogPosition]:
        return await published_positions(settings.nats_access(), limit)

    follower = Follower(
        serving,
        CheckpointStore(redis, settings.key_prefix, settings.reorg_window),
        Projection(redis, settings.settlements_kept),
        publish,
        published,
        IndexerMetrics(telemetry.meter("zg_chain_indexer")),
        FollowerConfig(
            confirmations=settings.confirmations,
            max_block_range=settings.max_block_range,
            poll_interval_s=settings.poll_interval_s,
            backoff_max_s=settings.backoff_max_s,
        ),
    )

    async def nats_ready() -> None:
        if not await broker.ping(timeout=1.0):
            raise ConnectionError("NATS does not answer")

    async def redis_ready() -> None:
        await redis.ping()

    async def rpc_ready() -> None:
        await w3.eth.block_number

    async def follower_ready() -> None:
        if follower.last_error is not None:
            raise ConnectionError(f"last poll failed: {follower.last_error}")

    health = HealthServer(
        settings.http_host,
        settings.http_port,
        {"nats": nats_ready, "redis": redis_ready, "rpc": rpc_ready, "follower": follower_ready},
    )

    async def declare_streams() -> None:
        await bind(
            w3, settings.serving_address, settings.rpc_url, redis, settings.nats_access(),
            [CHAIN_STREAM.name],
        )  # fmt: skip

    indexer: IndexerApp

    async def start_follower() -> None:
        indexer.stop_event.clear()
        indexer.task = asyncio.create_task(follower.run(indexer.stop_event))

    async def stop_follower() -> None:
        indexer.stop_event.set()
        if indexer.task is not None:
            await indexer.task
            indexer.task = None

    async def close_clients() -> None:
        await health.stop()
        await redis.aclose()
        await w3.provider.disconnect()

    app = FastStream(
        broker,
        logger=logging.getLogger(SERVICE_NAME),
        on_startup=[declare_streams, health.start],
        after_startup=[start_follower],
        on_shutdown=[stop_follower],
        after_shutdown=[close_clients],
    )
    indexer = IndexerApp(app=app, broker=broker, health=health, follower=follower, redis=redis)
    return indexer
