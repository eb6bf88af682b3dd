# SPDX-License-Identifier: Apache-2.0
"""Talking to the AI backend: one JSON call, or an SSE stream relayed chunk by chunk while the
generated text and the usage chunk are read off it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

# Hop-by-hop and payment headers never go to the backend.
DROP_REQUEST_HEADERS = frozenset(
    h.lower()
    for h in (
        "Host",
        "Content-Length",
        "Connection",
        "Transfer-Encoding",
        "Address",
        "Nonce",
        "Input-Fee",
        "Previous-Output-Fee",
        "Fee",
        "Signature",
        "Authorization",
        "Cookie",
    )
)


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


def generated_texts(reply: dict[str, Any]) -> list[str]:
    """The text a (non-streamed) completion generated, for counting when usage is absent."""
    texts = []
    for choice in reply.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            texts.append(message["content"])
        if isinstance(choice.get("text"), str):
            texts.append(choice["text"])
    return texts


async def call_backend(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> BackendReply:
    try:
        async with session.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            payload = await resp.read()
            return BackendReply(
                resp.status, payload, resp.headers.get("Content-Type", "application/json")
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BackendUnavailable(f"{type(exc).__name__}: {exc}") from exc


@dataclass
class SseReader:
    """Follows an OpenAI SSE stream: the generated text, the final usage, and [DONE]."""

    texts: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    done: bool = False
    _buffer: bytes = b""

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._line(line.strip())

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return
        try:
            event = json.loads(data)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if isinstance(event.get("usage"), dict):
            self.usage = event["usage"]
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                self.texts.append(delta["content"])
            if isinstance(choice.get("text"), str):
                self.texts.append(choice["text"])


@dataclass
class RelayResult:
    """How a relayed stream ended."""

    completed: bool  # the backend finished with [DONE]
    client_gone: bool  # the user disconnected before the end
    reader: SseReader
    body_sha256: str
    error: str = ""


async def relay_stream(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    request: web.Request,
    response_headers: dict[str, str],
) -> tuple[web.StreamResponse | None, BackendReply | None, RelayResult | None]:
    """Relays the backend's SSE stream to the user as it arrives.

    Returns (response, None, result) once streaming started, or (None, reply, None) when the
    backend answered with an error instead of a stream. Raises BackendUnavailable when it
    could not be reached at all.
    """
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    reader, digest = SseReader(), hashlib.sha256()
    try:
        resp = await session.post(url, data=body, headers=headers, timeout=timeout)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BackendUnavailable(f"{type(exc).__name__}: {exc}") from exc
    async with resp:
        if resp.status != 200 or "text/event-stream" not in resp.headers.get("Content-Type", ""):
            try:
                payload = await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise BackendUnavailable(f"{type(exc).__name__}: {exc}") from exc
            return (
                None,
                BackendReply(resp.status, payload, resp.headers.get("Content-Type", "")),
                None,
            )
        response = web.StreamResponse(status=200, headers=response_headers)
        response.content_type = "text/event-stream"
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(request)
        error = ""
        try:
            async for chunk in resp.content.iter_any():
                reader.feed(chunk)
                digest.update(chunk)
                await response.write(chunk)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            return response, None, RelayResult(False, True, reader, digest.hexdigest())
        except asyncio.CancelledError:
            # With `handler_cancellation` on, aiohttp cancels the handler when the user hangs
            # up: that is a disconnect, booked by the same rule as a failed write. Any other
            # cancellation (shutdown with the user still connected) goes on up.
            if not _client_gone(request):
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return response, None, RelayResult(False, True, reader, digest.hexdigest())
        except (aiohttp.ClientError, TimeoutError, asyncio.IncompleteReadError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        return response, None, RelayResult(reader.done, False, reader, digest.hexdigest(), error)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
