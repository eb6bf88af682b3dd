# SPDX-License-Identifier: Apache-2.0
"""Talking to the AI backend: one JSON call, or an SSE stream relayed event by event while what
it generated is read off it (`zg_shared.replies`), cut at the reserved output if the backend
overruns, and ended with an error event the user's OpenAI client raises on when the backend
broke it off."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web

from zg_gateway.payment import PAYMENT_HEADERS
from zg_shared.metering import CountingRule
from zg_shared.replies import Generated, SseSplitter, parse_event

# Hop-by-hop and payment headers never go to the backend.
DROP_REQUEST_HEADERS = frozenset(
    h.lower()
    for h in (
        "Host",
        "Content-Length",
        "Connection",
        "Transfer-Encoding",
        *PAYMENT_HEADERS,
        "Authorization",
        "Cookie",
    )
)
# How long a stream's body may go on after `[DONE]` before its connection is dropped rather
# than kept for the next request (an engine's last chunk follows `[DONE]` at once).
DRAIN_S = 0.5


class BackendUnavailable(Exception):
    """The backend could not be reached, or failed before answering."""


@dataclass
class BackendReply:
    status: int
    body: bytes
    content_type: str

    def json(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


def _unavailable(exc: BaseException) -> BackendUnavailable:
    return BackendUnavailable(f"{type(exc).__name__}: {exc}")


class BackendClient:
    """HTTP towards the AI backends: a pooled session, and a second one that opens a new
    connection for every request, for the one retry of a request that failed before the
    backend answered anything.

    That failure is what a kept-alive connection looks like when the backend closed it just as
    the pool handed it out (llama-cpp-python's server closes it after a failed stream; any server
    at its idle timeout). The retry cannot charge the user twice: a request is booked once,
    whatever the backend did; at worst the backend computed a reply nobody read.
    """

    def __init__(self) -> None:
        self.pooled = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        )
        self.fresh = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True)
        )

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout_s: float | None
    ) -> aiohttp.ClientResponse:
        """The backend's response, its status and headers read; raises BackendUnavailable.
        `timeout_s` bounds the whole exchange, body included; None: the caller bounds it."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            return await self.pooled.post(url, data=body, headers=headers, timeout=timeout)
        except aiohttp.ClientConnectorError as exc:  # nothing listens there: no retry helps
            raise _unavailable(exc) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            pass  # dropped before any answer: once more, on a new connection
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable(exc) from exc
        try:
            return await self.fresh.post(url, data=body, headers=headers, timeout=timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        await self.pooled.close()
        await self.fresh.close()


async def call_backend(
    client: BackendClient, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> BackendReply:
    response = await client.post(url, body, headers, timeout_s)
    async with response:
        try:
            payload = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable(exc) from exc
        return BackendReply(
            response.status, payload, response.headers.get("Content-Type", "application/json")
        )


Outcome = Literal["completed", "cut", "client_disconnected", "client_stalled", "broken"]


@dataclass
class RelayResult:
    """How a relayed stream ended, and what it generated."""

    outcome: Outcome
    generated: Generated
    body_sha256: str
    error: str = ""

    @property
    def charged(self) -> bool:
        return self.outcome != "broken"


@dataclass
class _Relay:
    """Writes the backend's events to the user one whole event at a time, reading each, and
    stops before the first one that would take the output beyond `max_units`."""

    response: web.StreamResponse
    max_units: int
    generated: Generated = field(default_factory=Generated)
    digest: Any = field(default_factory=hashlib.sha256)
    splitter: SseSplitter = field(default_factory=SseSplitter)
    cut: bool = False
    ended: bool = False  # `[DONE]` relayed: nothing after it is relayed or charged (only drained)
    told: bool = False  # the user was sent an error event, the backend's or ours

    async def write(self, data: bytes) -> None:
        self.digest.update(data)
        await self.response.write(data)

    async def feed(self, chunk: bytes) -> None:
        for event in self.splitter.feed(chunk):
            done = False
            if event.data is not None:
                parsed = parse_event(event.data)
                if parsed.texts and self.generated.counted_with(parsed) > self.max_units:
                    await self._finish_at_bound()
                    return
                self.generated.add(parsed)
                self.told = self.told or parsed.error is not None
                done = parsed.done
                if done and not self.generated.finished:
                    await self.tell_unfinished()  # before the [DONE]: clients stop reading at it
            await self.write(event.raw)
            if done:
                # Clients stop at [DONE] (the SDK counts only up to it): whatever an engine
                # sends after it is neither relayed nor metered.
                self.ended = True
                return

    async def tell_unfinished(self) -> None:
        """An error event for a stream the backend did not finish, unless the user was told
        already: without one, an OpenAI client ends such a stream as if it were complete."""
        if self.told:
            return
        self.told = True
        what = "ended the stream unfinished" if self.generated.done else "broke off the stream"
        await self.response.write(
            stream_error_event(
                f"the AI backend {what}; nothing is charged for this request", "backend_broke_off"
            )
        )

    async def _finish_at_bound(self) -> None:
        """The backend overran the bound it was sent: the stream ends here, as an engine ends
        one at `max_tokens` (each choice finishes with `length`, then `[DONE]`)."""
        self.cut = True
        last = self.generated.last_chunk or {}
        head = {k: last[k] for k in ("id", "object", "created", "model") if k in last}
        chat = str(last.get("object", "")).startswith("chat.")
        part: dict[str, Any] = {"delta": {}} if chat else {"text": ""}
        choices = [
            {"index": index, **part, "logprobs": None, "finish_reason": "length"}
            for index in self.generated.choices
        ]
        await self.write(f"data: {json.dumps({**head, 'choices': choices})}\n\n".encode())
        await self.write(b"data: [DONE]\n\n")

    async def finish(self) -> None:
        """The bytes of an unfinished last event, passed on as they came."""
        if not (self.cut or self.ended) and self.splitter.pending:
            await self.write(self.splitter.pending)


async def _drained(content: aiohttp.StreamReader, within_s: float) -> bool:
    """Whether the backend's body ends within `within_s` (what it sends meanwhile is dropped):
    only then may its connection serve the next request."""
    try:
        async with asyncio.timeout(within_s):
            while await content.readany():
                pass
    except (TimeoutError, aiohttp.ClientError):
        return False
    return True


def stream_error_event(message: str, code: str) -> bytes:
    """An SSE error event in OpenAI's shape: the openai clients raise APIError on it."""
    error = {"message": message, "type": "server_error", "param": None, "code": code}
    return f"data: {json.dumps({'error': error})}\n\n".encode()


async def relay_stream(
    client: BackendClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    request: web.Request,
    response_headers: dict[str, str],
    max_units: int,
    rule: CountingRule,
    stall_s: float = 60.0,
) -> tuple[web.StreamResponse | None, BackendReply | None, RelayResult | None]:
    """Relays the backend's SSE stream to the user as it arrives.

    Returns (response, None, result) once streaming started, or (None, reply, None) when the
    backend answered with an error instead of a stream. Raises BackendUnavailable when it
    could not be reached at all.

    Two clocks: `timeout_s` bounds the time spent waiting for the backend, `stall_s` the time
    spent waiting for the user to take what was relayed. A user who stops reading blocks the
    relay (and so the backend); on one wall clock that ran out as the backend's timeout and
    voided a stream whose content the user then read for free. Past `stall_s` the stream ends
    as the user's doing (`client_stalled`): charged for what was relayed, like a hang-up.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(timeout_s):
            resp = await client.post(url, body, headers, None)
    except TimeoutError as exc:
        raise _unavailable(exc) from exc
    backend_left = timeout_s - (loop.time() - started)
    async with resp:
        if resp.status != 200 or "text/event-stream" not in resp.headers.get("Content-Type", ""):
            try:
                payload = await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _unavailable(exc) from exc
            return (
                None,
                BackendReply(resp.status, payload, resp.headers.get("Content-Type", "")),
                None,
            )
        response = web.StreamResponse(status=200, headers=response_headers)
        response.content_type = "text/event-stream"
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(request)
        relay = _Relay(response, max_units, Generated(rule))
        outcome: Outcome | None = None
        error = ""
        reusable = True
        clock = _StallClock(loop, stall_s)
        try:
            while not (relay.cut or relay.ended):
                waited = loop.time()
                async with asyncio.timeout(max(backend_left, 0.0)):
                    chunk = await resp.content.readany()
                backend_left -= loop.time() - waited
                if not chunk:
                    break
                await clock.run(relay.feed(chunk))
            await clock.run(relay.finish())
            if relay.ended:
                reusable = await _drained(resp.content, min(DRAIN_S, max(backend_left, 0.0)))
        except _Stalled:
            outcome = "client_stalled"
            if request.transport is not None:
                request.transport.abort()  # what it holds unread goes nowhere now
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            outcome = "client_disconnected"
        except asyncio.CancelledError:
            # With `handler_cancellation` on, aiohttp cancels the handler when the user hangs
            # up: that is a disconnect, booked by the same rule as a failed write. Any other
            # cancellation (shutdown with the user still connected) goes on up.
            if not _client_gone(request):
                resp.close()
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            outcome = "client_disconnected"
        except (aiohttp.ClientError, TimeoutError, asyncio.IncompleteReadError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if outcome is None:
            outcome = (
                "cut" if relay.cut else ("completed" if relay.generated.finished else "broken")
            )
        if outcome == "broken":
            with contextlib.suppress(
                ConnectionResetError, aiohttp.ClientConnectionResetError, _Stalled
            ):
                await clock.run(relay.tell_unfinished())
        if outcome != "completed" or not reusable:
            # Mid-stream, or after a stream that failed: never back into the pool (the backend
            # may be closing it, and the next request would find it reset).
            resp.close()
        return (
            response,
            None,
            RelayResult(outcome, relay.generated, relay.digest.hexdigest(), error),
        )


class _Stalled(Exception):
    """The user left relayed bytes unread for longer, in all, than the stream allows."""


class _StallClock:
    """The time a stream has spent waiting for the user to read, against its allowance."""

    def __init__(self, loop: asyncio.AbstractEventLoop, allowed_s: float) -> None:
        self._loop = loop
        self._left = allowed_s

    async def run(self, write: Awaitable[None]) -> None:
        started = self._loop.time()
        try:
            async with asyncio.timeout(max(self._left, 0.0)):
                await write
        except TimeoutError as exc:
            raise _Stalled from exc
        finally:
            self._left -= self._loop.time() - started


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
