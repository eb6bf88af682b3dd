# SPDX-License-Identifier: Apache-2.0
"""Requests that authorise no fee cost the provider nothing to settle."""

from __future__ import annotations

import pytest

from tests.integration.billing.conftest import DEPOSIT, Stack, running_billing
from tests.integration.gateway.conftest import chat
from tests.integration.polling import eventually

pytestmark = pytest.mark.slow
ZERO_FEE_REQUESTS = 7


async def test_requests_signed_for_no_fee_are_never_proved_nor_settled(stack: Stack) -> None:
    """Attack: requests signed for no fee (`Fee: 0`: an empty prompt, nothing owed before it)
    were booked as charged and took a slot in the user's chunks: proving time and some 58k gas
    per request (a chunk of 4), for no fee. With one real request a user made billing settle
    as many as it liked. (Fee-only requests must now pay debt: test_fee_only.py.)"""
    user = stack.users[0]
    fee = await stack.send(user)  # nonce 1: a real request
    for _ in range(ZERO_FEE_REQUESTS):
        async with stack.http.post(
            f"{stack.gateway_url}/v1/proxy/chat/chat/completions",
            json=chat("", max_tokens=1),
            headers=user.headers(stack.provider.address, 0),
        ) as response:
            assert response.status == 200, await response.text()

    async with running_billing(stack):

        async def confirmed() -> bool:
            return bool(await stack.confirmations())

        await eventually(confirmed, what="a settlement confirmed")

        async def view_settled() -> bool:
            state = await stack.state(user)
            return (state.unsettled, state.sealed_nonce) == (0, 1 + ZERO_FEE_REQUESTS)

        await eventually(view_settled, what="every nonce passed")

    [settlement] = await stack.confirmations()
    assert [(c["request_count"], c["total_fee"]) for c in settlement["chunks"]] == [(1, fee)]
    settled = await stack.settled_on_chain()
    assert [(e.final_nonce, e.amount) for e in settled] == [(1, fee)]
    account = await stack.serving.get_account(user.address, stack.provider.address)
    assert account.balance == DEPOSIT - fee
