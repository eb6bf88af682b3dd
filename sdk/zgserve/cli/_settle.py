# SPDX-License-Identifier: Apache-2.0
"""`zg provider settle`: ask the provider's billing to settle now, and watch it happen.

The request goes to billing over core NATS request/reply (`zg_shared.commands.SettleNow`);
billing answers with the accounts it flagged and settles them at its next pass. The command
then follows `serving.settlement.confirmed` on JetStream until every flagged account has a
confirmed settlement (or the timeout passes).

It logs in to NATS as the services do (`zg_shared.settings.NatsSettings`, prefix `ZG_`):
`ZG_NATS_USERNAME` (the operators' `admin`), its password from `ZG_NATS_PASSWORD_FILE`, the
file `ZG_NATS_PASSWORD` in the secrets folder (`ZG_SECRETS_DIR`) or the variable
`ZG_NATS_PASSWORD`; never a flag, so it stays out of shell history and `ps`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError as NatsNotFound
from pydantic_settings import SettingsConfigDict

from zg_shared.bus import NatsAccess, nats_servers, shown, stream_for
from zg_shared.busread import read_event, where
from zg_shared.chain.types import Address
from zg_shared.commands import SettleNow, SettleNowReply
from zg_shared.events import SettlementConfirmedV1
from zg_shared.natsauth import ADMIN_USER
from zg_shared.settings import NatsSettings
from zgserve.cli._common import Context, Exit, describe

T = TypeVar("T")
log = logging.getLogger(__name__)


class OperatorNats(NatsSettings):
    """The operator's NATS login: `ZG_NATS_URL`, `ZG_NATS_USERNAME`, `ZG_NATS_PASSWORD` (or
    `ZG_NATS_PASSWORD_FILE`), `ZG_NATS_CA_FILE`, each also a file in the secrets folder."""

    model_config = SettingsConfigDict(env_prefix="ZG_", extra="ignore", frozen=True)

    def nats_access(self) -> NatsAccess:
        access = super().nats_access()
        if access.password.get_secret_value() and not access.username:
            return access.model_copy(update={"username": ADMIN_USER})
        if any(urlsplit(u).password for u in nats_servers(access.url)):
            log.warning(
                "a password in the NATS URL shows in `ps` and shell history: "
                "use ZG_NATS_USERNAME with ZG_NATS_PASSWORD_FILE instead"
            )
        return access


class _Watch:
    """A NATS connection's refusals: the server answers a permissions violation with an
    asynchronous error, not on the request it refused (which would only time out)."""

    def __init__(self) -> None:
        self.errors: list[Exception] = []
        self.refused = asyncio.Event()

    async def error(self, exc: Exception) -> None:
        self.errors.append(exc)
        if "permissions violation" in str(exc).lower():
            self.refused.set()

    async def guard(self, ctx: Context, user: str, step: Awaitable[T]) -> T:
        """`step`'s result, or exit 5 as soon as the server refuses this user something."""
        task = asyncio.ensure_future(step)
        refusal = asyncio.ensure_future(self.refused.wait())
        await asyncio.wait({task, refusal}, return_when=asyncio.FIRST_COMPLETED)
        refusal.cancel()
        if self.refused.is_set():
            task.cancel()
            why = next(str(e) for e in self.errors if "permissions violation" in str(e).lower())
            ctx.fail(
                Exit.REFUSED,
                f"NATS refused user {user or '(from the URL)'!r} ({why.removeprefix('nats: ')}): "
                f"asking billing to settle takes the operators' NATS user, {ADMIN_USER!r}",
            )
        return task.result()


