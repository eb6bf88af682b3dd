# SPDX-License-Identifier: Apache-2.0
"""settleFees: every check that runs before the proof is verified.

The proof-verified path (a real Groth16 verifier and real proofs) is tested with the
settlement circuit; here the contract has no verifier, so reaching the pairing check reverts.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from zg_shared.chain import ContractRevert, ServingClient, SettlementProof, Web3Client

SIGNER = (31, 41)


def proof(
    user: str, provider: str, init: int, final: int, fee: int, signer: tuple[int, int] = SIGNER
) -> SettlementProof:
    return SettlementProof(
        circuit_size=4,
        a=(1, 2),
        b=((3, 4), (5, 6)),
        c=(7, 8),
        public_inputs=(int(user, 16), int(provider, 16), init, final, fee, *signer),
    )


@pytest.fixture
async def account(serving: ServingClient, keys: list[LocalAccount]) -> ServingClient:
    """User keys[5] with 1000 wei for provider keys[1]; returns the provider's client."""
    await serving.as_sender(keys[5]).add_account(keys[1].address, SIGNER, value=1000)
    return serving.as_sender(keys[1])


async def expect_revert(provider: ServingClient, proofs: list[SettlementProof]) -> ContractRevert:
    with pytest.raises(ContractRevert) as err:
        await provider.settle_fees(proofs)
    return err.value


async def test_an_empty_settlement_reverts(account: ServingClient) -> None:
    assert (await expect_revert(account, [])).name == "ServingNoProofs"


async def test_public_inputs_that_are_not_addresses_revert(
    account: ServingClient, keys: list[LocalAccount]
) -> None:
    p = proof(keys[5].address, keys[1].address, 1, 2, 10)
    too_big = p.model_copy(update={"public_inputs": (2**160, *p.public_inputs[1:])})
    err = await expect_revert(account, [too_big])
    assert (err.name, err.args_by_name) == ("ServingInvalidPublicInput", {"proofIndex": 0})


async def test_a_final_nonce_below_the_initial_one_reverts(
    account: ServingClient, keys: list[LocalAccount]
) -> None:
    err = await expect_revert(account, [proof(keys[5].address, keys[1].address, 5, 4, 10)])
    assert err.name == "ServingInvalidPublicInput"


async def test_a_provider_cannot_settle_for_another(
    account: ServingClient, serving: ServingClient, keys: list[LocalAccount]
) -> None:
    other = serving.as_sender(keys[2])
    err = await expect_revert(other, [proof(keys[5].address, keys[1].address, 1, 1, 10)])
    assert (err.name, err.args_by_name) == (
        "ServingProviderMismatch",
        {"proofIndex": 0, "provider": keys[1].address},
    )


async def test_settling_an_unknown_account_reverts(
    account: ServingClient, keys: list[LocalAccount]
) -> None:
    err = await expect_revert(account, [proof(keys[6].address, keys[1].address, 1, 1, 10)])
    assert err.name == "ServingAccountNotFound"


async def test_a_proof_for_another_signer_reverts(
    account: ServingClient, keys: list[LocalAccount]
) -> None:
    err = await expect_revert(
        account, [proof(keys[5].address, keys[1].address, 1, 1, 10, signer=(31, 42))]
    )
    assert err.name == "ServingSignerMismatch"


async def test_nonces_must_start_above_the_settled_nonce(
    account: ServingClient, keys: list[LocalAccount]
) -> None:
    err = await expect_revert(account, [proof(keys[5].address, keys[1].address, 0, 3, 10)])
    assert (err.name, err.args_by_name) == (
        "ServingNonceTooLow",
        {"proofIndex": 0, "initNonce": 0, "settledNonce": 0},
    )


async def test_fees_above_the_balance_revert(
    account: ServingClient, keys: list[LocalAccount]
) -> None:
    err = await expect_revert(account, [proof(keys[5].address, keys[1].address, 1, 3, 1001)])
    assert (err.name, err.args_by_name) == (
        "ServingInsufficientBalance",
        {"proofIndex": 0, "fee": 1001, "balance": 1000},
    )


async def test_without_a_verifier_no_settlement_goes_through(
    w3: Web3Client, account: ServingClient, keys: list[LocalAccount]
) -> None:
    with pytest.raises(ContractRevert):
        await account.settle_fees([proof(keys[5].address, keys[1].address, 1, 3, 10)])
    settled = await account.get_account(keys[5].address, keys[1].address)
    assert (settled.balance, settled.nonce) == (1000, 0)
    assert await w3.eth.get_balance(account.address) == 1000
