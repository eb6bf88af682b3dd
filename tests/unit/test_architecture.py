"""The layout rules: services never import each other, shared code never imports a service."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "zg_gateway": ROOT / "services" / "gateway" / "zg_gateway",
    "zg_billing": ROOT / "services" / "billing" / "zg_billing",
    "zg_prover": ROOT / "services" / "prover" / "zg_prover",
    "zg_chain_indexer": ROOT / "services" / "chain-indexer" / "zg_chain_indexer",
    "zg_sample_backend": ROOT / "services" / "sample-backend" / "zg_sample_backend",
}
SHARED = ROOT / "shared" / "zg_shared"
SDK = ROOT / "sdk" / "zgserve"


def imported_packages(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_imports_no_other_service(service: str) -> None:
    others = set(SERVICES) - {service}
    assert imported_packages(SERVICES[service]) & others == set()


def test_shared_code_imports_no_service() -> None:
    assert imported_packages(SHARED) & set(SERVICES) == set()


def test_the_sdk_imports_no_service() -> None:
    """Users install the SDK without a provider's services: it may use only zg_shared."""
    assert imported_packages(SDK) & set(SERVICES) == set()


@pytest.mark.parametrize("package", [*sorted(SERVICES), "zg_shared", "zg_shared.chain"])
def test_every_package_imports_and_exports_what_it_names(package: str) -> None:
    module = importlib.import_module(package)
    for name in getattr(module, "__all__", []):
        assert hasattr(module, name), f"{package}.__all__ names {name}, which it lacks"
