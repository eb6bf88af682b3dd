# SPDX-License-Identifier: Apache-2.0
"""The Dockerfile, read without a Docker engine: every image target exists, bases are pinned,
runtime images run as a non-root user, and the build context ships what the COPYs need and
nothing else."""

from __future__ import annotations

import fnmatch
import re

import pytest

from tests.unit.deploy.common import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
TARGETS = ("gateway", "billing", "chain-indexer", "sample-backend", "prover", "prover-cuda")


def stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if match:
            current = [line]
            found[match.group(2) or f"<final {match.group(1)}>"] = current
        else:
            current.append(line)
    return found


def base_of(stage: str) -> str:
    return stages()[stage][0].split()[1]


def final_user(stage: str) -> str | None:
    """The USER a stage ends with, following FROM <stage> chains."""
    users = [i.split()[1] for i in stages()[stage] if i.upper().startswith("USER ")]
    if users:
        return users[-1]
    parent = base_of(stage)
    return final_user(parent) if parent in stages() else None


@pytest.mark.parametrize("target", [*TARGETS, "devnet"])
def test_targets_exist_and_run_unprivileged(target: str) -> None:
    assert target in stages()
    user = final_user(target)
    assert user is not None, target
    assert user.split(":")[0] not in {"root", "0"}, target


@pytest.mark.parametrize("target", TARGETS)
def test_targets_start_their_console_script(target: str) -> None:
    commands = [i for i in stages()[target] if i.upper().startswith("CMD ")]
    parent = base_of(target)
    while not commands and parent in stages():
        commands = [i for i in stages()[parent] if i.upper().startswith("CMD ")]
        parent = base_of(parent)
    script = "zg-prover" if target.startswith("prover") else f"zg-{target}"
    assert commands
    assert f'"{script}"' in commands[-1]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(rf"^{re.escape(script)} = ", pyproject, re.M), script


def test_base_images_are_pinned() -> None:
    args = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)", DOCKERFILE, re.M))
    assert set(args) == {"PYTHON_IMAGE", "NODE_IMAGE", "CUDA_IMAGE"}
    for name, image in args.items():
        assert re.search(r":\d+\.\d+\.\d+-[\w.-]+$|@sha256:[0-9a-f]{64}$", image), (name, image)
    for instructions in stages().values():
        image = instructions[0].split()[1]
        assert image.startswith("${") or image in stages(), f"unpinned base {image}"


def test_the_cuda_prover_is_built_on_the_cuda_base() -> None:
    assert base_of("prover-cuda") == "cuda-base"
    assert base_of("cuda-base") == "${CUDA_IMAGE}"
    assert "nvidia/cuda:" in re.search(r"^ARG CUDA_IMAGE=(\S+)", DOCKERFILE, re.M).group(1)  # type: ignore[union-attr]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if (
            fnmatch.fnmatch(path, pattern)
            or fnmatch.fnmatch(path, pattern + "/*")
            or (pattern.startswith("**/") and fnmatch.fnmatch(path.split("/")[-1], pattern[3:]))
        ):
            ignored = not negate
    return ignored


def test_dockerignore_lets_through_what_the_copies_need_and_no_more() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = set()
    for instructions in stages().values():
        for line in instructions:
            if line.upper().startswith("COPY ") and "--from=" not in line:
                sources.update(line.split()[1:-1])
    for source in sources:
        path = source.rstrip("/")
        assert (REPO / path).exists(), source
        assert not _ignored(path, patterns), f"{source} is excluded by .dockerignore"
    for private in (".venv", "node_modules", ".git", "var", ".cache", "tests"):
        assert _ignored(private, patterns), f"{private} would be sent to the build"
