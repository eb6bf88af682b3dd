# SPDX-License-Identifier: Apache-2.0
"""The transaction sender on a private anvil: a transaction the chain does not take is replaced
with higher fees under the same nonce, and exactly one version is mined; a node that lost a
transaction leaves no nonce gap."""

from __future__ import annotations

import asyncio
from typing import Any

from eth_account import Account as EthAccount
from web3.types import RPCEndpoint

from tests.conftest import LOCK_TIME
from zg_shared.chain import ServingClient, Web3Client
from zg_shared.chain.anvil import AnvilNode
from zg_shared.chain.sender import BUMP_DEN, BUMP_NUM, TransactionSender


async def rpc(w3: Web3Client, method: str, *params: Any) -> Any:
    return await w3.provider.make_request(RPCEndpoint(method), list(params))


async def test_a_stuck_transaction_is_replaced_with_higher_fees_and_mined_once(
    node: AnvilNode, private_w3: Web3Client
) -> None:
    deployer = EthAccount.from_key(node.accounts[0].private_key)
    serving = await ServingClient.deploy(private_w3, deployer, lock_time=LOCK_TIME)
    user = EthAccount.from_key(node.accounts[1].private_key)
    sender = TransactionSender(private_w3, user, serving.reverts, serving.events, bump_after_s=0.5)
    data = serving.contract.encode_abi("addAccount", args=[deployer.address, [1, 2], ""])
    nonce_before = await private_w3.eth.get_transaction_count(user.address)

    await rpc(private_w3, "evm_setAutomine", False)  # the chain stops taking transactions
    sending = asyncio.create_task(
        sender.send({"to": serving.address, "data": data, "value": 1000}, gas=400_000)
    )
    await asyncio.sleep(1.8)  # long enough for replacements
    await rpc(private_w3, "evm_setAutomine", True)
    await rpc(private_w3, "evm_mine")
    result = await asyncio.wait_for(sending, 30)

    mined = await private_w3.eth.get_transaction(result.tx_hash)  # type: ignore[arg-type]
    block = await private_w3.eth.get_block(result.block_number, full_transactions=True)
    base_tip = int(await private_w3.eth.max_priority_fee)
    assert mined["maxPriorityFeePerGas"] >= base_tip * BUMP_NUM // BUMP_DEN  # a replacement
    assert await private_w3.eth.get_transaction_count(user.address) == nonce_before + 1
    transactions: list[Any] = list(block["transactions"])
    ours = [t for t in transactions if t["from"] == user.address]
    assert len(ours) == 1
    account = await serving.get_account(user.address, deployer.address)
    assert account.balance == 1000  # deposited once


async def test_a_transaction_the_node_lost_leaves_no_nonce_gap(
    node: AnvilNode, private_w3: Web3Client
) -> None:
    deployer = EthAccount.from_key(node.accounts[0].private_key)
    serving = await ServingClient.deploy(private_w3, deployer, lock_time=LOCK_TIME)
    before = await rpc(private_w3, "evm_snapshot")
    user = serving.as_sender(node.accounts[1].private_key)
    await user.add_account(deployer.address, (1, 2), value=10)
    await rpc(private_w3, "evm_revert", before["result"])  # that transaction never happened

    again = await user.add_account(deployer.address, (1, 2), value=20)

    assert again.block_number > 0
    account = await serving.get_account(node.accounts[1].address, deployer.address)
    assert account.balance == 20
