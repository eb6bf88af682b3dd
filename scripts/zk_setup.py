# SPDX-License-Identifier: Apache-2.0
"""Build the SettleBatch(N) circuit, its Groth16 keys and its Solidity verifier.

    python scripts/zk_setup.py --size 4                 # dev keys, cached under .cache/zk/
    python scripts/zk_setup.py --size 4 --install       # ...and copy them where they are committed
    python scripts/zk_setup.py --size 4 --check         # committed keys still match the circuit?
    python scripts/zk_setup.py --size 16 --ptau ceremony.ptau --zkey final.zkey --install
                                                        # production: keys from a ceremony
    python scripts/zk_setup.py --size 64 --arkworks-dev # fast DEV keys (groth16py), no ptau

Steps, each cached (a rerun resumes where it stopped; a changed circuit redoes what depends
on it): compile (circom --O2) -> powers of tau (dev: new + contribution + prepare phase 2,
or the operator's prepared ceremony ptau) -> groth16 setup -> phase-2 contribution(s) ->
verification key -> Solidity verifier (this project's own template,
zg_shared/zk/solidity_verifier.py, rendered with the verification key for any N).

A dev ptau has one contributor (this machine), so its keys are for tests and devnets only:
production keys come from a public phase-1 ceremony ptau and a multi-party phase 2
(docs/circuit.md). Never skip the contributions: with tau = 1 snarkjs still verifies proofs
but the Solidity verifier rejects everything (the setup checks the key for that).

`--arkworks-dev` is the fast route to dev keys for large N (benchmarks, devnets): groth16py's
circuit-specific setup straight from the r1cs, no powers of tau (~5 s at N=16, ~40 s at N=64,
where a dev 2^19 ptau takes hours here). Its proving key is groth16py's own format (snarkjs cannot
prove with it); the verification key is snarkjs JSON and the verifier is rendered from it like
any other. Single party, in the cache (settle_batch_N/<version>/dev/) only: NEVER for real
funds. The cache is outside the checkout (zg_shared.zk.circuit): every clone and CI run on this
machine reuses one compile and one set of DEV keys per circuit version.

Exit codes: 0 ok, 1 a tool failed, 2 bad usage, 3 --check found a mismatch.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zg_shared.zk.circuit import CircuitBuild, circuit_fingerprint, sha256_file, zk_cache_dir

ROOT = Path(__file__).resolve().parent.parent
NODE_BIN = ROOT / "node_modules" / ".bin"
CIRCOM = NODE_BIN / "circom2"
SNARKJS = ROOT / "node_modules" / "snarkjs" / "build" / "cli.cjs"
CIRCUIT = ROOT / "circuits" / "settle_batch.circom"
HARNESS_DIR = ROOT / "circuits" / "test"
CIRCOMLIB = ROOT / "node_modules" / "circomlib"
KEYS_DIR = ROOT / "circuits" / "keys"
VERIFIERS_DIR = ROOT / "contracts" / "src" / "verifiers"
COMPILE_CONTRACTS = ROOT / "scripts" / "compile_contracts.py"
N_PUBLIC = 7
PUBLIC_INPUTS = ["user", "provider", "initNonce", "finalNonce", "totalFee", "signerX", "signerY"]
# Field generators: a verification key that contains them (or the point at infinity) came
# from a setup without contributions (tau = 1 or delta = 1).
G1_GENERATOR = ["1", "2", "1"]
G2_GENERATOR_X = [
    "10857046999023057135944570762232829481370756359578518086990519993285655852781",
    "11559732032986387107991004021392285783925812861821192530917403151452391805634",
]

EXIT_OK, EXIT_TOOL, EXIT_USAGE, EXIT_MISMATCH = 0, 1, 2, 3


class SetupError(Exception):
    def __init__(self, message: str, code: int = EXIT_TOOL) -> None:
        super().__init__(message)
        self.code = code


class Progress:
    """Step lines with the elapsed time since the start, flushed for CI logs."""

    def __init__(self, quiet: bool = False) -> None:
        self.start = time.monotonic()
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.start:7.1f}s] {message}", flush=True)

    def step(self, name: str, cached: bool, detail: str = "") -> None:
        self(f"{name}: {'cached' if cached else 'done'}{f' ({detail})' if detail else ''}")

    @contextlib.contextmanager
    def ticking(self, label: str, every_s: float = 10.0) -> Iterator[None]:
        """A line every `every_s` while a long call without progress of its own runs."""
        t0 = time.monotonic()
        done = threading.Event()

        def tick() -> None:
            while not done.wait(every_s):
                self(f"{label}: {time.monotonic() - t0:.0f}s so far ...")

        self(f"{label} ...")
        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
        self(f"{label} took {time.monotonic() - t0:.1f}s")


def run(cmd: list[str | Path], log: Progress, *, cwd: Path = ROOT, label: str) -> str:
    """Run a tool; its output goes to the error only (it is long and full of hashes)."""
    t0 = time.monotonic()
    log(f"{label} ...")
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, check=False
    )
    output = proc.stdout + proc.stderr
    # snarkjs logs some errors and still exits 0.
    if proc.returncode != 0 or "[ERROR]" in output:
        raise SetupError(f"{label} failed ({proc.returncode}):\n{output[-4000:]}")
    log(f"{label} took {time.monotonic() - t0:.1f}s")
    return output


def snarkjs(*args: str | Path) -> list[str | Path]:
    return ["node", SNARKJS, *args]


@dataclass(frozen=True)
class R1csInfo:
    constraints: int
    wires: int
    public_inputs: int
    outputs: int
    private_inputs: int

    def ptau_power(self) -> int:
        # snarkjs needs a domain of at least constraints + public inputs + 1 (one extra
        # constraint per public input, and one for the constant).
        needed = self.constraints + self.public_inputs + self.outputs + 1
        return max(8, (needed - 1).bit_length())


def read_r1cs_header(path: Path) -> R1csInfo:
    """Parse the header section of a circom .r1cs file (iden3 binary format, version 1)."""
    data = path.read_bytes()
    if data[:4] != b"r1cs":
        raise SetupError(f"{path} is not an r1cs file")
    (n_sections,) = struct.unpack_from("<I", data, 8)
    pos = 12
    for _ in range(n_sections):
        kind, size = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if kind == 1:
            (field_size,) = struct.unpack_from("<I", data, pos)
            p = pos + 4 + field_size
            wires, outs, pub, prv, _labels, constraints = struct.unpack_from("<IIIIQI", data, p)
            return R1csInfo(constraints, wires, pub, outs, prv)
        pos += size
    raise SetupError(f"{path} has no header section")


class Setup:
    def __init__(self, n: int, cache: Path, log: Progress) -> None:
        self.n = n
        self.cache = cache
        self.circuit = CircuitBuild(n, cache / f"settle_batch_{n}" / circuit_fingerprint(n)[:16])
        self.log = log
        self.name = f"settle_batch_{n}"
        self.build = self.circuit.folder
        self.r1cs = self.build / f"{self.name}.r1cs"
        self.wasm = self.build / f"{self.name}_js" / f"{self.name}.wasm"
        self.stamp = self.build / "stamp.json"

    # ------------------------------------------------------------------ compile

    def main_source(self) -> str:
        """The test harness under circuits/test/ where there is one for this N, else the same
        main generated: SettleBatch(N) with the public inputs in ISettlementVerifier's order."""
        # By name, found through `-l circuits/`: the build folder is in a cache outside the
        # checkout, and circom2 (WASI) resolves relative includes from the main file.
        include = CIRCUIT.name
        harness = HARNESS_DIR / f"{self.name}.circom"
        if harness.is_file():
            return harness.read_text().replace('"../settle_batch.circom"', f'"{include}"')
        return (
            "pragma circom 2.1.0;\n"
            f'include "{include}";\n'
            f"component main {{public [{', '.join(PUBLIC_INPUTS)}]}} = SettleBatch({self.n});\n"
        )

    def load_stamp(self) -> dict[str, Any]:
        return self.circuit.load_stamp()

    def compile(self, native: bool = True) -> R1csInfo:
        """circom --O2 to r1cs + wasm (+ C++), then the native witness generator (cached)."""
        with self.circuit.lock():
            info = self._compile()
            if native:
                self.native_witness()
            return info

    def _compile(self) -> R1csInfo:
        fingerprint = circuit_fingerprint(self.n)
        stamp = self.load_stamp()
        cpp = self.build / f"{self.name}_cpp"
        if (
            stamp.get("fingerprint") == fingerprint
            and self.r1cs.is_file()
            and self.wasm.is_file()
            and cpp.is_dir()
        ):
            info = read_r1cs_header(self.r1cs)
            self.log.step("compile", True, f"{info.constraints} constraints")
            return info
        self.build.mkdir(parents=True, exist_ok=True)
        # Compile a copy in the cache so that circom names its outputs after it there.
        main = self.build / f"{self.name}.circom"
        main.write_text(self.main_source())
        run(
            [
                CIRCOM,
                main,
                "--O2",
                "--r1cs",
                "--wasm",
                "--c",
                # Without nasm the C++ generator uses portable field code (same witness).
                *([] if shutil.which("nasm") else ["--no_asm"]),
                "-l",
                ROOT / "node_modules",
                "-l",
                CIRCUIT.parent,
                "-o",
                self.build,
            ],
            self.log,
            label=f"circom --O2 SettleBatch({self.n})",
        )
        info = read_r1cs_header(self.r1cs)
        if info.public_inputs != N_PUBLIC or info.outputs != 0:
            raise SetupError(f"expected {N_PUBLIC} public inputs and no outputs, got {info}")
        r1cs_sha = sha256_file(self.r1cs)
        if stamp.get("r1cs_sha256") != r1cs_sha:
            # Other constraints: every key made for the old ones is stale. (A change that
            # leaves the r1cs as it was, such as a comment, keeps them.)
            for stale in [*self.build.glob("*.zkey"), *self.build.glob("*.json")]:
                stale.unlink()
            for stale in self.build.glob("*.sol"):
                stale.unlink()
            stamp = {}
        stamp.update(fingerprint=fingerprint, r1cs_sha256=r1cs_sha)
        self.stamp.write_text(json.dumps(stamp))
        self.log.step("compile", False, f"{info.constraints} constraints, {info.wires} wires")
        return info

    def native_witness(self) -> Path | None:
        """Build circom's C++ witness generator (g++, libgmp, nlohmann-json; ~1 min of CPU at
        N=4): the witness in ~0.03 s instead of ~0.4 s under node. None, with a note, where no
        compiler or library is installed: the wasm one is used then."""
        binary = self.circuit.native_witness
        if binary.is_file():
            self.log.step("native witness generator", True, binary.name)
            return binary
        cpp = self.build / f"{self.name}_cpp"
        missing = [t for t in ("g++", "make") if shutil.which(t) is None]
        for header in ("gmp.h", "nlohmann/json.hpp"):  # also under the multiarch folder
            if not [*Path("/usr/include").glob(header), *Path("/usr/include").glob(f"*/{header}")]:
                missing.append(header)
        if (cpp / "fr.asm").is_file() and shutil.which("nasm") is None:
            missing.append("nasm")
        if missing:
            self.log(
                f"native witness generator skipped (missing {', '.join(missing)}; "
                "scripts/setup.sh installs them): the wasm one is used"
            )
            return None
        run(
            ["make", "-C", cpp, f"-j{os.cpu_count() or 1}", "CFLAGS=-std=c++11 -O2 -I."],
            self.log,
            label=f"g++ the native witness generator of SettleBatch({self.n}) "
            "(~1 min of CPU at N=4, several at N=64)",
        )
        # The generator reads its constants from `<argv[0]>.dat`.
        shutil.copyfile(cpp / f"{self.name}.dat", binary.with_name(f"{binary.name}.dat"))
        tmp = binary.with_suffix(".tmp")
        shutil.copyfile(cpp / self.name, tmp)
        tmp.chmod(0o755)
        tmp.rename(binary)
        for obj in cpp.glob("*.o"):
            obj.unlink()
        return binary

    # ------------------------------------------------------------------ powers of tau

    def dev_ptau(self, power: int) -> Path:
        """A prepared phase-1 file from this machine: one random contribution (never tau = 1).
        Reuses any cached dev ptau of at least this power."""
        ptau_dir = self.cache / "ptau"
        ptau_dir.mkdir(parents=True, exist_ok=True)
        for p in range(power, 28):
            final = ptau_dir / f"pot{p}_final.ptau"
            if final.is_file():
                self.log.step("powers of tau", True, f"dev, 2^{p}: {final.name}")
                return final
        new = ptau_dir / f"pot{power}_0000.ptau"
        contributed = ptau_dir / f"pot{power}_0001.ptau"
        final = ptau_dir / f"pot{power}_final.ptau"
        if not new.is_file():
            run(
                snarkjs("powersoftau", "new", "bn128", str(power), new),
                self.log,
                label=f"powersoftau new 2^{power}",
            )
        if not contributed.is_file():
            tmp = contributed.with_suffix(".tmp")
            # snarkjs mixes 64 bytes from the OS RNG into the entropy we pass, so the
            # contribution's secret never appears on a command line.
            run(
                snarkjs(
                    "powersoftau",
                    "contribute",
                    new,
                    tmp,
                    "--name=zgserve dev",
                    f"-e={secrets.token_hex(32)}",
                ),
                self.log,
                label=f"powersoftau contribute 2^{power}",
            )
            tmp.rename(contributed)
        tmp = final.with_suffix(".tmp")
        run(
            snarkjs("powersoftau", "prepare", "phase2", contributed, tmp),
            self.log,
            label=f"powersoftau prepare phase2 2^{power} (slow: ~2 min at 2^13, ~40 min at 2^17)",
        )
        tmp.rename(final)
        self.log.step("powers of tau", False, f"dev, 2^{power}")
        return final

    # ------------------------------------------------------------------ phase 2

    def zkey(self, ptau: Path, contributions: int, beacon: str | None) -> Path:
        """groth16 setup, then phase-2 contributions (and an optional beacon); cached per ptau."""
        ptau_id = f"{ptau.name}:{ptau.stat().st_size}"
        stamp = self.load_stamp()
        final = self.build / f"{self.name}_final.zkey"
        wanted = {"ptau": ptau_id, "contributions": contributions, "beacon": beacon}
        if final.is_file() and stamp.get("zkey") == wanted:
            self.log.step("groth16 setup + phase 2", True, final.name)
            return final
        if contributions < 1 and beacon is None:
            raise SetupError(
                "phase 2 needs at least one contribution or a beacon (delta = 1 otherwise)",
                EXIT_USAGE,
            )
        current = self.build / f"{self.name}_0000.zkey"
        run(snarkjs("groth16", "setup", self.r1cs, ptau, current), self.log, label="groth16 setup")
        for i in range(1, contributions + 1):
            nxt = self.build / f"{self.name}_{i:04d}.zkey"
            run(
                snarkjs(
                    "zkey",
                    "contribute",
                    current,
                    nxt,
                    f"--name=zgserve dev {i}",
                    f"-e={secrets.token_hex(32)}",
                ),
                self.log,
                label=f"zkey contribute #{i}",
            )
            current.unlink()
            current = nxt
        if beacon is not None:
            nxt = self.build / f"{self.name}_beacon.zkey"
            run(
                snarkjs("zkey", "beacon", current, nxt, beacon, "10", "-n=zgserve beacon"),
                self.log,
                label="zkey beacon",
            )
            current.unlink()
            current = nxt
        current.rename(final)
        stamp["zkey"] = wanted
        self.stamp.write_text(json.dumps(stamp))
        self.log.step("groth16 setup + phase 2", False, f"{final.name}, {_mib(final)}")
        return final

    # ------------------------------------------------------------------ exports

    def export(self, zkey: Path) -> tuple[Path, Path]:
        vkey = self.build / "verification_key.json"
        sol = self.build / f"SettleBatchVerifier{self.n}.sol"
        fresh = vkey.is_file() and vkey.stat().st_mtime >= zkey.stat().st_mtime
        if not fresh:
            run(
                snarkjs("zkey", "export", "verificationkey", zkey, vkey),
                self.log,
                label="export verification key",
            )
        vk = json.loads(vkey.read_text())
        check_vkey(vk)
        sol.write_text(verifier_source(vk, self.n))
        self.log.step("exports", fresh, f"{vkey.name}, {sol.name}")
        return vkey, sol

    # ------------------------------------------------------------------ fast dev keys

    def arkworks_dev(self, info: R1csInfo) -> tuple[Path, Path, Path]:
        with self.circuit.lock():
            return self._arkworks_dev(info)

    def _arkworks_dev(self, info: R1csInfo) -> tuple[Path, Path, Path]:
        """Single-party DEV keys from groth16py's circuit-specific setup (no ptau), cached in
        `<build>/dev/`: (proving key in groth16py's format, verification_key.json, the
        Solidity verifier). Redone only when the r1cs changes."""
        g16 = _groth16py()
        out = self.circuit.dev_keys
        pk, vkey = out / "proving_key.g16", out / "verification_key.json"
        sol, manifest = out / f"SettleBatchVerifier{self.n}.sol", out / "manifest.json"
        r1cs_sha = sha256_file(self.r1cs)
        recorded = json.loads(manifest.read_text()) if manifest.is_file() else {}
        if recorded.get("r1cs_sha256") == r1cs_sha and pk.is_file() and vkey.is_file():
            self.log.step("groth16py dev setup", True, f"{pk.name}, {_mib(pk)}")
        else:
            if out.is_dir():
                shutil.rmtree(out)  # keys of another r1cs, or a setup that did not finish
            out.mkdir(parents=True)
            self.log(
                f"DEV keys for SettleBatch({self.n}), once per machine: groth16py setup "
                f"({info.constraints} constraints; ~5 s at N=16, ~1-2 min at N=64 with saving, "
                "~5 min at N=256 on 2 cores)"
            )
            with self.log.ticking("groth16py setup"):
                proving, verifying = g16.setup(str(self.r1cs))
            vk = json.loads(verifying.to_json())
            check_vkey(vk)
            tmp = pk.with_suffix(".tmp")
            with self.log.ticking(f"saving the proving key to {pk}"):
                proving.save(str(tmp))
            tmp.rename(pk)
            vkey.write_text(json.dumps(vk, indent=1) + "\n")
            manifest.write_text(
                json.dumps(
                    {
                        "WARNING": "DEV KEYS from a single-party setup on this machine: whoever "
                        "ran it can forge proofs. Never use them for real funds.",
                        "circuit": "SettleBatch",
                        "size": self.n,
                        "constraints": info.constraints,
                        "r1cs_sha256": r1cs_sha,
                        "setup": f"groth16py {g16.__version__} setup(r1cs)",
                        "proving_key_sha256": sha256_file(pk),
                        "vkey_sha256": sha256_file(vkey),
                    },
                    indent=2,
                )
                + "\n"
            )
            self.log.step("groth16py dev setup", False, f"{pk.name}, {_mib(pk)}")
        if not sol.is_file() or sol.stat().st_mtime < vkey.stat().st_mtime:
            origin = f"DEV keys ({self.name}/.../dev/ in the zk cache: single party, NOT for funds)"
            sol.write_text(verifier_source(json.loads(vkey.read_text()), self.n, origin))
        return pk, vkey, sol


