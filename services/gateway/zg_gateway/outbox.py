# SPDX-License-Identifier: Apache-2.0
"""A transactional outbox: served-request events are written to Redis in the same atomic step
that books the request (see `Ledger.finish`), then published to JetStream by a background
drainer. A gateway that dies after booking still has its events in Redis; the next drain
publishes them, and `Nats-Msg-Id` makes a repeated publish harmless. No fee is lost between
the ledger and the stream.

Each drainer (one per gateway worker process) takes entries into a `sending` list named by its
process's heartbeat identity (`GatewayService.instance`, alive while `zg:gateway:alive:<id>`
is) and registered in `zg:outbox:senders`. Every drainer, every `reclaim_every_s`, hands the
sending lists of processes whose heartbeat has lapsed back to the outbox in one script: a
worker killed mid-publish has its events published by another within `alive_ttl_s +
reclaim_every_s` (40 s by default), whichever gateway process it belonged to. Only a dead (or
frozen past its heartbeat) process's list moves, and the move is atomic, so no two live
drainers publish one entry; a frozen one that wakes may publish it again, which JetStream drops
by its `Nats-Msg-Id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from zg_gateway.ledger import OUTBOX_KEY
from zg_shared.bus import stream_for
from zg_shared.events import RequestServedV1
from zg_shared.events.base import Event
from zg_shared.redisconn import REDIS_AWAY

log = logging.getLogger(__name__)
SENDING_KEY = "zg:outbox:sending"
SENDERS_KEY = "zg:outbox:senders"
BATCH = 256
LINGER_S = 0.005
RECLAIM_EVERY_S = 10.0
_propagator = TraceContextTextMapPropagator()
# The subjects the gateway publishes: its served events. Nothing else leaves its outbox.
OWNED_SUBJECTS = frozenset({RequestServedV1.SUBJECT})

# Drops the entries ARGV[3..] (published and acknowledged) from the sending list, then moves up
# to ARGV[1] entries from the outbox to it, oldest first: one round trip per batch. The drainer
# (ARGV[2]) says it has a sending list: once more after a reclaim took it for dead.
_TAKE = """
redis.call('SADD', KEYS[3], ARGV[2])
for i = 3, #ARGV do redis.call('LREM', KEYS[2], 1, ARGV[i]) end
local taken = {}
for i = 1, tonumber(ARGV[1]) do
  local entry = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not entry then break end
  taken[i] = entry
