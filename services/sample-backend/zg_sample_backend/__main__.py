# SPDX-License-Identifier: Apache-2.0
"""`python -m zg_sample_backend`: reads SAMPLE_BACKEND_* settings, command-line flags override."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from zg_sample_backend.app import create_app
from zg_sample_backend.config import BackendSettings

log = logging.getLogger("zg_sample_backend")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m zg_sample_backend",
        description="Deterministic OpenAI-compatible AI backend for tests, demos and benchmarks. "
        "Every setting also reads from SAMPLE_BACKEND_<NAME> (see docs/sample-backend.md).",
    )
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8000)")
    parser.add_argument("--model", help="served model name (default zg-demo-1)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    # Flags given on the command line win over the environment; the rest comes from it.
    overrides: dict[str, Any] = {
        k: v
        for k, v in {"host": args.host, "port": args.port, "model": args.model}.items()
        if v is not None
    }
    settings = BackendSettings(**overrides)
    log.info("serving model %s on http://%s:%d", settings.model, settings.host, settings.port)
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)


if __name__ == "__main__":
    main()
