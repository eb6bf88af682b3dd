# SPDX-License-Identifier: Apache-2.0
"""docker-compose.yml and the Kubernetes overlays name exactly the images and Dockerfile
targets scripts/build_images.sh builds (zgserve/<target>:dev), so what was built and tested
is what they run."""

from __future__ import annotations

import re

from tests.unit.deploy import kustomize
from tests.unit.deploy.common import REPO, rendered
from tests.unit.deploy.compose import load_compose

SCRIPT = (REPO / "scripts" / "build_images.sh").read_text()
TARGETS = set(re.search(r"^TARGETS=\((.*)\)$", SCRIPT, re.M).group(1).split())  # type: ignore[union-attr]
TAG = re.search(r"^TAG=\$\{ZG_IMAGE_TAG:-(\w+)\}$", SCRIPT, re.M).group(1)  # type: ignore[union-attr]
DOCKERFILE_STAGES = set(
    re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (REPO / "Dockerfile").read_text(), re.M)
)


def test_the_script_builds_every_image_target() -> None:
    assert {
        "gateway",
        "billing",
        "prover",
        "chain-indexer",
        "sample-backend",
        "devnet",
        "zk-keys",
    } == TARGETS
    assert TARGETS <= DOCKERFILE_STAGES
    assert TAG == "dev"


def test_compose_runs_the_built_images_of_their_targets() -> None:
    ours = {
        name: service
        for name, service in load_compose()["services"].items()
        if service.get("image", "").startswith("zgserve/")
    }
    assert {s["image"] for s in ours.values()} == {f"zgserve/{t}:{TAG}" for t in TARGETS}
    for name, service in ours.items():
        target = service["image"].removeprefix("zgserve/").removesuffix(f":{TAG}")
        if "build" in service:
            assert service["build"]["target"] == target, name


def test_the_dev_overlay_runs_the_built_images() -> None:
    images = set()
    for doc in rendered("dev"):
        spec = kustomize.pod_spec(doc)
        for container in [
            *(spec or {}).get("containers", []),
            *(spec or {}).get("initContainers", []),
        ]:
            if container["image"].startswith("zgserve/"):
                images.add(container["image"])
    assert images == {f"zgserve/{t}:{TAG}" for t in TARGETS}


def test_prod_and_gpu_name_only_built_targets() -> None:
    for overlay in ("prod", "gpu"):
        for doc in rendered(overlay):
            spec = kustomize.pod_spec(doc)
            for container in (spec or {}).get("containers", []):
                match = re.match(r"registry\.example\.com/zgserve/([\w-]+):", container["image"])
                if match:
                    assert match.group(1) in TARGETS | {"prover-cuda"}, container["image"]
