# SPDX-License-Identifier: Apache-2.0
"""requestRefund and processRefund: accounting, the lock time, and a reentrant receiver."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from tests.conftest import LOCK_TIME, TEST_ARTIFACTS
from zg_shared.chain import (
    BalanceUpdated,
    ContractRevert,
    DevChain,
    RefundProcessed,
    RefundRequested,
    ServingClient,
    TransactionSender,
    Web3Client,
    deploy_contract,
    load_artifact,
)
from zg_shared.chain.errors import RevertDecoder

SIGNER = (11, 22)


@pytest.fixture
async def funded(serving: ServingClient, keys: list[LocalAccount]) -> ServingClient:
    """User keys[5] with 1000 wei deposited for provider keys[1]."""
    user = serving.as_sender(keys[5])
    await user.add_account(keys[1].address, SIGNER, value=1000)
    return user


async def test_a_refund_request_sets_money_aside_without_moving_it(
    w3: Web3Client, funded: ServingClient, keys: list[LocalAccount]
) -> None:
    result = await funded.request_refund(keys[1].address, 300)

    account = await funded.get_account(keys[5].address, keys[1].address)
    assert (account.balance, account.pending_refund, account.available) == (1000, 300, 700)
    [refund] = account.refunds
    assert (refund.amount, refund.processed) == (300, False)
    block = await w3.eth.get_block(result.block_number)
    assert refund.created_at == block["timestamp"]
    [event] = result.events_of(RefundRequested)
    assert (event.index, event.amount, event.unlock_at) == (0, 300, block["timestamp"] + LOCK_TIME)
    assert await w3.eth.get_balance(funded.address) == 1000


async def test_refunds_cannot_promise_more_than_is_available(
    funded: ServingClient, keys: list[LocalAccount]
) -> None:
    await funded.request_refund(keys[1].address, 600)
    with pytest.raises(ContractRevert) as err:
        await funded.request_refund(keys[1].address, 401)
    assert err.value.name == "ServingRefundExceedsAvailable"
    assert err.value.args_by_name == {"amount": 401, "available": 400}
    await funded.request_refund(keys[1].address, 400)
    account = await funded.get_account(keys[5].address, keys[1].address)
    assert (account.pending_refund, account.available) == (1000, 0)
    assert [(r.amount, r.processed) for r in account.refunds] == [(1000, False)]


async def test_zero_and_accountless_refund_requests_revert(
    funded: ServingClient, serving: ServingClient, keys: list[LocalAccount]
) -> None:
    with pytest.raises(ContractRevert) as zero:
        await funded.request_refund(keys[1].address, 0)
    assert zero.value.name == "ServingZeroAmount"
    with pytest.raises(ContractRevert) as missing:
        await serving.as_sender(keys[6]).request_refund(keys[1].address, 1)
    assert missing.value.name == "ServingAccountNotFound"


async def test_a_refund_waits_for_the_lock_time_then_pays_the_user(
    w3: Web3Client, chain: DevChain, funded: ServingClient, keys: list[LocalAccount]
) -> None:
    requested = await funded.request_refund(keys[1].address, 300)
    [event] = requested.events_of(RefundRequested)

    await chain.increase_time(LOCK_TIME - 10)
    with pytest.raises(ContractRevert) as locked:
        await funded.process_refund(keys[1].address, [0])
    assert locked.value.name == "ServingRefundLocked"
    assert locked.value.args_by_name == {"index": 0, "unlockAt": event.unlock_at}

    await chain.increase_time(10)
    wallet_before = await w3.eth.get_balance(keys[5].address)
    result = await funded.process_refund(keys[1].address, [0])

    assert await w3.eth.get_balance(keys[5].address) == wallet_before + 300 - result.fee_paid
    assert await w3.eth.get_balance(funded.address) == 700
    account = await funded.get_account(keys[5].address, keys[1].address)
    assert (account.balance, account.pending_refund, account.refunds[0].processed) == (700, 0, True)
    [paid] = result.events_of(RefundProcessed)
    assert (paid.index, paid.amount) == (0, 300)
    assert result.events_of(BalanceUpdated)[0].balance == 700


async def test_a_refund_is_paid_only_once_and_the_next_request_opens_a_new_one(
    w3: Web3Client, chain: DevChain, funded: ServingClient, keys: list[LocalAccount]
) -> None:
    await funded.request_refund(keys[1].address, 100)
    await chain.increase_time(LOCK_TIME)
    await funded.process_refund(keys[1].address, [0])
    with pytest.raises(ContractRevert) as again:
        await funded.process_refund(keys[1].address, [0])
    assert again.value.name == "ServingRefundAlreadyProcessed"
    assert again.value.args_by_name == {"index": 0}

    result = await funded.request_refund(keys[1].address, 200)

    [event] = result.events_of(RefundRequested)
    assert (event.index, event.amount) == (1, 200)
    account = await funded.get_account(keys[5].address, keys[1].address)
    assert [(r.amount, r.processed) for r in account.refunds] == [(100, True), (200, False)]
    assert (account.balance, account.pending_refund) == (900, 200)
    assert await w3.eth.get_balance(funded.address) == 900


async def test_an_unknown_refund_index_reverts(
    funded: ServingClient, keys: list[LocalAccount]
) -> None:
    await funded.request_refund(keys[1].address, 1)
    with pytest.raises(ContractRevert) as err:
        await funded.process_refund(keys[1].address, [1])
    assert err.value.name == "ServingRefundNotFound"


async def test_a_request_while_a_refund_is_open_adds_to_it_and_restarts_its_lock(
    w3: Web3Client, chain: DevChain, funded: ServingClient, keys: list[LocalAccount]
) -> None:
    """One open refund per account (so that settlement touches one entry, docs/contract.md):
    the provider's window must cover the wei added, so the whole refund waits again."""
    await funded.request_refund(keys[1].address, 100)
    await chain.increase_time(LOCK_TIME // 2)
    second = await funded.request_refund(keys[1].address, 50)

    [event] = second.events_of(RefundRequested)
    block = await w3.eth.get_block(second.block_number)
    assert (event.index, event.amount, event.unlock_at) == (
        0,
        150,
        block["timestamp"] + LOCK_TIME,
    )
    account = await funded.get_account(keys[5].address, keys[1].address)
    assert [(r.amount, r.created_at) for r in account.refunds] == [(150, block["timestamp"])]
    assert account.pending_refund == 150

    await chain.increase_time(LOCK_TIME // 2)
    with pytest.raises(ContractRevert) as err:
        await funded.process_refund(keys[1].address, [0])
    assert err.value.name == "ServingRefundLocked"
    await chain.increase_time(LOCK_TIME // 2)
    result = await funded.process_refund(keys[1].address, [0])
    [paid] = result.events_of(RefundProcessed)
    assert (paid.index, paid.amount) == (0, 150)


async def test_a_reentrant_receiver_is_paid_once(
    w3: Web3Client, chain: DevChain, serving: ServingClient, keys: list[LocalAccount]
) -> None:
    artifact = load_artifact("ReentrantRefunder", TEST_ARTIFACTS)
    deployed = await deploy_contract(w3, keys[7], artifact, serving.address, keys[1].address)
    assert deployed.contract_address is not None
    attacker = w3.eth.contract(address=deployed.contract_address, abi=artifact.abi)
    # A victim whose funds the attacker would take if it could re-enter.
    await serving.as_sender(keys[8]).add_account(keys[1].address, SIGNER, value=10_000)

    sender = TransactionSender(w3, keys[7], RevertDecoder(artifact.abi))

    async def call(fn: str, *args: object, value: int = 0) -> None:
        data = attacker.encode_abi(fn, args=list(args))
        await sender.send({"to": attacker.address, "data": data, "value": value})

    await call("open", list(SIGNER), value=1000)
    await call("requestRefund", 1000)
    await chain.increase_time(LOCK_TIME)
    await call("processRefund", [0])

    assert await attacker.functions.reentryAttempts().call() == 1
    assert await attacker.functions.reentrySucceeded().call() is False
    assert await w3.eth.get_balance(deployed.contract_address) == 1000
    assert await w3.eth.get_balance(serving.address) == 10_000
    account = await serving.get_account(deployed.contract_address, keys[1].address)
    assert (account.balance, account.pending_refund) == (0, 0)