def _mib(path: Path) -> str:
    return f"{path.stat().st_size / (1 << 20):.1f} MiB"


def check_vkey(vk: dict[str, Any]) -> None:
    """Refuse keys from a degenerate setup (the tau = 1 / delta = 1 trap)."""
    if vk.get("protocol") != "groth16" or vk.get("nPublic") != N_PUBLIC:
        raise SetupError(f"unexpected verification key: {vk.get('protocol')} {vk.get('nPublic')}")
    g1_points = [vk["vk_alpha_1"], *vk["IC"]]
    if any(p[2] == "0" for p in g1_points) or vk["vk_alpha_1"] == G1_GENERATOR:
        raise SetupError("verification key has a point at infinity or alpha = 1: no contribution?")
    if vk["vk_delta_2"] == vk["vk_gamma_2"] or vk["vk_delta_2"][0] == G2_GENERATOR_X:
        raise SetupError("delta equals gamma: phase 2 had no contribution")


def verifier_source(vk: dict[str, Any], n: int, origin: str | None = None) -> str:
    """SettleBatchVerifier{n}.sol for a verification key, from this project's own template.
    `origin` names where the key came from (default: the committed keys)."""
    from zg_shared.zk.solidity_verifier import VerificationKeyError, render_verifier

    try:
        return render_verifier(vk, n, origin=origin or f"circuits/keys/settle_batch_{n}/")
    except VerificationKeyError as exc:
        raise SetupError(f"cannot render the verifier: {exc}") from exc


