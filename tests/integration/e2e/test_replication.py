# SPDX-License-Identifier: Apache-2.0
"""Replication drills (issue 16): the whole network on replicated servers, under load from
several users, with one server SIGKILLed mid-load. Each ends with every fee a user signed
settled on chain exactly once (none lost, none twice: `Network.assert_exactly_once`) and
prints its figures (docs/operations.md, "Replication drills").

    .venv/bin/python -m pytest tests/integration/e2e/test_replication.py -s
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.js import JetStreamContext

from tests.integration.e2e.network import (
    Load,
    Network,
    count_above,
    running_network,
    streams_in_flight,
    swept,
)
from tests.integration.jetstream import stream_events
from tests.integration.polling import eventually
from tests.integration.tcpproxy import TcpProxy
from zg_billing.app import EXIT_DEPOSED
from zg_shared.events import ProofReadyV1, RequestServedV1, SettlementRequestedV1
from zg_shared.localnet import ManagedProcess
from zg_shared.localservers import NatsCluster, RedisSentinels

pytestmark = pytest.mark.slow
USERS = 4


def report(drill: str, **figures: object) -> None:
    print(f"\n[drill] {drill}: {json.dumps(figures)}", flush=True)


# Each drill has its network of its own, gone before the next starts (two would share 2 cores).
@pytest.fixture
def nats_cluster() -> Iterator[NatsCluster]:
    with NatsCluster(3) as cluster:
        yield cluster


@pytest.fixture
async def clustered(
    nats_cluster: NatsCluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Network]:
    """The network on the 3-node cluster, every stream on all three servers."""
    async with running_network(
        tmp_path_factory.mktemp("clustered"), nats_url=nats_cluster.url, stream_replicas=3
    ) as network:
        yield network


async def served_on_stream(js: JetStreamContext) -> int:
    subject = RequestServedV1.SUBJECT
    info = await js.stream_info("ZG_SERVING", subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def stream_leader(js: JetStreamContext) -> str:
    info = await js.stream_info("ZG_SERVING")
    assert info.cluster is not None
    assert info.cluster.leader is not None
    return info.cluster.leader


async def test_drill_1_a_nats_node_killed_mid_load_loses_no_fee(
    clustered: Network, nats_cluster: NatsCluster
) -> None:
    network = clustered
    users = [await network.add_user(5 + i) for i in range(USERS)]
    async with Load(network, users) as load:
        await load.served_at_least(3 * USERS)

        # The server leading ZG_SERVING (the record of what users owe) goes, mid-load.
        node = nats_cluster.index_of(await stream_leader(network.js))
        nats_cluster.kill(node)
        killed_at, served_at_kill = time.monotonic(), load.served
        # Recovered: what the gateway served after the kill reaches the stream again.
        await load.served_at_least(served_at_kill + USERS)
        after_kill = load.served

        async def caught_up() -> bool:
            try:
                return await served_on_stream(network.js) >= after_kill
            except nats.errors.Error:  # the stream electing its new leader: not yet
                return False

        await eventually(caught_up, 60, "served requests on the stream again")
        recovery_s = time.monotonic() - killed_at
        served_while_recovering = load.served - served_at_kill
        await load.served_at_least(after_kill + 2 * USERS)

        nats_cluster.start_node(node)
        rejoin_s = await asyncio.to_thread(nats_cluster.wait_healthy, node, 60.0)
        served = await load.stop()

    settled_from = time.monotonic()
    await network.wait_settled()
    await network.assert_exactly_once()
    assert await served_on_stream(network.js) == served  # each once: retries de-duplicated
    report(
        "1 nats node killed",
        requests_served=served,
        served_while_recovering=served_while_recovering,
        recovery_s=round(recovery_s, 2),
        node_rejoined_s=round(rejoin_s, 2),
        settled_after_load_s=round(time.monotonic() - settled_from, 2),
        fees_lost_wei=0,
        double_charges=0,
    )


@pytest.fixture
def redis_group() -> Iterator[RedisSentinels]:
    with RedisSentinels() as group:
        yield group


@pytest.fixture
async def sentinel_network(
    redis_group: RedisSentinels, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Network]:
    """The network on Redis with Sentinel: the gateway waits for the replica on each finish,
    billing looks for a moved primary every second."""
    async with running_network(
        tmp_path_factory.mktemp("sentinel"),
        redis_url=f"redis://127.0.0.1:{redis_group.ports[0]}/0",
        redis_credentials=redis_group.credentials,
        redis_sentinels=redis_group.sentinels,
        redis_sentinel_password=redis_group.sentinel_password,
        overrides={"GATEWAY_REDIS_WAIT_REPLICAS": "1", "BILLING_REBUILD_CHECK_S": "1"},
    ) as network:
        yield network


async def test_drill_2_the_redis_primary_killed_mid_load_loses_no_fee(
    sentinel_network: Network, redis_group: RedisSentinels
) -> None:
    network = sentinel_network
    users = [await network.add_user(5 + i) for i in range(USERS)]
    async with Load(network, users, failures_allowed=True) as load:
        await load.served_at_least(3 * USERS)
        redis_group.kill(0)
        killed_at, served_at_kill, failed_at_kill = time.monotonic(), load.served, load.failed
        # Recovered: every user answered again after the kill.
        await load.served_at_least(served_at_kill + 2 * USERS)
        recovery_s = time.monotonic() - killed_at
        await load.served_at_least(load.served + 2 * USERS)
        served = await load.stop()

    settled_from = time.monotonic()
    await network.wait_settled()
    await network.assert_exactly_once()
    report(
        "2 redis primary killed",
        requests_served=served,
        requests_not_answered=load.failed - failed_at_kill,
        statuses=load.statuses,
        recovery_s=round(recovery_s, 2),
        settled_after_load_s=round(time.monotonic() - settled_from, 2),
        fees_lost_wei=0,
        double_charges=0,
    )


@pytest.fixture
async def two_billings(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Network]:
    """The network with billing active and standby, on a 3 s lease."""
    async with running_network(
        tmp_path_factory.mktemp("billings"), billings=2, overrides={"BILLING_LEASE_TTL_S": "3"}
    ) as network:
        yield network


async def test_drill_3_the_billing_leader_killed_mid_batch_the_standby_settles(
    two_billings: Network,
) -> None:
    network = two_billings
    billings = [network.net.processes["billing"], network.net.processes["billing-2"]]
    # The one started first is ready first, but which takes the lease first is up to them.
    await eventually(
        lambda: asyncio.sleep(0, any(map(lease_takes, billings))), 60, "a billing leading"
    )
    leader, standby = billings if lease_takes(billings[0]) else billings[::-1]
    users = [await network.add_user(5 + i) for i in range(USERS)]
    async with Load(network, users) as load:
        requested = len(await stream_events(network.js, {SettlementRequestedV1.SUBJECT}))
        await eventually(
            lambda: count_above(network.js, SettlementRequestedV1.SUBJECT, requested), 60
        )
        leader.kill()  # mid-batch: a settlement asked for, its proof on the way
        killed_at = time.monotonic()
        await eventually(
            lambda: asyncio.sleep(0, lease_takes(standby) > 0), 60, "the standby leading"
        )
        takeover_s = time.monotonic() - killed_at
        await load.served_at_least(load.served + 2 * USERS)

        # Deposed while alive: the leader frozen past its lease, the old one back as standby.
        os.kill(standby.pid or 0, signal.SIGSTOP)
        takes = lease_takes(leader)  # its log goes on: only what the restarted one writes counts
        leader.start()
        await eventually(
            lambda: asyncio.sleep(0, lease_takes(leader) > takes),
            60,
            "the old leader leading again",
        )
        os.kill(standby.pid or 0, signal.SIGCONT)
        assert standby.process is not None
        deposed_exit = await asyncio.to_thread(standby.process.wait, 60)
        served = await load.stop()

    settled_from = time.monotonic()
    await network.wait_settled()
    await network.assert_exactly_once()
    late = [tx for tx, _, ok in await network.provider_transactions() if not ok]
    report(
        "3 billing leader killed",
        requests_served=served,
        takeover_s=round(takeover_s, 2),
        deposed_leader_exit=deposed_exit,
        reverted_late_transactions=len(late),
        settled_after_load_s=round(time.monotonic() - settled_from, 2),
        fees_lost_wei=0,
        double_charges=0,
    )
    assert deposed_exit == EXIT_DEPOSED


STREAMS = 8  # streams in flight on the gateway that is killed
HEARTBEAT_S = 3  # how long a killed gateway's requests wait before the other sweeps them


@pytest.fixture
async def two_gateways(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Network, TcpProxy]]:
    """Two gateway processes on the same Redis and NATS behind one address (a round-robin
    balancer that skips one refusing connections); streams take seconds (0.4 s a token)."""
    async with running_network(
        tmp_path_factory.mktemp("gateways"),
        gateways=2,
        environment={"SAMPLE_BACKEND_TOKEN_LATENCY_MS": "400", "SAMPLE_BACKEND_REPLY_WORDS": "30"},
        overrides={"GATEWAY_ALIVE_TTL_S": str(HEARTBEAT_S), "GATEWAY_SWEEP_EVERY_S": "0.5"},
    ) as network:
        balancer = TcpProxy(*network.net.gateway_ports.values())
        await balancer.start()
        network.gateway_url = balancer.url
        try:
            yield network, balancer
        finally:
            await balancer.stop()


async def test_drill_4_a_gateway_killed_mid_stream_the_other_serves_and_sweeps(
    two_gateways: tuple[Network, TcpProxy],
) -> None:
    network, balancer = two_gateways
    users = [await network.add_user(5 + i) for i in range(USERS)]
    streamer = await network.add_user(5 + USERS)
    doomed = network.net.processes["gateway-2"]
    doomed_url = f"http://127.0.0.1:{network.net.gateway_ports['gateway-2']}"
    async with Load(network, users, failures_allowed=True) as load:
        await load.served_at_least(3 * USERS)
        assert all(balancer.accepted.values())  # the users' requests went to both
        streams = await streams_in_flight(network, streamer, doomed_url, STREAMS)
        doomed.kill()  # SIGKILL mid-stream: no finish, no event, no shutdown
        killed_at, served_at_kill, failed_at_kill = time.monotonic(), load.served, load.failed
        await asyncio.gather(*streams, return_exceptions=True)
        # The other gateway keeps serving, and sweeps what the dead one held once its
        # heartbeat lapses: every cut-off stream reaches billing, voided.
        voided = await swept(network.js, STREAMS)
        recovery_s = time.monotonic() - killed_at
        await load.served_at_least(served_at_kill + 2 * USERS)
        served_while_recovering = load.served - served_at_kill
        await network.send(streamer)  # its next fee settles past the voided nonces
        served = await load.stop()

    mine = [e for e in voided if e["user"] == streamer.address]
    assert len(mine) == STREAMS
    assert all(e["outcome"] == "voided" for e in voided)
    settled_from = time.monotonic()
    await network.wait_settled()
    await network.assert_exactly_once()
    report(
        "4 one of two gateways killed mid-stream",
        requests_served=served + 1,
        served_while_recovering=served_while_recovering,
        requests_not_answered=load.failed - failed_at_kill,
        statuses=load.statuses,
        streams_swept=len(mine),
        recovery_s=round(recovery_s, 2),
        settled_after_load_s=round(time.monotonic() - settled_from, 2),
        fees_lost_wei=0,
        double_charges=0,
    )


@pytest.fixture
async def two_provers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Network]:
    """The network with a pool of two provers on one durable consumer."""
    async with running_network(tmp_path_factory.mktemp("provers"), provers=2) as network:
        yield network


async def test_drill_5_a_prover_killed_mid_proof_the_other_finishes_it(
    two_provers: Network,
) -> None:
    network = two_provers
    provers = [network.net.processes["prover"], network.net.processes["prover-2"]]
    users = [await network.add_user(5 + i) for i in range(USERS)]
    async with Load(network, users) as load:
        requested = len(await stream_events(network.js, {SettlementRequestedV1.SUBJECT}))
        await eventually(
            lambda: count_above(network.js, SettlementRequestedV1.SUBJECT, requested), 60
        )
        killed = provers[0] if await _proving(provers[0]) else provers[1]
        killed.kill()  # mid-proof (or between two): its unacked chunk goes to the other
        killed_at = time.monotonic()
        proofs = len(await stream_events(network.js, {ProofReadyV1.SUBJECT}))
        await eventually(lambda: count_above(network.js, ProofReadyV1.SUBJECT, proofs), 120)
        next_proof_s = time.monotonic() - killed_at
        await load.served_at_least(load.served + 2 * USERS)
        served = await load.stop()

    settled_from = time.monotonic()
    await network.wait_settled(within_s=240)
    await network.assert_exactly_once()
    report(
        "5 prover killed",
        requests_served=served,
        next_proof_after_kill_s=round(next_proof_s, 2),
        settled_after_load_s=round(time.monotonic() - settled_from, 2),
        fees_lost_wei=0,
        double_charges=0,
    )


def lease_takes(billing: ManagedProcess) -> int:
    """How often this billing's log (a restart appends to it) shows the lease taken, whether
    from a standby's wait or again by a leader whose lease lapsed under load."""
    lines = billing.log.read_text(errors="replace").splitlines()
    return sum("billing lease" in line and "taken" in line for line in lines)


async def _proving(prover: ManagedProcess) -> bool:
    """Whether the prover's log shows a chunk taken and no proof out for it yet."""
    lines = prover.log.read_text(errors="replace").splitlines()
    taken = sum('"Received"' in line for line in lines)
    done = sum('"Processed"' in line for line in lines)
    return taken > done
