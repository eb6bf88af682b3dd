# SPDX-License-Identifier: Apache-2.0
"""The SDK against a real gateway: accounts on chain, paid and verified requests through the
official openai client, plain and streamed, concurrent, and the last output fee paid at close."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.conftest import LOCK_TIME
from tests.integration.sdk.conftest import DEPOSIT, INPUT_PRICE, SERVICE, Network
from zg_shared.accounts import nonces_key
from zg_shared.chain import DevChain
from zg_shared.crypto import prv2pub
from zgserve import AccountError, ConfigError, Evidence, verify_evidence
from zgserve._transport import TERMS_MAX_AGE_S

PROMPT = "hello there gateway"  # 3 input units


async def test_create_account_and_recover_the_key_on_another_machine(deployed: Network) -> None:
    async with deployed.client() as zg:
        account = await zg.create_account(deployed.provider, deposit=DEPOSIT)
        assert account.balance == DEPOSIT
        assert account.additional_info.startswith("zgk1:")
        with pytest.raises(AccountError, match="already exists"):
            await zg.create_account(deployed.provider)
    # Another machine: nothing but the wallet key and the chain.
    async with deployed.client(elsewhere=True) as elsewhere:
        key = await elsewhere.recover_signing_key(deployed.provider)
        assert prv2pub(key).as_tuple() == account.signer


async def test_deposit_and_refund_after_the_lock_time(deployed: Network, chain: DevChain) -> None:
    async with deployed.client() as zg:
        with pytest.raises(AccountError, match="no account"):
            await zg.account(deployed.provider)
        await zg.create_account(deployed.provider, deposit=DEPOSIT)
        await zg.deposit(deployed.provider, 5 * DEPOSIT)
        assert (await zg.account(deployed.provider)).balance == 6 * DEPOSIT

        await zg.request_refund(deployed.provider, DEPOSIT)
        assert (await zg.account(deployed.provider)).pending_refund == DEPOSIT
        with pytest.raises(AccountError, match="lock time"):
            await zg.process_refunds(deployed.provider)
        await chain.increase_time(LOCK_TIME + 1)
        await chain.mine()
        await zg.process_refunds(deployed.provider)
        account = await zg.account(deployed.provider)
        assert (account.balance, account.pending_refund) == (5 * DEPOSIT, 0)
        assert account.refunds[0].processed


async def test_openai_client_plain_and_streaming_pays_and_verifies(network: Network) -> None:
    async with network.client() as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        session = await zg.session(network.provider, SERVICE)
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)

        reply = await ai.chat.completions.create(
            model="zg-demo-1", messages=[{"role": "user", "content": PROMPT}]
        )
        assert reply.usage is not None
        first_output_fee = reply.usage.completion_tokens * 20
        assert zg.unpaid(network.provider) == first_output_fee
        state = await network.state(zg.address)
        assert state is not None
        assert (state.unsettled, state.output_debt) == (3 * INPUT_PRICE, first_output_fee)

        stream = await ai.chat.completions.create(
            model="zg-demo-1", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        texts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        assert "".join(texts)
        second_output_fee = zg.unpaid(network.provider)
        assert second_output_fee > 0
        state = await network.state(zg.address)
        assert state is not None
        # The stream's request paid the first receipt's output fee; its own is now owed.
        assert state.unsettled == 2 * 3 * INPUT_PRICE + first_output_fee
        assert state.output_debt == second_output_fee

        evidence = (await zg.provider_state(network.provider)).evidence()
        assert [f.ok for f in verify_evidence(evidence)] == [True, True]
        assert [r.streamed for r in evidence.records] == [False, True]
        # Over a file, as another machine would read it.
        path = zg.export_evidence(network.provider, network.state_dir / "ok.json")
        assert all(f.ok for f in verify_evidence(Evidence.read(path)))
        user = zg.address
    # Closing paid the last output fee with a fee-only request.
    state = await network.state(user)
    assert state is not None
    assert state.output_debt == 0
    assert state.unsettled == 2 * 3 * INPUT_PRICE + first_output_fee + second_output_fee


async def test_concurrent_requests_from_one_client_use_distinct_nonces(network: Network) -> None:
    count = 40
    async with network.client() as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        session = await zg.session(network.provider, SERVICE)
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)

        async def one(i: int) -> int:
            content = f"{PROMPT} {i}"
            if i % 2:
                reply = await ai.chat.completions.create(
                    model="zg-demo-1", messages=[{"role": "user", "content": content}]
                )
                return 1 if reply.choices else 0
            stream = await ai.chat.completions.create(
                model="zg-demo-1", messages=[{"role": "user", "content": content}], stream=True
            )
            return 1 if [c async for c in stream] else 0

        assert sum(await asyncio.gather(*(one(i) for i in range(count)))) == count
        provider = await zg.provider_state(network.provider)
        nonces = [r.nonce for r in provider.records]
        assert len(nonces) == len(set(nonces)) == count
        assert provider.served == count
        assert await network.redis.zcard(nonces_key(zg.address, network.provider)) == count
        # Every output fee received was paid by a later request or is still owed: none lost.
        state = await network.state(zg.address)
        assert state is not None
        assert state.output_debt == zg.unpaid(network.provider)


async def test_two_processes_of_one_user_share_the_nonce_file(network: Network) -> None:
    """Two clients of the same wallet and state directory (as two processes would be) send
    at once: every request is served, no nonce is refused as reused."""
    async with network.client() as first:
        await first.create_account(network.provider, deposit=DEPOSIT)
        async with network.client() as second:
            clients = []
            for zg in (first, second):
                session = await zg.session(network.provider, SERVICE)
                clients.append(
                    openai.AsyncOpenAI(
                        base_url=session.base_url, api_key="zg", http_client=session.http
                    )
                )

            async def ask(i: int) -> str:
                reply = await clients[i % 2].chat.completions.create(
                    model="zg-demo-1", messages=[{"role": "user", "content": f"{PROMPT} {i}"}]
                )
                return reply.choices[0].message.content or ""

            assert all(await asyncio.gather(*(ask(i) for i in range(20))))
            nonces = [
                r.nonce
                for zg in (first, second)
                for r in (await zg.provider_state(network.provider)).records
            ]
            assert len(set(nonces)) == 20
        # The second closed first and paid its output fees; the first pays its own now.
    state = await network.state(network.user_key.address)
    assert state is not None
    assert state.output_debt == 0


@pytest.mark.parametrize(
    ("price", "terms_max_age_s"), [("input_price", TERMS_MAX_AGE_S), ("output_price", 0.0)]
)
async def test_a_price_rise_before_signing_is_read_again_from_the_chain(
    network: Network, price: str, terms_max_age_s: float
) -> None:
    """The provider raises a price after the session read it, before the request is signed:
    the SDK reads the chain again (input: when the gateway says the input fee is too low;
    both: when its copy is older than `terms_max_age_s`) and signs under the new terms."""
    async with network.client(terms_max_age_s=terms_max_age_s) as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        session = await zg.session(network.provider, SERVICE)
        registered = session.service
        await network.reprice(**{price: 3 * getattr(registered, price)})
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
        await ai.chat.completions.create(
            model="zg-demo-1", messages=[{"role": "user", "content": PROMPT}]
        )
        [record] = (await zg.provider_state(network.provider)).records
        assert record.terms is not None
        assert getattr(record.terms, price) == 3 * getattr(registered, price)
        if price == "input_price":
            assert record.input_fee == 3 * 3 * INPUT_PRICE
        else:
            assert record.output_fee == zg.unpaid(network.provider) > 0
        evidence = (await zg.provider_state(network.provider)).evidence()
        assert all(f.ok for f in verify_evidence(evidence))


async def test_the_session_finds_the_gateway_from_the_chain(network: Network) -> None:
    """No gateway URL: the one the service registered on chain; an explicit one overrides."""
    async with network.client() as zg:
        await zg.create_account(network.provider, deposit=DEPOSIT)
        session = await zg.session(network.provider, SERVICE)
        assert session.base_url == f"{network.gateway_url}/v1/proxy/{SERVICE}"
        ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
        reply = await ai.chat.completions.create(
            model="zg-demo-1", messages=[{"role": "user", "content": PROMPT}]
        )
        assert reply.choices[0].message.content
        other = await zg.session(network.provider, SERVICE, "http://127.0.0.1:9/")
        assert other.base_url == f"http://127.0.0.1:9/v1/proxy/{SERVICE}"
        await network.reprice(url="ftp://somewhere")
        with pytest.raises(ConfigError, match="not an http"):
            await zg.session(network.provider, SERVICE)
