# SPDX-License-Identifier: Apache-2.0
"""A provider's whole pipeline in one test process, on real servers: anvil with Serving and the
generated verifier, the sample backend over HTTP, the gateway, the prover (real Groth16 proofs),
the chain indexer and billing, talking through a private NATS and Redis."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import nats
import pytest
from aiohttp.test_utils import TestServer
from eth_account.signers.local import LocalAccount
from nats.js import JetStreamContext
from redis.asyncio import Redis

from tests.conftest import deploy_proving_serving
from tests.integration.gateway.conftest import User, chat, start_backend
from tests.integration.jetstream import NatsLogins, fresh_streams, stream_events
from tests.integration.polling import eventually
from zg_billing.app import BillingApp
from zg_billing.app import create_app as create_billing
from zg_billing.book import Book
from zg_billing.config import BillingSettings
from zg_chain_indexer.app import IndexerApp
from zg_chain_indexer.app import create_app as create_indexer
from zg_chain_indexer.config import IndexerSettings
from zg_gateway.app import create_app as create_gateway
from zg_gateway.config import GatewaySettings
from zg_prover.app import ProverApp
from zg_prover.app import create_app as create_prover
from zg_prover.config import ProverSettings
from zg_sample_backend import BackendSettings
from zg_shared.accounts import AccountState, AccountStore
from zg_shared.chain import (
    DevChain,
    FeesSettled,
    ServiceParams,
    ServingClient,
    Web3Client,
)
from zg_shared.crypto import generate_private_key, prv2pub
from zg_shared.events import Event, SettlementConfirmedV1
from zg_shared.localservers import free_port
from zg_shared.periodic import repeating

INPUT_PRICE = 10**9
OUTPUT_PRICE = 2 * 10**9
DEPOSIT = 10**17


@dataclass
class Stack:
    w3: Web3Client
    serving: ServingClient  # the provider's client
    provider: LocalAccount
    users: list[User]
    gateway_url: str
    redis: Redis
    js: JetStreamContext
    http: aiohttp.ClientSession
    redis_url: str
    nats_url: str  # as NATS's admin
    # Each service's NATS login (its own user, deploy/k8s/base/nats/auth.conf), by service;
    # empty: every service logs in as nats_url says.
    nats_logins: NatsLogins | None = None

    def nats(self, service: str) -> dict[str, Any]:
        if self.nats_logins is None:
            return {"nats_url": self.nats_url}
        return self.nats_logins.settings(service)

    async def send(self, user: User, words: str = "settle me please") -> int:
        """One paid chat request through the gateway; returns the fee it signed."""
        input_fee = len(words.split()) * INPUT_PRICE
        headers = user.headers(self.provider.address, input_fee)
        async with self.http.post(
            f"{self.gateway_url}/v1/proxy/chat/chat/completions",
            json=chat(words),
            headers=headers,
        ) as response:
            assert response.status == 200, await response.text()
            await response.read()
        return input_fee

    async def state(self, user: User) -> AccountState:
        found = await AccountStore(self.redis).read(user.address, self.provider.address)
        assert found is not None
        return found

    async def settled_on_chain(self) -> list[FeesSettled]:
        head = await self.w3.eth.block_number
        events = await self.serving.get_events(0, head)
        return [e for e in events if isinstance(e, FeesSettled)]

    async def confirmations(self) -> list[dict[str, Any]]:
        found = await stream_events(self.js, {SettlementConfirmedV1.SUBJECT})
        return [payload for _, payload in found]


def billing_settings(stack: Stack, **overrides: Any) -> BillingSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "provider_private_key": stack.provider.key.hex(),
        "redis_url": stack.redis_url,
        **stack.nats("billing"),
        "rpc_url": str(stack.w3.provider.endpoint_uri),
        "serving_address": stack.serving.address,
        "threshold_fee_wei": 1,
        "circuit_sizes": [4],
        "tick_s": 0.2,
        "rebuild_check_s": 0.5,
        "log_json": False,
        **overrides,
    }
    return BillingSettings(**values)


def common_settings(stack: Stack, service: str) -> dict[str, Any]:
    """What every service of the stack is configured with, `service`'s NATS login too."""
    return {
        "environment": "test",
        "redis_url": stack.redis_url,
        **stack.nats(service),
        "rpc_url": str(stack.w3.provider.endpoint_uri),
        "serving_address": stack.serving.address,
        "log_json": False,
    }


@contextlib.asynccontextmanager
async def running_prover(stack: Stack) -> AsyncIterator[ProverApp]:
    prover: ProverApp = create_prover(
        ProverSettings(**common_settings(stack, "prover"), circuit_sizes=[4])
    )
    await prover.start()
    try:
        yield prover
    finally:
        await prover.stop()


