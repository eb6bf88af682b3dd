# SPDX-License-Identifier: Apache-2.0
"""What someone who can write the gateway's Redis can no longer do through it (issue 12 item 5):
choose the key that authorises a user's payments, the backend users' prompts go to, or the
price."""

from __future__ import annotations

import json

from eth_account.signers.local import LocalAccount

from tests.integration.gateway.conftest import Provider, User, chat
from tests.integration.gateway.test_gateway import CHAT, WORDS
from zg_shared.accounts import account_key
from zg_shared.chain import ServiceParams
from zg_shared.crypto import generate_private_key, prv2pub
from zg_shared.registry import ServiceRegistry, services_key


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


async def test_a_rewritten_registry_entry_neither_moves_the_backend_nor_the_price(
    provider: Provider,
) -> None:
    """The registry entry pointed at the cloud metadata address with price 0 sent every user's
    prompt there for free: the backend is the gateway's configuration, the terms the chain's."""
    await ServiceRegistry(provider.redis).sync_from_chain(provider.serving, provider.address)
    listed = await ServiceRegistry(provider.redis).get(provider.address, "chat")
    assert listed is not None
    forged = listed.model_copy(
        update={"url": "http://169.254.169.254/latest/meta-data", "input_price": 0}
    )
    await provider.redis.hset(services_key(provider.address), "chat", forged.model_dump_json())
    user = provider.users[0]

    status, _, raw = await provider.post(CHAT, chat(WORDS), user.headers(provider.address, 0))
    assert status == 400, raw
    assert json.loads(raw)["error"]["code"] == "input_fee_too_low"  # the chain's price holds
    status, _, raw = await provider.post(CHAT, chat(WORDS), user.headers(provider.address, 30))
    assert status == 200, raw
    assert json.loads(raw)["model"] == "zg-demo-1"  # answered by the configured backend


async def test_a_service_the_gateway_is_not_configured_for_is_404(
    provider: Provider, keys: list[LocalAccount]
) -> None:
    """Registered on chain, but no backend in the gateway's configuration: refused before
    anything is read, and the registered URL is never called."""
    await provider.serving.as_sender(keys[1]).add_or_update_service(
        ServiceParams(
            name="elsewhere",
            url="http://169.254.169.254/v1",
            model="zg-demo-1",
            input_price=1,
            output_price=1,
            signer_address=provider.address,
        )
    )
    user = provider.users[0]
    status, _, raw = await provider.post(
        "/v1/proxy/elsewhere/chat/completions", chat(WORDS), user.headers(provider.address, 3)
    )
    assert status == 404, raw
    assert json.loads(raw)["error"]["code"] == "unknown_service"
    assert await provider.state(user) is None
