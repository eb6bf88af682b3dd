# SPDX-License-Identifier: Apache-2.0
"""rotateSigner: the new key at once, the replaced one kept for the lock time, one rotation
per window, and what it refuses. Settlement against either key: test_settlement_proofs.py."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.conftest import LOCK_TIME
from zg_shared.chain import (
    BalanceUpdated,
    ContractRevert,
    DevChain,
    ServingClient,
    SignerRotated,
    Web3Client,
)

SNARK_FIELD = 0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001
OLD, NEW, NEWER = (11, 22), (33, 44), (55, 66)


@pytest.fixture
async def user(serving: ServingClient, keys: list[LocalAccount]) -> ServingClient:
    """User keys[5] with an account for provider keys[1], signing with OLD."""
    client = serving.as_sender(keys[5])
    await client.add_account(keys[1].address, OLD, "zgk1:old", value=1000)
    return client


async def test_a_rotation_takes_the_new_key_at_once_and_keeps_the_old_for_the_lock_time(
    w3: Web3Client, user: ServingClient, keys: list[LocalAccount]
) -> None:
    result = await user.rotate_signer(keys[1].address, NEW, "zgk1:new")

    block = await w3.eth.get_block(result.block_number)
    expires = block["timestamp"] + LOCK_TIME
    account = await user.get_account(keys[5].address, keys[1].address)
    assert (account.signer, account.previous_signer) == (NEW, OLD)
    assert account.previous_signer_expires_at == expires
    assert account.additional_info == "zgk1:new"
    assert (account.balance, account.nonce) == (1000, 0)
    [event] = result.events_of(SignerRotated)
    assert (event.user, event.provider) == (keys[5].address, keys[1].address)
    assert (event.signer_x, event.signer_y) == NEW
    assert (event.previous_signer_x, event.previous_signer_y) == OLD
    assert event.previous_expires_at == expires
    [balance] = result.events_of(BalanceUpdated)
    assert (balance.balance, balance.pending_refund) == (1000, 0)
    assert account.accepts_signer(OLD, expires - 1)
    assert not account.accepts_signer(OLD, expires)
    assert account.accepts_signer(NEW, expires + 10**6)


async def test_a_second_rotation_waits_until_the_previous_key_has_expired(
    chain: DevChain, user: ServingClient, keys: list[LocalAccount]
) -> None:
    """Else a user could cut short the window of a key whose requests are still unsettled."""
    first = await user.rotate_signer(keys[1].address, NEW)
    [event] = first.events_of(SignerRotated)

    await chain.increase_time(LOCK_TIME - 10)
    with pytest.raises(ContractRevert) as err:
        await user.rotate_signer(keys[1].address, NEWER)
    assert err.value.name == "ServingRotationPending"
    assert err.value.args_by_name == {"previousExpiresAt": event.previous_expires_at}
    assert (await user.get_account(keys[5].address, keys[1].address)).signer == NEW

    await chain.increase_time(10)
    await user.rotate_signer(keys[1].address, NEWER)
    account = await user.get_account(keys[5].address, keys[1].address)
    assert (account.signer, account.previous_signer) == (NEWER, NEW)


@pytest.mark.parametrize("signer", [(0, 0), OLD, (SNARK_FIELD, 1), (1, SNARK_FIELD)], ids=str)
async def test_an_unusable_or_unchanged_key_is_refused(
    user: ServingClient, keys: list[LocalAccount], signer: tuple[int, int]
) -> None:
    with pytest.raises(ContractRevert) as err:
        await user.rotate_signer(keys[1].address, signer)
    assert err.value.name == "ServingInvalidSigner"
    account = await user.get_account(keys[5].address, keys[1].address)
    assert (account.signer, account.previous_signer_expires_at) == (OLD, 0)


async def test_only_the_accounts_user_rotates_its_key(
    serving: ServingClient, user: ServingClient, keys: list[LocalAccount]
) -> None:
    """The call names no user: it rotates the sender's own account, and a stranger has none."""
    with pytest.raises(ContractRevert) as err:
        await serving.as_sender(keys[6]).rotate_signer(keys[1].address, NEW)
    assert err.value.name == "ServingAccountNotFound"
    assert (await user.get_account(keys[5].address, keys[1].address)).signer == OLD
