# SPDX-License-Identifier: Apache-2.0
"""`python -m zg_gateway` with GATEWAY_WORKERS=2: two processes share the port, every request
is served once, and SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.gateway.conftest import (
    Provider,
    chat,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.integration.gateway.test_gateway import CHAT, WORDS, wait_for_events
from zg_shared.chain import Web3Client
from zg_shared.localservers import free_port

pytestmark = pytest.mark.slow
FEE = 30


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


async def test_two_workers_share_the_port_and_stop_together(
    provider: Provider, keys: list[LocalAccount], redis_url: str, nats_url: str, w3: Web3Client
) -> None:
    port = free_port()
    env = gateway_env(
        provider, keys[2], str(w3.provider.endpoint_uri), redis_url, nats_url, port, workers="2"
    )
    running = await start_gateway(env)
    gateway = running.process
    try:
        # The second worker is a spawned child (not the resource tracker), and it is running.
        workers = [pid for pid in children(gateway.pid) if b"spawn_main" in _cmdline(pid)]
        assert len(workers) == 1, "the second worker is not running"

        users = provider.users
        sent = [(user, user.headers(provider.address, FEE)) for _ in range(10) for user in users]
        async with aiohttp.ClientSession() as http:

            async def post(headers: dict[str, str]) -> int:
                url = f"http://127.0.0.1:{port}{CHAT}"
                # A connection each, so the kernel spreads them over both workers.
                async with http.post(
                    url, json=chat(WORDS), headers={**headers, "Connection": "close"}
                ) as resp:
                    await resp.read()
                    return resp.status

            statuses = await asyncio.gather(*(post(headers) for _, headers in sent))
        assert statuses == [200] * len(sent)
        assert not any(_gone(pid) for pid in workers)  # it served beside worker 0
        events = await wait_for_events(provider, len(sent))
        assert len(events) == len(sent)
        assert len({e["event_id"] for e in events}) == len(sent)

        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(30) == 0
        for pid in workers:  # none outlives the parent
            assert _gone(pid)
    finally:
        stop_gateway(running)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
