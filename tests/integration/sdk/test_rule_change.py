# SPDX-License-Identifier: Apache-2.0
"""An honest provider changes its service's counting rule on chain while users' SDKs are
sending. The rule decides the charge, so it is terms, like a price: each SDK judges a receipt
under the rule in force when it signed, and says which (ZG-Counting-Rule). For
`price_rise_grace_s` after the gateway reads the change it counts a request signed under the
replaced rule by that rule, input and output, so no receipt is refused; after the period such
a request is refused (`counting_rule_changed`) and the SDK reads the terms and signs again."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from tests.integration.polling import eventually
from tests.integration.sdk.conftest import DEPOSIT, INPUT_PRICE, SERVICE, Network
from tests.integration.sdk.test_price_change import FRESH, PROMPT, STALE, chat, records
from zg_gateway.prices import prices_key
from zg_shared.metering import RULES, CountingRule
from zgserve import ZgClient
from zgserve.evidence import EvidenceRecord

# A second rule, counting more than words: every character but whitespace.
LETTERS = CountingRule("letters", lambda text: sum(not c.isspace() for c in text))


@pytest.fixture(autouse=True)
def letters_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both the gateway and the SDK (this process) know the rule the service moves to."""
    monkeypatch.setitem(RULES, LETTERS.name, LETTERS)


@pytest.fixture
def gateway_knobs() -> dict[str, Any]:
    return {"price_rise_grace_s": STALE}


@pytest.fixture
def backend_knobs() -> dict[str, Any]:
    # Streams without usage, so output is counted by the rule; replies take a while.
    return {"token_latency_ms": 20.0, "stream_usage": False}


async def ask(ai: openai.AsyncOpenAI, i: int) -> None:
    """One streamed request, read to its end (the SDK verifies its receipt there)."""
    chunks = await ai.chat.completions.create(
        model="zg-demo-1", messages=[{"role": "user", "content": f"{PROMPT} {i}"}], stream=True
    )
    async for _ in chunks:
        pass


async def gateway_reads_the_change(network: Network, ai: openai.AsyncOpenAI) -> None:
    key = prices_key(network.provider, SERVICE)
    asked = [100]

    async def read() -> bool:
        await ask(ai, asked[0])
        asked[0] += 1
        return bool(await network.redis.hexists(key, "rule:words"))

    await eventually(read, what="the gateway reading the new counting rule")


async def by_rule(zg: ZgClient, network: Network) -> dict[str, list[EvidenceRecord]]:
    found: dict[str, list[EvidenceRecord]] = {}
    for r in await records(zg, network):  # every one verifies under its terms
        assert r.terms is not None
        found.setdefault(r.terms.counting_rule, []).append(r)
    return found


async def test_an_honest_rule_change_refuses_no_receipt(network: Network) -> None:
    async with network.client(terms_max_age_s=STALE) as old:
        await old.create_account(network.provider, deposit=DEPOSIT)
        ai = await chat(old, network)
        await ask(ai, 0)
        in_flight = [asyncio.create_task(ask(ai, i)) for i in range(1, 7)]
        await network.reprice(counting_rule=LETTERS.name)
        await asyncio.gather(*in_flight)
        await gateway_reads_the_change(network, ai)
        await asyncio.gather(*(ask(ai, i) for i in range(10, 14)))
        assert (await old.provider_state(network.provider)).failure is None
        # Served under the rule they were signed under, after the gateway read the change:
        # not refused, so the client did not read the terms again.
        assert [r.terms.counting_rule for r in (await records(old, network))[-4:] if r.terms] == [
            "words"
        ] * 4
        old_records = (await by_rule(old, network)).pop("words")
        assert len(old_records) >= 12
        # Input counted in words, as signed, after the gateway read the change too.
        assert {r.input_fee for r in old_records} == {4 * INPUT_PRICE}

        async with network.client(terms_max_age_s=FRESH) as new:
            ai_new = await chat(new, network)
            await asyncio.gather(*(ask(ai_new, i) for i in range(20, 23)))
            assert (await new.provider_state(network.provider)).failure is None
            new_records = (await by_rule(new, network)).pop("letters")
        prompt = f"{PROMPT} 20"
        assert new_records[0].input_fee == LETTERS.count(prompt) * INPUT_PRICE
        user = old.address
    state = await network.state(user)
    assert state is not None
    assert state.output_debt == 0
    assert state.unsettled == sum(r.input_fee + r.output_fee for r in old_records + new_records)


@pytest.mark.parametrize("gateway_knobs", [{"price_rise_grace_s": 1.0}])
async def test_after_the_period_a_request_under_the_old_rule_is_signed_again(
    network: Network,
) -> None:
    async with network.client(terms_max_age_s=STALE) as old:
        await old.create_account(network.provider, deposit=DEPOSIT)
        ai = await chat(old, network)
        await ask(ai, 0)
        await network.reprice(counting_rule=LETTERS.name)
        async with network.client(terms_max_age_s=FRESH) as new:
            await ask(await chat(new, network), 1)  # the gateway reads the change

        async def refused_and_signed_again() -> bool:
            await ask(ai, 2)
            last = (await records(old, network))[-1]
            assert last.terms is not None
            return last.terms.counting_rule == LETTERS.name

        await eventually(refused_and_signed_again, what="the old rule refused after the period")
        last = (await records(old, network))[-1]
        assert last.input_fee == LETTERS.count(f"{PROMPT} 2") * INPUT_PRICE
        assert (await old.provider_state(network.provider)).failure is None


async def test_a_rule_read_by_the_sdk_first_is_read_by_the_gateway(network: Network) -> None:
    """The service moves to a rule that counts less: a client that reads it before the
    gateway signs a lower Input-Fee under it; the gateway, which does not hold that rule,
    reads the chain again (as for a price drop) instead of refusing the fee as too low."""
    await network.reprice(counting_rule=LETTERS.name)
    async with network.client(terms_max_age_s=FRESH) as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        ai = await chat(zg, network)
        await ask(ai, 0)  # the gateway now holds the letters rule
        await network.reprice(counting_rule="words")
        await ask(ai, 1)
        last = (await records(zg, network))[-1]
        assert last.terms is not None
        assert last.terms.counting_rule == "words"
        assert last.input_fee == 4 * INPUT_PRICE
        assert (await zg.provider_state(network.provider)).failure is None