end
return taken
"""

# Hands back to the outbox (KEYS[2]) the sending list of every registered drainer (KEYS[1])
# whose heartbeat key (ARGV[1] .. id) is gone, and of ARGV[3] if given (this drainer's own, at
# start and stop), oldest entries out first again; returns how many entries moved.
_RECLAIM = """
local moved = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id == ARGV[3] or redis.call('EXISTS', ARGV[1] .. id) == 0 then
    local list = ARGV[2] .. id
    while redis.call('LMOVE', list, KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
    redis.call('SREM', KEYS[1], id)
  end
end
return moved
"""


def sending_key(instance: str) -> str:
    """The sending list of the drainer of gateway process `instance`."""
    return f"{SENDING_KEY}:{instance}"


def legacy_sending_key(worker: int) -> str:
    """Before, a list per worker index: a new version's worker recovers its index's at start."""
    return SENDING_KEY if worker == 0 else f"{SENDING_KEY}:{worker}"


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
    """Moves entries in batches to a `sending` list, publishes a batch without waiting for each
    ack in turn, and drops the acknowledged ones with the next take (or `flush`); entries left
    in `sending` by a dead drainer go back to the outbox at start (and after a failed publish),
    where a republish is harmless (`Nats-Msg-Id`)."""

    def __init__(
        self,
        redis: Redis,
        tracer: trace.Tracer,
        *,
        instance: str,
        alive_prefix: str,
        idle_s: float = 0.05,
        worker: int = 0,
        batch: int = BATCH,
        linger_s: float = LINGER_S,
        reclaim_every_s: float = RECLAIM_EVERY_S,
    ) -> None:
        """`instance`: this process's heartbeat identity, alive while the key `alive_prefix`
        + `:` + instance exists (GatewayService.beat)."""
        self._redis = redis
        self.js: JetStreamContext | None = None  # set once NATS is connected
        self._tracer = tracer
        self._idle_s = idle_s
        self._instance = instance
        self._alive_prefix = f"{alive_prefix}:"
        self._sending = sending_key(instance)
        self._legacy_sending = legacy_sending_key(worker)
        self._batch = batch
        self._linger_s = linger_s
        self._reclaim_every_s = reclaim_every_s
        self._take = redis.register_script(_TAKE)
        self._reclaim = redis.register_script(_RECLAIM)
        self._acked: list[bytes] = []  # published, still to drop from `sending`
        self._wake = asyncio.Event()
        self.published = 0

    def notify(self) -> None:
        self._wake.set()

    async def flush(self) -> None:
        """Drops the acknowledged entries still in `sending`."""
        acked, self._acked = self._acked, []
        if not acked:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for raw in acked:
                    pipe.lrem(self._sending, 1, raw)  # type: ignore[arg-type]
                await pipe.execute()
        except BaseException:
            self._acked = acked + self._acked
            raise

    async def recover(self) -> int:
        """Puts this drainer's unacknowledged entries (and an older version's list of its
        worker index) back in the outbox."""
        await self.flush()
        moved = await self._reclaim_lists(own=True)
        while await self._redis.lmove(self._legacy_sending, OUTBOX_KEY, "RIGHT", "RIGHT"):
            moved += 1
        return moved

    async def release(self) -> int:
        """At a graceful stop, after the last drain: whatever is still unacknowledged goes back
        to the outbox for the other workers, and this drainer leaves the registry."""
        await self.flush()
        return await self._reclaim_lists(own=True)

    async def reclaim(self) -> int:
        """Hands the sending lists of dead gateway processes back to the outbox; returns how
        many entries moved (published by the next drain)."""
        moved = await self._reclaim_lists(own=False)
        if moved:
            log.warning("outbox: %d entries of a stopped gateway process put back", moved)
        return moved

    async def _reclaim_lists(self, *, own: bool) -> int:
        moved = await self._reclaim(
            keys=[SENDERS_KEY, OUTBOX_KEY],
            args=[self._alive_prefix, f"{SENDING_KEY}:", self._instance if own else ""],
        )
        return int(moved)

    async def drain_once(self) -> int:
        sent = 0
        while True:
            acked, self._acked = self._acked, []
            try:
                taken = await self._take(
                    keys=[OUTBOX_KEY, self._sending, SENDERS_KEY],
                    args=[self._batch, self._instance, *acked],
                )
            except BaseException:
                self._acked = acked + self._acked
                raise
            if not taken:
                break
            # Published concurrently: JetStream keeps the order they were sent in, and one
            # round trip of acks replaces one per event.
            results = await asyncio.gather(
                *(self._publish_entry(raw) for raw in taken), return_exceptions=True
            )
            self._acked = [
                raw for raw, result in zip(taken, results, strict=True) if result is None
            ]
            sent += len(self._acked)
            self.published += len(self._acked)
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                # The unacknowledged stay in `sending`; run() puts them back and retries.
                raise failed
            if len(taken) < self._batch:
                break  # the outbox was emptied: no need to ask again now
        return sent

    async def _publish_entry(self, raw: bytes) -> None:
        """Publishes an entry the gateway could have written, and drops (as if published)
        anything else: whoever can push onto the outbox in Redis must not publish through the
        gateway, on a money subject (a forged `chain.fees.settled.v1`) or at all."""
        try:
            entry = OutboxEntry.model_validate_json(raw)
        except ValidationError:
            log.warning("dropped an outbox entry that is not one: %r", raw[:100])
            return
        if entry.subject not in OWNED_SUBJECTS:
            log.warning(
                "dropped an outbox entry for %r: the gateway publishes only %s",
                entry.subject[:100],
                ", ".join(sorted(OWNED_SUBJECTS)),
            )
            return
        await self._publish(entry)

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
        """Drains until `stop` is set; a failed publish (or recovery) is retried after a pause.
        Woken by `notify`, it lingers `linger_s` first, so a trickle of requests is still
        published in batches."""
        loop = asyncio.get_running_loop()
        backoff = self._idle_s
        recovered = False
        next_reclaim = loop.time() + self._reclaim_every_s
        while not stop.is_set():
            # Cleared before draining: a notify that comes during the drain is not lost.
            self._wake.clear()
            try:
                if not recovered:
                    await self.recover()
                    recovered = True
                if loop.time() >= next_reclaim:
                    next_reclaim = loop.time() + self._reclaim_every_s
                    await self.reclaim()
                await self.drain_once()
                backoff = self._idle_s
            except Exception as exc:  # NATS or Redis down: keep the entries, try again later
                if isinstance(exc, REDIS_AWAY):
                    log.warning(
                        "outbox paused: Redis unavailable (%s); retrying in %.1fs", exc, backoff
                    )
                else:
                    log.exception("outbox publish failed; retrying in %.1fs", backoff)
                recovered = False
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            await _sleep_unless(self._wake, 1.0)
            if self._linger_s > 0:
                await _sleep_unless(stop, self._linger_s)


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    """Sleeps up to `seconds`, waking early when `event` is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
