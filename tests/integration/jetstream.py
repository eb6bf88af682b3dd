# SPDX-License-Identifier: Apache-2.0
"""Reading what a test's services published to JetStream."""

from __future__ import annotations

import json
from typing import Any

import nats
from nats.js import JetStreamContext


async def stream_events(
    js: JetStreamContext, subjects: set[str], stream: str = "ZG_SERVING"
) -> list[tuple[str, dict[str, Any]]]:
    """(subject, payload) of every message on `subjects`, in stream order; [] if no stream."""
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    if info.state.messages == 0:  # an empty stream reports first_seq 0, which get_msg refuses
        return found
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        if msg.subject in subjects and msg.data:
            found.append((msg.subject, json.loads(msg.data)))
    return found
