# SPDX-License-Identifier: Apache-2.0
"""Redis away (down, or Sentinel promoting a replica): the gateway answers 503 with
Retry-After and an OpenAI-shaped error, charges nothing, logs one warning line and no
traceback, and serves the same signed request once Redis is back."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.gateway.conftest import INPUT_PRICE, Provider, chat
from tests.integration.polling import eventually
from tests.integration.tcpproxy import TcpProxy

CHAT = "/v1/proxy/chat/chat/completions"
WORDS = "hello there gateway"  # 3 input units


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    """The gateway's way to Redis, which the test takes down: a real outage of the server
    while the test still reads the state directly."""
    port = urlsplit(redis_url).port
    assert port is not None
    proxy = TcpProxy(port)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def gateway_overrides(redis_url: str, redis_proxy: TcpProxy) -> dict[str, Any]:
    parts = urlsplit(redis_url)
    login = parts.netloc.rsplit("@", 1)[0]
    return {"redis_url": parts._replace(netloc=f"{login}@127.0.0.1:{redis_proxy.port}").geturl()}


async def test_redis_away_is_a_503_with_retry_after_and_charges_nothing(
    provider: Provider, redis_proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    user = provider.users[0]
    status, _, raw = await provider.post(CHAT, chat(WORDS), user.headers(provider.address, 30))
    assert status == 200, raw
    await eventually(lambda: _served(provider, 1), 10, "the first request's event")
    before = await provider.state(user)

    await redis_proxy.stop()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        headers = user.headers(provider.address, 3 * INPUT_PRICE)
        status, response_headers, raw = await provider.post(CHAT, chat(WORDS), headers)
    assert status == 503, raw
    assert int(response_headers["Retry-After"]) > 0
    error = json.loads(raw)["error"]
    assert (error["code"], error["type"]) == ("state_unavailable", "server_error")
    assert "nothing was charged" in error["message"]
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert [(r.levelno, r.name) for r in warnings] == [(logging.WARNING, "zg_gateway.middlewares")]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"

    await redis_proxy.start()
    assert await provider.state(user) == before  # nothing reserved, nothing charged
    # The same signed request (its nonce unused) is served once Redis is back.
    status, _, raw = await provider.post(CHAT, chat(WORDS), headers)
    assert status == 200, raw
    await eventually(lambda: _served(provider, 2), 10, "the retried request's event")
    retried = (await provider.served_events())[-1]
    assert (retried["nonce"], retried["outcome"]) == (int(headers["Nonce"]), "charged")


async def _served(provider: Provider, count: int) -> bool:
    return len(await provider.served_events()) == count
