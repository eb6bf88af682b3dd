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

import pytest

from tests.integration.sdk.conftest import run_zg
from zg_shared.localservers import free_port, port_open

pytestmark = pytest.mark.slow


async def test_network_up_chat_settle_down(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    ports = {name: free_port() for name in ("chain", "nats", "redis", "gateway", "backend")}
    options = [f"--{name}-port={port}" for name, port in ports.items()]
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


def _logs(directory: Path) -> str:
    found = [*sorted((directory / "logs").glob("*.log")), directory / "network.log"]
    return "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in found if p.exists())