def _groth16py() -> Any:
    try:
        import groth16py  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise SetupError("--arkworks-dev needs `pip install groth16py==0.2.0`", EXIT_USAGE) from exc
    return groth16py


def compile_verifier(sol: Path, n: int, out: Path | None = None) -> Path:
    """Compile a SettleBatchVerifier{n}.sol (with ISettlementVerifier, the committed contracts'
    solc settings) into an artifact JSON beside it, for `zg_shared.chain.load_artifact(name,
    folder)`. Cached by the source's hash. For benches and devnets: the committed artifacts
    come from scripts/compile_contracts.py."""
    name = f"SettleBatchVerifier{n}"
    out = out or sol.with_name(f"{name}.json")
    source = sol.read_text()
    source_sha = hashlib.sha256(source.encode()).hexdigest()
    if out.is_file() and json.loads(out.read_text()).get("sourceSha256") == source_sha:
        return out
    spec = importlib.util.spec_from_file_location("compile_contracts", COMPILE_CONTRACTS)
    if spec is None or spec.loader is None:
        raise SetupError(f"cannot load {COMPILE_CONTRACTS}")
    compile_contracts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compile_contracts)
    unit = f"contracts/src/verifiers/{name}.sol"
    interface = "contracts/src/interfaces/ISettlementVerifier.sol"
    request = {
        "language": "Solidity",
        "sources": {
            unit: {"content": source},
            interface: {"content": (ROOT / interface).read_text()},
        },
        "settings": compile_contracts.SETTINGS,
    }
    proc = subprocess.run(
        [str(compile_contracts.SOLCJS), "--standard-json"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    start = proc.stdout.find("{")
    if proc.returncode != 0 or start < 0:
        raise SetupError(f"solcjs failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
    output = json.loads(proc.stdout[start:])
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise SetupError("verifier does not compile:\n" + "\n".join(errors))
    compiled = output["contracts"][unit][name]
    artifact = {
        "contractName": name,
        "sourceName": str(sol),
        "sourceSha256": source_sha,
        "abi": compiled["abi"],
        "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
    }
    out.write_text(json.dumps(artifact) + "\n")
    return out


# ---------------------------------------------------------------------- committed keys


def committed_paths(n: int, keys_dir: Path | None = None) -> dict[str, Path]:
    """Where installed keys live: the committed places, or (an operator's ceremony keys)
    `keys_dir/settle_batch_N/`, which the prover reads with PROVER_KEYS_DIR."""
    keys = (keys_dir or KEYS_DIR) / f"settle_batch_{n}"
    verifiers = keys if keys_dir is not None else VERIFIERS_DIR
    return {
        "zkey": keys / f"settle_batch_{n}.zkey",
        "vkey": keys / "verification_key.json",
        "manifest": keys / "manifest.json",
        "verifier": verifiers / f"SettleBatchVerifier{n}.sol",
    }


def _show(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def tool_version(package: str) -> str:
    return str(
        json.loads((ROOT / "node_modules" / package / "package.json").read_text())["version"]
    )


def install(
    setup: Setup,
    info: R1csInfo,
    ptau: Path,
    ptau_source: str,
    zkey: Path,
    vkey: Path,
    sol: Path,
    contributions: int | None,
    beacon: str | None,
    keys_dir: Path | None = None,
) -> None:
    paths = committed_paths(setup.n, keys_dir)
    paths["zkey"].parent.mkdir(parents=True, exist_ok=True)
    paths["verifier"].parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(zkey, paths["zkey"])
    shutil.copyfile(vkey, paths["vkey"])
    shutil.copyfile(sol, paths["verifier"])
    manifest = {
        "circuit": "SettleBatch",
        "size": setup.n,
        "public_inputs": PUBLIC_INPUTS,
        "constraints": info.constraints,
        "wires": info.wires,
        "circuit_fingerprint": circuit_fingerprint(setup.n),
        "r1cs_sha256": sha256_file(setup.r1cs),
        "zkey_sha256": sha256_file(paths["zkey"]),
        "vkey_sha256": sha256_file(paths["vkey"]),
        "ptau": {
            "file": ptau.name,
            "power": info.ptau_power(),
            "source": ptau_source,
            "sha256": sha256_file(ptau),
        },
        "phase2": {"contributions": contributions, "beacon": beacon},
        "tools": {
            "circom2": tool_version("circom2"),
            "snarkjs": tool_version("snarkjs"),
            "circomlib": tool_version("circomlib"),
        },
    }
    paths["manifest"].write_text(json.dumps(manifest, indent=2) + "\n")
    setup.log(f"installed: {', '.join(_show(p) for p in paths.values())}")


def check(setup: Setup, info: R1csInfo, keys_dir: Path | None = None) -> list[str]:
    """Compare the installed keys with the circuit as it is now; returns the problems."""
    paths = committed_paths(setup.n, keys_dir)
    missing = [_show(p) for p in paths.values() if not p.is_file()]
    if missing:
        return [f"missing: {', '.join(missing)}"]
    manifest = json.loads(paths["manifest"].read_text())
    problems = []
    if manifest["r1cs_sha256"] != sha256_file(setup.r1cs):
        problems.append("the circuit changed since the keys were made: rerun the setup")
    for key in ("zkey", "vkey"):
        if manifest[f"{key}_sha256"] != sha256_file(paths[key]):
            problems.append(f"{_show(paths[key])} differs from the manifest")
    exported = setup.build / "verification_key.check.json"
    run(
        snarkjs("zkey", "export", "verificationkey", paths["zkey"], exported),
        setup.log,
        label="export vkey from the committed zkey",
    )
    if json.loads(exported.read_text()) != json.loads(paths["vkey"].read_text()):
        problems.append("verification_key.json does not belong to the committed zkey")
    try:
        check_vkey(json.loads(paths["vkey"].read_text()))
    except SetupError as exc:
        problems.append(str(exc))
    if (
        verifier_source(json.loads(paths["vkey"].read_text()), setup.n)
        != paths["verifier"].read_text()
    ):
        problems.append(f"{_show(paths['verifier'])} is stale: rerun with --install")
    return problems


# ---------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compile SettleBatch(N), run its Groth16 setup, export the verification "
        "key and the Solidity verifier (cached; a rerun resumes).",
        epilog="Exit codes: 0 ok, 1 a tool failed, 2 bad usage, 3 --check found a mismatch.",
    )
    parser.add_argument("--size", "-n", type=int, default=4, help="circuit size N (default 4)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache folder (default $ZG_ZK_CACHE, else $XDG_CACHE_HOME/zgserve/zk, else "
        "~/.cache/zgserve/zk): shared by every clone on this machine",
    )
    parser.add_argument(
        "--ptau",
        type=Path,
        help="a prepared phase-2 ptau from a public ceremony (e.g. the Hermez "
        "powersOfTau28_hez_final_NN.ptau); default: a dev ptau made here",
    )
    parser.add_argument(
        "--zkey",
        type=Path,
        help="use this final zkey (from a multi-party phase 2) instead of making "
        "one; it is checked against the circuit and --ptau with `zkey verify`",
    )
    parser.add_argument(
        "--contributions", type=int, default=1, help="local phase-2 contributions (default 1)"
    )
    parser.add_argument(
        "--beacon",
        help="finish phase 2 with this beacon (hex), e.g. a "
        "future block hash announced before the ceremony",
    )
    parser.add_argument(
        "--compile-only",
        action="store_true",
        help="only compile (the wasm witness generator and r1cs)",
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="copy the keys to circuits/keys/ and the verifier to "
        "contracts/src/verifiers/, with a manifest",
    )
    parser.add_argument(
        "--keys-dir",
        type=Path,
        help="with --install/--check: an operator's folder for ceremony keys (settle_batch_N/ "
        "with the zkey, key, manifest and verifier; the prover's PROVER_KEYS_DIR) instead of "
        "the committed places",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the committed keys against the circuit (compiles, makes no keys)",
    )
    parser.add_argument(
        "--arkworks-dev",
        action="store_true",
        help="fast single-party DEV keys from groth16py's setup (no ptau; minutes at N=64 "
        "instead of hours) into the cache (settle_batch_N/<version>/dev/), with the Solidity "
        "verifier; proving with groth16py only. Never for real funds",
    )
    parser.add_argument(
        "--verifier-artifact",
        action="store_true",
        help="also compile the (cached) Solidity verifier into an ABI + bytecode JSON beside it",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    if args.size < 1:
        parser.error("--size must be >= 1")
    if args.contributions < 0:
        parser.error("--contributions must be >= 0")
    if args.beacon is not None and not re.fullmatch(r"(0x)?[0-9a-fA-F]{2,128}", args.beacon):
        parser.error("--beacon must be hex")
    if args.beacon is not None:
        args.beacon = args.beacon.removeprefix("0x")  # snarkjs wants bare hex
    if args.zkey is not None and args.ptau is None:
        parser.error("--zkey needs the --ptau it was made from (to verify it)")
    if args.check and args.install:
        parser.error("--check and --install exclude each other")
    if args.arkworks_dev and (args.install or args.check or args.ptau or args.zkey):
        parser.error(
            "--arkworks-dev makes cached dev keys only: no --install/--check/--ptau/--zkey"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = Progress(args.quiet)
    if not CIRCOM.exists() or not SNARKJS.exists():
        print("circom2/snarkjs missing: run `npm ci` first", file=sys.stderr)
        return EXIT_TOOL
    setup = Setup(args.size, (args.cache or zk_cache_dir()).expanduser().resolve(), log)
    try:
        info = setup.compile()
        log(
            f"SettleBatch({args.size}): {info.constraints} constraints, "
            f"needs a 2^{info.ptau_power()} ptau"
        )
        if args.compile_only:
            return EXIT_OK
        if args.arkworks_dev:
            pk, _, sol = setup.arkworks_dev(info)
            if args.verifier_artifact:
                log(f"verifier artifact: {compile_verifier(sol, args.size)}")
            log(f"ready (DEV keys, single party, not for production): {pk}")
            return EXIT_OK
        if args.check:
            problems = check(setup, info, args.keys_dir)
            for problem in problems:
                print(f"MISMATCH: {problem}", file=sys.stderr)
            log("check: " + ("FAILED" if problems else "committed keys match the circuit"))
            return EXIT_MISMATCH if problems else EXIT_OK
        if args.ptau is not None:
            if not args.ptau.is_file():
                raise SetupError(f"--ptau {args.ptau} not found", EXIT_USAGE)
            ptau, ptau_source = args.ptau.resolve(), "ceremony (operator-supplied)"
        else:
            ptau, ptau_source = setup.dev_ptau(info.ptau_power()), "dev (single contributor)"
        if args.zkey is not None:
            run(
                snarkjs("zkey", "verify", setup.r1cs, ptau, args.zkey),
                log,
                label="zkey verify (circuit + ptau + contributions)",
            )
            zkey = setup.build / f"{setup.name}_final.zkey"
            shutil.copyfile(args.zkey, zkey)
            contributions, beacon = None, None  # recorded in the zkey itself
        else:
            zkey = setup.zkey(ptau, args.contributions, args.beacon)
            contributions, beacon = args.contributions, args.beacon
        vkey, sol = setup.export(zkey)
        if args.verifier_artifact:
            log(f"verifier artifact: {compile_verifier(sol, args.size)}")
        if args.install:
            install(
                setup,
                info,
                ptau,
                ptau_source,
                zkey,
                vkey,
                sol,
                contributions,
                beacon,
                args.keys_dir,
            )
        log(f"ready: {zkey.relative_to(ROOT) if zkey.is_relative_to(ROOT) else zkey}")
        return EXIT_OK
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted: rerun to resume from the last finished step", file=sys.stderr)
        return EXIT_TOOL


if __name__ == "__main__":
    sys.exit(main())