@contextlib.asynccontextmanager
async def running_billing(stack: Stack, **overrides: Any) -> AsyncIterator[BillingApp]:
    app = create_billing(billing_settings(stack, **overrides))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def build_stack(
    w3: Web3Client,
    keys: list[LocalAccount],
    redis_url: str,
    nats_url: str,
    *,
    confirmations: int = 0,
    prover: bool = True,
    nats_logins: NatsLogins | None = None,
) -> AsyncIterator[Stack]:
    """The whole pipeline; with `prover=False` nothing proves (a test starts
    `running_prover` when it wants proofs). With `nats_logins`, each service logs in to NATS
    as its own user."""
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    backend_settings = BackendSettings(port=free_port(), created=1_700_000_000)
    backend = await start_backend(backend_settings)
    deployer = await deploy_proving_serving(w3, keys[0])
    provider_key, receipt_key = keys[1], keys[2]
    serving = deployer.as_sender(provider_key)
    await serving.add_or_update_service(
        ServiceParams(
            name="chat",
            url=f"http://127.0.0.1:{backend_settings.port}/v1",
            model="zg-demo-1",
            input_price=INPUT_PRICE,
            output_price=OUTPUT_PRICE,
            signer_address=receipt_key.address,
        )
    )
    users = []
    for key in keys[5:7]:
        signing_key = generate_private_key()
        await deployer.as_sender(key).add_account(
            provider_key.address, prv2pub(signing_key).as_tuple(), value=DEPOSIT
        )
        users.append(User(key, signing_key))

    await fresh_streams(nats_url, str(w3.provider.endpoint_uri), serving.address)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()

    def login(service: str) -> dict[str, Any]:
        if nats_logins is None:
            return {"nats_url": nats_url}
        return nats_logins.settings(service)

    common: dict[str, Any] = {
        "environment": "test",
        "redis_url": redis_url,
        "rpc_url": str(w3.provider.endpoint_uri),
        "serving_address": serving.address,
        "log_json": False,
    }
    gateway = TestServer(
        create_gateway(
            GatewaySettings(
                **common,
                **login("gateway"),
                provider_address=provider_key.address,
                receipt_private_key=receipt_key.key.hex(),
                default_max_output_units=100,
                rate_limit_per_s=0,
                health_port=0,
                backends={"chat": f"http://127.0.0.1:{backend_settings.port}/v1"},
            )
        ),
        port=free_port(),
    )
    await gateway.start_server()
    indexer: IndexerApp = create_indexer(
        IndexerSettings(
            **common,
            **login("chain-indexer"),
            confirmations=confirmations,
            poll_interval_s=0.2,
        )
    )
    await indexer.start()
    http = aiohttp.ClientSession()
    try:
        built = Stack(
            w3=w3,
            serving=serving,
            provider=provider_key,
            users=users,
            gateway_url=str(gateway.make_url("")).rstrip("/"),
            redis=redis,
            js=js,
            http=http,
            redis_url=redis_url,
            nats_url=nats_url,
            nats_logins=nats_logins,
        )
        async with running_prover(built) if prover else contextlib.nullcontext():
            yield built
    finally:
        await http.close()
        await indexer.stop()
        await gateway.close()
        await backend.cleanup()
        await nc.close()
        await redis.aclose()


@pytest.fixture
async def stack(
    w3: Web3Client,
    keys: list[LocalAccount],
    redis_url: str,
    nats_url: str,
    nats_logins: NatsLogins,
) -> AsyncIterator[Stack]:
    """The whole pipeline, each service on its own NATS user (as deployed)."""
    async for built in build_stack(w3, keys, redis_url, nats_url, nats_logins=nats_logins):
        yield built


async def publish_raw(stack: Stack, event: Event, stream: str, durable: str) -> None:
    """Publishes `event` as an outsider would, and waits until billing's consumer acked it."""
    ack = await stack.js.publish(
        event.SUBJECT,
        event.model_dump_json().encode(),
        headers={"Nats-Msg-Id": event.event_id},
    )

    async def consumed() -> bool:
        info = await stack.js.consumer_info(stream, f"billing-{durable}")
        return info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= ack.seq

    await eventually(consumed, within_s=30, what=f"billing consumed {event.SUBJECT}")


async def booked(stack: Stack, count: int) -> bool:
    return sum(s.unsettled_count for s in await Book(stack.redis).due_accounts()) == count


async def settled_once(stack: Stack, fees: list[int]) -> bool:
    user = stack.users[0]
    total = sum(e.amount for e in await stack.settled_on_chain() if e.user == user.address)
    return total == sum(fees) and (await stack.state(user)).unsettled == 0


async def assert_paid_once(stack: Stack, fees: list[int]) -> None:
    user = stack.users[0]
    settled = [e for e in await stack.settled_on_chain() if e.user == user.address]
    assert sum(e.amount for e in settled) == sum(fees)
    account = await stack.serving.get_account(user.address, stack.provider.address)
    assert account.nonce == len(fees)
    assert account.balance == DEPOSIT - sum(fees)


@contextlib.asynccontextmanager
async def mining(chain: DevChain, every_s: float = 0.3) -> AsyncIterator[None]:
    """Blocks keep coming, as on a real chain, so confirmations deepen."""
    await chain.mine()
    async with repeating(every_s, chain.mine):
        yield
