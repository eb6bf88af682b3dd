# SPDX-License-Identifier: Apache-2.0
"""The services run from their images: a LocalNetwork launcher that starts each service with
`podman run` on the host network instead of its console script, with the same settings in
the environment and its secrets folder mounted at /run/secrets (read-only, owned by the
image's user). Images come from scripts/build_images.sh (zgserve/<service>:dev)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from zg_shared.settings import SECRETS_DIR_ENV

REPO = Path(__file__).resolve().parents[3]
PODMAN = shutil.which("podman")
TAG = "dev"
BUILD_SCRIPT = REPO / "scripts" / "build_images.sh"
# What scripts/build_images.sh builds (docker-compose.yml and the k8s dev overlay name them).
TARGETS = tuple(
    re.search(r"^TARGETS=\((.*)\)$", BUILD_SCRIPT.read_text(), re.M).group(1).split()  # type: ignore[union-attr]
)
SECRETS_IN_CONTAINER = "/run/secrets"
SOURCE_LABEL = "dev.zgserve.source"  # set by scripts/build_images.sh


def image(target: str) -> str:
    return f"zgserve/{target}:{TAG}"


def podman_env() -> dict[str, str]:
    """podman's settings for this host (runc, cgroupfs: deploy/podman/containers.conf)."""
    conf = os.environ.get("CONTAINERS_CONF") or str(REPO / "deploy" / "podman" / "containers.conf")
    return {**os.environ, "CONTAINERS_CONF": conf}


def podman(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    assert PODMAN is not None
    return subprocess.run(
        [PODMAN, *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def source_digest() -> str:
    """The digest of this tree's build sources, as the build script labels images with it."""
    return subprocess.run(
        [str(BUILD_SCRIPT), "--source-digest"], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()


def stale_images() -> list[str]:
    """The images missing, or built from other sources than this tree's."""
    digest = source_digest()
    stale = []
    for target in TARGETS:
        label = podman("image", "inspect", "--format", f'{{{{index .Labels "{SOURCE_LABEL}"}}}}',
                       image(target))  # fmt: skip
        if label.returncode != 0 or label.stdout.strip() != digest:
            stale.append(image(target))
    return stale


def why_not_runnable() -> str | None:
    """None when the images can run here; else why (a skip reason)."""
    if PODMAN is None:
        return "podman missing: apt-get install podman runc (docs/operations.md, Images)"
    stale = stale_images()
    if stale:
        return (
            f"images missing or built from other sources than this tree: {', '.join(stale)} "
            "(run scripts/build_images.sh)"
        )
    return None


class ContainerLauncher:
    """Starts a LocalNetwork service as a container named `<prefix>-<service>`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.containers: dict[str, str] = {}

    def __call__(
        self, name: str, command: list[str], env: Mapping[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        assert PODMAN is not None
        container = f"{self.prefix}-{name}"
        self.containers[name] = container
        args = [PODMAN, "run", "--rm", "--replace", "--name", container, "--network=host"]
        # As compose and the Kubernetes manifests run them: read-only, a writable /tmp.
        args += ["--read-only", "--tmpfs", "/tmp", "--security-opt", "no-new-privileges"]
        settings = dict(env)
        secrets = settings.pop(SECRETS_DIR_ENV, None)
        if secrets is not None:
            args += ["--volume", f"{secrets}:{SECRETS_IN_CONTAINER}:ro,U"]
        for key, value in sorted(settings.items()):
            args += ["--env", f"{key}={value}"]
        # The console script by name, from the image's PATH, with the same arguments.
        args += [image(name), Path(command[0]).name, *command[1:]]
        return args, podman_env()

    def remove_all(self) -> None:
        if self.containers:
            podman("rm", "--force", "--ignore", *self.containers.values())
