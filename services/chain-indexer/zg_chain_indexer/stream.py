"""What the indexer last published, read back from the `ZG_CHAIN` stream.

JetStream is the durable record of what was published: when Redis loses the cursor (a
flush), or the indexer died between publishing and saving it, the stream's newest chain event
says where publishing stopped.
"""

from __future__ import annotations

import json

import nats
from nats.js.errors import NotFoundError

from zg_shared.chain.events import LogPosition

CHAIN_STREAM_NAME = "ZG_CHAIN"


async def last_published_position(
    nats_url: str, stream: str = CHAIN_STREAM_NAME, scan: int = 1000
) -> LogPosition | None:
    """The log position of the newest event on `stream` that has one (a reorg notice has
    none), looking back at most `scan` messages; None if there is none."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return None
        if info.state.messages == 0:
            return None
        first, last = info.state.first_seq, info.state.last_seq
        for seq in range(last, max(first, last - scan) - 1, -1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:  # deleted or expired
                continue
            if not msg.data:
                continue
            position = json.loads(msg.data).get("position")
            if position:
                return LogPosition.model_validate(position)
        return None
    finally:
        await client.close()
