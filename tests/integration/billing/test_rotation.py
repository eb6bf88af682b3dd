# SPDX-License-Identifier: Apache-2.0
"""A key rotation end to end (gateway, indexer, prover, billing on real servers): the gateway
refuses the old key once the indexer has seen the rotation and serves the new one, and billing
still settles, and the chain pays, what the old key signed before."""

from __future__ import annotations

import pytest

from tests.conftest import LOCK_TIME
from tests.integration.billing.conftest import DEPOSIT, Stack, running_billing
from tests.integration.gateway.conftest import User, chat
from tests.integration.jetstream import stream_events
from tests.integration.polling import eventually
from zg_shared.chain import DevChain
from zg_shared.crypto import generate_private_key, prv2pub
from zg_shared.events import SettlementFailedV1, SignerRotatedV1

pytestmark = pytest.mark.slow


async def test_the_old_key_is_refused_once_seen_and_what_it_signed_is_still_paid(
    stack: Stack,
) -> None:
    user = stack.users[0]
    provider = stack.provider.address
    # Served before the rotation, with the old key; billing is not running yet, so these are
    # still unsettled when the key changes.
    fees = [await stack.send(user), await stack.send(user)]
    old_key, new_key = user.signing_key, generate_private_key()
    new_signer = prv2pub(new_key).as_tuple()

    await stack.serving.as_sender(user.key).rotate_signer(provider, new_signer)

    async def seen() -> bool:
        return (await stack.state(user)).signer == new_signer

    await eventually(seen, what="the indexer applied the rotation")

    async def published() -> bool:  # the indexer writes Redis first, then publishes
        return bool(await stream_events(stack.js, {SignerRotatedV1.SUBJECT}, "ZG_CHAIN"))

    await eventually(published, what="SignerRotatedV1 published")
    [(_, rotated)] = await stream_events(stack.js, {SignerRotatedV1.SUBJECT}, "ZG_CHAIN")
    assert (rotated["user"], tuple(rotated["signer"])) == (user.address, new_signer)
    assert tuple(rotated["previous_signer"]) == prv2pub(old_key).as_tuple()
    words = "signed with the old key"
    async with stack.http.post(
        f"{stack.gateway_url}/v1/proxy/chat/chat/completions",
        json=chat(words),
        headers=user.headers(provider, len(words.split()) * 10**9),
    ) as refused:
        assert refused.status == 401
        assert (await refused.json())["error"]["code"] == "invalid_signature"
    user.next_nonce -= 1  # the refused request used no nonce
    user.signing_key = new_key
    fees.append(await stack.send(user))  # the new key is served at once
    total = sum(fees)

    async with running_billing(stack):

        async def all_paid() -> bool:
            return sum(e.amount for e in await stack.settled_on_chain()) == total

        await eventually(all_paid, what="the old key's and the new key's fees settled")

        async def view_settled() -> bool:
            state = await stack.state(user)
            return (state.settled_nonce, state.unsettled) == (3, 0)

        # Billing takes the confirmed settlements off what the gateway counts as unsettled.
        await eventually(view_settled, what="the gateway's view settled")

    settled = await stack.settled_on_chain()
    # One chunk per key: the old key's two requests, then the new key's one.
    assert [(e.final_nonce, e.amount) for e in settled] == [(2, sum(fees[:2])), (3, fees[2])]
    account = await stack.serving.get_account(user.address, provider)
    assert (account.nonce, account.balance) == (3, DEPOSIT - total)
    assert account.previous_signer == prv2pub(old_key).as_tuple()


async def _rotate(stack: Stack, user: User) -> None:
    """Rotates the user's key on chain and waits until the gateway's view has the new one."""
    new_key = generate_private_key()
    new_signer = prv2pub(new_key).as_tuple()
    await stack.serving.as_sender(user.key).rotate_signer(stack.provider.address, new_signer)

    async def seen() -> bool:
        return (await stack.state(user)).signer == new_signer

    await eventually(seen, what="the indexer applied the rotation")
    user.signing_key = new_key


async def test_the_new_key_cannot_sign_below_what_the_old_key_signed(stack: Stack) -> None:
    """Attack: a user signs with the old key at a high nonce, rotates, then places new-key
    requests below it (and keeps one in flight there, which holds billing's seal). Billing
    settles in nonce order, one key per chunk, so the old key's requests wait behind them
    until the contract stops taking that key: served for free. The gateway puts every nonce
    of a new key above every nonce admitted before it."""
    user = stack.users[0]
    user.next_nonce = 10
    await stack.send(user)  # nonce 10, the old key
    await _rotate(stack, user)
    words = "below the old key"
    async with stack.http.post(
        f"{stack.gateway_url}/v1/proxy/chat/chat/completions",
        json=chat(words),
        headers=user.headers(stack.provider.address, len(words.split()) * 10**9, nonce=5),
    ) as refused:
        assert refused.status == 409, await refused.text()
        error = (await refused.json())["error"]
        assert error["code"] == "nonce_too_low"
    state = await stack.state(user)
    assert (state.unsettled, state.reserved) == (3 * 10**9, 0)  # the old key's request only
    user.next_nonce = 11
    await stack.send(user)  # above it: served at once


async def test_an_expired_keys_requests_are_written_off_and_the_new_keys_still_settle(
    stack: Stack, chain: DevChain
) -> None:
    """Attack: the replaced key's window passes while what it signed is still unsettled (billing
    was down, or the user held its seal). Those requests can never settle; billing used to
    retry them forever, first in nonce order, so every later request of the account never
    settled either and the user refunded the whole deposit. Billing writes them off (and
    reports them) and settles the rest."""
    user = stack.users[0]
    old_fees = [await stack.send(user), await stack.send(user)]  # nonces 1, 2: the old key
    await _rotate(stack, user)
    new_fee = await stack.send(user)  # nonce 3: the new key
    await chain.increase_time(LOCK_TIME + 1)
    await chain.mine()

    async with running_billing(stack):

        async def new_key_paid() -> bool:
            return [e.amount for e in await stack.settled_on_chain()] == [new_fee]

        await eventually(new_key_paid, what="the new key's request settled")

        async def written_off() -> list[int]:
            found = await stream_events(stack.js, {SettlementFailedV1.SUBJECT})
            return sorted(r["nonce"] for _, p in found for r in p["written_off"])

        async def reported() -> bool:
            return await written_off() == [1, 2]

        await eventually(reported, what="the expired key's requests reported written off")

        async def view_clear() -> bool:
            return (await stack.state(user)).unsettled == 0

        await eventually(view_clear, what="the gateway's view holds nothing unsettled")

    account = await stack.serving.get_account(user.address, stack.provider.address)
    assert (account.nonce, account.balance) == (3, DEPOSIT - new_fee)
    assert sum(old_fees) > 0  # served, and lost: the contract no longer takes that key
