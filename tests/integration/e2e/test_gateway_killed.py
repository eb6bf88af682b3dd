# SPDX-License-Identifier: Apache-2.0
"""The gateway SIGKILLed with 20 streams in flight, then restarted (issue 11 item 15): the
requests it was serving are voided and reach billing like any other outcome, so billing's seal
passes their nonces and every later fee of the account settles on chain; nothing is charged
twice, and nothing for the streams cut off."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.integration.e2e.network import (
    DEPOSIT,
    SERVICE,
    Network,
    running_network,
    streams_in_flight,
    swept,
)
from tests.integration.gateway.conftest import start_backend
from zg_sample_backend import BackendSettings
from zg_shared.localservers import free_port

pytestmark = pytest.mark.slow
STREAMS = 20
HEARTBEAT_S = 3  # how long a killed gateway's requests wait before another sweeps them


@pytest.fixture(scope="module")
async def slow_backend() -> AsyncIterator[str]:
    """A backend whose streams take seconds: long enough to be cut off by the kill."""
    port = free_port()
    runner: web.AppRunner = await start_backend(
        BackendSettings(port=port, token_latency_ms=400.0, reply_words=30)
    )
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


@pytest.fixture(scope="module")
async def network(
    tmp_path_factory: pytest.TempPathFactory, slow_backend: str
) -> AsyncIterator[Network]:
    overrides = {
        "GATEWAY_BACKENDS": json.dumps({SERVICE: slow_backend}),
        "GATEWAY_ALIVE_TTL_S": str(HEARTBEAT_S),
        "GATEWAY_SWEEP_EVERY_S": "0.5",
    }
    async with running_network(tmp_path_factory.mktemp("network"), overrides=overrides) as net:
        yield net


async def test_a_gateway_killed_mid_stream_leaves_no_account_stuck(network: Network) -> None:
    user = await network.add_user(5)
    bystander = await network.add_user(6)
    # The URL registered on chain is the gateway's (issue 14 item 8): a user who finds the
    # service on chain reaches it there, and the backend stays the gateway's configuration.
    registered = await network.serving.get_service(network.provider, SERVICE)
    assert registered.url == network.net.gateway_url
    await network.send(user)
    streams = await streams_in_flight(network, user, network.net.gateway_url, STREAMS)
    network.net.processes["gateway"].kill()  # SIGKILL: no shutdown, no finish, no event
    await asyncio.gather(*streams, return_exceptions=True)

    gateway = network.net.processes["gateway"]
    gateway.start()
    await gateway.wait_ready()
    for _ in range(3):  # later requests of the same account, and another account's
        await network.send(user)
        await network.send(bystander)

    # Every stream cut off reached billing as voided, with the request's own id and nonce.
    voided = await swept(network.js, STREAMS)
    assert len(voided) == STREAMS
    assert {e["user"] for e in voided} == {user.address}
    last_nonce = user.next_nonce - 1
    # Billing's seal passed the voided nonces: every later fee settled, within the policy.
    await network.wait_settled(within_s=120)
    settled = [e for e in await network.settled() if e.user == user.address]
    assert sum(e.amount for e in settled) == sum(network.signed[user.address])
    finals = [e.final_nonce for e in settled]
    assert finals == sorted(set(finals))  # no nonce settled twice
    account = await network.serving.get_account(user.address, network.provider)
    assert account.nonce == last_nonce
    assert account.balance == DEPOSIT - sum(network.signed[user.address])