async def settle_now(
    ctx: Context, bus: NatsAccess, provider: Address, user: Address | None, timeout_s: float
) -> dict[str, Any]:
    refusals = _Watch()
    client = await _connect(ctx, bus, refusals)
    try:
        js = client.jetstream()
        subject = SettlementConfirmedV1.SUBJECT
        # Subscribed before asking, so no confirmation can slip between the two.
        try:
            watch = await refusals.guard(
                ctx,
                bus.username,
                js.pull_subscribe(
                    subject,
                    stream=stream_for(subject),
                    config=ConsumerConfig(
                        deliver_policy=DeliverPolicy.NEW,
                        ack_policy=AckPolicy.NONE,
                        inactive_threshold=60.0,
                    ),
                ),
            )
        except NatsNotFound:
            ctx.fail(
                Exit.UNREACHABLE,
                f"NATS at {shown(bus.url)} has no stream {stream_for(subject)}: is the provider's "
                "billing running there?",
            )
        command = SettleNow(provider=provider, user=user)
        try:
            raw = await refusals.guard(
                ctx,
                bus.username,
                client.request(
                    SettleNow.subject(provider), command.model_dump_json().encode(), timeout=10
                ),
            )
        except (NoRespondersError, NatsTimeout):
            ctx.fail(Exit.UNREACHABLE, f"no billing service answers for provider {provider}")
        reply = SettleNowReply.model_validate_json(raw.data)
        if reply.retry_after_s > 0:
            ctx.fail(
                Exit.REFUSED,
                f"billing settled on request a moment ago and refuses another for "
                f"{reply.retry_after_s:.0f} s (BILLING_SETTLE_NOW_INTERVAL_S): ask again then",
            )
        waiting = {u.lower() for u in reply.users}
        settlements: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        with ctx.spinner(f"settling {len(waiting)} account(s): proofs, then the transaction"):
            while waiting and time.monotonic() < deadline:
                try:
                    messages = await watch.fetch(16, timeout=1.0)
                except TimeoutError:  # nats-py raises its own or asyncio's, by code path
                    continue
                for message in messages:
                    # Anyone on the bus can have a publish ack stored here (the reply-subject
                    # trick): one line, and the wait goes on.
                    confirmed = read_event(SettlementConfirmedV1, message.data, where(message))
                    if confirmed is None or confirmed.provider.lower() != provider.lower():
                        continue
                    settlements.append(_summary(confirmed))
                    if not ctx.as_json:
                        _print(ctx, settlements[-1])
                    waiting -= {c.user.lower() for c in confirmed.chunks}
        await watch.unsubscribe()
    finally:
        await client.close()
    return {
        "provider": provider,
        "flagged": list(reply.users),
        "settlements": settlements,
        "complete": not waiting,
        "still_waiting": sorted(waiting),
    }


async def _connect(ctx: Context, bus: NatsAccess, refusals: _Watch) -> NatsClient:
    """Connected, or exit 6 naming the URL and why (nats-py itself would log a traceback per
    attempt and, told not to retry, keep retrying a server it never reached); exit 5 when the
    server refuses the login. No message shows the password."""

    try:
        return await bus.connect(
            connect_timeout=5,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            allow_reconnect=False,
            error_cb=refusals.error,
        )
    except (OSError, TimeoutError, ValueError, nats.errors.Error) as exc:
        cause = describe(refusals.errors[-1]) if refusals.errors else describe(exc)
        if "authorization violation" in cause.lower():
            who = f"user {bus.username!r}" if bus.username else "a login without a user"
            ctx.fail(
                Exit.REFUSED,
                f"NATS at {shown(bus.url)} refused {who}: wrong user or password "
                "(Authorization Violation)",
            )
        ctx.fail(Exit.UNREACHABLE, f"cannot reach NATS at {shown(bus.url)}: {cause}")


def _summary(event: SettlementConfirmedV1) -> dict[str, Any]:
    return {
        "settlement_id": event.settlement_id,
        "tx_hash": event.tx_hash,
        "total_fee": event.total_fee,
        "requests": sum(c.request_count for c in event.chunks),
        "users": sorted({c.user for c in event.chunks}),
        "gas_used": event.gas_used,
    }


def _print(ctx: Context, settlement: dict[str, Any]) -> None:
    ctx.out.print(
        f"settled {settlement['requests']} requests of {len(settlement['users'])} user(s): "
        f"{settlement['total_fee']} wei, {settlement['gas_used']} gas (tx {settlement['tx_hash']})",
        highlight=False,
    )


def wait_result(ctx: Context, result: dict[str, Any]) -> None:
    """Prints the outcome and exits 0 when every flagged account settled, 1 if some did not."""
    if ctx.as_json:
        ctx.emit(result)
    elif not result["flagged"]:
        ctx.out.print("nothing to settle: no account owes this provider")
    elif result["complete"]:
        ctx.out.print(f"all {len(result['flagged'])} account(s) settled")
    if not result["complete"]:
        ctx.fail(Exit.ERROR, f"not settled in time: {', '.join(result['still_waiting'])}")
