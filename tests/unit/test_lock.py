# SPDX-License-Identifier: Apache-2.0
"""The dependency lock (requirements/*.txt, made by scripts/lock.sh) pins every dependency
pyproject.toml declares, at a version its range allows, with hashes; the three locks agree;
the build backend is pinned to the locked versions; and setup.sh and the Dockerfile install
from the locks alone, hash-checked. A dependency added to pyproject.toml without re-locking
fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "requirements"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Which extras each lock must satisfy.
LOCKS = {
    "dev.txt": sorted(PYPROJECT["project"]["optional-dependencies"]),
    "runtime.txt": ["gateway-fast"],
    "prover.txt": ["gateway-fast", "arkworks"],
}
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)")


def parse_lock(name: str) -> dict[str, tuple[str, int]]:
    """Package -> (version, number of hashes)."""
    pins: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (REQUIREMENTS / name).read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, count = pins[current]
            pins[current] = (version, count + 1)
    return pins


def declared(extras: list[str]) -> list[Requirement]:
    project = PYPROJECT["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    found += [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    return found


@pytest.mark.parametrize("lock", LOCKS)
def test_every_declared_dependency_is_locked_within_its_range(lock: str) -> None:
    pins = parse_lock(lock)
    for requirement in declared(LOCKS[lock]):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements/{lock}: run scripts/lock.sh"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/{lock} pins {name}=={version}, outside {requirement}: "
            "run scripts/lock.sh"
        )


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_has_hashes_and_agrees_with_dev(lock: str) -> None:
    pins, dev = parse_lock(lock), parse_lock("dev.txt")
    assert len(pins) > 20
    for name, (version, hashes) in pins.items():
        assert hashes >= 1, f"{name} has no hash in requirements/{lock}"
        assert dev[name][0] == version, f"{name}: {lock} and dev.txt disagree"


def test_the_build_backend_is_pinned_to_the_locked_versions() -> None:
    pins = parse_lock("dev.txt")
    for text in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(text)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{text}: pin the build backend exactly"
        assert pins[canonicalize_name(requirement.name)][0] == spec.version


def test_installs_come_from_the_locks_hash_checked() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "--require-hashes -r requirements/dev.txt" in setup
    assert "--no-deps --no-build-isolation -e ." in setup
    dockerfile = (REPO / "Dockerfile").read_text()
    installs = re.findall(r"pip install ([^\n\\&]*)", dockerfile)
    assert installs
    for args in installs:
        hashed = "--require-hashes -r requirements/" in args
        project_only = "--no-deps --no-build-isolation -e ." in args
        assert hashed or project_only, f"Dockerfile: pip install {args}"
