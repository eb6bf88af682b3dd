# SPDX-License-Identifier: Apache-2.0
"""`zg network` on a machine that already ran one: NATS and Redis outlive the network (as the
long-lived servers of a development machine do), so a restarted network must not read the
old deployment's state; and a second `up` while one runs is refused at once, naming what
runs and what holds each port, without touching the running network."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.integration.sdk.conftest import ZgRun, run_zg
from tests.integration.sdk.test_network import _logs
from zg_shared.localservers import PrivateServer, free_port, port_open

pytestmark = pytest.mark.slow


@pytest.fixture
def long_lived() -> Iterator[dict[str, int]]:
    """NATS and Redis that outlive every network of the test, on ports of their own."""
    with PrivateServer("nats") as nats_server, PrivateServer("redis") as redis_server:
        yield {"nats": nats_server.port, "redis": redis_server.port}


def options(ports: dict[str, int]) -> list[str]:
    # The committed N=4 keys: the default N=64 DEV keys take a minute to load per network.
    return [f"--{name}-port={port}" for name, port in ports.items()] + ["--circuit-size=4"]


def user_env(directory: Path, home: Path) -> dict[str, str]:
    state = json.loads((directory / "network.json").read_text())
    return {
        "ZG_DEPLOYMENT": str(directory / "deployment.json"),
        "ZG_HOME": str(home),
        "ZG_PRIVATE_KEY": state["demo_user_key"],
        "ZG_PROVIDER": state["provider"],
        "ZG_SERVICE": state["services"][0],
        "ZG_GATEWAY_URL": state["gateway_url"],
    }


@contextlib.asynccontextmanager
async def network_up(directory: Path, ports: dict[str, int], cwd: Path) -> AsyncIterator[ZgRun]:
    """`zg network up --detach`, always followed by `down` (or a kill, if `down` failed)."""
    up = await run_zg(
        "network", "up", "--detach", "--dir", str(directory), *options(ports), cwd=cwd
    )
    try:
        assert up.code == 0, up.stdout + up.stderr + _logs(directory)
        yield up
    finally:
        down = await run_zg("network", "down", "--dir", str(directory), cwd=cwd)
        if down.code != 0 and (directory / "network.json").exists():
            supervisor = json.loads((directory / "network.json").read_text())["supervisor"]
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor, signal.SIGKILL)
    assert down.code == 0, down.stderr


@pytest.mark.timeout(900)  # three whole networks up and down, on a machine shared with others
async def test_a_network_restarted_on_the_same_nats_and_redis_serves_its_users(
    tmp_path: Path, long_lived: dict[str, int]
) -> None:
    """Each `up` deploys anew (same contract address, fresh chain): the demo user creates an
    account again and is served. Before deployments were told apart, the second network's
    gateway checked signatures against the first chain's key (401) and its indexer stopped
    on the first chain's checkpoint."""
    directory = tmp_path / "net"
    home = tmp_path / "home"  # the user's state directory survives the restarts
    ports = {name: free_port() for name in ("chain", "gateway", "backend")} | long_lived
    contracts = set()
    for _ in range(3):
        async with network_up(directory, ports, tmp_path):
            env = user_env(directory, home)
            contracts.add(json.loads((directory / "network.json").read_text())["contract"])
            created = await run_zg(
                "--json", "account", "create", "--deposit", "0.01eth", env=env, cwd=tmp_path
            )
            assert created.code == 0, created.stderr + _logs(directory)
            chat = await run_zg("--json", "chat", "hello again", env=env, cwd=tmp_path)
            assert chat.code == 0, chat.stderr + _logs(directory)
            logs = _logs(directory)
            assert "deeper than the journal" not in logs
            assert "another deployment" not in logs
    assert len(contracts) == 1  # the same address each time: only the chain tells them apart


async def test_a_second_up_is_refused_at_once_and_leaves_the_first_running(
    tmp_path: Path, long_lived: dict[str, int]
) -> None:
    first = tmp_path / "first"
    ports = {name: free_port() for name in ("chain", "gateway", "backend")} | long_lived
    async with network_up(first, ports, tmp_path):
        state = json.loads((first / "network.json").read_text())
        before = (first / "network.json").read_text()

        again = await run_zg(
            "--json", "network", "up", "--detach", "--dir", str(first), *options(ports),
            cwd=tmp_path,
        )  # fmt: skip
        assert again.code == 5, again.stdout + again.stderr
        error = json.loads(again.stderr)["error"]
        assert f"already running from {first} (supervisor pid {state['supervisor']}" in error
        assert f"zg network down --dir {first}" in error

        # Another directory, the same ports: each taken port is named with its holder.
        elsewhere = await run_zg(
            "--json", "network", "up", "--detach", "--dir", str(tmp_path / "second"),
            *options(ports), cwd=tmp_path,
        )  # fmt: skip
        assert elsewhere.code == 5, elsewhere.stderr
        error = json.loads(elsewhere.stderr)["error"]
        anvil_pid = state["processes"]["anvil"]["pid"]
        assert f"chain port {ports['chain']} is in use by pid {anvil_pid} (anvil)" in error
        gateway_pid = state["processes"]["gateway"]["pid"]
        assert f"gateway port {ports['gateway']} is in use by pid {gateway_pid}" in error
        assert not (tmp_path / "second" / "network.json").exists()

        # Free ports, but the same NATS and Redis: they hold the running network's state.
        shared = {name: free_port() for name in ("chain", "gateway", "backend")} | long_lived
        sharing = await run_zg(
            "--json", "network", "up", "--detach", "--dir", str(tmp_path / "third"),
            *options(shared), cwd=tmp_path,
        )  # fmt: skip
        assert sharing.code == 5, sharing.stderr
        error = json.loads(sharing.stderr)["error"]
        assert "hold the state of a network that still runs" in error
        assert state["contract"] in error
        assert state["rpc_url"] in error
        assert not port_open(shared["chain"])

        # The first network is untouched and still serves.
        assert (first / "network.json").read_text() == before
        status = await run_zg("--json", "network", "status", "--dir", str(first), cwd=tmp_path)
        assert status.code == 0, status.stdout
        assert all(p["healthy"] for p in status.json()["processes"].values())
        chat = await _chat(first, tmp_path)
        assert chat.code == 0, chat.stderr
    for port in (ports["chain"], ports["gateway"], ports["backend"]):
        assert not port_open(port)


async def _chat(directory: Path, cwd: Path) -> ZgRun:
    env = user_env(directory, cwd / "home")
    created = await run_zg("account", "create", "--deposit", "0.01eth", env=env, cwd=cwd)
    assert created.code == 0, created.stderr
    return await run_zg("--json", "chat", "still there?", env=env, cwd=cwd)
