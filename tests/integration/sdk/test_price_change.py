# SPDX-License-Identifier: Apache-2.0
"""An honest provider changes its prices on chain while users' SDKs are sending: a rise is
charged only `price_rise_grace_s` after the gateway reads it, so requests signed under the old
terms, in flight or sent before the SDK reads the chain again, are served at the old price and
no receipt is refused; after the period the new price applies and a request signed under the
old one is refused and signed again, never charged above its terms; a drop applies at once."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from tests.integration.jetstream import stream_events
from tests.integration.polling import eventually
from tests.integration.sdk.conftest import DEPOSIT, INPUT_PRICE, OUTPUT_PRICE, SERVICE, Network
from zg_gateway.prices import prices_key
from zg_shared.bus import connect as connect_nats
from zgserve import ZgClient, verify_evidence
from zgserve.evidence import EvidenceRecord

PROMPT = "hello there gateway"
UNITS = 4  # the prompt and the request number
STALE = 3600.0  # a client that does not read the chain again during the test
FRESH = 0.0  # one that reads it before every request


@pytest.fixture
def gateway_knobs() -> dict[str, Any]:
    return {"price_rise_grace_s": STALE}  # the period outlasts the test (one test shortens it)


@pytest.fixture
def backend_knobs() -> dict[str, Any]:
    return {"token_latency_ms": 20.0}  # replies take a while: requests overlap the change


async def chat(zg: ZgClient, network: Network) -> openai.AsyncOpenAI:
    session = await zg.session(network.provider, SERVICE)
    return openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)


async def ask(ai: openai.AsyncOpenAI, i: int) -> int:
    """One plain request; the output units it was charged for."""
    reply = await ai.chat.completions.create(
        model="zg-demo-1", messages=[{"role": "user", "content": f"{PROMPT} {i}"}]
    )
    assert reply.usage is not None
    return reply.usage.completion_tokens


async def records(zg: ZgClient, network: Network) -> list[EvidenceRecord]:
    state = await zg.provider_state(network.provider)
    assert all(f.ok for f in verify_evidence(state.evidence()))
    return [r for r in state.records if r.endpoint == "chat/completions"]


async def test_an_honest_rise_under_load_refuses_no_receipt(
    network: Network, nats_url: str
) -> None:
    """Both prices triple while requests signed under the old terms are in flight and more
    are sent: all are served and verified at the old prices, as are those of a client that
    read the new terms (charged the old, lower output price); the ledger owes exactly what
    was signed and what the receipts said."""
    async with network.client(terms_max_age_s=STALE) as old:
        await old.create_account(network.provider, deposit=DEPOSIT)
        ai = await chat(old, network)
        units = [await ask(ai, 0)]  # the gateway now holds the old terms
        in_flight = [asyncio.create_task(ask(ai, i)) for i in range(1, 9)]
        await network.reprice(input_price=3 * INPUT_PRICE, output_price=3 * OUTPUT_PRICE)
        units += await asyncio.gather(*in_flight)
        changed = prices_key(network.provider, SERVICE)

        async def gateway_read_the_rise() -> bool:
            units.append(await ask(ai, len(units)))
            return bool(await network.redis.exists(changed))

        await eventually(gateway_read_the_rise, what="the gateway reading the new prices")
        units += await asyncio.gather(*(ask(ai, i) for i in range(100, 108)))
        old_records = await records(old, network)
        assert {r.terms.output_price for r in old_records if r.terms} == {OUTPUT_PRICE}
        assert [r.output_fee for r in old_records] == [n * OUTPUT_PRICE for n in units]
        assert {r.input_fee for r in old_records} == {UNITS * INPUT_PRICE}

        async with network.client(terms_max_age_s=FRESH) as new:
            ai_new = await chat(new, network)
            new_units = await asyncio.gather(*(ask(ai_new, i) for i in range(200, 204)))
            new_records = await records(new, network)
        assert {r.terms.output_price for r in new_records if r.terms} == {3 * OUTPUT_PRICE}
        assert {r.input_fee for r in new_records} == {UNITS * 3 * INPUT_PRICE}  # as signed
        assert [r.output_fee for r in new_records] == [n * OUTPUT_PRICE for n in new_units]
        user = old.address
    # Both clients closed and paid their last output fees: the ledger holds, to the wei, the
    # input fees signed and the output fees the receipts said, which billing settles.
    everything = old_records + new_records
    state = await network.state(user)
    assert state is not None
    assert state.output_debt == 0
    assert state.unsettled == sum(r.input_fee + r.output_fee for r in everything)
    # What billing settles: the served events, each with the fee its user signed and the
    # output fee its receipt said.
    served = await served_events(nats_url, len(everything) + 2)  # and the two closes' payments
    charged = {e["nonce"]: (e["fee"], e["output_fee"]) for e in served if e["outcome"] == "charged"}
    assert {r.nonce: (r.fee, r.output_fee) for r in everything}.items() <= charged.items()
    assert sum(fee for fee, _ in charged.values()) == state.unsettled


async def served_events(nats_url: str, count: int) -> list[dict[str, Any]]:
    """The request.served events on the stream, once the gateway's outbox has sent `count`."""
    client = await connect_nats(nats_url)
    try:
        js = client.jetstream()
        found: list[dict[str, Any]] = []

        async def all_sent() -> bool:
            found[:] = [e for _, e in await stream_events(js, {"serving.request.served.v1"})]
            return len(found) >= count

        await eventually(all_sent, what=f"{count} served events")
        return found
    finally:
        await client.close()


