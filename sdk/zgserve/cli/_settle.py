# SPDX-License-Identifier: Apache-2.0
"""`zg provider settle`: ask the provider's billing to settle now, and watch it happen.

The request goes to billing over core NATS request/reply (`zg_shared.commands.SettleNow`);
billing answers with the accounts it flagged and settles them at its next pass. The command
then follows `serving.settlement.confirmed` on JetStream until every flagged account has a
confirmed settlement (or the timeout passes).
"""

from __future__ import annotations

import time
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError as NatsNotFound

from zg_shared.bus import nats_servers, shown, stream_for
from zg_shared.chain.types import Address
from zg_shared.commands import SettleNow, SettleNowReply
from zg_shared.events import SettlementConfirmedV1
from zgserve.cli._common import Context, Exit, describe


async def settle_now(
    ctx: Context, nats_url: str, provider: Address, user: Address | None, timeout_s: float
) -> dict[str, Any]:
    client = await _connect(ctx, nats_url)
    try:
        js = client.jetstream()
        subject = SettlementConfirmedV1.SUBJECT
        # Subscribed before asking, so no confirmation can slip between the two.
        try:
            watch = await js.pull_subscribe(
                subject,
                stream=stream_for(subject),
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.NEW,
                    ack_policy=AckPolicy.NONE,
                    inactive_threshold=60.0,
                ),
            )
        except NatsNotFound:
            ctx.fail(
                Exit.UNREACHABLE,
                f"NATS at {shown(nats_url)} has no stream {stream_for(subject)}: is the provider's "
                "billing running there?",
            )
        command = SettleNow(provider=provider, user=user)
        try:
            raw = await client.request(
                SettleNow.subject(provider), command.model_dump_json().encode(), timeout=10
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
                    confirmed = SettlementConfirmedV1.model_validate_json(message.data)
                    if confirmed.provider.lower() != provider.lower():
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


async def _connect(ctx: Context, nats_url: str) -> NatsClient:
    """Connected, or exit 6 naming the URL and why (nats-py itself would log a traceback per
    attempt and, told not to retry, keep retrying a server it never reached)."""
    seen: list[Exception] = []

    async def remember(exc: Exception) -> None:
        seen.append(exc)

    try:
        return await nats.connect(
            nats_servers(nats_url),
            connect_timeout=5,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            allow_reconnect=False,
            error_cb=remember,
        )
    except (OSError, TimeoutError, ValueError, nats.errors.Error) as exc:
        cause = describe(seen[-1]) if seen else describe(exc)
        ctx.fail(Exit.UNREACHABLE, f"cannot reach NATS at {shown(nats_url)}: {cause}")


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
