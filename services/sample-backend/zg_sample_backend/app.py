# SPDX-License-Identifier: Apache-2.0
"""`create_app(settings)`: the aiohttp application, with no state outside it."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from zg_sample_backend.config import BackendSettings
from zg_sample_backend.connections import KEPT_ALIVE, KeptAlive, drop_kept_alive
from zg_sample_backend.errors import inject_status, openai_errors
from zg_sample_backend.routes import SETTINGS, setup_routes


def create_app(settings: BackendSettings) -> web.Application:
    middlewares: list[Middleware] = [openai_errors]
    if settings.drop_kept_alive != "never":
        middlewares.insert(0, drop_kept_alive)
    if settings.status_override is not None:
        middlewares.append(inject_status(settings.status_override))
    app = web.Application(middlewares=middlewares)
    app[SETTINGS] = settings
    app[KEPT_ALIVE] = KeptAlive(settings.drop_kept_alive)
    setup_routes(app)
    return app
