# SPDX-License-Identifier: Apache-2.0
"""Fixtures for every test folder: one real anvil node per session, fresh contracts per test."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount

from tests.integration.jetstream import NatsLogins
from zg_shared.chain import (
    AnvilNode,
    DevChain,
    ServingClient,
    Web3Client,
    deploy_contract,
    load_artifact,
)
from zg_shared.localservers import PrivateServer
from zg_shared.natsauth import ADMIN_USER as NATS_ADMIN
from zg_shared.natsauth import NatsCredentials
from zg_shared.redisacl import ADMIN_USER, RedisCredentials

TEST_ARTIFACTS = Path(__file__).parent / "artifacts"
LOCK_TIME = 3600


@pytest.fixture(autouse=True)
def collect_garbage_after_each_test() -> Iterator[None]:
    """Objects a test leaks (an unclosed connection) warn when collected: collect them before
    the test ends, so the warning fails the test that leaked, not a later one at random."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server of this test session's own, with the repository's ACL users (nobody is
    anonymous): the URL logs in as its admin, so tests may flush it freely."""
    credentials = RedisCredentials.generate()
    with PrivateServer("redis", acl=credentials) as server:
        yield credentials.url(server.url, ADMIN_USER)


@pytest.fixture(scope="module")
def acl_redis_server() -> Iterator[tuple[PrivateServer, RedisCredentials]]:
    """A Redis of the test module's own with the repository's ACL users, and their passwords:
    for tests that log in as the services' users."""
    credentials = RedisCredentials.generate()
    with PrivateServer("redis", acl=credentials) as server:
        yield server, credentials


@pytest.fixture(scope="session")
def nats_credentials() -> NatsCredentials:
    """Passwords of the repository's NATS users (deploy/k8s/base/nats/auth.conf) for this
    session's server."""
    return NatsCredentials.generate()


@pytest.fixture(scope="session")
def nats_server(nats_credentials: NatsCredentials) -> Iterator[PrivateServer]:
    """A NATS server with JetStream of this test session's own, started with the repository's
    users and permissions (nobody is anonymous)."""
    with PrivateServer("nats", acl=nats_credentials) as server:
        yield server


@pytest.fixture(scope="session")
def nats_url(nats_server: PrivateServer, nats_credentials: NatsCredentials) -> str:
    """That server, logged in as its admin, so tests may make and drop streams freely (the
    streams are made by an admin step, never by the services)."""
    return nats_credentials.url(nats_server.url, NATS_ADMIN)


@pytest.fixture(scope="session")
def nats_logins(nats_server: PrivateServer, nats_credentials: NatsCredentials) -> NatsLogins:
    """Settings that log each service in to that server as its own NATS user."""
    return NatsLogins(nats_server.url, nats_credentials)


@pytest.fixture(scope="session")
async def anvil() -> AsyncIterator[AnvilNode]:
    async with AnvilNode(accounts=20) as node:
        yield node


@pytest.fixture(scope="session")
async def w3(anvil: AnvilNode) -> AsyncIterator[Web3Client]:
    web3 = anvil.web3()
    yield web3
    await web3.provider.disconnect()


@pytest.fixture(scope="session")
def chain(w3: Web3Client) -> DevChain:
    return DevChain(w3)


@pytest.fixture(scope="session")
def keys(anvil: AnvilNode) -> list[LocalAccount]:
    """Funded dev accounts: 0 deploys, 1-4 are providers, 5+ are users."""
    return [EthAccount.from_key(a.private_key) for a in anvil.accounts]


@pytest.fixture
async def serving(w3: Web3Client, keys: list[LocalAccount]) -> ServingClient:
    """A freshly deployed Serving contract, read through the deployer's client."""
    return await ServingClient.deploy(w3, keys[0], lock_time=LOCK_TIME)


async def deploy_proving_serving(w3: Web3Client, deployer: LocalAccount) -> ServingClient:
    """A Serving contract that checks settlement proofs (the N=4 verifier deployed first),
    read through the deployer's client."""
    verifier = await deploy_contract(w3, deployer, load_artifact("SettleBatchVerifier4"))
    assert verifier.contract_address is not None
    return await ServingClient.deploy(
        w3, deployer, lock_time=LOCK_TIME, verifiers={4: verifier.contract_address}
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration talks to real servers: mark it so `-m` can pick."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
