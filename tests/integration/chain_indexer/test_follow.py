# SPDX-License-Identifier: Apache-2.0
"""The indexer on the session anvil, NATS and Redis: each contract event published once, in
chain order, after Redis shows it; confirmations; restarts; backfill after a flush."""

from __future__ import annotations

import asyncio

import nats
import pytest
from eth_account.signers.local import LocalAccount
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from redis.asyncio import Redis

from tests.conftest import deploy_proving_serving
from tests.integration.chain_indexer.conftest import (
    StartIndexer,
    assert_redis_matches_chain,
    chain_events,
    wait_for,
    wait_indexed,
)
from zg_chain_indexer.checkpoint import CheckpointStore
from zg_prover.backends import select_backend
from zg_prover.service import ProverService
from zg_shared.accounts import AccountStore, account_key
from zg_shared.chain import (
    AnvilNode,
    DevChain,
    ServingClient,
    SettlementProof,
    Web3Client,
)
from zg_shared.chain.events import (
    BalanceUpdated,
    FeesSettled,
    RefundRequested,
    ServiceRemoved,
    ServiceUpdated,
    ServingEvent,
)
from zg_shared.chain.models import ServiceParams
from zg_shared.chain.sender import TxResult
from zg_shared.crypto import generate_private_key, prv2pub, sign_request
from zg_shared.events import UserBatch
from zg_shared.events.chain import (
    AccountUpdatedV1,
    FeesSettledV1,
    RefundRequestedV1,
    ServiceRemovedV1,
    ServiceUpdatedV1,
    chain_event_id,
)
from zg_shared.zk import SignedRequest

SUBJECT_OF: dict[type[ServingEvent], str] = {
    BalanceUpdated: AccountUpdatedV1.SUBJECT,
    FeesSettled: FeesSettledV1.SUBJECT,
    RefundRequested: RefundRequestedV1.SUBJECT,
    ServiceUpdated: ServiceUpdatedV1.SUBJECT,
    ServiceRemoved: ServiceRemovedV1.SUBJECT,
}


def expected(results: list[TxResult]) -> list[tuple[str, str]]:
    """(subject, event id) the indexer must publish for these transactions, in chain order."""
    found = []
    for result in results:
        for event in result.events:
            subject = SUBJECT_OF.get(type(event))
            if subject is not None:
                assert event.position is not None
                found.append((subject, chain_event_id(event.position)))
    return found


def published(events: list[tuple[str, dict[str, object]]]) -> list[tuple[str, str]]:
    return [(subject, str(payload["event_id"])) for subject, payload in events]


def service(name: str, signer: str, price: int = 10) -> ServiceParams:
    return ServiceParams(
        name=name,
        url=f"http://{name}.test/v1",
        input_price=price,
        output_price=2 * price,
        signer_address=signer,
    )


async def block_of(w3: Web3Client) -> int:
    return int(await w3.eth.block_number)


async def prove(
    prover: ProverService, user: str, provider: str, prv: bytes, nonces: range, fee: int
) -> list[SettlementProof]:
    requests = tuple(
        SignedRequest.from_signature_hex(
            user=user,
            provider=provider,
            nonce=n,
            fee=fee,
            signature=sign_request(prv, user, provider, n, fee).to_hex(),
        )
        for n in nonces
    )
    batch = UserBatch(user=user, signer=prv2pub(prv).as_tuple(), requests=requests)
    return [p.calldata for p in await prover.prove_batch(provider, batch, 4)]


