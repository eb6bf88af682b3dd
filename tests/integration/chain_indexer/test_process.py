# SPDX-License-Identifier: Apache-2.0
"""`zg-chain-indexer` as a process: configured by INDEXER_* variables, ready on /readyz, and
SIGTERM ends it cleanly with its cursor saved."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from eth_account.signers.local import LocalAccount
from nats.js import JetStreamContext
from redis.asyncio import Redis

from tests.integration.chain_indexer.conftest import chain_events, wait_for
from tests.integration.chain_indexer.test_follow import expected, published
from zg_chain_indexer.checkpoint import CheckpointStore
from zg_shared.chain import AnvilNode, ServingClient
from zg_shared.localservers import PrivateServer, free_port
from zg_shared.natsauth import NatsCredentials


async def ready(port: int) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/readyz") as response,
        ):
            return response.status == 200
    except aiohttp.ClientError:
        return False


@pytest.mark.slow
async def test_the_entry_point_indexes_and_stops_on_sigterm(
    anvil: AnvilNode,
    serving: ServingClient,
    keys: list[LocalAccount],
    nats_server: PrivateServer,
    nats_credentials: NatsCredentials,
    redis_url: str,
    js: JetStreamContext,
    redis: Redis,
) -> None:
    """With the admin step before it (`zg-bus-admin create-streams`, as NATS's admin), and the
    indexer logged in to NATS as its own user, as in a deployment."""
    admin = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "zg-bus-admin"),
        "create-streams",
        env={
            **os.environ,
            "BUS_ADMIN_NATS_URL": nats_server.url,
            "BUS_ADMIN_NATS_PASSWORD": nats_credentials.passwords["admin"],
            "BUS_ADMIN_RPC_URL": anvil.rpc_url,
            "BUS_ADMIN_SERVING_ADDRESS": serving.address,
        },
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await admin.communicate()
    assert admin.returncode == 0
    assert out.decode().startswith("created ZG_SERVING, ZG_CHAIN: stamped with contract")
    port = free_port()
    env = {
        **os.environ,
        "INDEXER_RPC_URL": anvil.rpc_url,
        "INDEXER_SERVING_ADDRESS": serving.address,
        "INDEXER_NATS_URL": nats_server.url,
        "INDEXER_NATS_USERNAME": "chain-indexer",
        "INDEXER_NATS_PASSWORD": nats_credentials.passwords["chain-indexer"],
        "INDEXER_REDIS_URL": redis_url,
        "INDEXER_CONFIRMATIONS": "0",
        "INDEXER_POLL_INTERVAL_S": "0.1",
        "INDEXER_HTTP_PORT": str(port),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zg_chain_indexer", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        await wait_for(lambda: ready(port), 30)
        checkpoint = CheckpointStore(redis)

        async def has_cursor() -> bool:
            return await checkpoint.load() is not None

        await wait_for(has_cursor)
        result = await serving.as_sender(keys[11]).add_account(keys[1].address, (1, 1), value=1)

        async def indexed() -> bool:
            cursor = await checkpoint.load()
            return cursor is not None and cursor.sort_key() >= (result.block_number, float("inf"))

        await wait_for(indexed)
        assert published(await chain_events(js)) == expected([result])
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-2000:]
    log = stderr.decode()
    for bad in ('"level": "ERROR"', "Unclosed", "Traceback"):
        assert bad not in log, log[-2000:]
