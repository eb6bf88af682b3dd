# SPDX-License-Identifier: Apache-2.0
"""The whole network as separate processes (zg_shared.localnet): a provider's services, a
local chain, NATS and Redis. Two users deposit and send requests through the gateway; billing
settles; the chain pays the provider exactly what the users signed. Then the fault drills:
billing and the prover are SIGKILLed mid-work and restarted, and still no fee is lost and none
is paid twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nats
import pytest
from eth_account import Account as EthAccount
from nats.js import JetStreamContext

from tests.integration.gateway.conftest import User, chat
from tests.integration.jetstream import stream_events
from tests.integration.polling import eventually
from zg_shared.chain import FeesSettled, ServingClient, Web3Client, checksum, connect
from zg_shared.crypto import generate_private_key, prv2pub
from zg_shared.events import ProofReadyV1, SettlementConfirmedV1, SettlementRequestedV1
from zg_shared.localnet import LocalNetwork

pytestmark = pytest.mark.slow

DEPOSIT = 10**17
SERVICE = "demo-chat"


class Network:
    def __init__(self, net: LocalNetwork, w3: Web3Client, js: JetStreamContext) -> None:
        self.net = net
        self.w3 = w3
        self.js = js
        assert net.deployment is not None
        self.provider = checksum(net.deployment.provider)
        self.serving = ServingClient(w3, net.deployment.serving)
        self.users: list[User] = []
        self.signed: dict[str, list[int]] = {}
        self.http: aiohttp.ClientSession | None = None
        self.input_price = net.deployment.services[0].input_price
        self.provider_wallet_at_start = 0

    async def add_user(self, index: int) -> User:
        key = EthAccount.from_key(self.net.accounts[index].private_key)
        signing_key = generate_private_key()
        await self.serving.as_sender(key).add_account(
            self.provider, prv2pub(signing_key).as_tuple(), value=DEPOSIT
        )
        user = User(key, signing_key)
        self.users.append(user)
        self.signed[user.address] = []
        return user

    async def send(self, user: User, words: str = "pay for these words") -> None:
        assert self.http is not None
        input_fee = len(words.split()) * self.input_price
        async with self.http.post(
            f"{self.net.gateway_url}/v1/proxy/{SERVICE}/chat/completions",
            json=chat(words),
            headers=user.headers(self.provider, input_fee),
        ) as response:
            assert response.status == 200, await response.text()
            await response.read()
        self.signed[user.address].append(input_fee)

    async def settled(self) -> list[FeesSettled]:
        events = await self.serving.get_events(0, await self.w3.eth.block_number)
        return [e for e in events if isinstance(e, FeesSettled)]

    async def all_settled(self) -> bool:
        settled = await self.settled()
        return sum(e.amount for e in settled) == sum(map(sum, self.signed.values()))

    async def wait_settled(self, within_s: float = 180.0) -> None:
        deadline = asyncio.get_running_loop().time() + within_s
        while not await self.all_settled():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"settled {sum(e.amount for e in await self.settled())} of "
                    f"{sum(map(sum, self.signed.values()))} wei in {within_s}s; "
                    f"logs in {self.net.workdir / 'logs'}"
                )
            await asyncio.sleep(0.5)

    async def assert_exactly_once(self) -> None:
        """Each user paid exactly the fees they signed, in nonce order, once; the provider got
        exactly their sum; billing's confirmations match the chain's FeesSettled events."""
        settled = await self.settled()
        for user in self.users:
            mine = [e for e in settled if e.user == user.address]
            assert sum(e.amount for e in mine) == sum(self.signed[user.address])
            finals = [e.final_nonce for e in mine]
            assert finals == sorted(set(finals))  # never the same nonces twice
            account = await self.serving.get_account(user.address, self.provider)
            assert account.nonce == len(self.signed[user.address])
            assert account.balance == DEPOSIT - sum(self.signed[user.address])
        earned = sum(e.amount for e in settled)
        assert earned == sum(map(sum, self.signed.values()))
        # What the provider's wallet gained: the settlements, less the gas it paid for them.
        gas = 0
        for tx in {e.position.transaction_hash for e in settled if e.position}:
            receipt = await self.w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
            gas += receipt["gasUsed"] * receipt["effectiveGasPrice"]
        wallet = await self.w3.eth.get_balance(self.provider)
        assert wallet == self.provider_wallet_at_start + earned - gas
        await eventually(lambda: self._confirmations_match(settled), within_s=60)

    async def _confirmations_match(self, settled: list[FeesSettled]) -> bool:
        confirmed = [p for _, p in await stream_events(self.js, {SettlementConfirmedV1.SUBJECT})]
        chunks = {
            (c["user"], c["final_nonce"], c["total_fee"]) for p in confirmed for c in p["chunks"]
        }
        return chunks == {(e.user, e.final_nonce, e.amount) for e in settled}


@pytest.fixture(scope="module")
async def network(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Network]:
    workdir: Path = tmp_path_factory.mktemp("network")
    net = LocalNetwork(
        workdir,
        overrides={
            "BILLING_THRESHOLD_FEE_WEI": "1",
            "BILLING_TICK_S": "0.3",
            "BILLING_LOG_LEVEL": "DEBUG",
        },
        circuit_sizes=(4,),  # the committed keys: proofs in ~1 s (the default N=64: ~15 s)
    )
    try:
        await net.start()
        w3 = connect(net.anvil.rpc_url if net.anvil else "")
        client = await nats.connect(net.nats_url)
        network = Network(net, w3, client.jetstream())
        network.provider_wallet_at_start = await w3.eth.get_balance(network.provider)
        async with aiohttp.ClientSession() as http:
            network.http = http
            yield network
        await client.close()
        await w3.provider.disconnect()
    finally:
        await net.stop()


async def test_requests_from_two_users_end_as_fees_on_chain(network: Network) -> None:
    first, second = await network.add_user(5), await network.add_user(6)
    for _ in range(3):
        await network.send(first)
        await network.send(second, "a longer request pays a larger fee")

    await network.wait_settled()
    await network.assert_exactly_once()


async def test_billing_killed_mid_batch_loses_nothing_and_pays_nothing_twice(
    network: Network,
) -> None:
    user = network.users[0]
    billing = network.net.processes["billing"]
    before = len(await stream_events(network.js, {SettlementRequestedV1.SUBJECT}))
    for _ in range(5):
        await network.send(user)
    # Kill billing as soon as it has asked for a proof: the settlement is mid-flight.
    await eventually(
        lambda: _count_above(network.js, SettlementRequestedV1.SUBJECT, before), within_s=60
    )
    billing.kill()
    await network.send(user)  # served while billing is down: the stream keeps it
    billing.start()
    await billing.wait_ready()

    await network.wait_settled()
    await network.assert_exactly_once()


async def test_prover_killed_mid_proof_loses_nothing(network: Network) -> None:
    user = network.users[1]
    prover = network.net.processes["prover"]
    proofs = len(await stream_events(network.js, {ProofReadyV1.SUBJECT}))
    requested = len(await stream_events(network.js, {SettlementRequestedV1.SUBJECT}))
    for _ in range(4):
        await network.send(user)
    await eventually(
        lambda: _count_above(network.js, SettlementRequestedV1.SUBJECT, requested), within_s=60
    )
    prover.kill()
    assert len(await stream_events(network.js, {ProofReadyV1.SUBJECT})) <= proofs + 1
    prover.start()
    await prover.wait_ready()

    await network.wait_settled(within_s=240)
    await network.assert_exactly_once()


async def _count_above(js: JetStreamContext, subject: str, count: int) -> bool:
    return len(await stream_events(js, {subject})) > count
