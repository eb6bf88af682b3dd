# SPDX-License-Identifier: Apache-2.0
"""Route selection: C when built, pure Python with a logged warning otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

from zg_shared.crypto import backend, implementation


def test_c_route_is_active_here() -> None:
    assert implementation() == "c"
    assert backend.fast is not None


def test_forced_pure_route_warns_and_works() -> None:
    code = (
        "import zg_shared.crypto as c\n"
        "prv = bytes(32)\n"
        "sig = c.sign_poseidon(prv, 5)\n"
        "assert c.verify_poseidon(5, sig, c.prv2pub(prv))\n"
        "print(c.implementation())\n"
    )
    env = {**os.environ, "ZGSERVE_CRYPTO_PURE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "python"
    assert "pure-Python" in proc.stderr
