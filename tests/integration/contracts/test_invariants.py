# SPDX-License-Identifier: Apache-2.0
"""Random sequences of deposits, refund requests and refund processing across several users and
providers, checked after every step against a model and against the contract's ether."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.conftest import LOCK_TIME
from zg_shared.chain import AnvilNode, ContractRevert, DevChain, ServingClient, connect

T = TypeVar("T")
USERS = range(3)
PROVIDERS = range(2)
SIGNER = (5, 7)


@dataclass
class ModelRefund:
    amount: int
    unlock_at: int
    processed: bool = False


@dataclass
class ModelAccount:
    balance: int = 0
    refunds: list[ModelRefund] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return sum(r.amount for r in self.refunds if not r.processed)


class ServingMachine(RuleBasedStateMachine):
    """One deployed contract per example; the model predicts every success and every revert."""

    rpc_url: str
    users: list[LocalAccount]
    providers: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        w3 = connect(self.rpc_url)
        self.w3 = w3
        self.chain = DevChain(w3)
        deployer = self.users[0]
        self.serving = self.run(ServingClient.deploy(w3, deployer, lock_time=LOCK_TIME))
        self.clients = [self.serving.as_sender(u) for u in self.users]
        self.model: dict[tuple[int, int], ModelAccount] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.w3.provider.disconnect())
        self.loop.close()

    def revert_name(self, coro: Coroutine[Any, Any, Any]) -> str | None:
        try:
            self.run(coro)
        except ContractRevert as exc:
            return exc.name
        return None

    async def now(self) -> int:
        return int((await self.w3.eth.get_block("latest"))["timestamp"])

    @rule(
        user=st.sampled_from(USERS),
        provider=st.sampled_from(PROVIDERS),
        amount=st.integers(0, 10**6),
    )
    def add_account(self, user: int, provider: int, amount: int) -> None:
        name = self.revert_name(
            self.clients[user].add_account(self.providers[provider], SIGNER, value=amount)
        )
        if (user, provider) in self.model:
            assert name == "ServingAccountExists"
        else:
            assert name is None
            self.model[(user, provider)] = ModelAccount(balance=amount)

    @rule(
        user=st.sampled_from(USERS),
        provider=st.sampled_from(PROVIDERS),
        amount=st.integers(0, 10**6),
    )
    def deposit(self, user: int, provider: int, amount: int) -> None:
        name = self.revert_name(
            self.clients[user].deposit_fund(self.providers[provider], value=amount)
        )
        if amount == 0:
            assert name == "ServingZeroAmount"
        elif (user, provider) not in self.model:
            assert name == "ServingAccountNotFound"
        else:
            assert name is None
            self.model[(user, provider)].balance += amount

    @rule(
        user=st.sampled_from(USERS),
        provider=st.sampled_from(PROVIDERS),
        amount=st.integers(0, 2 * 10**6),
    )
    def request_refund(self, user: int, provider: int, amount: int) -> None:
        name = self.revert_name(self.clients[user].request_refund(self.providers[provider], amount))
        account = self.model.get((user, provider))
        if account is None:
            assert name == "ServingAccountNotFound"
        elif amount == 0:
            assert name == "ServingZeroAmount"
        elif amount > account.balance - account.pending:
            assert name == "ServingRefundExceedsAvailable"
        else:
            assert name is None
            unlock_at = self.run(self.now()) + LOCK_TIME
            open_refund = account.refunds[-1] if account.refunds else None
            if open_refund is not None and not open_refund.processed:
                # One open refund per account: a new request adds to it and restarts its lock.
                open_refund.amount += amount
                open_refund.unlock_at = unlock_at
            else:
                account.refunds.append(ModelRefund(amount, unlock_at))

    @rule(seconds=st.sampled_from([1, LOCK_TIME // 2, LOCK_TIME]))
    def wait(self, seconds: int) -> None:
        self.run(self.chain.increase_time(seconds))

    @rule(
        user=st.sampled_from(USERS),
        provider=st.sampled_from(PROVIDERS),
        indices=st.lists(st.integers(0, 4), max_size=3),
    )
    def process_refund(self, user: int, provider: int, indices: list[int]) -> None:
        before = self.run(self.w3.eth.get_balance(self.users[user].address))
        try:
            result = self.run(self.clients[user].process_refund(self.providers[provider], indices))
        except ContractRevert as exc:
            name: str | None = exc.name
        else:
            name = None
        account = self.model.get((user, provider))
        if account is None:
            assert name == "ServingAccountNotFound"
            return
        # The next block's timestamp is at least now + 1: a refund due then may go through.
        now, expected, seen = self.run(self.now()), None, set()
        for index in indices:
            if index >= len(account.refunds):
                expected = "ServingRefundNotFound"
            elif account.refunds[index].processed or index in seen:
                expected = "ServingRefundAlreadyProcessed"
            elif account.refunds[index].unlock_at > now + 1:
                expected = "ServingRefundLocked"
            if expected:
                break
            seen.add(index)
        if name is None and expected == "ServingRefundLocked":
            pytest.fail("a locked refund was paid")
        assert name == expected
        if name is None:
            paid = sum(account.refunds[i].amount for i in indices)
            for index in indices:
                account.refunds[index].processed = True
            account.balance -= paid
            after = self.run(self.w3.eth.get_balance(self.users[user].address))
            assert after == before + paid - result.fee_paid

    @invariant()
    def chain_matches_model_and_holds_exactly_the_balances(self) -> None:
        accounts = self.run(self.serving.get_all_accounts())
        assert len(accounts) == len(self.model)
        for account in accounts:
            key = (
                [u.address for u in self.users].index(account.user),
                self.providers.index(account.provider),
            )
            expected = self.model[key]
            assert 0 <= account.pending_refund <= account.balance
            assert (account.balance, account.pending_refund) == (expected.balance, expected.pending)
            assert [r.amount for r in account.refunds] == [r.amount for r in expected.refunds]
            assert [r.processed for r in account.refunds] == [r.processed for r in expected.refunds]
            assert sum(not r.processed for r in account.refunds) <= 1
        ether = self.run(self.w3.eth.get_balance(self.serving.address))
        assert ether == sum(a.balance for a in accounts)


@pytest.mark.slow
def test_random_account_sequences_keep_the_books_balanced(anvil: AnvilNode) -> None:
    ServingMachine.rpc_url = anvil.rpc_url
    ServingMachine.users = [EthAccount.from_key(a.private_key) for a in anvil.accounts[10:13]]
    ServingMachine.providers = [a.address for a in anvil.accounts[13:15]]
    runner = ServingMachine.TestCase()
    runner.settings = settings(  # type: ignore[misc]
        max_examples=25,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    runner.runTest()
