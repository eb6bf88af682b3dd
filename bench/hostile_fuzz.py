# SPDX-License-Identifier: Apache-2.0
"""The hostile-input test at a larger size: a running gateway process driven with N seeded
random malformed requests (tests/integration/gateway/test_fuzz.py; every one must get a 4xx,
the process must stay up, and nothing may be charged).

    python bench/hostile_fuzz.py [--requests 100000] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args()
    env = {**os.environ, "ZG_FUZZ_REQUESTS": str(args.requests), "ZG_FUZZ_SEED": str(args.seed)}
    test = "tests/integration/gateway/test_fuzz.py"
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-s", test], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
