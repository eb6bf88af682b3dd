# SPDX-License-Identifier: Apache-2.0
"""The marketplace page: every service registered on the contract (every provider, each with
its registered gateway URL) with its prices, and, for an address the visitor connects (typed
in, or from a browser wallet), that user's account with this provider: balance, refunds with
their unlock times, and settlements.

`GET /` serves one static page (and `/favicon.svg` its icon); it reads two JSON endpoints,
both from Redis (kept by the chain indexer): `/v1/marketplace/services` and
`/v1/accounts/{address}`. Amounts are decimal strings: wei overflow JavaScript's numbers.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from zg_gateway.errors import BadRequest, NotFound
from zg_gateway.keys import SERVICE
from zg_gateway.service import GatewayService
from zg_shared.accounts import ConfirmedSettlement
from zg_shared.chain.client import ServingClient
from zg_shared.chain.models import Refund, Service
from zg_shared.chain.types import checksum

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "marketplace.html"
FAVICON = STATIC / "favicon.svg"
NO_CACHE = {"Cache-Control": "no-cache"}
marketplace_routes = web.RouteTableDef()


class RefundView(Refund):
    index: int
    unlock_at: int | None  # None when the gateway has no chain to read the lock time from


class AccountView(BaseModel):
    """What the page shows of one account (amounts in wei, as decimal strings in JSON)."""

    user: str
    provider: str
    balance: int
    pending_refund: int
    settled_nonce: int
    unsettled: int
    output_debt: int
    available: int
    lock_time: int | None
    refunds: list[RefundView]
    settlements: list[ConfirmedSettlement]


class MarketplaceView(BaseModel):
    provider: str  # this gateway's provider: the account part of the page is about it
    services: list[Service]


@marketplace_routes.get("/")
async def page(_: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE, headers=NO_CACHE)


@marketplace_routes.get("/favicon.svg")
@marketplace_routes.get("/favicon.ico")  # where browsers and tools look without being told
async def favicon(_: web.Request) -> web.FileResponse:
    return web.FileResponse(FAVICON, headers={"Content-Type": "image/svg+xml"})


@marketplace_routes.get("/v1/marketplace/services")
async def services(request: web.Request) -> web.Response:
    gateway = request.app[SERVICE]
    listed = await gateway.registry.everyone()
    if not listed and gateway.serving is not None:  # the indexer has not filled Redis yet
        listed = await gateway.serving.get_all_services()
    view = MarketplaceView(provider=gateway.provider, services=listed)
    return web.json_response(_exact(view.model_dump(mode="json")))


@marketplace_routes.get("/v1/accounts/{user}")
async def account(request: web.Request) -> web.Response:
    gateway = request.app[SERVICE]
    try:
        user = checksum(request.match_info["user"])
    except ValueError:
        raise BadRequest("invalid_address", "not an Ethereum address") from None
    state = await gateway.accounts.read(user, gateway.provider)
    if state is None or not state.known_on_chain:
        raise NotFound("no_account", f"{user} has no account with this provider")
    lock_time = await _lock_time(gateway)
    refunds = await gateway.accounts.refunds(user, gateway.provider)
    view = AccountView(
        user=user,
        provider=gateway.provider,
        balance=state.balance,
        pending_refund=state.pending_refund,
        settled_nonce=state.settled_nonce,
        unsettled=state.unsettled,
        output_debt=state.output_debt,
        available=max(0, state.spendable),
        lock_time=lock_time,
        refunds=[
            RefundView(
                **refund.model_dump(),
                index=index,
                unlock_at=None if lock_time is None else refund.created_at + lock_time,
            )
            for index, refund in enumerate(refunds)
        ],
        settlements=await gateway.accounts.settlements(user, gateway.provider),
    )
    return web.json_response(_exact(view.model_dump(mode="json")))


# The contract's refund lock time is immutable: read once per contract client.
_LOCK_TIMES: weakref.WeakKeyDictionary[ServingClient, int] = weakref.WeakKeyDictionary()


async def _lock_time(gateway: GatewayService) -> int | None:
    serving = gateway.serving
    if serving is None:
        return None
    if serving not in _LOCK_TIMES:
        _LOCK_TIMES[serving] = await serving.lock_time()
    return _LOCK_TIMES[serving]


def _exact(value: Any) -> Any:
    """Integers as decimal strings: wei overflow JavaScript's numbers."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value
