# SPDX-License-Identifier: Apache-2.0
"""What an anonymous client can send a running gateway process (issue 11 items 9-14): bodies
that crashed the process, numbers and fields that got 500s, a field that got content for free,
header names in another case, requests that cost the provider chain reads, non-JSON bodies.
Each gets a clear 4xx, changes nothing, and the process stays up."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount

from tests.integration.gateway.conftest import (
    GatewayProcess,
    Provider,
    User,
    chat,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.integration.gateway.test_gateway import CHAT, WORDS, wait_for_events
from tests.integration.rawhttp import raw_request
from tests.integration.rpccount import CountingRpc, selector
from zg_shared.accounts import AccountStore
from zg_shared.chain import Web3Client
from zg_shared.crypto import generate_private_key
from zg_shared.localservers import free_port

pytestmark = pytest.mark.slow
BODY = json.dumps(chat(WORDS)).encode()  # a paid chat request's body


async def send(
    gateway: GatewayProcess,
    headers: dict[str, str] | list[tuple[str, str]],
    body: bytes,
    path: str = CHAT,
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    pairs = list(headers.items()) if isinstance(headers, dict) else headers
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as http,
        http.post(
            f"{gateway.url}{path}",
            data=body,
            headers=[*pairs, ("Content-Type", content_type)] if content_type else pairs,
        ) as resp,
    ):
        return resp.status, await resp.read()


def error_of(raw: bytes) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(raw)["error"]
    return error


async def test_a_body_nested_100000_deep_is_refused_and_the_process_lives(
    provider: Provider, gateway_process: GatewayProcess
) -> None:
    deep = b"[" * 100_000
    stranger = User(EthAccount.create(), generate_private_key())
    user = provider.users[0]
    for who in (stranger, user):  # a random key (no account), then a valid signature
        status, raw = await send(gateway_process, who.headers(provider.address, 30), deep)
        assert gateway_process.alive, "the gateway process died"
        assert status in (400, 402), raw
    assert error_of(raw)["code"] == "invalid_json"
    assert "deeper than" in error_of(raw)["message"]
    # Nesting inside strings is text, not depth: served.
    text = "[" * 100_000  # one word
    status, raw = await send(
        gateway_process, user.headers(provider.address, 10), json.dumps(chat(text)).encode()
    )
    assert status == 200, raw
    assert await provider.state(user) is not None


@pytest.mark.parametrize("name", ["Nonce", "Fee", "Input-Fee", "Previous-Output-Fee"])
async def test_a_5000_digit_number_is_a_400_naming_the_header(
    provider: Provider, gateway_process: GatewayProcess, name: str
) -> None:
    user = provider.users[0]
    headers = {**user.headers(provider.address, 30), name: "9" * 5000}
    status, raw = await send(gateway_process, headers, BODY)
    assert status == 400, raw
    assert (error_of(raw)["code"], error_of(raw)["param"]) == ("invalid_header", name)
    assert await provider.state(user) is None


WRONGLY_TYPED = [
    ("stream", {"stream": "yes"}),
    ("stream", {"stream": 1}),
    ("stream_options", {"stream": True, "stream_options": "x"}),
    ("stream_options.include_usage", {"stream": True, "stream_options": {"include_usage": 2}}),
    ("max_tokens", {"max_tokens": "10"}),
    ("max_tokens", {"max_tokens": True}),
    ("max_tokens", {"max_tokens": 0}),
    ("max_tokens", {"max_tokens": 10**40}),
    ("max_completion_tokens", {"max_completion_tokens": -5}),
    ("model", {"model": 5}),
    ("messages", {"messages": "hi"}),
    ("messages[0].content", {"messages": [{"role": "user", "content": 7}]}),
    ("messages[0]", {"messages": ["hi"]}),
]


@pytest.mark.parametrize(
    ("field", "fields"), WRONGLY_TYPED, ids=[f"{f}={v}" for f, v in WRONGLY_TYPED]
)
async def test_a_wrongly_typed_field_is_a_400_naming_it_and_changes_nothing(
    provider: Provider, gateway_process: GatewayProcess, field: str, fields: dict[str, Any]
) -> None:
    user = provider.users[0]
    body = {**chat(WORDS), **fields}
    status, raw = await send(
        gateway_process, user.headers(provider.address, 30), json.dumps(body).encode()
    )
    assert status == 400, raw
    error = error_of(raw)
    assert error["code"] == "invalid_body"
    assert field in error["message"]
    assert error["param"].startswith(field)
    assert gateway_process.alive
    state = await provider.state(user)
    assert state is not None
    assert (state.unsettled, state.reserved, state.output_debt) == (0, 0, 0)


async def test_stream_yes_gets_no_content_and_costs_nothing(
    provider: Provider, gateway_process: GatewayProcess
) -> None:
    """It used to be voided while the backend's whole reply was relayed inside the 502."""
    user = provider.users[0]
    body = json.dumps(chat(WORDS, stream="yes")).encode()
    status, raw = await send(gateway_process, user.headers(provider.address, 30), body)
    assert status == 400, raw
    assert b"choices" not in raw
    assert b"data:" not in raw
    # The next request's event is then the only one on the stream (no pause: a barrier).
    headers = user.headers(provider.address, 30)
    status, raw = await send(gateway_process, headers, BODY)
    assert status == 200, raw
    [event] = await wait_for_events(provider, 1)
    assert event["nonce"] == int(headers["Nonce"])


