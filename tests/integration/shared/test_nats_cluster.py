# SPDX-License-Identifier: Apache-2.0
"""A 3-node JetStream cluster (zg_shared.localservers.NatsCluster): the streams and their
durable consumers are kept on `NATS_STREAM_REPLICAS` servers, a client given the cluster's
servers moves on when its server dies, and a publisher that retries with the same
`Nats-Msg-Id` through the leader's loss leaves each message on the stream exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial

import pytest
from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from tests.integration.polling import eventually
from zg_shared.bus import STREAM_CONFIGS, connect, ensure_streams, publish_event
from zg_shared.events import ReorgDetectedV1
from zg_shared.localservers import NatsCluster


@pytest.fixture
def cluster() -> Iterator[NatsCluster]:
    with NatsCluster(3) as nodes:
        yield nodes


async def copies(js: JetStreamContext, stream: str, consumer: str | None = None) -> set[str]:
    """The servers holding a current copy of the stream (or of its consumer); none while it
    elects a leader."""
    if consumer is None:
        cluster = (await js.stream_info(stream)).cluster
    else:
        cluster = (await js.consumer_info(stream, consumer)).cluster
    if cluster is None or cluster.leader is None:
        return set()
    return {cluster.leader, *(p.name for p in cluster.replicas or [] if p.current and p.name)}


async def publish_until_acked(js: JetStreamContext, subject: str, msg_id: str) -> int:
    """What the gateway's outbox does: the same message and id until JetStream acks it.
    Returns the attempts it took."""
    attempts = 0
    while True:
        attempts += 1
        try:
            await js.publish(subject, msg_id.encode(), headers={"Nats-Msg-Id": msg_id}, timeout=1)
            return attempts
        except Exception:  # no leader for a moment, or our server gone: the same id again
            await asyncio.sleep(0.1)


async def test_streams_and_consumers_are_kept_on_three_servers(cluster: NatsCluster) -> None:
    client = await connect(cluster.url)
    try:
        js = client.jetstream()
        await ensure_streams(cluster.url)  # the default: one copy
        assert len(await copies(js, "ZG_SERVING")) == 1
        await js.pull_subscribe("serving.request.served.v1", durable="billing-served")
        await js.publish("serving.request.served.v1", b"kept", headers={"Nats-Msg-Id": "kept"})

        await ensure_streams(cluster.url, replicas=3)  # scaled up in place, messages kept

        names = {cluster.node_name(i) for i in range(3)}
        for stream in (c.name for c in STREAM_CONFIGS if c.name):
            await eventually(partial(_held_by, js, names, stream), 30, f"{stream} on 3 servers")
        # A durable consumer leaves its replicas at 0: it follows the stream's.
        await eventually(
            lambda: _held_by(js, names, "ZG_SERVING", "billing-served"), 30, "consumer on 3"
        )
        assert (await js.stream_info("ZG_SERVING")).state.messages == 1
    finally:
        await client.close()


async def _held_by(
    js: JetStreamContext, names: set[str], stream: str, consumer: str | None = None
) -> bool:
    return await copies(js, stream, consumer) == names


async def test_a_killed_leader_loses_no_acked_message_and_retries_store_each_once(
    cluster: NatsCluster,
) -> None:
    await ensure_streams(cluster.url, replicas=3)
    leader = await _leader(cluster)
    # The publisher is on the leader's server: killing it takes both at once.
    servers = [leader, *(i for i in range(3) if i != leader)]
    url = ",".join(cluster.node_url(i) for i in servers)
    client = await connect(url, dont_randomize=True, max_reconnect_attempts=-1)
    try:
        js = client.jetstream()
        assert client.connected_url is not None
        assert client.connected_url.port == cluster.ports[leader]
        sent = [f"served-{i}" for i in range(40)]
        for msg_id in sent[:20]:
            await publish_until_acked(js, "serving.request.served.v1", msg_id)

        cluster.kill(leader)
        retried = [await publish_until_acked(js, "serving.request.served.v1", m) for m in sent[20:]]
        # Retrying ids already stored (an outbox that lost its acks) stores nothing again.
        for msg_id in sent[15:25]:
            await publish_until_acked(js, "serving.request.served.v1", msg_id)
        assert max(retried) > 1  # the loss was felt, and ridden out
        assert client.connected_url is not None
        assert client.connected_url.port != cluster.ports[leader]

        cluster.start_node(leader)
        cluster.wait_healthy(leader)
        names = {cluster.node_name(i) for i in range(3)}
        await eventually(lambda: _held_by(js, names, "ZG_SERVING"), 30, "the node caught up")
        assert await _stored(js) == sent
    finally:
        await client.close()


async def _leader(cluster: NatsCluster, stream: str = "ZG_SERVING") -> int:
    """The node leading `stream`."""
    client = await connect(cluster.url)
    try:
        info = await client.jetstream().stream_info(stream)
    finally:
        await client.close()
    assert info.cluster is not None
    assert info.cluster.leader is not None
    return cluster.index_of(info.cluster.leader)


async def _stored(js: JetStreamContext) -> list[str]:
    info = await js.stream_info("ZG_SERVING")
    return [
        (await js.get_msg("ZG_SERVING", seq)).data.decode()  # type: ignore[union-attr]
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
    ]


async def test_services_publish_through_the_loss_of_the_streams_leader(
    cluster: NatsCluster,
) -> None:
    """A service's broker on the leader's server: publish_event waits out the election and
    the move to another server, and the event is stored once."""
    await ensure_streams(cluster.url, replicas=3)
    leader = await _leader(cluster, "ZG_CHAIN")
    servers = [leader, *(i for i in range(3) if i != leader)]
    broker = NatsBroker([cluster.node_url(i) for i in servers], dont_randomize=True)
    await broker.connect()
    try:
        cluster.kill(leader)
        events = [
            ReorgDetectedV1(event_id=f"reorg-{i}", common_ancestor=i, dropped_from=i + 1, depth=1)
            for i in range(3)
        ]
        for event in events:
            await publish_event(broker, event)
        await publish_event(broker, events[0])  # a retry after its ack: dropped
    finally:
        await broker.stop()
    client = await connect(cluster.url)
    try:
        js = client.jetstream()
        info = await js.stream_info("ZG_CHAIN")
        assert info.state.messages == len(events)
    finally:
        await client.close()
