# SPDX-License-Identifier: Apache-2.0
"""The whole network as separate processes (zg_shared.localnet): a provider's services, a
local chain, NATS and Redis. Two users deposit and send requests through the gateway; billing
settles; the chain pays the provider exactly what the users signed. Then the fault drills:
billing and the prover are SIGKILLed mid-work and restarted, and still no fee is lost and none
is paid twice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.e2e.network import Network, count_above, running_network
from tests.integration.jetstream import stream_events
from tests.integration.polling import eventually
from zg_shared.events import ProofReadyV1, SettlementRequestedV1

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def network(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Network]:
    async with running_network(tmp_path_factory.mktemp("network")) as network:
        yield network


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
        lambda: count_above(network.js, SettlementRequestedV1.SUBJECT, before), within_s=60
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
        lambda: count_above(network.js, SettlementRequestedV1.SUBJECT, requested), within_s=60
    )
    prover.kill()
    assert len(await stream_events(network.js, {ProofReadyV1.SUBJECT})) <= proofs + 1
    prover.start()
    await prover.wait_ready()

    await network.wait_settled(within_s=240)
    await network.assert_exactly_once()
