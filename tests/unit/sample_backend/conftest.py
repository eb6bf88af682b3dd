# SPDX-License-Identifier: Apache-2.0
"""A sample backend on aiohttp's test server (real HTTP on a free port), one per settings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from zg_sample_backend import BackendSettings, create_app

CREATED = 1_700_000_000
Client = TestClient[web.Request, web.Application]
StartBackend = Callable[..., Awaitable[Client]]


@pytest.fixture
async def start_backend() -> AsyncIterator[StartBackend]:
    """`await start_backend(**settings)` gives a client of a fresh backend; all closed after."""
    clients: list[Client] = []

    async def start(**overrides: Any) -> Client:
        settings = BackendSettings(**{"created": CREATED, **overrides})
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def backend(start_backend: StartBackend) -> Client:
    client: Client = await start_backend()
    return client


def sse_payloads(body: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order; every event must be `data: ...\\n\\n`."""
    assert body.endswith("\n\n")
    events = body[:-2].split("\n\n")
    assert all(e.startswith("data: ") for e in events), events
    return [e.removeprefix("data: ") for e in events]


def sse_json(body: str) -> tuple[list[dict[str, Any]], str]:
    """The JSON chunks of a stream, and its last payload (which should be [DONE])."""
    payloads = sse_payloads(body)
    return [json.loads(p) for p in payloads[:-1]], payloads[-1]
