# SPDX-License-Identifier: Apache-2.0
"""The JetStream streams and how events are published onto them.

Two durable streams, file storage, de-duplication by `Nats-Msg-Id` within a window:
`ZG_SERVING` (`serving.>`: what the provider served, settlement and proofs; the durable
record of what users owe) and `ZG_CHAIN` (`chain.>`: what the indexer saw on chain).
Every service declares them at start (`ensure_streams`), so start order does not matter.

On a JetStream cluster, `NATS_URL` lists several servers, comma-separated (`nats_servers`:
nats-py wants a list), and `NATS_STREAM_REPLICAS` keeps each stream on that many servers
(3 in production: a stream stays writable with one server lost). Durable consumers leave
their replica count at 0, which JetStream reads as the stream's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import nats
from faststream.nats import JStream, NatsBroker, PubAck
from nats.aio.client import Client as NatsClient
from nats.errors import ConnectionReconnectingError, NoRespondersError, StaleConnectionError
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError, NoStreamResponseError

from zg_shared.events.base import Event

log = logging.getLogger(__name__)
# Publishers retry for at most this long; JetStream drops a repeated Nats-Msg-Id inside it.
DUPLICATE_WINDOW_S = 600.0
# publish_event's own retries: a leader election takes a few seconds, a lost server's clients
# reconnect within a few more.
PUBLISH_RETRY_S = 30.0
# What a publish meets while a cluster recovers (nats-py's TimeoutError is a TimeoutError).
TRANSIENT_PUBLISH_ERRORS = (
    TimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ConnectionReconnectingError,
    StaleConnectionError,
)
# Served requests are the record of what users owe: keep them far longer than any
# settlement can take (the refund lock time bounds it).
SERVING_MAX_AGE_S = 30 * 24 * 3600.0
CHAIN_MAX_AGE_S = 7 * 24 * 3600.0

STREAM_CONFIGS = (
    StreamConfig(
        name="ZG_SERVING",
        subjects=["serving.>"],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_age=SERVING_MAX_AGE_S,
    ),
    StreamConfig(
        name="ZG_CHAIN",
        subjects=["chain.>"],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_age=CHAIN_MAX_AGE_S,
    ),
)
# For faststream subscribers: the streams exist already (ensure_streams), so they only bind.
SERVING_STREAM = JStream(name="ZG_SERVING", declare=False)
CHAIN_STREAM = JStream(name="ZG_CHAIN", declare=False)


def nats_servers(url: str) -> list[str]:
    """The servers of a `NATS_URL`: one URL, or several separated by commas."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError("NATS_URL names no server")
    return servers


async def connect(nats_url: str, **options: Any) -> NatsClient:
    """A nats-py client on every server `nats_url` lists: it moves to another one when the
    server it is on goes away (and learns the cluster's other servers from it)."""
    return await nats.connect(nats_servers(nats_url), **options)


def stream_configs(replicas: int = 1) -> tuple[StreamConfig, ...]:
    """The streams' configuration with `replicas` copies of each."""
    return tuple(replace(config, num_replicas=replicas) for config in STREAM_CONFIGS)


def stream_for(subject: str) -> str:
    for config in STREAM_CONFIGS:
        if any(subject.startswith(s.removesuffix(">")) for s in config.subjects or []):
            assert config.name is not None
            return config.name
    raise ValueError(f"no stream takes subject {subject!r}")


async def ensure_streams(nats_url: str, replicas: int = 1) -> None:
    """Creates the streams, or brings an existing one to this configuration (a change of
    `replicas` too: JetStream adds or drops the copies)."""
    client = await connect(nats_url)
    try:
        js = client.jetstream()
        for config in stream_configs(replicas):
            try:
                await js.add_stream(config)
            except BadRequestError:
                # The description is the deployment's stamp (zg_shared.deployment): keep it.
                assert config.name is not None
                current = await js.stream_info(config.name)
                await js.update_stream(replace(config, description=current.config.description))
    finally:
        await client.close()


async def publish_event(
    broker: NatsBroker, event: Event, *, retry_for_s: float = PUBLISH_RETRY_S
) -> PubAck | None:
    """Publishes to JetStream and waits for its ack. A stream answers nothing for a few
    seconds while it elects a new leader (a server of the cluster lost), and a client moving
    to another server is briefly away: the same message is sent again, under the same
    `Nats-Msg-Id` (`event_id`: JetStream stores it once), until it is acked or `retry_for_s`
    has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for_s
    delay = 0.1
    while True:
        try:
            return await broker.publish(
                event,
                event.SUBJECT,
                headers={"Nats-Msg-Id": event.event_id},
                stream=stream_for(event.SUBJECT),
            )
        except TRANSIENT_PUBLISH_ERRORS as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("publishing %s again in %.1fs: %r", event.event_id, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