async def test_header_names_are_case_insensitive_and_a_duplicate_is_refused(
    provider: Provider, gateway_process: GatewayProcess
) -> None:
    user = provider.users[0]
    body = BODY
    lower = {k.lower(): v for k, v in user.headers(provider.address, 30).items()}
    status, raw = await send(gateway_process, lower, body)
    assert status == 200, raw
    upper = {k.upper(): v for k, v in user.headers(provider.address, 30).items()}
    status, raw = await send(gateway_process, upper, body)
    assert status == 200, raw

    headers = user.headers(provider.address, 30)
    twice = [*headers.items(), ("nonce", str(int(headers["Nonce"]) + 1))]
    status, raw = await raw_request(
        gateway_process.url, CHAT, [*twice, ("Content-Type", "application/json")], body
    )
    assert status == 400, raw
    assert (error_of(raw)["code"], error_of(raw)["param"]) == ("duplicate_header", "Nonce")
    assert len(await wait_for_events(provider, 2)) == 2


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
async def test_a_json_body_under_another_content_type_is_415(
    provider: Provider, gateway_process: GatewayProcess, content_type: str
) -> None:
    user = provider.users[0]
    body = BODY
    status, raw = await send(
        gateway_process, user.headers(provider.address, 30), body, content_type=content_type
    )
    assert status == 415, raw
    assert error_of(raw)["code"] == "unsupported_media_type"
    assert await provider.state(user) is None
    # A JSON type with parameters, or a +json type, is JSON.
    for json_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        status, raw = await send(
            gateway_process, user.headers(provider.address, 30), body, content_type=json_type
        )
        assert status == 200, raw


GET_SERVICE = selector("getService(address,string)")


def client_reads(rpc: CountingRpc) -> Counter[str]:
    """The RPC calls so far, less the service terms' refreshes (a getService call and web3's
    two chain-id calls each): the gateway reads the terms again every 5 s (SERVICE_CACHE_S)
    whoever asks, so a slow run makes more of them."""
    refreshes = rpc.views[GET_SERVICE]
    return rpc.calls - Counter({"eth_call": refreshes, "eth_chainId": 2 * refreshes})


