# SPDX-License-Identifier: Apache-2.0
"""An honest provider rotates its receipt signer (the key its gateway signs receipts with)
while users' SDKs are sending: the chain names the new key first, the gateway switches keys
later (a restart with the new Secret). No receipt is refused: a client that read the new
signer accepts the old one's receipts for a while after, one still holding the old signer
reads the chain again and accepts the new one's; fees are judged under the terms at signing,
to the wei. A key the chain never registered is still refused with evidence."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.polling import eventually
from tests.integration.sdk.conftest import DEPOSIT, OUTPUT_PRICE, Network
from tests.integration.sdk.test_price_change import (
    FRESH,
    STALE,
    UNITS,
    ask,
    chat,
    records,
    served_events,
)
from zg_gateway.receipts import ReceiptSigner
from zg_gateway.service import GatewayService
from zg_shared.eip191 import signer_of
from zg_shared.events import RequestServedV1
from zgserve import ProviderStopped, VerificationError, verify_evidence
from zgserve.evidence import EvidenceRecord

REGISTERED = 2  # keys[2]: the signer the service registers first (conftest)


@pytest.fixture
def gateway_receipt_key(keys: list[LocalAccount], request: pytest.FixtureRequest) -> LocalAccount:
    return keys[getattr(request, "param", REGISTERED)]


@pytest.fixture
def gateway_knobs(keys: list[LocalAccount], request: pytest.FixtureRequest) -> dict[str, Any]:
    previous = getattr(request, "param", None)
    return {} if previous is None else {"previous_receipt_private_key": keys[previous].key.hex()}


def restart(gateway: GatewayService, key: LocalAccount) -> None:
    """The gateway as restarted with `key` alone (a new Secret)."""
    gateway.receipt_signer = ReceiptSigner(key)
    gateway.receipt_signers = {key.address.lower(): gateway.receipt_signer}


async def test_an_honest_signer_rotation_refuses_no_receipt(
    network: Network, keys: list[LocalAccount]
) -> None:
    old_signer, new_key, unknown_key = network.registered_signer, keys[4], keys[5]
    gateway = network.gateway
    assert gateway is not None
    async with (
        network.client(terms_max_age_s=STALE) as old,
        network.client(terms_max_age_s=FRESH) as new,
    ):
        await old.create_account(network.provider, deposit=DEPOSIT)
        ai_old, ai_new = await chat(old, network), await chat(new, network)
        await asyncio.gather(ask(ai_old, 0), ask(ai_new, 0))
        # Requests in flight while the chain names the new signer; the gateway still signs
        # with the old key, and the fresh client reads the new signer for the next ones.
        in_flight = [
            asyncio.create_task(ask(ai, i)) for i in range(1, 5) for ai in (ai_old, ai_new)
        ]
        await network.reprice(signer_address=new_key.address)
        await asyncio.gather(*in_flight, *(ask(ai_new, i) for i in range(5, 9)))
        # The gateway restarts with the new key while requests are in flight: the old client,
        # still holding the old signer, receives the new key's receipts.
        in_flight = [
            asyncio.create_task(ask(ai, i)) for i in range(10, 14) for ai in (ai_old, ai_new)
        ]
        restart(gateway, new_key)
        await asyncio.gather(*in_flight, *(ask(ai_old, i) for i in range(14, 18)))

        done: list[EvidenceRecord] = []
        for zg in (old, new):
            assert (await zg.provider_state(network.provider)).failure is None
            done += await records(zg, network)  # and every record verifies offline
        signers = {(r.terms.signer_address if r.terms else "", r.rotated_signer) for r in done}
        # Each kind of crossing happened: the new client signed under the new signer and got
        # the old key's receipts, the old client under the old one and got the new key's.
        assert (new_key.address, old_signer) in signers
        assert (old_signer, new_key.address) in signers
        units = [r.output_fee // OUTPUT_PRICE for r in done]
        assert [r.output_fee for r in done] == [u * OUTPUT_PRICE for u in units]
        assert all(u > 0 for u in units)
        assert {r.input_fee for r in done} == {UNITS * 10}

        # A gateway signing with a key the chain never registered: refused, with evidence.
        restart(gateway, unknown_key)
        with pytest.raises(VerificationError, match="not by the service's registered") as caught:
            await ask(ai_old, 20)
        assert caught.value.evidence_path is not None
        evidence = (await old.provider_state(network.provider)).evidence()
        assert [f.ok for f in verify_evidence(evidence)][-1] is False
        disputed = evidence.records[-1]
        assert disputed.rotated_signer is None
        with pytest.raises(ProviderStopped):
            await ask(ai_old, 21)
        user = old.address
        restart(gateway, new_key)
    state = await network.state(user)
    assert state is not None
    # The closes paid every verified receipt's output fee; the disputed one is not offered.
    assert state.unsettled == sum(r.input_fee + r.output_fee for r in done) + disputed.input_fee
    assert state.output_debt == disputed.output_fee


@pytest.mark.parametrize("gateway_receipt_key", [4], indirect=True)
@pytest.mark.parametrize("gateway_knobs", [REGISTERED], indirect=True)
async def test_a_gateway_holding_both_keys_signs_with_the_one_each_sdk_holds(
    network: Network, keys: list[LocalAccount], nats_url: str
) -> None:
    """Rotation as docs/operations.md says: the gateway restarted with the new key and the
    previous one. Each receipt is signed with the key the request's SDK names
    (ZG-Receipt-Signer): a client still holding the old signer gets the old key's receipts, one
    that read the new signer first (before the gateway did) the new key's; no receipt needs the
    overlap. Served events (billing's) follow the chain: the new key once the gateway reads it."""
    new_key, old_signer = keys[4], network.registered_signer
    async with network.client(terms_max_age_s=STALE) as old:
        await old.create_account(network.provider, deposit=DEPOSIT)
        ai = await chat(old, network)
        await ask(ai, 0)  # the gateway holds the old signer for 5 s
        await network.reprice(signer_address=new_key.address)
        async with network.client(terms_max_age_s=FRESH, elsewhere=True) as new:
            ai_new = await chat(new, network)
            await asyncio.gather(*(ask(ai_new, i) for i in range(1, 4)))
            fresh = await records(new, network)
        asked = [10]

        async def attested_by_the_new_key() -> bool:
            await ask(ai, asked[0])
            asked[0] += 1
            events = await served_events(nats_url, asked[0] - 10 + 4)
            last = RequestServedV1.model_validate(events[-1])
            return signer_of(last.digest(), last.attestation) == new_key.address

        await eventually(attested_by_the_new_key, what="served events signed with the new key")
        await ask(ai, 99)
        assert (await old.provider_state(network.provider)).failure is None
        done = await records(old, network)
    assert {(r.terms.signer_address, r.rotated_signer) for r in fresh if r.terms} == {
        (new_key.address, None)
    }
    assert {(r.terms.signer_address, r.rotated_signer) for r in done if r.terms} == {
        (old_signer, None)
    }
    for r in [*done, *fresh]:
        assert r.output_fee > 0
        assert r.output_fee % OUTPUT_PRICE == 0
