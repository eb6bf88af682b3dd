"""A transactional outbox: served-request events are written to Redis in the same atomic step
that books the request (see `Ledger.finish`), then published to JetStream by a background
drainer. A gateway that dies after booking still has its events in Redis; the next drain
publishes them, and `Nats-Msg-Id` makes a repeated publish harmless. No fee is lost between
the ledger and the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel
from redis.asyncio import Redis

from zg_gateway.ledger import OUTBOX_KEY
from zg_shared.bus import stream_for
from zg_shared.events.base import Event

log = logging.getLogger(__name__)
SENDING_KEY = "zg:outbox:sending"
_propagator = TraceContextTextMapPropagator()


class OutboxEntry(BaseModel):
    subject: str
    event_id: str
    payload: str
    trace_headers: dict[str, str] = {}


def outbox_entry(event: Event) -> str:
    """The entry for `event`, carrying the current trace context to the later publish."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    entry = OutboxEntry(
        subject=event.SUBJECT,
        event_id=event.event_id,
        payload=event.model_dump_json(),
        trace_headers=carrier,
    )
    return entry.model_dump_json()


class OutboxDrainer:
    """Moves entries one at a time to a `sending` list, publishes, then drops them; entries
    left in `sending` by a dead drainer go back to the outbox at start."""

    def __init__(self, redis: Redis, tracer: trace.Tracer, idle_s: float = 0.05) -> None:
        self._redis = redis
        self.js: JetStreamContext | None = None  # set once NATS is connected
        self._tracer = tracer
        self._idle_s = idle_s
        self._wake = asyncio.Event()
        self.published = 0

    def notify(self) -> None:
        self._wake.set()

    async def recover(self) -> int:
        moved = 0
        while await self._redis.lmove(SENDING_KEY, OUTBOX_KEY, "RIGHT", "RIGHT"):
            moved += 1
        return moved

    async def drain_once(self) -> int:
        sent = 0
        while (
            raw := await self._redis.lmove(OUTBOX_KEY, SENDING_KEY, "RIGHT", "LEFT")
        ) is not None:
            entry = OutboxEntry.model_validate_json(raw)
            await self._publish(entry)
            await self._redis.lrem(SENDING_KEY, 1, raw)  # type: ignore[arg-type]
            sent += 1
        self.published += sent
        return sent

    async def _publish(self, entry: OutboxEntry) -> None:
        if self.js is None:
            raise ConnectionError("NATS is not connected yet")
        context = _propagator.extract(entry.trace_headers)
        with self._tracer.start_as_current_span(
            f"{entry.subject} publish", context=context, kind=SpanKind.PRODUCER
        ):
            # The consumer continues this trace from the headers (W3C trace context).
            headers = {"Nats-Msg-Id": entry.event_id, "content-type": "application/json"}
            _propagator.inject(headers)
            await self.js.publish(
                entry.subject,
                entry.payload.encode(),
                headers=headers,
                stream=stream_for(entry.subject),
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Drains until `stop` is set; a failed publish is retried after a pause."""
        await self.recover()
        backoff = self._idle_s
        while not stop.is_set():
            try:
                await self.drain_once()
                backoff = self._idle_s
            except Exception:  # NATS or Redis down: keep the entry, try again later
                log.exception("outbox publish failed; retrying in %.1fs", backoff)
                await self.recover()
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._wake.clear()
            await _sleep_unless(self._wake, 1.0)


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    """Sleeps up to `seconds`, waking early when `event` is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
