# SPDX-License-Identifier: Apache-2.0
"""A gateway worker's outbox in a process of its own, for the tests that SIGKILL one: the
production drainer loop (`OutboxDrainer.run`) and the heartbeat the gateway beats for the
process (`GatewayService.beat`: `zg:gateway:alive:<instance>` with a TTL), nothing else.

    python -m tests.integration.gateway.outbox_worker INSTANCE

reads OUTBOX_WORKER_* from the environment (Redis and NATS logins, the heartbeat's TTL, the
reclaim interval, the batch, and an inbox prefix to make a publish's ack go astray)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from opentelemetry import trace
from pydantic import SecretStr
from redis.asyncio import Redis

from zg_gateway.outbox import OutboxDrainer
from zg_gateway.service import ALIVE_PREFIX, alive_key
from zg_shared.bus import NatsAccess

# A publish waits this long for its ack: a worker whose ack never comes is still publishing
# when the test kills it.
ACK_WAIT_S = 600.0


async def main(instance: str) -> None:
    env = os.environ
    ttl = float(env["OUTBOX_WORKER_ALIVE_TTL_S"])
    redis = Redis.from_url(env["OUTBOX_WORKER_REDIS_URL"])
    bus = NatsAccess(
        url=env["OUTBOX_WORKER_NATS_URL"],
        username=env["OUTBOX_WORKER_NATS_USER"],
        password=SecretStr(env["OUTBOX_WORKER_NATS_PASSWORD"]),
    )
    astray = env.get("OUTBOX_WORKER_INBOX_PREFIX")
    client = await bus.connect(**({"inbox_prefix": astray} if astray else {}))
    drainer = OutboxDrainer(
        redis,
        trace.get_tracer("outbox-worker"),
        instance=instance,
        alive_prefix=ALIVE_PREFIX,
        batch=int(env["OUTBOX_WORKER_BATCH"]),
        reclaim_every_s=float(env["OUTBOX_WORKER_RECLAIM_EVERY_S"]),
    )
    drainer.js = client.jetstream(timeout=ACK_WAIT_S)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def beat() -> None:
        while not stop.is_set():
            await redis.set(alive_key(instance), "1", px=int(ttl * 1000))
            await asyncio.sleep(ttl / 3)

    await redis.set(alive_key(instance), "1", px=int(ttl * 1000))  # before draining, as app.py
    beating = asyncio.create_task(beat())
    await drainer.run(stop)
    beating.cancel()
    await drainer.drain_once()
    await drainer.release()
    await client.close()
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
