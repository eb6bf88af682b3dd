# SPDX-License-Identifier: Apache-2.0
"""addAccount, depositFund and getAccount against a real anvil node."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from zg_shared.chain import (
    AccountAdded,
    BalanceUpdated,
    ContractRevert,
    FundDeposited,
    ServingClient,
    Web3Client,
)

# BN254 scalar field r (0x30644e72...f0000001).
SNARK_FIELD = 0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001
SIGNER = (123456789, 987654321)


async def test_add_account_records_everything_and_takes_the_ether(
    w3: Web3Client, serving: ServingClient, keys: list[LocalAccount]
) -> None:
    user, provider = serving.as_sender(keys[5]), keys[1].address
    before = await w3.eth.get_balance(keys[5].address)

    result = await user.add_account(provider, SIGNER, "enc:v1:abc", value=5 * 10**17)

    account = await serving.get_account(keys[5].address, provider)
    assert (account.user, account.provider) == (keys[5].address, provider)
    assert account.balance == 5 * 10**17
    assert (account.pending_refund, account.nonce, account.refunds) == (0, 0, ())
    assert account.signer == SIGNER
    assert account.additional_info == "enc:v1:abc"
    assert await w3.eth.get_balance(serving.address) == 5 * 10**17
    assert await w3.eth.get_balance(keys[5].address) == before - 5 * 10**17 - result.fee_paid
    [added] = result.events_of(AccountAdded)
    assert (added.user, added.provider, added.amount) == (keys[5].address, provider, 5 * 10**17)
    assert (added.signer_x, added.signer_y) == SIGNER
    [update] = result.events_of(BalanceUpdated)
    assert (update.balance, update.pending_refund) == (5 * 10**17, 0)


async def test_an_account_may_start_empty(serving: ServingClient, keys: list[LocalAccount]) -> None:
    await serving.as_sender(keys[5]).add_account(keys[1].address, SIGNER)
    assert (await serving.get_account(keys[5].address, keys[1].address)).balance == 0


async def test_accounts_are_per_user_and_provider(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    user = serving.as_sender(keys[5])
    await user.add_account(keys[1].address, SIGNER, value=1)
    await user.add_account(keys[2].address, (5, 6), value=2)
    await serving.as_sender(keys[6]).add_account(keys[1].address, (7, 8), value=3)

    assert (await serving.get_account(keys[5].address, keys[1].address)).balance == 1
    assert (await serving.get_account(keys[5].address, keys[2].address)).signer == (5, 6)
    assert (await serving.get_account(keys[6].address, keys[1].address)).balance == 3
    assert await serving.account_count() == 3


async def test_adding_an_account_twice_reverts_and_changes_nothing(
    w3: Web3Client, serving: ServingClient, keys: list[LocalAccount]
) -> None:
    user = serving.as_sender(keys[5])
    await user.add_account(keys[1].address, SIGNER, "first", value=100)

    with pytest.raises(ContractRevert) as err:
        await user.add_account(keys[1].address, (1, 1), "second", value=50)

    assert err.value.name == "ServingAccountExists"
    assert err.value.args_by_name == {"user": keys[5].address, "provider": keys[1].address}
    account = await serving.get_account(keys[5].address, keys[1].address)
    assert (account.balance, account.signer, account.additional_info) == (100, SIGNER, "first")
    assert await w3.eth.get_balance(serving.address) == 100


@pytest.mark.parametrize(
    "signer", [(0, 0), (SNARK_FIELD, 1), (1, SNARK_FIELD), (2**256 - 1, 2**256 - 1)]
)
async def test_a_signer_that_no_proof_could_match_is_refused(
    serving: ServingClient, keys: list[LocalAccount], signer: tuple[int, int]
) -> None:
    with pytest.raises(ContractRevert) as err:
        await serving.as_sender(keys[5]).add_account(keys[1].address, signer, value=1)
    assert err.value.name == "ServingInvalidSigner"
    assert await serving.account_count() == 0


async def test_deposit_adds_to_the_balance(
    w3: Web3Client, serving: ServingClient, keys: list[LocalAccount]
) -> None:
    user = serving.as_sender(keys[5])
    await user.add_account(keys[1].address, SIGNER, value=100)

    result = await user.deposit_fund(keys[1].address, value=250)

    assert (await serving.get_account(keys[5].address, keys[1].address)).balance == 350
    assert await w3.eth.get_balance(serving.address) == 350
    [deposit] = result.events_of(FundDeposited)
    assert (deposit.user, deposit.provider, deposit.amount) == (
        keys[5].address,
        keys[1].address,
        250,
    )
    [update] = result.events_of(BalanceUpdated)
    assert update.balance == 350


async def test_deposit_without_an_account_reverts(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    with pytest.raises(ContractRevert) as err:
        await serving.as_sender(keys[5]).deposit_fund(keys[1].address, value=10)
    assert err.value.name == "ServingAccountNotFound"


async def test_an_empty_deposit_reverts(serving: ServingClient, keys: list[LocalAccount]) -> None:
    user = serving.as_sender(keys[5])
    await user.add_account(keys[1].address, SIGNER, value=1)
    with pytest.raises(ContractRevert) as err:
        await user.deposit_fund(keys[1].address, value=0)
    assert err.value.name == "ServingZeroAmount"


async def test_reading_a_missing_account_names_it(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    with pytest.raises(ContractRevert) as err:
        await serving.get_account(keys[5].address, keys[1].address)
    assert err.value.name == "ServingAccountNotFound"
    assert err.value.args_by_name == {"user": keys[5].address, "provider": keys[1].address}


async def test_accounts_page_through_in_creation_order(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    for i, key in enumerate(keys[5:10]):
        await serving.as_sender(key).add_account(keys[1].address, SIGNER, value=i + 1)

    paged = [a async for a in serving.iter_accounts(page=2)]

    assert [a.balance for a in paged] == [1, 2, 3, 4, 5]
    assert [a.user for a in paged] == [k.address for k in keys[5:10]]
    assert await serving.get_all_accounts() == paged


async def test_the_largest_field_element_is_a_valid_signer_coordinate(
    serving: ServingClient, keys: list[LocalAccount]
) -> None:
    await serving.as_sender(keys[5]).add_account(keys[1].address, (SNARK_FIELD - 1, 1), value=1)
    account = await serving.get_account(keys[5].address, keys[1].address)
    assert account.signer == (SNARK_FIELD - 1, 1)
