# SPDX-License-Identifier: Apache-2.0
"""Proof time and peak memory of SettleBatch(N), per prover backend, with the constraint count.

    .venv/bin/python bench/bench_proofs.py                       # N = 4, 16, 64; every backend here
    .venv/bin/python bench/bench_proofs.py --sizes 4 16 --backends snarkjs --reps 3 --json

Each (N, backend) runs in a fresh Python subprocess that signs one full chunk (N requests, not
timed), then `--reps` times: witness (circom's native C++ generator, or its wasm under node),
proof, local verification, through the prover's own pipeline (`zg_shared.zk.pipeline`) with
the backend's proving step. Times are medians over the repetitions; "CPU s/req" is the CPU time
of the worker and its children (all threads) per request of the full chunk.
The backends are the prover's table (`zg_prover.backends.BACKENDS`); by default every one
available on this machine.
Memory is the peak resident set size from getrusage, of the worker process itself (RUSAGE_SELF:
the Python interpreter, the loaded proving key and an in-process prover such as arkworks) or of
its largest child (RUSAGE_CHILDREN: a prover run as a process, such as snarkjs's node
`groth16 prove`, or the witness generator if larger), whichever is larger.
The node witness generator is measured apart, once, before any key is loaded (a child's peak
counts its parent's pages at fork time, so no child figure is below the worker's ~50 MiB).
Progress goes to stderr, the table (or JSON) to stdout.

Keys, for each N: the committed zkey (N=4), else a snarkjs zkey cached by
`scripts/zk_setup.py --size N` in the zk cache; a backend that reads groth16py keys (arkworks)
proves with the same zkey where there is one, else with DEV keys of `scripts/zk_setup.py --size N
--arkworks-dev` (single-party groth16py setup, made here when missing: ~5 s at N=16, ~40 s at
N=64). One that reads only zkeys (snarkjs) needs a zkey, and so a powers-of-tau file (2^17 at
N=16: ~45 min here; 2^19 at N=64: hours): it is made only with
`--make-keys all`, otherwise the row says what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from zg_prover.backends import BACKENDS as TABLE
from zg_prover.backends import Backend
from zg_shared.scripts import script_module
from zg_shared.zk.circuit import CircuitBuild
from zg_shared.zk.keys import KeySet, ensure_compiled, ensure_keys, run_setup
from zg_shared.zk.keys import find_keys as find_key_set

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = tuple(b.name for b in TABLE)
WITNESSES = ("native", "wasm")


def log(message: str) -> None:
    print(f"[bench_proofs] {message}", file=sys.stderr, flush=True)


def zk_setup_module() -> ModuleType:
    """scripts/zk_setup.py as a module (scripts/ is not a package)."""
    return script_module(ROOT / "scripts" / "zk_setup.py")


def row_of(backend: str) -> Backend:
    return next(b for b in TABLE if b.name == backend)


def find_keys(n: int, backend: str, make: str) -> KeySet | str:
    """Keys for (n, backend), made when `make` allows; else a note saying what is missing."""
    keys = find_key_set(n)
    reads_dev_keys = "groth16py" in row_of(backend).key_formats
    if not reads_dev_keys and (keys is None or keys.key_format != "zkey"):
        if make == "all":
            run_setup("--size", str(n))  # slow: powers of tau (resumable)
        keys = find_key_set(n)
        if keys is None or keys.key_format != "zkey":
            return f"no zkey: `scripts/zk_setup.py --size {n}` (or --make-keys all)"
    if keys is None and reads_dev_keys:
        if make == "none":
            return f"no keys: `scripts/zk_setup.py --size {n} --arkworks-dev`"
        keys = ensure_keys(n)
    assert keys is not None
    ensure_compiled(n)
    return keys


# ---------------------------------------------------------------------- worker (subprocess)


def _kib_peak(who: int) -> int:
    return resource.getrusage(who).ru_maxrss  # KiB on Linux


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement, in a fresh process so that the rusage peaks are its own."""
    from sample_chunk import sample_chunk

    from zg_prover.backends import choose_backend
    from zg_shared.zk.pipeline import ProvingPipeline
    from zg_shared.zk.witness import NativeWitness, WasmWitness, WitnessGenerator

    n, reps = int(spec["size"]), int(spec["reps"])
    keys = find_key_set(n)
    assert keys is not None
    assert str(keys.key) == spec["key"], "keys changed under the bench"
    chunk = sample_chunk(n)
    witness_gen: WitnessGenerator = (
        NativeWitness(keys.build.native_witness)
        if spec["witness"] == "native"
        else WasmWitness(keys.build.wasm)
    )
    base_kib = _kib_peak(resource.RUSAGE_SELF)
    # The witness generator alone, before the key is loaded: a child's peak RSS counts the
    # parent's pages at fork time, so it is measured while this process is still small.
    with tempfile.TemporaryDirectory(prefix="zg-bench-") as tmp:
        witness_gen.calculate(chunk, Path(tmp) / "witness.wtns")
    witness_kib = _kib_peak(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    backend = choose_backend(spec["backend"], [keys.key_format])
    pipeline = ProvingPipeline(keys, backend.make_step(keys), witness_gen)
    load_s = time.perf_counter() - t0
    witness, prove, verify, cpu = [], [], [], []
    for rep in range(reps):
        timings = pipeline.prove_chunk(chunk).timings
        assert timings.verify_s is not None
        witness.append(timings.witness_s)
        prove.append(timings.prove_s)
        verify.append(timings.verify_s)
        cpu.append(timings.cpu_s)
        print(
            f"[bench_proofs]   rep {rep + 1}/{reps}: witness {timings.witness_s:.2f}s "
            f"prove {timings.prove_s:.2f}s verify {timings.verify_s:.3f}s "
            f"CPU {timings.cpu_s:.2f}s",
            file=sys.stderr,
            flush=True,
        )
    return {
        "load_s": load_s,
        "witness_s": witness,
        "prove_s": prove,
        "verify_s": verify,
        "cpu_s": cpu,
        "base_kib": base_kib,
        "self_peak_kib": _kib_peak(resource.RUSAGE_SELF),
        "children_peak_kib": _kib_peak(resource.RUSAGE_CHILDREN),
        "witness_kib": witness_kib,
    }


# ---------------------------------------------------------------------- driver


@dataclass(frozen=True)
class Row:
    n: int
    constraints: int
    backend: str
    keys: str
    reps: int
    key_load_s: float | None
    witness_s: float | None
    prove_s: float | None
    verify_s: float | None
    cpu_s_per_request: float | None
    prove_peak_rss_mib: float | None
    witness_peak_rss_mib: float | None
    note: str = ""


def constraints_of(n: int) -> int:
    build: CircuitBuild = ensure_compiled(n)
    return int(zk_setup_module().read_r1cs_header(build.r1cs).constraints)


def measure(n: int, backend: str, witness: str, reps: int, make: str) -> Row:
    constraints = constraints_of(n)
    label = f"{backend}+{witness}"
    unavailable = row_of(backend).unavailable()
    if unavailable is not None:
        log(f"N={n} {label}: skipped ({unavailable})")
        return Row(
            n, constraints, label, "-", 0, None, None, None, None, None, None, None, unavailable
        )
    keys = find_keys(n, backend, make)
    if isinstance(keys, str):
        log(f"N={n} {label}: skipped ({keys})")
        return Row(n, constraints, label, "-", 0, None, None, None, None, None, None, None, keys)
    if witness == "native" and not keys.build.native_witness.is_file():
        note = "no native witness generator: scripts/zk_setup.py --compile-only (g++, libgmp)"
        return Row(n, constraints, label, "-", 0, None, None, None, None, None, None, None, note)
    source = f"{keys.origin} {keys.key_format}"
    spec = {"size": n, "reps": reps, "backend": backend, "witness": witness, "key": str(keys.key)}
    log(f"N={n} {label} ({keys.describe()}): {reps} proof(s) in a fresh process ...")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker for N={n} {backend} failed ({proc.returncode})")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    mib = 1024.0
    witness_peak = got["witness_kib"] / mib
    prove_peak = max(got["children_peak_kib"], got["self_peak_kib"]) / mib
    return Row(
        n=n,
        constraints=constraints,
        backend=label,
        keys=source,
        reps=reps,
        key_load_s=got["load_s"],
        witness_s=statistics.median(got["witness_s"]),
        prove_s=statistics.median(got["prove_s"]),
        verify_s=statistics.median(got["verify_s"]),
        cpu_s_per_request=statistics.median(got["cpu_s"]) / n,
        prove_peak_rss_mib=round(prove_peak, 1),
        witness_peak_rss_mib=round(witness_peak, 1),
        note=f"worker process before the key: {got['base_kib'] / mib:.0f} MiB",
    )


def render(rows: list[Row]) -> str:
    def f(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    head = (
        f"{'N':>3} {'constraints':>11} {'backend':<16} {'keys':<19} {'key load s':>10} "
        f"{'witness s':>9} {'prove s':>8} {'verify s':>8} {'CPU s/req':>9} "
        f"{'peak RSS MiB':>12} {'witness MiB':>11}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.n:>3} {r.constraints:>11,} {r.backend:<16} {r.keys:<19} "
            f"{f(r.key_load_s, '.2f'):>10} {f(r.witness_s, '.2f'):>9} "
            f"{f(r.prove_s, '.2f'):>8} {f(r.verify_s, '.3f'):>8} "
            f"{f(r.cpu_s_per_request, '.3f'):>9} "
            f"{f(r.prove_peak_rss_mib, '.0f'):>12} {f(r.witness_peak_rss_mib, '.0f'):>11}"
            + (f"  {r.note}" if r.note and r.prove_s is None else "")
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Proof time and peak memory of SettleBatch(N) per prover backend.",
        epilog="Peak RSS: the larger of the proving Python process (interpreter + key + an "
        "in-process prover) and its largest child (a prover run as a process, e.g. node); the "
        "witness generator's apart.",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64], metavar="N")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=BACKENDS,
        default=[b.name for b in TABLE if b.unavailable() is None],
        metavar="BACKEND",
    )
    parser.add_argument(
        "--witness", nargs="+", choices=WITNESSES, default=list(WITNESSES), metavar="KIND"
    )
    parser.add_argument("--reps", type=int, default=2, help="proofs per measurement (default 2)")
    parser.add_argument(
        "--make-keys",
        choices=["none", "dev", "all"],
        default="dev",
        help="missing keys: none = skip the row; dev (default) = make groth16py DEV keys for "
        "arkworks (minutes); all = also run the snarkjs dev setup (powers of tau: hours at N=64)",
    )
    parser.add_argument("--json", action="store_true", help="JSON rows instead of a table")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    load_before = os.getloadavg()[0]
    rows = [
        measure(n, backend, witness, args.reps, args.make_keys)
        for n in args.sizes
        for backend in args.backends
        for witness in args.witness
    ]
    # Timings on a shared machine mean little without the load they ran under.
    load = f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    load += f", {os.cpu_count()} CPUs"
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in rows], "load": load}, indent=1))
    else:
        print(render(rows))
        print(load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