@pytest.mark.slow
async def test_every_event_is_published_once_in_order_and_redis_equals_the_chain(
    anvil: AnvilNode,
    w3: Web3Client,
    keys: list[LocalAccount],
    js: JetStreamContext,
    redis: Redis,
    nats_url: str,
    start_indexer: StartIndexer,
) -> None:
    serving = await deploy_proving_serving(w3, keys[0])
    indexer = await start_indexer(anvil.rpc_url, serving.address)
    provider, alice, bob = keys[1], keys[5], keys[6]
    prv_a, prv_b = generate_private_key(), generate_private_key()
    as_provider = serving.as_sender(provider)
    as_alice, as_bob = serving.as_sender(alice), serving.as_sender(bob)
    results = [
        await as_provider.add_or_update_service(service("chat", provider.address)),
        await as_provider.add_or_update_service(service("embed", provider.address)),
        await as_alice.add_account(provider.address, prv2pub(prv_a).as_tuple(), value=1_000),
        await as_bob.add_account(provider.address, prv2pub(prv_b).as_tuple(), value=500),
        await as_bob.deposit_fund(provider.address, value=9_500),
        await as_alice.request_refund(provider.address, 300),
        await as_alice.request_refund(provider.address, 500),
    ]
    # A consumer of FeesSettledV1 must find Redis at least as new as the event (billing relies
    # on it): read the account the moment each one arrives.
    seen_at_delivery: list[tuple[int, int, int]] = []
    store = AccountStore(redis)

    async def on_settled(msg: Msg) -> None:
        event = FeesSettledV1.model_validate_json(msg.data)
        state = await store.read(event.user, event.provider)
        assert state is not None
        seen_at_delivery.append((event.final_nonce, state.settled_nonce, state.balance))

    listener = await nats.connect(nats_url)
    await listener.subscribe(FeesSettledV1.SUBJECT, cb=on_settled)
    prover = ProverService(select_backend("auto", [4]))
    proofs = await prove(prover, alice.address, provider.address, prv_a, range(1, 5), 200)
    proofs += await prove(prover, bob.address, provider.address, prv_b, range(1, 7), 10)
    # One call: Alice's 800 takes 600 from her refunds, Bob's six requests are two chunks.
    results.append(await as_provider.settle_fees(proofs))
    results.append(await as_provider.add_or_update_service(service("chat", provider.address, 11)))
    results.append(await as_provider.remove_service("embed"))

    await wait_indexed(indexer, results[-1].block_number)

    events = await chain_events(js)
    assert published(events) == expected(results)
    assert indexer.follower.duplicates == 0
    await assert_redis_matches_chain(redis, serving)

    async def all_seen() -> bool:
        return len(seen_at_delivery) == 3

    await wait_for(all_seen, 5)
    await listener.close()
    # Redis holds the whole block's result (both of Bob's chunks) before any event goes out.
    assert seen_at_delivery == [(4, 4, 200), (4, 6, 9_940), (6, 6, 9_940)]
    settled = [FeesSettledV1.model_validate(p) for s, p in events if s == FeesSettledV1.SUBJECT]
    assert [(e.user, e.amount, e.final_nonce) for e in settled] == [
        (alice.address, 800, 4),
        (bob.address, 40, 4),
        (bob.address, 20, 6),
    ]
    updates = [
        AccountUpdatedV1.model_validate(p) for s, p in events if s == AccountUpdatedV1.SUBJECT
    ]
    after_settle = [u for u in updates if u.position.block_number == results[7].block_number]
    assert [
        (u.user, u.cause, u.settled_nonce, u.balance, u.pending_refund) for u in after_settle
    ] == [
        (alice.address, "FeesSettled", 4, 200, 200),
        (bob.address, "FeesSettled", 4, 9_960, 0),
        (bob.address, "FeesSettled", 6, 9_940, 0),
    ]
    assert [u.cause for u in updates[:5]] == [
        "AccountAdded",
        "AccountAdded",
        "FundDeposited",
        "RefundRequested",
        "RefundRequested",
    ]
    [refund] = [
        RefundRequestedV1.model_validate(p) for s, p in events if s == RefundRequestedV1.SUBJECT
    ][:1]
    assert (refund.index, refund.amount) == (0, 300)
    confirmed = await indexer.follower.projection.settlements(bob.address, provider.address)
    assert [(s.amount, s.final_nonce) for s in confirmed] == [(20, 6), (40, 4)]


async def test_logs_wait_for_their_confirmations(
    anvil: AnvilNode,
    serving: ServingClient,
    chain: DevChain,
    keys: list[LocalAccount],
    js: JetStreamContext,
    redis: Redis,
    start_indexer: StartIndexer,
) -> None:
    await chain.mine(3)  # a fresh chain may be shorter than the confirmations
    indexer = await start_indexer(anvil.rpc_url, serving.address, confirmations=3)
    result = await serving.as_sender(keys[1]).add_or_update_service(
        service("late", keys[1].address)
    )
    await chain.mine(2)  # two blocks on top: not yet three confirmations
    await asyncio.sleep(0.5)
    assert await chain_events(js) == []
    assert await indexer.follower.projection.registry.get(keys[1].address, "late") is None

    await chain.mine(1)
    await wait_indexed(indexer, result.block_number)

    assert published(await chain_events(js)) == expected([result])
    assert await indexer.follower.projection.registry.get(keys[1].address, "late") is not None


async def test_a_restart_neither_misses_nor_repeats_an_event(
    anvil: AnvilNode,
    serving: ServingClient,
    keys: list[LocalAccount],
    js: JetStreamContext,
    redis: Redis,
    start_indexer: StartIndexer,
) -> None:
    provider, user = keys[2], keys[7]
    as_user = serving.as_sender(user)
    first = await start_indexer(anvil.rpc_url, serving.address)
    results = [await as_user.add_account(provider.address, (1, 2), value=100)]
    await wait_indexed(first, results[-1].block_number)
    await first.stop()

    for amount in (10, 20, 30):
        results.append(await as_user.deposit_fund(provider.address, value=amount))
    results.append(await as_user.request_refund(provider.address, 50))
    second = await start_indexer(anvil.rpc_url, serving.address)
    await wait_indexed(second, results[-1].block_number)

    assert published(await chain_events(js)) == expected(results)
    assert first.follower.duplicates == second.follower.duplicates == 0
    await assert_redis_matches_chain(redis, serving)


