# SPDX-License-Identifier: Apache-2.0
"""State of one deployment is never read as another's: Redis and the streams are stamped with
the deployment (chain id, genesis hash, contract): the admin step stamps the streams it
creates, the first service claims empty Redis, and a service pointed at another deployment's
state, or at streams no admin step made, refuses to start, in one clear line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from eth_account.signers.local import LocalAccount
from nats.js import JetStreamContext
from redis.asyncio import Redis

from tests.conftest import LOCK_TIME
from zg_shared.bus import STREAM_CONFIGS
from zg_shared.chain import AnvilNode, ServingClient, Web3Client
from zg_shared.deployment import (
    ALL_STREAMS,
    DEPLOYMENT_KEY,
    EXIT_FOREIGN_STATE,
    DeploymentIdentity,
    DeploymentStamp,
    ForeignDeployment,
    bind,
    claim_streams,
    identify,
    reset_state,
    running_elsewhere,
)
from zg_shared.localservers import free_port

SERVICE_START_S = 90.0


@pytest.fixture
async def redis(redis: Redis) -> AsyncIterator[Redis]:
    """The shared fixture's client (flushed first), flushed after too: no stamp of these
    tests' deployments for the next test."""
    yield redis
    await redis.flushdb()


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(nats_url)
    stream = client.jetstream()

    async def drop_streams() -> None:
        for name in ALL_STREAMS:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await stream.delete_stream(name)

    await drop_streams()
    yield stream
    await drop_streams()
    await client.close()


def another_chain(identity: DeploymentIdentity) -> DeploymentStamp:
    """The same contract address on a chain started again from genesis."""
    return DeploymentStamp(
        chain_id=identity.chain_id,
        genesis_hash="0x" + "11" * 32,
        contract=identity.contract,
        rpc_url="http://127.0.0.1:1",
    )


async def stream_description(js: JetStreamContext, name: str) -> str | None:
    description: str | None = (await js.stream_info(name)).config.description
    return description


async def stamp_of(w3: Web3Client, contract: str) -> DeploymentStamp:
    identity = await identify(w3, contract)
    return DeploymentStamp(**identity.model_dump(), rpc_url=str(w3.provider.endpoint_uri))


async def test_the_admin_step_stamps_the_streams_the_first_service_claims_redis(
    w3: Web3Client, serving: ServingClient, redis: Redis, js: JetStreamContext, nats_url: str
) -> None:
    rpc_url = str(w3.provider.endpoint_uri)
    assert await claim_streams(nats_url, await stamp_of(w3, serving.address)) == list(ALL_STREAMS)
    identity = await bind(w3, serving.address, rpc_url, redis, nats_url, ALL_STREAMS)
    assert identity == await identify(w3, serving.address)
    assert identity.chain_id == await w3.eth.chain_id
    stamp = DeploymentStamp.parse(await redis.get(DEPLOYMENT_KEY))
    assert stamp is not None
    assert stamp.identity == identity
    assert stamp.rpc_url == rpc_url
    for name in ALL_STREAMS:
        stamped = DeploymentStamp.parse(await stream_description(js, name))
        assert stamped is not None
        assert stamped.identity == identity

    # The admin step run again (a Job re-run, an upgrade) keeps the stamp.
    assert await claim_streams(nats_url, await stamp_of(w3, serving.address)) == []
    for name in ALL_STREAMS:
        assert DeploymentStamp.parse(await stream_description(js, name)) == stamp
    assert await bind(w3, serving.address, rpc_url, redis, nats_url, ALL_STREAMS) == identity


async def test_the_state_of_another_deployment_is_refused_and_left_as_it_is(
    w3: Web3Client,
    serving: ServingClient,
    keys: list[LocalAccount],
    redis: Redis,
    js: JetStreamContext,
    nats_url: str,
) -> None:
    rpc_url = str(w3.provider.endpoint_uri)
    await claim_streams(nats_url, await stamp_of(w3, serving.address))
    ours = await identify(w3, serving.address)
    theirs = another_chain(ours)
    await redis.set(DEPLOYMENT_KEY, theirs.model_dump_json())
    with pytest.raises(ForeignDeployment) as refused:
        await bind(w3, serving.address, rpc_url, redis, nats_url, ALL_STREAMS)
    assert str(refused.value).startswith("Redis holds the state of another deployment")
    assert str(theirs.identity) in str(refused.value)
    assert str(ours) in str(refused.value)
    assert DeploymentStamp.parse(await redis.get(DEPLOYMENT_KEY)) == theirs

    # Another contract on this very chain is another deployment too.
    other = await ServingClient.deploy(w3, keys[0], lock_time=LOCK_TIME)
    await redis.flushdb()
    await bind(w3, serving.address, rpc_url, redis, nats_url, ALL_STREAMS)
    await redis.flushdb()  # Redis lost, the streams kept: the streams still tell
    with pytest.raises(ForeignDeployment, match="JetStream stream ZG_SERVING holds the state"):
        await bind(w3, other.address, rpc_url, redis, nats_url, ALL_STREAMS)
    # The admin step of another deployment refuses them too, and changes nothing.
    with pytest.raises(ForeignDeployment, match="JetStream stream ZG_SERVING holds the state"):
        await claim_streams(nats_url, await stamp_of(w3, other.address))
    stamped = DeploymentStamp.parse(await stream_description(js, "ZG_SERVING"))
    assert stamped is not None
    assert stamped.identity == ours


