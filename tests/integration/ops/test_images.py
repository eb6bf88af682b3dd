# SPDX-License-Identifier: Apache-2.0
"""The images, built and run: scripts/build_images.sh's images (skipped, saying why, where
podman is missing or the images are not built) run with podman on the host network against
NATS, Redis with the repository's ACL users and anvil, as the services of a LocalNetwork. A
user's SDK requests go through the containerised gateway, and billing in its container
settles them on chain with proofs from the containerised prover."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.ops.containers import (
    REPO,
    TARGETS,
    ContainerLauncher,
    image,
    podman,
    podman_env,
    why_not_runnable,
)
from tests.integration.ops.traffic import send_paid_requests
from zg_shared.localnet import SERVICES, LocalNetwork

REASON = why_not_runnable()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=REASON or "")]
USER = 8
BUILD_TOOLS = ("gcc", "cc", "c++", "make", "ld", "as")
COMPOSE_FILE = REPO / "docker-compose.yml"
PODMAN_COMPOSE = shutil.which(
    "podman-compose", path=str(Path(sys.executable).parent)
) or shutil.which("podman-compose")
DNSNAME = Path("/usr/lib/cni/dnsname")  # Debian's CNI plugin directory


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@pytest.fixture(scope="module")
async def containerised(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalNetwork]:
    launcher = ContainerLauncher(f"zgtest-{os.getpid()}")
    net = LocalNetwork(
        tmp_path_factory.mktemp("containers"),
        overrides={"BILLING_THRESHOLD_FEE_WEI": "1", "BILLING_TICK_S": "0.3"},
        launcher=launcher,
    )
    try:
        await net.start()
        yield net
    finally:
        await net.stop()
        launcher.remove_all()


@pytest.mark.parametrize("target", TARGETS)
def test_the_image_runs_unprivileged_without_build_tools(target: str) -> None:
    inspected = podman("image", "inspect", "--format", "{{.Config.User}}", image(target))
    assert inspected.stdout.strip() == "10001:10001"
    found = podman(
        "run", "--rm", "--network=host", image(target), "sh", "-c",
        f"id -u; for t in {' '.join(BUILD_TOOLS)}; do command -v $t; done; true",
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["10001"], f"{target}: {found.stdout}"


async def test_paid_requests_through_the_containerised_gateway_settle_on_chain(
    containerised: LocalNetwork, tmp_path: Path
) -> None:
    for name in SERVICES:
        state = podman("inspect", "--format", "{{.State.Running}} {{.Config.User}}",
                       f"zgtest-{os.getpid()}-{name}")  # fmt: skip
        assert state.stdout.split() == ["true", "10001:10001"], (name, state.stderr)
    traffic = await send_paid_requests(containerised, USER, requests=2, home=tmp_path / "user")
    assert traffic.settlements
    assert sum(e.amount for e in traffic.settlements) == sum(r.fee for r in traffic.records)


async def test_the_containers_stop_cleanly_on_sigterm(containerised: LocalNetwork) -> None:
    """SIGTERM reaches the service as PID 1 (through podman run), which finishes and exits 0:
    what a rollout or `docker compose down` does to it."""
    for name in reversed(SERVICES):
        process = containerised.processes[name]
        await process.stop(timeout_s=60)
        assert process.process is not None
        assert process.process.returncode == 0, f"{name} exited {process.process.returncode}"


@pytest.mark.skipif(PODMAN_COMPOSE is None, reason="podman-compose missing (a dev dependency)")
@pytest.mark.skipif(
    not DNSNAME.exists(),
    reason="compose's containers find each other by name only with the dnsname CNI plugin: "
    "apt-get install golang-github-containernetworking-plugin-dnsname",
)
def test_podman_compose_deploys_the_chain_from_docker_compose_yml(tmp_path: Path) -> None:
    """The part of docker-compose.yml that runs here under podman-compose: the secrets job,
    anvil and the contract deploy job, from the built devnet image (docs/operations.md says
    why not the rest). No host port: the test machine's 8545 is not ours to take."""
    assert PODMAN_COMPOSE is not None
    override = tmp_path / "no-host-ports.yml"
    override.write_text("services:\n  anvil:\n    ports: !reset []\n")
    project = f"zgtest{os.getpid()}"
    compose = [PODMAN_COMPOSE, "-f", str(COMPOSE_FILE), "-f", str(override), "-p", project]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*compose, *args], env=podman_env(), cwd=REPO, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip

    try:
        up = run("up", "-d", "--no-build", "secrets-init", "anvil", "deploy-contracts")
        assert up.returncode == 0, up.stdout + up.stderr
        for job in ("secrets-init", "deploy-contracts"):
            waited = podman("wait", f"{project}_{job}_1", timeout_s=180)
            logs = podman("logs", f"{project}_{job}_1").stdout
            assert waited.stdout.strip() == "0", f"{job}: {waited.stdout}{waited.stderr}{logs}"
        services = load_yaml(COMPOSE_FILE)["services"]
        serving = services["gateway"]["environment"]["GATEWAY_SERVING_ADDRESS"]
        deployed = podman("logs", f"{project}_deploy-contracts_1").stdout
        assert re.search(rf"^Serving\s+{serving} ", deployed, re.M), deployed
    finally:
        run("down", "-v")