async def test_a_crash_between_publish_and_cursor_resumes_after_the_stream(
    anvil: AnvilNode,
    serving: ServingClient,
    keys: list[LocalAccount],
    js: JetStreamContext,
    redis: Redis,
    start_indexer: StartIndexer,
) -> None:
    """The cursor is saved after each publish; an indexer that died in between (produced here
    by putting the cursor back, a fault a test cannot time) must not publish that log again."""
    provider, user = keys[2], keys[8]
    first = await start_indexer(anvil.rpc_url, serving.address)
    await wait_indexed(first, await block_of(serving.w3))
    before = await first.follower.checkpoint.load()
    assert before is not None
    results = [await serving.as_sender(user).add_account(provider.address, (3, 4), value=7)]
    await wait_indexed(first, results[-1].block_number)
    await first.stop()
    # As if the cursor never moved (through the test's client: the stopped app's is closed).
    await CheckpointStore(redis).save(before)

    second = await start_indexer(anvil.rpc_url, serving.address)
    results.append(await serving.as_sender(user).deposit_fund(provider.address, value=5))
    await wait_indexed(second, results[-1].block_number)

    assert published(await chain_events(js)) == expected(results)
    assert second.follower.duplicates == 0


async def test_first_start_backfills_from_the_views_then_follows(
    anvil: AnvilNode,
    serving: ServingClient,
    keys: list[LocalAccount],
    js: JetStreamContext,
    redis: Redis,
    start_indexer: StartIndexer,
) -> None:
    provider, user = keys[3], keys[9]
    as_user = serving.as_sender(user)
    await serving.as_sender(provider).add_or_update_service(service("old", provider.address))
    await as_user.add_account(provider.address, (5, 6), value=1_000)
    await as_user.request_refund(provider.address, 100)

    indexer = await start_indexer(anvil.rpc_url, serving.address)
    later = await as_user.deposit_fund(provider.address, value=1)
    await wait_indexed(indexer, later.block_number)

    assert published(await chain_events(js)) == expected([later])  # history is not replayed
    await assert_redis_matches_chain(redis, serving)


async def test_redis_flushed_is_rebuilt_and_no_event_is_missed(
    anvil: AnvilNode,
    serving: ServingClient,
    keys: list[LocalAccount],
    js: JetStreamContext,
    redis: Redis,
    start_indexer: StartIndexer,
) -> None:
    provider, user = keys[3], keys[10]
    as_user = serving.as_sender(user)
    first = await start_indexer(anvil.rpc_url, serving.address)
    results = [await as_user.add_account(provider.address, (7, 8), value=1_000)]
    await wait_indexed(first, results[-1].block_number)
    await first.stop()

    await redis.flushall()
    results.append(await as_user.request_refund(provider.address, 100))
    results.append(
        await serving.as_sender(provider).add_or_update_service(service("new", provider.address))
    )
    second = await start_indexer(anvil.rpc_url, serving.address)
    await wait_indexed(second, results[-1].block_number)
    await assert_redis_matches_chain(redis, serving)

    # Flushed under a running indexer: it notices the missing cursor and rebuilds.
    await redis.flushall()
    results.append(await as_user.deposit_fund(provider.address, value=3))
    await wait_indexed(second, results[-1].block_number)
    state = await AccountStore(redis).read(user.address, provider.address)
    assert state is not None
    assert state.balance == 1_003

    assert published(await chain_events(js)) == expected(results)
    assert first.follower.duplicates == second.follower.duplicates == 0
    await assert_redis_matches_chain(redis, serving)


async def test_an_account_redis_lost_alone_is_reloaded_with_its_signer(
    anvil: AnvilNode,
    serving: ServingClient,
    keys: list[LocalAccount],
    js: JetStreamContext,
    redis: Redis,
    start_indexer: StartIndexer,
) -> None:
    provider, user = keys[4], keys[12]
    indexer = await start_indexer(anvil.rpc_url, serving.address)
    added = await serving.as_sender(user).add_account(provider.address, (11, 12), value=5)
    await wait_indexed(indexer, added.block_number)
    await redis.delete(account_key(user.address, provider.address))  # the cursor survives
    result = await serving.as_sender(user).deposit_fund(provider.address, value=6)
    await wait_indexed(indexer, result.block_number)

    [*_, (_, last)] = await chain_events(js)
    update = AccountUpdatedV1.model_validate(last)
    assert (update.balance, update.signer, update.cause) == (11, (11, 12), "FundDeposited")
    await assert_redis_matches_chain(redis, serving)
