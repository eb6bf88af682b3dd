"""`python -m zg_gateway`: reads GATEWAY_* settings and serves until SIGTERM/SIGINT, finishing
requests in flight first (aiohttp's graceful shutdown)."""

from __future__ import annotations

from aiohttp import web

from zg_gateway.app import create_app
from zg_gateway.config import GatewaySettings
from zg_shared.telemetry import setup_logging

SHUTDOWN_TIMEOUT_S = 60.0


def main() -> None:
    settings = GatewaySettings()
    setup_logging(settings.log_level, settings.log_json)
    web.run_app(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
