# SPDX-License-Identifier: Apache-2.0
"""The user's ceilings against a real gateway: a price raised beyond them is refused, not
silently re-signed after `input_fee_too_low`; a request whose worst case is above the fee
ceiling is never sent; a user who raises a ceiling pays the new price."""

from __future__ import annotations

import openai
import pytest

from tests.integration.sdk.conftest import DEPOSIT, INPUT_PRICE, SERVICE, Network
from zg_shared.accounts import nonces_key
from zgserve import CeilingExceeded, Limits, ZgClient
from zgserve.terms import DEFAULT_MAX_PRICE

PROMPT = "hello there gateway"  # 3 input units
RAISED = 10 * DEFAULT_MAX_PRICE  # 10^12 times the service's input price


async def _ask(zg: ZgClient, network: Network) -> None:
    session = await zg.session(network.provider, SERVICE)
    ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
    await ai.chat.completions.create(
        model="zg-demo-1", messages=[{"role": "user", "content": PROMPT}]
    )


async def _nothing_charged(network: Network, user: str) -> None:
    state = await network.state(user)
    assert state is None or (state.unsettled, state.output_debt) == (0, 0)
    assert await network.redis.zcard(nonces_key(user, network.provider)) == 0


async def test_an_input_price_raised_beyond_the_ceiling_is_refused_not_re_signed(
    network: Network,
) -> None:
    """The session read the old price; the provider raises it 10^12x; the gateway answers
    `input_fee_too_low`; the SDK reads the new price and refuses it instead of signing again."""
    async with network.client() as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        session = await zg.session(network.provider, SERVICE)
        await network.reprice(input_price=RAISED)
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
        with pytest.raises(CeilingExceeded, match="max_input_price") as caught:
            await ai.chat.completions.create(
                model="zg-demo-1", messages=[{"role": "user", "content": PROMPT}]
            )
        assert (caught.value.value, caught.value.limit) == (RAISED, DEFAULT_MAX_PRICE)
        assert not (await zg.provider_state(network.provider)).records
        await _nothing_charged(network, zg.address)
        # A new session is refused at once, before any request.
        with pytest.raises(CeilingExceeded, match="max_input_price"):
            await zg.session(network.provider, SERVICE)


async def test_a_user_who_raises_the_ceiling_pays_the_new_price(network: Network) -> None:
    async with network.client(limits=Limits(max_input_price=RAISED, max_request_fee=10**18)) as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        await network.reprice(input_price=RAISED)
        await _ask(zg, network)
        [record] = (await zg.provider_state(network.provider)).records
        assert record.input_fee == 3 * RAISED


async def test_a_request_above_the_fee_ceiling_is_never_sent(network: Network) -> None:
    # 3 input units and the default 1,024 output units at the registered prices:
    worst = 3 * INPUT_PRICE + Limits().max_tokens * 20
    async with network.client(limits=Limits(max_request_fee=worst - 1)) as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        with pytest.raises(CeilingExceeded, match="max_request_fee") as caught:
            await _ask(zg, network)
        assert caught.value.value == worst
        await _nothing_charged(network, zg.address)
    async with network.client(limits=Limits(max_request_fee=worst)) as zg:
        await _ask(zg, network)


async def test_the_debt_ceiling_refuses_more_requests_in_flight(network: Network) -> None:
    """Each request may owe up to 1,024 x 20 wei: a ceiling of one such request lets one
    through at a time (the second, sent while the first is in flight, is refused)."""
    worst = Limits().max_tokens * 20
    async with network.client(limits=Limits(max_debt=worst)) as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        session = await zg.session(network.provider, SERVICE)
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
        stream = await ai.chat.completions.create(
            model="zg-demo-1", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        with pytest.raises(CeilingExceeded, match="max_debt"):
            await _ask(zg, network)
        assert [c async for c in stream]
        await _ask(zg, network)  # the first concluded: room again
