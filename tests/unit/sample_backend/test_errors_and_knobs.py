# SPDX-License-Identifier: Apache-2.0
"""OpenAI-shaped errors, and the latency and failure-injection knobs."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp import ClientPayloadError, ClientResponse

from tests.unit.sample_backend.conftest import Client, StartBackend, sse_json

CHAT = {"messages": [{"role": "user", "content": "hello there world"}]}


async def error_of(resp: ClientResponse) -> dict[str, Any]:
    body = await resp.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ["message", "type", "param", "code"]
    error: dict[str, Any] = body["error"]
    return error


async def read_lines(resp: ClientResponse, into: list[bytes]) -> None:
    async for line in resp.content:
        into.append(line)


async def test_malformed_json_is_400(backend: Client) -> None:
    for data in (b"{not json", b""):
        async with backend.post("/v1/chat/completions", data=data) as resp:
            assert resp.status == 400
            error = await error_of(resp)
        assert error["type"] == "invalid_request_error"
        assert "parse the JSON body" in error["message"]
        assert error["param"] is None


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"model": "m"}, "messages"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"content": "x"}]}, "messages"),
        ("/v1/chat/completions", {**CHAT, "max_tokens": 0}, "max_tokens"),
        ("/v1/chat/completions", {**CHAT, "n": 2}, "n"),
        ("/v1/completions", {"model": "m"}, "prompt"),
        ("/v1/embeddings", {"input": []}, "input"),
        ("/v1/embeddings", {"input": "x", "encoding_format": "hex"}, "encoding_format"),
        ("/v1/embeddings", [1, 2], None),
    ],
)
async def test_invalid_requests_are_400(
    backend: Client, path: str, body: Any, param: str | None
) -> None:
    async with backend.post(path, json=body) as resp:
        assert resp.status == 400
        error = await error_of(resp)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


async def test_unknown_route_is_404(backend: Client) -> None:
    async with backend.post("/v1/nothing", json={}) as resp:
        assert resp.status == 404
        error = await error_of(resp)
    assert error == {
        "message": "Invalid URL (POST /v1/nothing)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


async def test_wrong_method_is_405_with_allow(backend: Client) -> None:
    async with backend.get("/v1/chat/completions") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
        await error_of(resp)


async def test_status_override_fails_every_v1_route(start_backend: StartBackend) -> None:
    client = await start_backend(status_override=503)
    for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models")):
        async with client.request(method, path, json=CHAT) as resp:
            assert resp.status == 503
            assert (await error_of(resp))["type"] == "server_error"
    async with client.get("/healthz") as resp:
        assert resp.status == 200


async def test_fail_after_chunks_truncates_the_stream(start_backend: StartBackend) -> None:
    client = await start_backend(fail_after_chunks=3)
    received: list[bytes] = []
    async with client.post("/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
        assert resp.status == 200
        with pytest.raises(ClientPayloadError):
            await read_lines(resp, received)
    events = [line for line in received if line.startswith(b"data: ")]
    assert len(events) == 3
    assert b"data: [DONE]\n" not in received
    # The server itself is unharmed, and plain replies are not cut.
    async with client.post("/v1/chat/completions", json=CHAT) as resp:
        assert resp.status == 200


async def test_fail_after_more_chunks_than_sent_changes_nothing(
    start_backend: StartBackend,
) -> None:
    client = await start_backend(fail_after_chunks=1000)
    async with client.post("/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
        _, last = sse_json(await resp.text())
    assert last == "[DONE]"


async def test_token_latency_paces_the_reply(start_backend: StartBackend) -> None:
    client = await start_backend(token_latency_ms=20, first_token_latency_ms=50)
    body = {**CHAT, "max_tokens": 5}
    for stream in (False, True):
        started = time.monotonic()
        async with client.post("/v1/chat/completions", json={**body, "stream": stream}) as resp:
            await resp.read()
        assert time.monotonic() - started >= 0.05 + 5 * 0.02
