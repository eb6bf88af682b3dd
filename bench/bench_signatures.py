# SPDX-License-Identifier: Apache-2.0
"""Benchmark request-signature crypto: pure Python vs the C extension, one core.

Run: .venv/bin/python bench/bench_signatures.py [--quick]
Each figure is the best of several repeats (the least disturbed by other load).
"""

from __future__ import annotations

import argparse
import random
import timeit
from collections.abc import Callable

from zg_shared.crypto import backend, eddsa, eddsa_pure, implementation
from zg_shared.crypto.field import P
from zg_shared.crypto.poseidon import poseidon
from zg_shared.crypto.poseidon_pure import poseidon_optimized
from zg_shared.crypto.request import request_message, verify_request


def best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    fast_n, pure_n, repeat = max(1, int(2000 * scale)), max(1, int(10 * scale)), 5

    rng = random.Random(1)
    x4 = [rng.randrange(P) for _ in range(4)]
    x5 = [*x4, rng.randrange(P)]
    prv = bytes(range(32))
    pub = eddsa.prv2pub(prv)
    user, provider, nonce, fee = "0x" + "11" * 20, "0x" + "22" * 20, 7, 10**15
    msg = request_message(user, provider, nonce, fee)
    sig = eddsa.sign_poseidon(prv, msg)
    args_pure = (msg, sig.r8x, sig.r8y, sig.s, pub.x, pub.y)

    rows: list[tuple[str, str, float]] = [
        ("poseidon(4)", "python", best_us(lambda: poseidon_optimized(x4), pure_n * 10, repeat)),
        ("poseidon(5)", "python", best_us(lambda: poseidon_optimized(x5), pure_n * 10, repeat)),
        ("sign", "python", best_us(lambda: eddsa_pure.sign(prv, msg), pure_n, repeat)),
        ("verify", "python", best_us(lambda: eddsa_pure.verify(*args_pure), pure_n, repeat)),
    ]
    if backend.fast is not None:
        keys = [eddsa.prv2pub(rng.randbytes(32)) for _ in range(64)]
        sigs = [eddsa.sign_poseidon(prv, msg) for _ in keys]  # valid or not, same work

        def verify_cold() -> None:
            eddsa.clear_key_cache()
            for k, s in zip(keys, sigs, strict=True):
                eddsa.verify_poseidon(msg, s, k)

        cold = best_us(verify_cold, max(1, fast_n // 200), repeat) / len(keys)
        eddsa.verify_poseidon(msg, sig, pub)  # warm the cache for this key
        rows += [
            ("poseidon(4)", "c", best_us(lambda: poseidon(x4), fast_n * 5, repeat)),
            ("poseidon(5)", "c", best_us(lambda: poseidon(x5), fast_n * 5, repeat)),
            ("sign", "c", best_us(lambda: eddsa.sign_poseidon(prv, msg), fast_n, repeat)),
            ("verify (cold key cache)", "c", cold),
            ("verify (warm key cache)", "c", best_us(
                lambda: eddsa.verify_poseidon(msg, sig, pub), fast_n, repeat)),
            ("verify_request (M + verify, warm)", "c", best_us(
                lambda: verify_request(user, provider, nonce, fee, sig, pub), fast_n, repeat)),
        ]  # fmt: skip
        fast = backend.fast
        if fast.use_asm():
            # The same C without the BMI2/ADX multiplication, as on CPUs that lack it.
            fast.use_asm(False)
            rows += [
                ("poseidon(5)", "c-noasm", best_us(lambda: poseidon(x5), fast_n * 5, repeat)),
                ("sign", "c-noasm", best_us(lambda: eddsa.sign_poseidon(prv, msg), fast_n, repeat)),
                ("verify (warm key cache)", "c-noasm", best_us(
                    lambda: eddsa.verify_poseidon(msg, sig, pub), fast_n, repeat)),
                ("verify_request (M + verify, warm)", "c-noasm", best_us(
                    lambda: verify_request(user, provider, nonce, fee, sig, pub), fast_n, repeat)),
            ]  # fmt: skip
            fast.use_asm(True)

    print(f"active route: {implementation()}")
    print(f"{'operation':<36} {'impl':<8} {'us/op':>12} {'ops/s':>12}")
    for name, impl, us in rows:
        print(f"{name:<36} {impl:<8} {us:>12.1f} {1e6 / us:>12.0f}")


if __name__ == "__main__":
    main()
