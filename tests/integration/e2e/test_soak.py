# SPDX-License-Identifier: Apache-2.0
"""A small soak (bench/soak.py): the whole network in its default configuration (N=64 DEV keys,
every service a process) under a steady load for a minute, then drained. Every fee a user
signed is accounted for on chain to the wei (settled + still owed = signed, and each balance
fell by exactly what was settled), and with the load over, nothing stays owed."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
ROOT = Path(__file__).resolve().parents[3]


async def test_a_minute_of_load_is_settled_to_the_wei() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "soak.py"),
        *("--minutes", "1", "--rate", "0.5", "--users", "2", "--age-s", "20"),
        *("--drain-s", "900", "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-3000:]
    result = json.loads(out)
    assert result["circuit_sizes"] == "64"
    assert result["served"] > 0
    assert result["accounted"] is True
    assert result["settled_wei"] + result["owed_wei"] == result["signed_wei"]
    assert result["owed_wei"] == 0
    assert result["settled"] == result["served"]
    assert result["gas_per_settled_request"] > 0
    assert result["prover_cpu_s_per_request"] > 0
