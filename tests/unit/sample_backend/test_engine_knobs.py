# SPDX-License-Identifier: Apache-2.0
"""The knobs that make the sample backend behave like real engines do (llama-cpp-python, vLLM):
no usage in streams, words split over tokens, ignored output bounds, an early [DONE], an error
inside the stream, and kept-alive connections dropped."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import ServerDisconnectedError

from tests.unit.sample_backend.conftest import Client, StartBackend, sse_payloads

CHAT = {"messages": [{"role": "user", "content": "hello there world"}]}
STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}


async def post(client: Client, body: dict[str, Any], path: str = "/v1/chat/completions") -> str:
    async with client.post(path, json=body) as resp:
        assert resp.status == 200
        return await resp.text()


async def test_stream_usage_off_ignores_include_usage(start_backend: StartBackend) -> None:
    client = await start_backend(stream_usage=False)
    payloads = sse_payloads(await post(client, STREAM))
    assert payloads[-1] == "[DONE]"
    assert not any('"usage"' in p for p in payloads)
    # Plain replies still report usage.
    assert '"usage"' in await post(client, CHAT)


async def test_piece_chars_streams_words_in_pieces_and_counts_tokens(
    start_backend: StartBackend,
) -> None:
    client = await start_backend(piece_chars=2)
    plain = json.loads(await post(client, CHAT))
    payloads = sse_payloads(await post(client, STREAM))
    chunks = [json.loads(p) for p in payloads[:-1]]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    pieces = [p for p in pieces if p]
    # "Sample reply <8 hex>: hello there world": 3 + 3 + 5 + 3 + 3 + 3 pieces of <= 2 chars.
    assert "".join(pieces) == plain["choices"][0]["message"]["content"]
    assert len(pieces) == 20
    assert all(len(p) <= 2 for p in pieces)
    assert plain["usage"]["completion_tokens"] == 20
    assert chunks[-1]["usage"]["completion_tokens"] == 20


@pytest.mark.parametrize(
    ("honoured", "body", "cut"),
    [
        ("both", {"max_completion_tokens": 2}, True),
        ("both", {"max_tokens": 2}, True),
        ("max_tokens", {"max_completion_tokens": 2}, False),
        ("max_tokens", {"max_tokens": 2}, True),
        ("none", {"max_tokens": 2, "max_completion_tokens": 2}, False),
    ],
)
async def test_honoured_bounds(
    start_backend: StartBackend, honoured: str, body: dict[str, Any], cut: bool
) -> None:
    client = await start_backend(honoured_bounds=honoured)
    reply = await post(client, {**CHAT, **body})
    assert ('"finish_reason":"length"' in reply) is cut
    assert ('"completion_tokens":2,' in reply) is cut


async def test_early_done_ends_the_stream_without_finish_reason(
    start_backend: StartBackend,
) -> None:
    client = await start_backend(early_done_after_chunks=2)
    payloads = sse_payloads(await post(client, STREAM))
    assert len(payloads) == 3
    assert payloads[-1] == "[DONE]"
    assert not any('"finish_reason":"' in p for p in payloads)


async def test_error_after_chunks_sends_an_error_event_then_done(
    start_backend: StartBackend,
) -> None:
    client = await start_backend(error_after_chunks=1)
    payloads = sse_payloads(await post(client, STREAM))
    assert len(payloads) == 3
    assert payloads[1].startswith('{"error":{"message":')
    assert '"type":"server_error"' in payloads[1]
    assert payloads[-1] == "[DONE]"


async def test_error_after_chunks_can_just_end_the_body(start_backend: StartBackend) -> None:
    client = await start_backend(error_after_chunks=0, stream_error="end")
    assert await post(client, STREAM) == ""


async def test_drop_kept_alive_after_a_failed_stream(start_backend: StartBackend) -> None:
    client = await start_backend(error_after_chunks=1, drop_kept_alive="after_failed_stream")
    await post(client, CHAT)
    await post(client, CHAT)  # the same connection, kept alive: nothing failed on it yet
    await post(client, STREAM)
    with pytest.raises(ServerDisconnectedError):
        await post(client, CHAT)
    await post(client, CHAT)  # a new connection


async def test_drop_kept_alive_always(start_backend: StartBackend) -> None:
    client = await start_backend(drop_kept_alive="always")
    await post(client, CHAT)
    with pytest.raises(ServerDisconnectedError):
        await post(client, CHAT)
    await post(client, CHAT)
