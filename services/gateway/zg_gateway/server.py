# SPDX-License-Identifier: Apache-2.0
"""Serving the gateway: reads GATEWAY_* settings and serves until SIGTERM/SIGINT, finishing
requests in flight first (aiohttp's graceful shutdown).

With `GATEWAY_WORKERS=N` (N > 1) it runs N worker processes that share the port through
SO_REUSEPORT, the kernel spreading connections over them: the gateway is CPU-bound Python,
one core per process. This process is worker 0; the others are its children and stop with it.
The workers' entry point lives here, not in `__main__`: a spawned child imports it by name,
and multiprocessing never re-imports a package's `__main__`.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys

from aiohttp import web

from zg_gateway.app import create_app
from zg_gateway.config import GatewaySettings
from zg_gateway.logs import quiet_malformed_requests
from zg_shared.deployment import refusing_foreign_state
from zg_shared.telemetry import setup_logging

SHUTDOWN_TIMEOUT_S = 60.0


def serve(settings: GatewaySettings) -> None:
    setup_logging(settings.log_level, settings.log_json)
    quiet_malformed_requests()
    loop: asyncio.AbstractEventLoop | None = None
    if settings.event_loop != "asyncio":
        try:
            import uvloop  # the optional `gateway-fast` extra
        except ImportError:
            if settings.event_loop == "uvloop":
                raise
        else:
            loop = uvloop.new_event_loop()
    with refusing_foreign_state():
        web.run_app(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            access_log=None,
            print=None,
            reuse_port=settings.workers > 1 or None,
            loop=loop,
        )


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies, even by SIGKILL, so that no worker
    outlives a gateway that crashed (elsewhere the parent's `finally` is all there is)."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _worker(settings: GatewaySettings, parent: int) -> None:
    # The parent forwards SIGTERM; a Ctrl-C in a terminal reaches the whole group, and the
    # worker should shut down once, by the parent's word.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above took effect
        return
    serve(settings)


def main() -> None:
    settings = GatewaySettings()
    if settings.workers == 1:
        serve(settings)
        return
    spawn = multiprocessing.get_context("spawn")
    children = [
        spawn.Process(
            target=_worker,
            args=(settings.model_copy(update={"worker_index": index}), os.getpid()),
            name=f"zg-gateway-{index}",
        )
        for index in range(1, settings.workers)
    ]
    for child in children:
        child.start()

    try:
        serve(settings)  # until SIGTERM/SIGINT
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: the same graceful shutdown
        for child in children:
            child.join(SHUTDOWN_TIMEOUT_S)
