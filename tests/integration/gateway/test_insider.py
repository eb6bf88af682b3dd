# SPDX-License-Identifier: Apache-2.0
"""What someone who can write the gateway's Redis can no longer do through it (issue 12 item 5):
choose the key that authorises a user's payments."""

from __future__ import annotations

import json

from tests.integration.gateway.conftest import Provider, User, chat
from tests.integration.gateway.test_gateway import CHAT, WORDS
from zg_shared.accounts import account_key
from zg_shared.crypto import generate_private_key, prv2pub


async def test_a_signing_key_rewritten_in_redis_does_not_authorise_payments(
    provider: Provider,
) -> None:
    victim = provider.users[0]
    attacker = User(victim.key, generate_private_key())  # signs as the victim, with its own key
    forged = prv2pub(attacker.signing_key).as_tuple()
    # The victim's account as the indexer would write it, with the attacker's key, at a block
    # so high that no later read of the chain would overwrite it.
    await provider.redis.hset(
        account_key(victim.address, provider.address),
        mapping={
            "chain_block": 10**12,
            "balance": 10**15,
            "pending_refund": 0,
            "settled_nonce": 0,
            "signer_x": forged[0],
            "signer_y": forged[1],
        },
    )

    status, _, raw = await provider.post(CHAT, chat(WORDS), attacker.headers(provider.address, 30))

    assert status == 401, raw
    assert json.loads(raw)["error"]["code"] == "invalid_signature"
    state = await provider.state(victim)
    assert state is not None
    assert (state.unsettled, state.reserved) == (0, 0)
    # The victim's own key, the one on chain, still works.
    status, _, raw = await provider.post(CHAT, chat(WORDS), victim.headers(provider.address, 30))
    assert status == 200, raw
