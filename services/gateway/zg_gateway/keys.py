# SPDX-License-Identifier: Apache-2.0
"""Typed keys for what the app shares with its handlers (no globals, no string keys)."""

from __future__ import annotations

from aiohttp import web

from zg_gateway.metrics import GatewayMetrics
from zg_gateway.outbox import OutboxDrainer
from zg_gateway.proxy import BackendClient
from zg_gateway.service import GatewayService
from zg_shared.health import HealthServer

SERVICE = web.AppKey("service", GatewayService)
METRICS = web.AppKey("metrics", GatewayMetrics)
BACKEND = web.AppKey("backend", BackendClient)
OUTBOX = web.AppKey("outbox", OutboxDrainer)
# The internal health and metrics server; None in a worker other than 0.
HEALTH: web.AppKey[HealthServer | None] = web.AppKey("health")