@contextlib.asynccontextmanager
async def budgeted_gateway(
    provider: Provider, keys: list[LocalAccount], rpc_url: str, redis_url: str, nats_url: str,
    burst: int, **settings: str,
) -> AsyncIterator[GatewayProcess]:  # fmt: skip
    """A gateway process whose clients may each cause `burst` chain reads (refilled at
    0.01/s), with its service synced from the chain by a first paid request (that read is
    charged to this machine's address)."""
    env = gateway_env(
        provider, keys[2], rpc_url, redis_url, nats_url, free_port(),
        chain_reads_per_client_s="0.01", chain_reads_burst=str(burst), **settings,
    )  # fmt: skip
    gateway = await start_gateway(env)
    try:
        status, raw = await send(gateway, provider.users[0].headers(provider.address, 30), BODY)
        assert status == 200, raw
        yield gateway
    finally:
        stop_gateway(gateway)


async def test_random_addresses_cost_a_bounded_number_of_chain_reads(
    provider: Provider,
    keys: list[LocalAccount],
    w3: Web3Client,
    redis_url: str,
    nats_url: str,
) -> None:
    """Before: two RPC calls per request with a random Address, before any check or limit."""
    burst = 5
    async with (
        CountingRpc(str(w3.provider.endpoint_uri)) as rpc,
        budgeted_gateway(provider, keys, rpc.url, redis_url, nats_url, burst) as gateway,
    ):
        before = client_reads(rpc)
        strangers = [User(EthAccount.create(), generate_private_key()) for _ in range(40)]
        # An unknown address is remembered (for 2 s): asked again at once, it is answered
        # from memory, at no chain read.
        status, raw = await send(gateway, strangers[0].headers(provider.address, 30), BODY)
        assert status == 402, raw
        first = client_reads(rpc)
        status, raw = await send(gateway, strangers[0].headers(provider.address, 30), BODY)
        assert status == 402, raw
        assert client_reads(rpc) == first
        statuses = [402]
        for stranger in strangers[1:]:
            status, raw = await send(gateway, stranger.headers(provider.address, 30), BODY)
            statuses.append(status)
        assert set(statuses) == {402, 429}
        assert statuses.count(402) <= burst
        reads = client_reads(rpc) - before
        assert reads["eth_call"] <= burst, reads  # getAccount, once per read admitted
        assert reads.total() <= 3 * burst, reads  # with its block number and chain id
        # An account the indexer loaded into Redis is still served (its key is checked
        # against the chain as it enters the cache, at no cost to the client's budget).
        known = provider.users[1]
        await AccountStore(provider.redis).load_from_chain(
            provider.serving, known.address, provider.address
        )
        status, raw = await send(gateway, known.headers(provider.address, 30), BODY)
        assert status == 200, raw


@pytest.mark.parametrize("trusted", [True, False], ids=["behind-a-trusted-proxy", "direct"])
async def test_each_client_behind_a_trusted_proxy_has_its_own_chain_read_budget(
    provider: Provider,
    keys: list[LocalAccount],
    w3: Web3Client,
    redis_url: str,
    nats_url: str,
    trusted: bool,
) -> None:
    """Behind an ingress every request comes from the proxy's address: one client spending the
    budget of chain reads would have spent it for every new user. With the proxy trusted, each
    client (as the proxy names it in X-Forwarded-For) has its own; untrusted, the header is
    ignored and cannot buy a fresh budget."""
    burst = 3
    async with budgeted_gateway(
        provider, keys, str(w3.provider.endpoint_uri), redis_url, nats_url, burst,
        trusted_proxies="127.0.0.0/8" if trusted else "",
    ) as gateway:  # fmt: skip

        async def stranger_from(client: str) -> int:
            stranger = User(EthAccount.create(), generate_private_key())
            headers = [*stranger.headers(provider.address, 30).items()]
            status, _ = await send(gateway, [*headers, ("X-Forwarded-For", client)], BODY)
            return status

        # One client spends its budget (direct, the first request above spent some of it).
        spender = [await stranger_from("198.51.100.1") for _ in range(burst + 1)]
        assert spender[-1] == 429
        assert set(spender) == {402, 429}
        assert 1 <= spender.count(402) <= burst
        # Another client, behind the same proxy.
        assert await stranger_from("198.51.100.2") == (402 if trusted else 429)
        assert await stranger_from("198.51.100.1") == 429
