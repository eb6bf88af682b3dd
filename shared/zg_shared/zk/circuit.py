# SPDX-License-Identifier: Apache-2.0
"""Where a compiled SettleBatch(N) lives: a cache outside the repository, one folder per circuit
version, so that every clone and CI run on a machine share one compile (and the DEV keys made
for it) and two versions of the circuit never overwrite each other's files.

    ${ZG_ZK_CACHE:-${XDG_CACHE_HOME:-~/.cache}/zgserve/zk}/settle_batch_N/<fingerprint>/
        settle_batch_N.r1cs, settle_batch_N_js/settle_batch_N.wasm   circom --O2
        witness                                                      circom --c, built natively
        stamp.json                                                   fingerprint, r1cs hash
        dev/                                                         single-party DEV keys

The fingerprint covers what the compiled circuit depends on (our sources, circomlib's version,
N, the flags); a key set records the r1cs hash it was made for and is checked against it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# shared/zg_shared/zk/circuit.py -> repository root.
REPO_ROOT = Path(__file__).resolve().parents[3]
CACHE_ENV = "ZG_ZK_CACHE"
COMPILE_FLAGS = "--O2"


def zk_cache_dir() -> Path:
    """`$ZG_ZK_CACHE`, else `$XDG_CACHE_HOME/zgserve/zk`, else `~/.cache/zgserve/zk`."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "zgserve" / "zk"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def circuit_fingerprint(n: int, root: Path = REPO_ROOT) -> str:
    """What the compiled circuit depends on: our source (and the N=4 test harness where there
    is one), circomlib's version, N and the compile flags."""
    circomlib = root / "node_modules" / "circomlib" / "package.json"
    version = json.loads(circomlib.read_text())["version"] if circomlib.is_file() else "?"
    h = hashlib.sha256()
    h.update((root / "circuits" / "settle_batch.circom").read_bytes())
    harness = root / "circuits" / "test" / f"settle_batch_{n}.circom"
    if harness.is_file():
        h.update(harness.read_bytes())
    h.update(f"|circomlib {version}|N={n}|{COMPILE_FLAGS}".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class CircuitBuild:
    """The compiled SettleBatch(size) of one circuit version, in the cache."""

    size: int
    folder: Path

    @classmethod
    def current(cls, size: int, root: Path = REPO_ROOT, cache: Path | None = None) -> CircuitBuild:
        """The build of the circuit as it is in this checkout."""
        cache = cache or zk_cache_dir()
        fingerprint = circuit_fingerprint(size, root)
        return cls(size, cache / f"settle_batch_{size}" / fingerprint[:16])

    @property
    def name(self) -> str:
        return f"settle_batch_{self.size}"

    @property
    def r1cs(self) -> Path:
        return self.folder / f"{self.name}.r1cs"

    @property
    def wasm(self) -> Path:
        return self.folder / f"{self.name}_js" / f"{self.name}.wasm"

    @property
    def native_witness(self) -> Path:
        """circom's C++ witness generator, built here (absent where no compiler was found)."""
        return self.folder / "witness"

    @property
    def stamp(self) -> Path:
        return self.folder / "stamp.json"

    @property
    def dev_keys(self) -> Path:
        return self.folder / "dev"

    def load_stamp(self) -> dict[str, Any]:
        if self.stamp.is_file():
            stamp: dict[str, Any] = json.loads(self.stamp.read_text())
            return stamp
        return {}

    @property
    def compiled(self) -> bool:
        return self.r1cs.is_file() and self.wasm.is_file() and "r1cs_sha256" in self.load_stamp()

    @property
    def r1cs_sha256(self) -> str | None:
        """The compiled r1cs's hash, as recorded when it was compiled."""
        value = self.load_stamp().get("r1cs_sha256")
        return str(value) if value else None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time for this build: clones and CI runs on a machine share it."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with (self.folder.parent / f"{self.folder.name}.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
