# SPDX-License-Identifier: Apache-2.0
"""An honest provider rotates its receipt signer (the key its gateway signs receipts with)
while users' SDKs are sending: the chain names the new key first, the gateway switches keys
later (a restart with the new Secret). No receipt is refused: a client that read the new
signer accepts the old one's receipts for a while after, one still holding the old signer
reads the chain again and accepts the new one's; fees are judged under the terms at signing,
to the wei. A key the chain never registered is still refused with evidence."""

from __future__ import annotations

import asyncio

import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.sdk.conftest import DEPOSIT, OUTPUT_PRICE, Network
from tests.integration.sdk.test_price_change import FRESH, STALE, UNITS, ask, chat, records
from zg_gateway.receipts import ReceiptSigner
from zgserve import ProviderStopped, VerificationError, verify_evidence
from zgserve.evidence import EvidenceRecord


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
        gateway.receipt_signer = ReceiptSigner(new_key)
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
        gateway.receipt_signer = ReceiptSigner(unknown_key)
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
        gateway.receipt_signer = ReceiptSigner(new_key)
    state = await network.state(user)
    assert state is not None
    # The closes paid every verified receipt's output fee; the disputed one is not offered.
    assert state.unsettled == sum(r.input_fee + r.output_fee for r in done) + disputed.input_fee
    assert state.output_debt == disputed.output_fee
