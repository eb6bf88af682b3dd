# SPDX-License-Identifier: Apache-2.0
"""`create_app(settings)`: the aiohttp application, with no state outside it."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from zg_sample_backend.config import BackendSettings
from zg_sample_backend.errors import inject_status, openai_errors
from zg_sample_backend.routes import SETTINGS, setup_routes


def create_app(settings: BackendSettings) -> web.Application:
    middlewares: list[Middleware] = [openai_errors]
    if settings.status_override is not None:
        middlewares.append(inject_status(settings.status_override))
    app = web.Application(middlewares=middlewares)
    app[SETTINGS] = settings
    setup_routes(app)
    return app
