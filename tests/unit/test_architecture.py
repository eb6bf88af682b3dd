# SPDX-License-Identifier: Apache-2.0
"""The layout rules: services never import each other, shared code never imports a service,
and each concept has one home: the paid endpoints (zg_shared.endpoints), the counting rules
(zg_shared.metering), the proving backends (zg_prover.backends) and the proving pipeline
(zg_shared.zk.pipeline). docs/architecture.md says which files a new one touches."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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


@pytest.mark.parametrize("package", [*sorted(SERVICES), "zg_shared"])
def test_services_and_shared_code_import_no_sdk(package: str) -> None:
    """The SDK is the user's side: a provider's services share code through zg_shared only."""
    folder = SHARED if package == "zg_shared" else SERVICES[package]
    assert "zgserve" not in imported_packages(folder)


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


def string_constants(folders: Iterable[Path], skip: Iterable[Path] = ()) -> Iterator[Constant]:
    """Every string constant in the Python files under `folders`, except `skip`, with whether
    it is listed or branched on: an element of a tuple, list or set, a key or value of a dict,
    or compared (`==`, `in`). A name used alone (`shutil.which("rapidsnark")`, a path segment
    `node_modules / "snarkjs"`) names a tool; listed or compared, it keeps a list."""
    skipped = set(skip)
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            if path in skipped:
                continue
            name = str(path.relative_to(ROOT))
            tree = ast.parse(path.read_text(), name)
            listed = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Tuple | ast.List | ast.Set):
                    listed |= {id(e) for e in node.elts}
                elif isinstance(node, ast.Dict):
                    listed |= {id(e) for e in (*node.keys, *node.values) if e is not None}
                elif isinstance(node, ast.Compare):
                    listed |= {id(e) for e in (node.left, *node.comparators)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    yield Constant(name, node.lineno, node.value, id(node) in listed)


@dataclass(frozen=True)
class Constant:
    file: str
    line: int
    text: str
    listed: bool

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text!r}"


# Code that must not keep its own list of paid endpoints: every service but the sample
# backend (an AI backend: it serves the OpenAI API itself, and is the gateway's upstream).
PROVIDER_CODE = [folder for name, folder in SERVICES.items() if name != "zg_sample_backend"]


def test_the_paid_endpoints_are_listed_once() -> None:
    """`zg_shared.endpoints.ENDPOINTS` is the only list of paid endpoints: the gateway's route,
    its checks, the metering rule and the SDK's signing all read it. A path spelled out
    anywhere else in the services, shared code or the SDK is a second list in the making."""
    from zg_shared.endpoints import ENDPOINTS

    paths = set(ENDPOINTS)
    home = SHARED / "endpoints.py"
    found: list[str] = []
    for folder in (*PROVIDER_CODE, SHARED, SDK):
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


def test_the_counting_rules_are_listed_once() -> None:
    """`zg_shared.metering.RULES` is the only list of counting rules: the gateway and the SDK
    look a service's registered rule up there, and the CLI offers its names. A rule's name
    spelled anywhere else is a second list (or a rule read from somewhere else) in the making."""
    from zg_shared.metering import RULES

    found = [
        str(c)
        for c in string_constants(
            [*SERVICES.values(), SHARED, SDK, ROOT / "bench", ROOT / "scripts"],
            skip=[SHARED / "metering.py"],
        )
        if c.text in RULES
    ]
    assert found == []


# A tool the keys' manifest records the version of, not a backend.
NOT_BACKEND_LISTS = {("scripts/zk_setup.py", "snarkjs")}


def test_the_prover_backends_are_listed_once() -> None:
    """`zg_prover.backends.BACKENDS` is the only list of proving backends: the settings' allowed
    values, `auto`'s order and the proof bench's choices come from it. A backend's name or label
    listed or compared anywhere else is a second list in the making (a step's module may name
    its own tool: `shutil.which("rapidsnark")`)."""
    from zg_prover.backends import BACKENDS

    names = {b.name for b in BACKENDS} | {b.label for b in BACKENDS}
    found = [
        str(c)
        for c in string_constants(
            [*SERVICES.values(), SHARED, SDK, ROOT / "bench", ROOT / "scripts"],
            skip=[SERVICES["zg_prover"] / "backends.py"],
        )
        if c.text in names and c.listed and (c.file, c.text) not in NOT_BACKEND_LISTS
    ]
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
