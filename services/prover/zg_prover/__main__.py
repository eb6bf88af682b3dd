# SPDX-License-Identifier: Apache-2.0
"""`python -m zg_prover`: reads PROVER_* settings and runs until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from zg_prover.app import create_app
from zg_prover.config import ProverSettings
from zg_shared.deployment import refusing_foreign_state
from zg_shared.telemetry import setup_logging


def main() -> None:
    settings = ProverSettings()
    setup_logging(settings.log_level, settings.log_json)
    with refusing_foreign_state():
        asyncio.run(create_app(settings).app.run())


if __name__ == "__main__":
    main()
