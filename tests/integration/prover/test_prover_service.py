# SPDX-License-Identifier: Apache-2.0
"""The prover service on a real NATS: settlement requests in, locally verified proofs out,
and those proofs paying the provider through Serving.settleFees on anvil."""

from __future__ import annotations

import asyncio
import resource
import threading
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from eth_account.signers.local import LocalAccount
from nats.js import JetStreamContext

from tests.conftest import deploy_proving_serving
from tests.integration.jetstream import fresh_streams, stream_events
from zg_prover.app import ProverApp, create_app
from zg_prover.backends import select_backend
from zg_prover.config import ProverSettings
from zg_shared.chain import (
    FeesSettled,
    Web3Client,
)
from zg_shared.crypto import generate_private_key, prv2pub, sign_request
from zg_shared.events import ProofFailedV1, ProofReadyV1, SettlementRequestedV1, UserBatch
from zg_shared.zk import ChunkInput, SignedRequest
from zg_shared.zk.pipeline import ProvenChunk

pytestmark = pytest.mark.slow


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    await fresh_streams(nats_url)  # the admin step's, without a deployment to stamp
    client = await nats.connect(nats_url)
    stream = client.jetstream()
    yield stream
    await client.close()


def settings(nats_url: str, **overrides: Any) -> ProverSettings:
    """A prover on the committed N=4 keys, on this NATS."""
    return ProverSettings(
        nats_url=nats_url,
        http_port=0,
        circuit_sizes=[4],
        log_json=False,
        chain_id=31337,
        **overrides,
    )


@pytest.fixture
async def prover(nats_url: str, js: JetStreamContext) -> AsyncIterator[ProverApp]:
    app = create_app(settings(nats_url))
    await app.start()
    yield app
    await app.stop()


async def publish(js: JetStreamContext, event: SettlementRequestedV1) -> None:
    await js.publish(
        event.SUBJECT,
        event.model_dump_json().encode(),
        headers={"Nats-Msg-Id": event.event_id, "content-type": "application/json"},
    )


async def outcomes(
    js: JetStreamContext, count: int, within_s: float = 120.0
) -> list[dict[str, Any]]:
    """proof.ready / proof.failed events on the stream, once `count` are there."""
    deadline = asyncio.get_running_loop().time() + within_s
    found: list[dict[str, Any]] = []
    while asyncio.get_running_loop().time() < deadline:
        published = await stream_events(js, {ProofReadyV1.SUBJECT, ProofFailedV1.SUBJECT})
        found = [{"subject": subject, **payload} for subject, payload in published]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.2)
    return found


async def consumed(js: JetStreamContext, count: int, within_s: float = 120.0) -> None:
    """Waits until the prover has acked `count` messages."""
    deadline = asyncio.get_running_loop().time() + within_s
    while asyncio.get_running_loop().time() < deadline:
        info = await js.consumer_info("ZG_SERVING", "prover")
        if info.ack_floor.consumer_seq >= count and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the prover did not ack {count} messages in {within_s}s")


def signed_batch(user: str, provider: str, prv: bytes, nonces: range, fee: int) -> UserBatch:
    requests = [
        SignedRequest.from_signature_hex(
            user=user,
            provider=provider,
            nonce=n,
            fee=fee,
            signature=sign_request(prv, user, provider, n, fee).to_hex(),
        )
        for n in nonces
    ]
    return UserBatch(user=user, signer=prv2pub(prv).as_tuple(), requests=tuple(requests))


async def publish_two_parts(
    js: JetStreamContext, settlement_id: str, user: str, provider: str
) -> None:
    """One settlement in two parts of one N=4 chunk each (nonces 1-4 and 5-8), as billing
    sends them."""
    prv = generate_private_key()
    for part, nonces in enumerate((range(1, 5), range(5, 9))):
        await publish(
            js,
            SettlementRequestedV1(
                event_id=f"settle-{settlement_id}-{part}",
                settlement_id=settlement_id,
                provider=provider,
                batches=(signed_batch(user, provider, prv, nonces, fee=3),),
                circuit_size=4,
                part=part,
                parts=2,
            ),
        )


async def test_a_settlement_is_proven_and_pays_the_provider_on_chain(
    w3: Web3Client, keys: list[LocalAccount], js: JetStreamContext, prover: ProverApp
) -> None:
    serving = await deploy_proving_serving(w3, keys[0])
    provider, users = keys[1], keys[5:7]
    prvs = [generate_private_key() for _ in users]
    for user, prv in zip(users, prvs, strict=True):
        await serving.as_sender(user).add_account(
            provider.address, prv2pub(prv).as_tuple(), value=10**6
        )
    request = SettlementRequestedV1(
        settlement_id="s-1",
        provider=provider.address,
        batches=(
            # Six requests: two chunks of the N=4 circuit, sent in shuffled order.
            signed_batch(users[0].address, provider.address, prvs[0], range(1, 7), fee=1000),
            signed_batch(users[1].address, provider.address, prvs[1], range(5, 7), fee=77),
        ),
    )
    shuffled = request.batches[0].model_copy(update={"requests": request.batches[0].requests[::-1]})
    await publish(js, request.model_copy(update={"batches": (shuffled, request.batches[1])}))

    [ready] = await outcomes(js, 1)

    assert ready["subject"] == ProofReadyV1.SUBJECT
    event = ProofReadyV1.model_validate(ready)
    assert event.settlement_id == "s-1"
    assert [
        (p.user, p.init_nonce, p.final_nonce, p.total_fee, p.request_count) for p in event.proofs
    ] == [
        (users[0].address, 1, 4, 4000, 4),
        (users[0].address, 5, 6, 2000, 2),
        (users[1].address, 5, 6, 154, 2),
    ]
    before = await w3.eth.get_balance(provider.address)
    result = await serving.as_sender(provider).settle_fees([p.calldata for p in event.proofs])
    after = await w3.eth.get_balance(provider.address)
    assert after - before == 4000 + 2000 + 154 - result.fee_paid
    settled = [(e.user, e.amount, e.final_nonce) for e in result.events_of(FeesSettled)]
    assert settled == [
        (users[0].address, 4000, 4),
        (users[0].address, 2000, 6),
        (users[1].address, 154, 6),
    ]
    first = await serving.get_account(users[0].address, provider.address)
    assert (first.balance, first.nonce) == (10**6 - 6000, 6)
    # The same proofs again are a replay: nonces are not above the settled ones.
    with pytest.raises(Exception, match="ServingNonceTooLow"):
        await serving.as_sender(provider).settle_fees([p.calldata for p in event.proofs])