@pytest.mark.parametrize("gateway_knobs", [{"price_rise_grace_s": 1.0}])
async def test_after_the_period_the_new_price_applies_and_old_terms_are_signed_again(
    network: Network,
) -> None:
    """Once the raised output price is charged, a request signed under the old one is refused
    and signed again under the new terms; a fee-only payment signed under the old terms (it
    charges no output) is taken as it is."""
    async with (
        network.client(terms_max_age_s=STALE) as old,
        network.client(terms_max_age_s=STALE) as idle,
    ):
        await old.create_account(network.provider, deposit=DEPOSIT)
        ai = await chat(old, network)
        await ask(ai, 0)
        owed = await ask(await chat(idle, network), 1) * OUTPUT_PRICE
        await network.reprice(output_price=3 * OUTPUT_PRICE)
        async with network.client(terms_max_age_s=FRESH) as new:
            ai_new = await chat(new, network)

            async def new_price_charged() -> bool:
                units = await ask(ai_new, 1)
                return (await records(new, network))[-1].output_fee == units * 3 * OUTPUT_PRICE

            await eventually(new_price_charged, what="the raised price charged")
        # Signed under the old price: refused (output_price_too_low), the terms read again,
        # signed and charged under the new ones; the receipt verifies.
        units = await ask(ai, 2)
        last = (await records(old, network))[-1]
        assert last.terms is not None
        assert last.terms.output_price == 3 * OUTPUT_PRICE
        assert last.output_fee == units * 3 * OUTPUT_PRICE
        assert await idle.settle(network.provider) == owed
        # Not refused: had it been, the client would have read the new terms.
        idle_terms = (await idle.provider_state(network.provider)).services[SERVICE]
        assert idle_terms.output_price == OUTPUT_PRICE


async def test_a_price_drop_applies_at_once(network: Network) -> None:
    """The gateway still holds the old terms (read a moment ago) when a request signed under
    the lower ones arrives: it reads the chain again and charges the new prices."""
    async with network.client(terms_max_age_s=FRESH) as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        ai = await chat(zg, network)
        await ask(ai, 0)
        await network.reprice(input_price=INPUT_PRICE // 2, output_price=OUTPUT_PRICE // 2)
        units = await ask(ai, 1)
        last = (await records(zg, network))[-1]
        assert last.terms is not None
        assert (last.terms.input_price, last.terms.output_price) == (
            INPUT_PRICE // 2,
            OUTPUT_PRICE // 2,
        )
        assert last.input_fee == UNITS * INPUT_PRICE // 2
        assert last.output_fee == units * OUTPUT_PRICE // 2
