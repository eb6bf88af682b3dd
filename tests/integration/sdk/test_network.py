# SPDX-License-Identifier: Apache-2.0
"""`zg network up --detach` runs the whole network as processes on free ports; a demo user
creates an account, chats through the CLI, and sees the fees settle on chain with a real
proof; `zg network down` stops every process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sdk.conftest import run_zg
from zg_shared.chain import DevChain, FeesSettled, ServingClient, connect
from zg_shared.chain.client import MIN_LOCK_TIME_S
from zg_shared.localservers import free_port, port_open

pytestmark = pytest.mark.slow
# The shortest the contract allows; the test moves the chain's clock past it.
LOCK_TIME_S = MIN_LOCK_TIME_S


async def test_network_up_chat_settle_down(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    ports = {name: free_port() for name in ("chain", "nats", "redis", "gateway", "backend")}
    options = [f"--{name}-port={port}" for name, port in ports.items()]
    options.append(f"--lock-time={LOCK_TIME_S}")
    options.append("--circuit-size=4")  # the committed keys: fast proofs
    up = await run_zg("network", "up", "--detach", "--dir", str(directory), *options, cwd=tmp_path)
    try:
        assert up.code == 0, up.stdout + up.stderr + _logs(directory)
        state = json.loads((directory / "network.json").read_text())
        status = await run_zg("--json", "network", "status", "--dir", str(directory), cwd=tmp_path)
        assert status.code == 0, status.stdout
        assert set(status.json()["processes"]) == {
            "anvil", "sample-backend", "gateway", "prover", "billing", "chain-indexer"
        }  # fmt: skip

        env = {
            "ZG_DEPLOYMENT": str(directory / "deployment.json"),
            "ZG_HOME": str(tmp_path / "home"),
            "ZG_PRIVATE_KEY": state["demo_user_key"],
            "ZG_PROVIDER": state["provider"],
            "ZG_SERVICE": state["services"][0],
            "ZG_GATEWAY_URL": state["gateway_url"],
        }
        created = await run_zg("account", "create", "--deposit", "0.01eth", env=env, cwd=tmp_path)
        assert created.code == 0, created.stderr
        chat = await run_zg("--json", "chat", "hello there", env=env, cwd=tmp_path)
        assert chat.code == 0, chat.stderr
        [nonce] = chat.json()["nonces"]

        settled = 0
        for _ in range(120):
            shown = await run_zg("--json", "account", "show", env=env, cwd=tmp_path)
            settled = shown.json()["nonce"]
            if settled > nonce:  # the chat's request and the fee-only one after it
                break
            await asyncio.sleep(1)
        assert settled > nonce, _logs(directory)
        assert shown.json()["balance"] < 10**16

        demo = await run_zg(
            "--json", "network", "demo", "--requests", "2", "--dir", str(directory), cwd=tmp_path
        )
        assert demo.code == 0, demo.stderr + _logs(directory)
        assert demo.json()["settled"] is True
        assert demo.json()["paid_to_provider"] > 0

        plain = await run_zg("--json", "chat", "--no-stream", "plain reply", env=env, cwd=tmp_path)
        assert plain.code == 0, plain.stderr

        # Everything left comes back: a refund of all that is available, paid out after the
        # lock time. Whatever billing settles meanwhile comes out of the pending refund.
        # "Everything available" can shrink under the request while billing settles the
        # last fees: ask again, as a user would, on the contract's ExceedsAvailable.
        for _ in range(10):
            refund = await run_zg("--json", "account", "refund", env=env, cwd=tmp_path)
            if "ServingRefundExceedsAvailable" not in refund.stderr:
                break
            await asyncio.sleep(2)
        assert refund.code == 0, refund.stderr
        assert refund.json()["pending_refund"] > 0
        await _pass_time(state, LOCK_TIME_S)
        processed = await run_zg("--json", "account", "refund", "--process", env=env, cwd=tmp_path)
        assert processed.code == 0, processed.stderr
        account = processed.json()
        assert account["pending_refund"] == 0
        assert all(r["processed"] for r in account["refunds"])
        # Not a wei lost: the deposit is what was settled, refunded and is still there.
        settled_fees = await _settled_fees(state, account["user"])
        refunded = sum(r["amount"] for r in account["refunds"])
        assert settled_fees + refunded + account["balance"] == 10**16
    finally:
        down = await run_zg("network", "down", "--dir", str(directory), cwd=tmp_path)
        if down.code != 0 and (directory / "network.json").exists():
            supervisor = json.loads((directory / "network.json").read_text())["supervisor"]
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor, signal.SIGKILL)
    assert down.code == 0, down.stderr
    assert not (directory / "network.json").exists()
    for port in ports.values():
        assert not port_open(port)


async def _pass_time(state: dict[str, Any], seconds: int) -> None:
    """Moves the chain's clock on (anvil mines a block at the new time)."""
    w3 = connect(state["rpc_url"])
    try:
        await DevChain(w3).increase_time(seconds)
    finally:
        await w3.provider.disconnect()


async def _settled_fees(state: dict[str, Any], user: str) -> int:
    w3 = connect(state["rpc_url"])
    try:
        serving = ServingClient(w3, state["contract"])
        events = await serving.get_events(0, await w3.eth.block_number)
        return sum(e.amount for e in events if isinstance(e, FeesSettled) and e.user == user)
    finally:
        await w3.provider.disconnect()


def _logs(directory: Path) -> str:
    found = [*sorted((directory / "logs").glob("*.log")), directory / "network.log"]
    return "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in found if p.exists())