async def test_a_forged_signature_is_reported_not_proven(
    keys: list[LocalAccount], js: JetStreamContext, prover: ProverApp
) -> None:
    prv = generate_private_key()
    batch = signed_batch(keys[5].address, keys[1].address, prv, range(1, 3), fee=10)
    forged = batch.requests[1].model_copy(update={"s": batch.requests[1].s ^ 1})
    request = SettlementRequestedV1(
        settlement_id="s-forged",
        provider=keys[1].address,
        batches=(batch.model_copy(update={"requests": (batch.requests[0], forged)}),),
    )
    await publish(js, request)

    [failed] = await outcomes(js, 1)

    assert failed["subject"] == ProofFailedV1.SUBJECT
    event = ProofFailedV1.model_validate(failed)
    assert (event.settlement_id, event.retryable, event.user) == (
        "s-forged",
        False,
        keys[5].address,
    )


async def test_a_repeated_request_is_proven_under_ids_no_one_can_squat(
    keys: list[LocalAccount], js: JetStreamContext, prover: ProverApp
) -> None:
    prv = generate_private_key()
    batch = signed_batch(keys[5].address, keys[1].address, prv, range(1, 2), fee=10)
    request = SettlementRequestedV1(
        settlement_id="s-twice", provider=keys[1].address, batches=(batch,)
    )
    await publish(js, request)
    # The same settlement again under a new message id: proven again (billing takes one proof
    # per part), each under an id derived from its proof, so that no one who read the
    # settlement id on the bus could publish first under it and have ours dropped.
    await publish(js, request.model_copy(update={"event_id": "retry"}))

    found = [ProofReadyV1.model_validate(f) for f in await outcomes(js, 2, within_s=60)]

    assert len(found) == 2
    assert len({e.event_id for e in found}) == 2
    for event in found:
        assert event.event_id.startswith("proof-ready-s-twice-")
        assert len(event.event_id) > len("proof-ready-s-twice-") + 16
        [proof] = event.proofs
        assert (proof.init_nonce, proof.final_nonce, proof.total_fee) == (1, 1, 10)


async def test_two_provers_prove_one_settlements_chunks_in_parallel(
    nats_url: str, keys: list[LocalAccount], js: JetStreamContext
) -> None:
    """The prover pool: replicas on one durable consumer; billing sends a settlement's chunks
    as parts, and an idle replica takes the next part while the other one proves."""
    pool = [
        # One proof at a time each: the pool shares the parts.
        create_app(settings(nats_url, instance_id=name, concurrency=1))
        for name in ("prover-a", "prover-b")
    ]
    for app in pool:
        await app.start()
    try:
        await publish_two_parts(js, "s-pool", keys[5].address, keys[1].address)

        found = [ProofReadyV1.model_validate(e) for e in await outcomes(js, 2)]

        assert sorted((e.part, e.parts) for e in found) == [(0, 2), (1, 2)]
        assert {e.prover for e in found} == {"prover-a", "prover-b"}
        by_part = {e.part: e.proofs for e in found}
        assert [(p.init_nonce, p.final_nonce) for p in (*by_part[0], *by_part[1])] == [
            (1, 4),
            (5, 8),
        ]
        assert all(e.cpu_seconds and e.cpu_seconds > 0 for e in found)
    finally:
        for app in pool:
            await app.stop()


async def test_one_prover_proves_as_many_chunks_at_once_as_its_concurrency(
    nats_url: str, keys: list[LocalAccount], js: JetStreamContext
) -> None:
    """PROVER_CONCURRENCY=2: one replica, one loaded key, two parts proved side by side. Each
    proof waits at a barrier for the other to be in flight too, so one at a time never gets
    past it; and each part reports its own proof's CPU, not its neighbour's as well."""
    backend = select_backend("auto", [4], allow_dev=False)
    together = threading.Barrier(2, timeout=60)
    prove_alone = backend.prove

    def prove_beside_another(chunk: ChunkInput) -> ProvenChunk:
        together.wait()
        return prove_alone(chunk)

    backend.prove = prove_beside_another  # type: ignore[method-assign]
    app = create_app(settings(nats_url, concurrency=2), backend=backend)
    cpu_before = _process_cpu_s()
    await app.start()
    try:
        await publish_two_parts(js, "s-together", keys[5].address, keys[1].address)

        found = [ProofReadyV1.model_validate(e) for e in await outcomes(js, 2)]

        assert sorted(e.part for e in found) == [0, 1]
        assert not together.broken
        spent = [e.cpu_seconds or 0.0 for e in found]
        assert all(s > 0 for s in spent)
        # Counted per thread: the two reports add up to no more than the process spent.
        assert sum(spent) <= _process_cpu_s() - cpu_before
    finally:
        await app.stop()


def _process_cpu_s() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
