# SPDX-License-Identifier: Apache-2.0
"""The marketplace page: the provider's services with their prices and, for an address the
visitor connects (typed in, or from a browser wallet), that user's account and settlements.

`GET /` serves one static page; it reads two JSON endpoints: `/v1/services` (routes.py) and
`/v1/accounts/{address}` here, which answers from Redis (kept by the chain indexer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from zg_gateway.errors import BadRequest, NotFound
from zg_gateway.keys import SERVICE
from zg_shared.accounts import ConfirmedSettlement
from zg_shared.chain.models import Refund
from zg_shared.chain.types import checksum

PAGE = Path(__file__).parent / "static" / "marketplace.html"
marketplace_routes = web.RouteTableDef()


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
    refunds: list[Refund]
    settlements: list[ConfirmedSettlement]


@marketplace_routes.get("/")
async def page(_: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})


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
    view = AccountView(
        user=user,
        provider=gateway.provider,
        balance=state.balance,
        pending_refund=state.pending_refund,
        settled_nonce=state.settled_nonce,
        unsettled=state.unsettled,
        output_debt=state.output_debt,
        available=max(0, state.spendable),
        refunds=await gateway.accounts.refunds(user, gateway.provider),
        settlements=await gateway.accounts.settlements(user, gateway.provider),
    )
    return web.json_response(_exact(view.model_dump(mode="json")))


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
