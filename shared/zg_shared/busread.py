# SPDX-License-Identifier: Apache-2.0
"""Reading a consumed JetStream message as the one event its subject carries.

NATS checks no reply subject: any service may name a stream subject as the reply of its own
publish, JetStream API request or `MSG.NEXT`, and the stream then stores the answer (a publish
ack `{"stream": .., "seq": ..}`, an API reply, or an empty `404 No Messages` status) under that
subject, where a consumer of it reads it as if its owner had published it. Such a message is
no event of the subject: it is rejected (terminated, never redelivered) with one warning line
saying what it looks like, and the handler never runs. Before, faststream validated the body
itself and logged a traceback per message, and a handler whose event parameter was unused
(`_`) ran on anything.
"""

from __future__ import annotations

import json
import logging
from typing import TypeVar

from faststream.nats import NatsMessage
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError
from pydantic import BaseModel, ValidationError

from zg_shared.events.base import Event

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Event)
M = TypeVar("M", bound=BaseModel)


def _looks_like(body: bytes) -> str:
    """What a message that is not an event seems to be, for the operator reading the log."""
    if not body.strip():
        return "an empty message (a NATS status reply)"
    try:
        found = json.loads(body)
    except ValueError:
        return "not JSON"
    if not isinstance(found, dict):
        return f"a JSON {type(found).__name__}, not an object"
    if {"stream", "seq"} <= found.keys() and "event_id" not in found:
        return "a JetStream publish ack"
    kind = found.get("type")
    if isinstance(kind, str) and kind.startswith("io.nats."):
        return "a JetStream API reply"
    return "another kind of JSON object"


def where(raw: Msg) -> str:
    """A nats-py message's subject, and its stream position if JetStream delivered it."""
    try:
        seq = raw.metadata.sequence.stream
        return f"{raw.subject} (stream {raw.metadata.stream} seq {seq})"
    except (NotJSMessageError, ValueError, AttributeError):  # not a JetStream delivery
        return raw.subject


def read_event(model: type[M], data: bytes, where: str) -> M | None:
    """`data` as a `model` event (or command), or None after one warning line saying what it
    is instead."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        log.warning(
            "dropped a message on %s that is not a %s: %s (%d errors; first: %s: %s)",
            where,
            model.__name__,
            _looks_like(data),
            exc.error_count(),
            field,
            first["msg"],
        )
        return None


async def event_of(model: type[E], message: NatsMessage) -> E | None:
    """The message's event, or None once a message that is none (a copy the reply-subject
    trick stored, or junk) is rejected (terminated: never redelivered) with one line."""
    event = read_event(model, message.body, where(message.raw_message))
    if event is None:
        await message.reject()
    return event
