# SPDX-License-Identifier: Apache-2.0
"""The constructor: the lock time's bounds and one verifier per circuit size."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.conftest import LOCK_TIME, TEST_ARTIFACTS
from zg_shared.chain import (
    ContractRevert,
    ServingClient,
    SettlementProof,
    Web3Client,
    deploy_contract,
    load_artifact,
)
from zg_shared.chain.client import MAX_LOCK_TIME_S, MIN_LOCK_TIME_S

SIGNER = (3, 4)
NO_CODE = "0x000000000000000000000000000000000000dEaD"


async def constant_verifier(w3: Web3Client, deployer: LocalAccount, answer: bool) -> str:
    """A verifier that accepts (or refuses) every proof: routing is what is under test."""
    artifact = load_artifact("ConstantVerifier", TEST_ARTIFACTS)
    deployed = await deploy_contract(w3, deployer, artifact, answer)
    assert deployed.contract_address is not None
    return deployed.contract_address


def dummy_proof(
    circuit_size: int, user: str, provider: str, nonce: int, fee: int
) -> SettlementProof:
    return SettlementProof(
        circuit_size=circuit_size,
        a=(1, 2),
        b=((3, 4), (5, 6)),
        c=(7, 8),
        public_inputs=(int(user, 16), int(provider, 16), nonce, nonce, fee, *SIGNER),
    )


@pytest.mark.parametrize("lock_time", [MIN_LOCK_TIME_S, MAX_LOCK_TIME_S])
async def test_lock_times_at_the_bounds_deploy(
    w3: Web3Client, keys: list[LocalAccount], lock_time: int
) -> None:
    serving = await ServingClient.deploy(w3, keys[0], lock_time=lock_time)
    assert await serving.lock_time() == lock_time


@pytest.mark.parametrize(
    "lock_time", [0, MIN_LOCK_TIME_S - 1, MAX_LOCK_TIME_S + 1, 2**256 - 1 - 1000]
)
async def test_lock_times_outside_the_bounds_are_refused(
    w3: Web3Client, keys: list[LocalAccount], lock_time: int
) -> None:
    """0 would leave providers no window to settle; a huge one made processRefund overflow."""
    with pytest.raises(ContractRevert) as err:
        await ServingClient.deploy(w3, keys[0], lock_time=lock_time)
    assert err.value.name == "ServingLockTimeOutOfRange"
    assert err.value.args_by_name == {
        "lockTime": lock_time,
        "min": MIN_LOCK_TIME_S,
        "max": MAX_LOCK_TIME_S,
    }


async def test_the_lock_time_bounds_are_the_contracts(
    serving: ServingClient,
) -> None:
    bounds = serving.contract.functions
    assert await bounds.MIN_LOCK_TIME().call() == MIN_LOCK_TIME_S
    assert await bounds.MAX_LOCK_TIME().call() == MAX_LOCK_TIME_S


async def test_each_chunk_is_checked_by_the_verifier_of_its_size(
    w3: Web3Client, keys: list[LocalAccount]
) -> None:
    accepts = await constant_verifier(w3, keys[0], True)
    refuses = await constant_verifier(w3, keys[0], False)
    serving = await ServingClient.deploy(
        w3, keys[0], lock_time=LOCK_TIME, verifiers={4: refuses, 64: accepts}
    )
    assert await serving.verifiers() == {4: refuses, 64: accepts}
    assert await serving.verifier_of(64) == accepts
    assert await serving.verifier_of(16) is None
    user, provider = keys[5].address, keys[1].address
    await serving.as_sender(keys[5]).add_account(provider, SIGNER, value=1000)
    settle = serving.as_sender(keys[1])

    with pytest.raises(ContractRevert) as refused:
        await settle.settle_fees([dummy_proof(4, user, provider, 1, 10)])
    assert (refused.value.name, refused.value.args_by_name) == (
        "ServingInvalidProof",
        {"proofIndex": 0},
    )
    with pytest.raises(ContractRevert) as unknown:
        await settle.settle_fees(
            [dummy_proof(64, user, provider, 1, 10), dummy_proof(16, user, provider, 2, 10)]
        )
    assert (unknown.value.name, unknown.value.args_by_name) == (
        "ServingUnknownCircuitSize",
        {"proofIndex": 1, "circuitSize": 16},
    )

    await settle.settle_fees(
        [dummy_proof(64, user, provider, 1, 10), dummy_proof(64, user, provider, 2, 15)]
    )
    account = await serving.get_account(user, provider)
    assert (account.nonce, account.balance) == (2, 975)


async def test_a_deployment_without_verifiers_settles_nothing(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    assert await serving.verifiers() == {}
    user, provider = keys[5].address, keys[1].address
    await serving.as_sender(keys[5]).add_account(provider, SIGNER, value=1000)
    with pytest.raises(ContractRevert) as err:
        await serving.as_sender(keys[1]).settle_fees([dummy_proof(4, user, provider, 1, 10)])
    assert err.value.name == "ServingUnknownCircuitSize"


@pytest.mark.parametrize("case", ["zero size", "no code", "size twice"])
async def test_verifier_lists_with_mistakes_are_refused(
    w3: Web3Client, keys: list[LocalAccount], case: str
) -> None:
    accepts = await constant_verifier(w3, keys[0], True)
    entries = {
        "zero size": [(0, accepts)],
        "no code": [(4, accepts), (64, NO_CODE)],
        "size twice": [(4, accepts), (4, accepts)],
    }[case]
    artifact = load_artifact("Serving")
    with pytest.raises(ContractRevert) as err:
        await deploy_contract(w3, keys[0], artifact, LOCK_TIME, entries)
    assert err.value.name == "ServingInvalidVerifier"
    assert err.value.args_by_name == {"circuitSize": entries[-1][0], "verifier": entries[-1][1]}