async def test_a_service_refuses_streams_no_admin_step_made_or_stamped(
    w3: Web3Client, serving: ServingClient, redis: Redis, js: JetStreamContext, nats_url: str
) -> None:
    """The services' NATS users may not create or stamp a stream: one clear line instead."""
    rpc_url = str(w3.provider.endpoint_uri)
    with pytest.raises(ForeignDeployment) as missing:
        await bind(w3, serving.address, rpc_url, redis, nats_url, ALL_STREAMS)
    assert str(missing.value) == (
        "JetStream stream ZG_SERVING does not exist: the admin step creates the streams "
        "before the services start (`zg-bus-admin create-streams`)."
    )
    for config in STREAM_CONFIGS:  # made by hand, without a stamp
        await js.add_stream(config)
    with pytest.raises(ForeignDeployment, match="ZG_SERVING names no deployment") as unstamped:
        await bind(w3, serving.address, rpc_url, redis, nats_url, ALL_STREAMS)
    assert "zg-bus-admin create-streams" in str(unstamped.value)
    assert await stream_description(js, "ZG_SERVING") in (None, "")


@pytest.mark.parametrize("service", ["gateway", "billing", "chain-indexer"])
async def test_a_service_pointed_at_another_deployments_state_refuses_to_start(
    service: str,
    w3: Web3Client,
    serving: ServingClient,
    keys: list[LocalAccount],
    redis: Redis,
    js: JetStreamContext,
    redis_url: str,
    nats_url: str,
) -> None:
    theirs = another_chain(await identify(w3, serving.address))
    await redis.set(DEPLOYMENT_KEY, theirs.model_dump_json())
    prefix = {"chain-indexer": "INDEXER_"}.get(service, service.upper() + "_")
    settings = {
        "ENVIRONMENT": "development",
        "NATS_URL": nats_url,
        "REDIS_URL": redis_url,
        "RPC_URL": str(w3.provider.endpoint_uri),
        "SERVING_ADDRESS": serving.address,
        "HTTP_PORT": str(free_port()),
        "LOG_JSON": "false",
        "PROVIDER_ADDRESS": keys[1].address,
        "RECEIPT_PRIVATE_KEY": keys[2].key.hex(),
        "PROVIDER_PRIVATE_KEY": keys[1].key.hex(),
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / f"zg-{service}"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **{prefix + k: v for k, v in settings.items()}},
    )
    try:
        async with asyncio.timeout(SERVICE_START_S):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = out.decode() + err.decode()
    assert process.returncode == EXIT_FOREIGN_STATE, output
    assert f"error: Redis holds the state of another deployment: {theirs.identity}" in output
    assert "Traceback" not in output
    assert DeploymentStamp.parse(await redis.get(DEPLOYMENT_KEY)) == theirs


async def test_a_new_deployment_clears_every_zgserve_key_and_stream_and_nothing_else(
    w3: Web3Client, serving: ServingClient, redis: Redis, js: JetStreamContext, nats_url: str
) -> None:
    rpc_url = str(w3.provider.endpoint_uri)
    await claim_streams(nats_url, await stamp_of(w3, serving.address))
    old = await bind(w3, serving.address, rpc_url, redis, nats_url, ALL_STREAMS)
    await js.publish("serving.request.served.v1", b"{}")
    await redis.hset("zg:acct:{0xprovider:0xuser}", mapping={"balance": "5", "signer_x": "1"})
    await redis.set("zg:indexer:cursor", "41")
    await redis.set("another-app:setting", "kept")
    new = DeploymentStamp(**another_chain(old).model_dump())

    removed = await reset_state(redis, nats_url, new)

    assert removed == 3  # the account, the cursor and the old stamp
    assert sorted(await redis.keys("*")) == [b"another-app:setting", DEPLOYMENT_KEY.encode()]
    assert DeploymentStamp.parse(await redis.get(DEPLOYMENT_KEY)) == new
    for name in ALL_STREAMS:  # made anew, empty, stamped with the new deployment
        info = await js.stream_info(name)
        assert info.state.messages == 0
        assert DeploymentStamp.parse(info.config.description) == new


async def test_a_deployment_is_running_while_its_chain_answers_with_its_genesis(
    redis: Redis, js: JetStreamContext, nats_url: str, keys: list[LocalAccount]
) -> None:
    async with AnvilNode() as node:
        node_w3 = node.web3()
        try:
            deployed = await ServingClient.deploy(node_w3, keys[0], lock_time=LOCK_TIME)
            identity = await identify(node_w3, deployed.address)
        finally:
            await node_w3.provider.disconnect()
        stamp = DeploymentStamp(**identity.model_dump(), rpc_url=node.rpc_url)
        await redis.set(DEPLOYMENT_KEY, stamp.model_dump_json())
        assert await running_elsewhere(redis, nats_url) == stamp
    # The chain is gone (and a chain started again would have another genesis).
    assert await running_elsewhere(redis, nats_url) is None
