# SPDX-License-Identifier: Apache-2.0
"""Server-sent events, with the latency and mid-stream failure knobs applied."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from zg_sample_backend.config import BackendSettings
from zg_sample_backend.connections import KEPT_ALIVE
from zg_sample_backend.schemas import ErrorBody, ErrorResponse

DONE = "[DONE]"
STREAM_ERROR = ErrorResponse(
    error=ErrorBody(
        message="Injected failure inside the stream", type="server_error", code="stream_failed"
    )
).model_dump_json()


@dataclass(frozen=True)
class Event:
    data: str
    tokens: int = 0  # generated tokens this event carries: each costs `token_latency_ms`


class Pacer:
    """Sleeps like a model that generates tokens one by one."""

    def __init__(self, settings: BackendSettings) -> None:
        self._first_s = settings.first_token_latency_ms / 1000
        self._per_token_s = settings.token_latency_ms / 1000
        self._started = False

    async def tokens(self, count: int) -> None:
        if count <= 0:
            return
        delay = count * self._per_token_s
        if not self._started:
            delay += self._first_s
            self._started = True
        if delay > 0:
            await asyncio.sleep(delay)


async def stream_events(
    request: web.Request, events: Iterable[Event], settings: BackendSettings
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    pacer = Pacer(settings)
    reply = [*events]
    after_done = reply if settings.events_after_done else []
    try:
        for sent, event in enumerate([*reply, Event(DONE), *after_done]):
            if settings.fail_after_chunks is not None and sent >= settings.fail_after_chunks:
                # Like a crashed backend: the chunked body never gets its last chunk, so the
                # client sees a truncated stream (no [DONE], a payload error).
                if request.transport is not None:
                    request.transport.close()
                return response
            if settings.error_after_chunks is not None and sent >= settings.error_after_chunks:
                # Like an engine failing inside its stream: vLLM sends an error event and ends
                # as if finished; llama-cpp-python's server just ends the body.
                if settings.stream_error == "event":
                    await response.write(f"data: {STREAM_ERROR}\n\n".encode())
                    await response.write(f"data: {DONE}\n\n".encode())
                request.app[KEPT_ALIVE].failed(request)
                break
            if (
                settings.early_done_after_chunks is not None
                and sent >= settings.early_done_after_chunks
            ):
                # Like llama-cpp-python's `interrupt_requests`: [DONE] with no finish_reason.
                await response.write(f"data: {DONE}\n\n".encode())
                break
            await pacer.tokens(event.tokens)
            await response.write(f"data: {event.data}\n\n".encode())
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away: nobody is left to tell
    return response
