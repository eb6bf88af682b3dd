# SPDX-License-Identifier: Apache-2.0
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


# String constants that spell an endpoint path but are not an endpoint list: (file, text).
NOT_ENDPOINT_LISTS = {("sdk/zgserve/cli/_app.py", "settle")}  # the `zg provider settle` command


def test_the_paid_endpoints_are_listed_once() -> None:
    """`zg_shared.endpoints.ENDPOINTS` is the only list of paid endpoints: the gateway's route,
    its checks, the metering rule and the SDK's signing all read it. A path spelled out
    anywhere else in the gateway, shared code or the SDK is a second list in the making."""
    from zg_shared.endpoints import ENDPOINTS

    paths = set(ENDPOINTS)
    home = SHARED / "endpoints.py"
    found: list[str] = []
    for folder in (SERVICES["zg_gateway"], SHARED, SDK):
        for path in folder.rglob("*.py"):
            if path == home:
                continue
            name = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(), name)):
                if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                    continue
                text = node.value
                spelled = text.strip("/") in paths or any(f"{p}|" in text for p in paths)
                if spelled and (name, text) not in NOT_ENDPOINT_LISTS:
                    found.append(f"{name}:{node.lineno}: {text!r}")
    assert found == []


def test_the_sdk_signs_every_paid_endpoint() -> None:
    from zg_shared.endpoints import ENDPOINTS
    from zgserve._transport import METERED

    assert set(METERED) == set(ENDPOINTS)


def test_the_prover_backends_are_listed_once() -> None:
    """`zg_prover.backends.BACKENDS` is the only list of proving backends: the settings' allowed
    values and `auto`'s order come from it. A backend's name spelled anywhere else in the prover
    service is a second list in the making (each step's own module may name itself)."""
    from zg_prover.backends import BACKENDS

    names = {b.name for b in BACKENDS} | {b.label for b in BACKENDS}
    home = SERVICES["zg_prover"] / "backends.py"
    found: list[str] = []
    for path in SERVICES["zg_prover"].rglob("*.py"):
        if path == home:
            continue
        name = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), name)):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{name}:{node.lineno}: {node.value!r}")
    assert found == []


def test_one_proving_pipeline() -> None:
    """Proving a chunk (witness, proof, checks, local verify) lives in zg_shared.zk.pipeline
    only: no other module defines a `prove_chunk`."""
    home = SHARED / "zk" / "pipeline.py"
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for folder in (SHARED, *SERVICES.values())
        for path in folder.rglob("*.py")
        if path != home
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "prove_chunk"
    ]
    assert found == []
