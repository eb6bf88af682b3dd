# SPDX-License-Identifier: Apache-2.0
"""The fee-only request (`POST /v1/proxy/{service}/settle`): pays the output fees a user still
owes, with a receipt, without calling the backend; checked like any request."""

from __future__ import annotations

import json

import pytest

from tests.conftest import LOCK_TIME
from tests.integration.gateway.conftest import INPUT_PRICE, OUTPUT_PRICE, Provider, chat
from tests.integration.gateway.test_gateway import CHAT, WORDS, wait_for_events
from zg_shared.accounts import AccountStore
from zg_shared.chain import DevChain, checksum
from zg_shared.crypto import request_message
from zg_shared.receipts import Receipt, receipt_signer

SETTLE = "/v1/proxy/chat/settle"


async def test_a_fee_only_request_pays_the_debt_with_a_receipt(provider: Provider) -> None:
    user = provider.users[0]
    status, headers, _ = await provider.post(
        CHAT, chat(WORDS), user.headers(provider.address, input_fee=3 * INPUT_PRICE)
    )
    assert status == 200
    owed = int(headers["ZG-Output-Fee"])
    assert owed > 0

    pay = user.headers(provider.address, input_fee=0, previous_output_fee=owed)
    async with provider.http.post(f"{provider.url}{SETTLE}", headers=pay) as response:
        status, receipt_headers, raw = (
            response.status,
            dict(response.headers),
            await response.read(),
        )

    assert status == 200, raw
    assert json.loads(raw) == {"object": "fee_payment", "paid": str(owed)}
    assert receipt_headers["ZG-Output-Fee"] == "0"
    receipt = Receipt.for_bodies(
        request_message(user.address, provider.address, 2, owed), b"", raw, 0
    )
    signer = (await provider.serving.get_service(provider.address, "chat")).signer_address
    assert receipt_signer(receipt, receipt_headers["ZG-Signature"]) == checksum(signer)
    state = await provider.state(user)
    assert state is not None
    assert (state.output_debt, state.unsettled, state.reserved) == (0, 3 * INPUT_PRICE + owed, 0)
    events = await wait_for_events(provider, 2)
    paid = next(e for e in events if e["nonce"] == 2)
    assert (paid["fee"], paid["input_fee"], paid["previous_output_fee"]) == (owed, 0, owed)
    assert (paid["outcome"], paid["reason"], paid["output_fee"]) == ("charged", "fee_only", 0)


async def test_paying_more_than_is_owed_is_refused_and_changes_nothing(provider: Provider) -> None:
    user = provider.users[0]
    pay = user.headers(provider.address, input_fee=0, previous_output_fee=OUTPUT_PRICE)
    async with provider.http.post(f"{provider.url}{SETTLE}", headers=pay) as response:
        status, body = response.status, await response.json()

    assert status == 400
    assert body["error"]["code"] == "overpaid"
    state = await provider.state(user)
    assert state is not None
    assert (state.unsettled, state.output_debt) == (0, 0)
    assert await provider.served_events() == []


@pytest.mark.parametrize(
    ("gateway_overrides", "expected"),
    [({"refund_margin_lock_fraction": 0.5}, 200), ({"refund_margin_lock_fraction": 1.0}, 402)],
    ids=["refund-unlocks-after-the-margin", "refund-unlocks-within-the-margin"],
)
async def test_debt_is_paid_from_a_refund_that_unlocks_after_the_margin(
    provider: Provider, expected: int
) -> None:
    """With everything free in a pending refund, the fee-only request paying the output debt
    got 402, though settleFees draws on a refund until it unlocks (issue 11 item 8). A refund
    just asked for unlocks a whole lock time from now: beyond half of it, not beyond all."""
    user = provider.users[0]
    status, headers, _ = await provider.post(
        CHAT, chat(WORDS), user.headers(provider.address, input_fee=3 * INPUT_PRICE)
    )
    assert status == 200
    owed = int(headers["ZG-Output-Fee"])
    account = await provider.serving.get_account(user.address, provider.address)
    # The chain's clock runs ahead of this machine's (as after any test that sped it up): the
    # margin is counted in chain time, as the contract unlocks refunds.
    chain = DevChain(provider.serving.w3)
    await chain.increase_time(3 * LOCK_TIME)
    await chain.mine()
    await provider.serving.as_sender(user.key).request_refund(provider.address, account.available)
    # The indexer's part: the gateway's view shows the refund.
    await AccountStore(provider.redis).load_from_chain(
        provider.serving, user.address, provider.address
    )

    pay = user.headers(provider.address, input_fee=0, previous_output_fee=owed)
    async with provider.http.post(f"{provider.url}{SETTLE}", headers=pay) as response:
        status, raw = response.status, await response.read()

    assert status == expected, raw
    state = await provider.state(user)
    assert state is not None
    if expected == 200:
        assert (state.output_debt, state.unsettled) == (0, 3 * INPUT_PRICE + owed)
        # What the gateway let through, the contract collects: the fees settle from the refund.
        assert state.unsettled <= account.available
    else:
        assert json.loads(raw)["error"]["code"] == "insufficient_balance"
        assert (state.output_debt, state.unsettled) == (owed, 3 * INPUT_PRICE)


async def test_a_fee_only_request_pays_some_of_the_debt_and_nothing_else(
    provider: Provider,
) -> None:
    """Attack: fee-only requests that pay nothing (`Fee: 0`, free to send) or a donation in
    `Input-Fee`: each one booked costs the provider a proof slot and some 58k gas to settle
    (chunks of 4), so a user could make it settle without end. A fee-only request pays output
    fees owed, some of them, and nothing else."""
    user = provider.users[0]

    async def pay(input_fee: int, previous: int) -> tuple[int, dict[str, object]]:
        headers = user.headers(provider.address, input_fee, previous_output_fee=previous)
        async with provider.http.post(f"{provider.url}{SETTLE}", headers=headers) as response:
            return response.status, (await response.json()).get("error", {})

    status, error = await pay(0, 0)
    assert (status, error["code"]) == (400, "nothing_owed")
    status, _, _ = await provider.post(
        CHAT, chat(WORDS), user.headers(provider.address, input_fee=3 * INPUT_PRICE)
    )
    assert status == 200
    state = await provider.state(user)
    assert state is not None
    owed = state.output_debt
    assert owed > 1
    status, error = await pay(0, 0)
    assert (status, error["code"]) == (400, "nothing_paid")
    status, error = await pay(1, owed)
    assert (status, error["code"], error["param"]) == (400, "invalid_header", "Input-Fee")
    after = await provider.state(user)
    assert after is not None
    assert (after.output_debt, after.unsettled, after.reserved) == (owed, 3 * INPUT_PRICE, 0)
    status, _ = await pay(0, owed - 1)  # part of it: another process of the user pays the rest
    assert status == 200
