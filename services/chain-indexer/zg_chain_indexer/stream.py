# SPDX-License-Identifier: Apache-2.0
"""What the indexer published, read back from the `ZG_CHAIN` stream.

JetStream is the durable record of what was published: when Redis loses the cursor (a
flush), or the indexer died between publishing and saving it, the stream's newest chain event
says where publishing stopped; after a reorg deeper than the Redis journal, the newest event
still on the canonical chain says where to start again.
"""

from __future__ import annotations

import json
import logging

from nats.js.errors import NotFoundError
from pydantic import ValidationError

from zg_shared.bus import NatsAccess
from zg_shared.bus import connect as connect_nats
from zg_shared.chain.events import LogPosition

CHAIN_STREAM_NAME = "ZG_CHAIN"
log = logging.getLogger(__name__)


def _position_of(subject: str | None, data: bytes | None) -> LogPosition | None:
    """A chain event's log position, or None for anything else the stream holds: a reorg
    notice, or what another service had stored there through the reply-subject trick (NATS
    checks no reply subject): a publish ack, an API reply, an empty status, a copy of a
    `serving.*` event under its own subject, or a copy of junk. Before, junk stopped the
    indexer's start (a JSON list, or a `position` that is none)."""
    if not data or not (subject or "").startswith("chain."):
        return None
    try:
        found = json.loads(data)
        if not isinstance(found, dict) or not found.get("position"):
            return None
        return LogPosition.model_validate(found["position"])
    except (ValueError, ValidationError) as exc:  # a JSONDecodeError is a ValueError
        log.warning(
            "skipped a message on %s that is no chain event (%s)", subject, type(exc).__name__
        )
        return None


async def published_positions(
    bus: NatsAccess | str, limit: int = 1, stream: str = CHAIN_STREAM_NAME, scan: int = 10_000
) -> list[LogPosition]:
    """Log positions of the newest chain events on `stream` (a reorg notice has none), newest
    first, at most `limit` of them, looking back at most `scan` messages."""
    client = await connect_nats(bus)
    try:
        js = client.jetstream()
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return []
        found: list[LogPosition] = []
        if info.state.messages == 0:
            return found
        first, last = info.state.first_seq, info.state.last_seq
        for seq in range(last, max(first, last - scan) - 1, -1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:  # deleted or expired
                continue
            position = _position_of(msg.subject, msg.data)
            if position is not None:
                found.append(position)
                if len(found) >= limit:
                    break
        return found
    finally:
        await client.close()
