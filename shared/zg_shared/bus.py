# SPDX-License-Identifier: Apache-2.0
"""The JetStream streams and how events are published onto them.

Two durable streams, file storage, de-duplication by `Nats-Msg-Id` within a window:
`ZG_SERVING` (`serving.>`: what the provider served, settlement and proofs; the durable
record of what users owe) and `ZG_CHAIN` (`chain.>`: what the indexer saw on chain).
Every service declares them at start (`ensure_streams`), so start order does not matter.
"""

from __future__ import annotations

from dataclasses import replace

import nats
from faststream.nats import JStream, NatsBroker, PubAck
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from zg_shared.events.base import Event

# Publishers retry for at most this long; JetStream drops a repeated Nats-Msg-Id inside it.
DUPLICATE_WINDOW_S = 600.0
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


def stream_for(subject: str) -> str:
    for config in STREAM_CONFIGS:
        if any(subject.startswith(s.removesuffix(">")) for s in config.subjects or []):
            assert config.name is not None
            return config.name
    raise ValueError(f"no stream takes subject {subject!r}")


async def ensure_streams(nats_url: str) -> None:
    """Creates the streams, or brings an existing one to this configuration."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        for config in STREAM_CONFIGS:
            try:
                await js.add_stream(config)
            except BadRequestError:
                # The description is the deployment's stamp (zg_shared.deployment): keep it.
                assert config.name is not None
                current = await js.stream_info(config.name)
                await js.update_stream(replace(config, description=current.config.description))
    finally:
        await client.close()


async def publish_event(broker: NatsBroker, event: Event) -> PubAck | None:
    """Publishes to JetStream and waits for its ack; `event_id` de-duplicates retries."""
    return await broker.publish(
        event,
        event.SUBJECT,
        headers={"Nats-Msg-Id": event.event_id},
        stream=stream_for(event.SUBJECT),
    )
