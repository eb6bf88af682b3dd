# SPDX-License-Identifier: Apache-2.0
"""An insider on the bus as one service stores copies under the subjects other services consume
(docs/security.md, "names a stream subject as the reply"): NATS checks no reply subject, so a
publish, a JetStream API request or a `MSG.NEXT` naming a stream subject as its reply has
JetStream store the answer under that subject. Each consumer (billing's seven, the prover's,
the indexer's read-back, `zg provider settle`) is handed, on each subject it reads, what such
a copy can be, and (billing, the prover) a genuine event's payload of another subject and a
duplicate of its own: nothing changes (balances, nonces, the book, settlements), each copy is
rejected or acked once with one line (never redelivered, no traceback), and the next genuine
request is still served, proven and settled.

What lands where was measured here on nats-server: the answer to a publish or API request is
stored under the reply subject; a `MSG.NEXT` copy keeps the event's own subject (the other
stream refuses a service's event for its `Nats-Expected-Stream` header, and stores other
messages where no consumer reads them; in its own stream its `Nats-Msg-Id` makes it a
duplicate, dropped within the window): a payload of another subject under a consumed one, or
a duplicate past the window, is therefore published directly with the owner's credentials."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from nats.aio.client import Client as NatsClient
from pydantic import SecretStr

from tests.integration.billing.conftest import (
    Stack,
    assert_paid_once,
    build_stack,
    running_billing,
    running_prover,
    settled_once,
)
from tests.integration.billing.test_settle_now import zg
from tests.integration.jetstream import NatsLogins
from tests.integration.polling import eventually
from zg_billing.book import bill_key
from zg_billing.records import EARLY_KEY, SettlementStore
from zg_chain_indexer.stream import published_positions
from zg_shared.bus import NatsAccess
from zg_shared.chain import Web3Client
from zg_shared.commands import SettleNow

pytestmark = pytest.mark.slow

SERVED = "serving.request.served.v1"
REQUESTED = "serving.settlement.requested.v1"
READY = "serving.proof.ready.v1"
FAILED = "serving.proof.failed.v1"
FEES = "chain.fees.settled.v1"
REFUND = "chain.refund.requested.v1"
ROTATED = "chain.signer.rotated.v1"
REORG = "chain.reorg.detected.v1"
ACCOUNT = "chain.account.updated.v1"
CONFIRMED = "serving.settlement.confirmed.v1"
NEVER = {"threshold_fee_wei": 10**30, "sweep_interval_s": 10**6}
# Every consumed subject: its stream, its consumer, the service publishing it, and a genuine
# payload of another subject to hand it.
CONSUMED = {
    SERVED: ("ZG_SERVING", "billing-served", "gateway", REQUESTED),
    REQUESTED: ("ZG_SERVING", "prover", "billing", READY),
    READY: ("ZG_SERVING", "billing-proof-ready", "prover", SERVED),
    FAILED: ("ZG_SERVING", "billing-proof-failed", "prover", SERVED),
    FEES: ("ZG_CHAIN", "billing-fees-settled", "chain-indexer", ACCOUNT),
    REFUND: ("ZG_CHAIN", "billing-refund-requested", "chain-indexer", FEES),
    ROTATED: ("ZG_CHAIN", "billing-signer-rotated", "chain-indexer", FEES),
    REORG: ("ZG_CHAIN", "billing-reorg", "chain-indexer", FEES),
}
# Genuine events this flow has, each duplicated by its publisher under its own subject (a
# proof failure, a key rotation and a reorg it has none of).
DUPLICATED = (SERVED, REQUESTED, READY, FEES, REFUND)
# What the reply-subject trick stores, and the rejection line naming it.
TRICKS = ("a JetStream publish ack", "a JetStream API reply", "an empty message")


@contextlib.asynccontextmanager
async def _insiders(stack: Stack) -> AsyncIterator[dict[str, NatsClient]]:
    """A connection as each service's NATS user (its own password, its own permissions)."""
    assert stack.nats_logins is not None
    opened: dict[str, NatsClient] = {}
    try:
        for user in ("gateway", "billing", "prover", "chain-indexer"):
            access = NatsAccess(
                url=stack.nats_logins.server_url,
                username=user,
                password=SecretStr(stack.nats_logins.credentials.passwords[user]),
            )
            opened[user] = await access.connect()
        yield opened
    finally:
        for client in opened.values():
            await client.close()


@pytest.fixture
async def insiders(stack: Stack) -> AsyncIterator[dict[str, NatsClient]]:
    async with _insiders(stack) as opened:
        yield opened


async def stored(stack: Stack, stream: str) -> list[tuple[str, bytes]]:
    info = await stack.js.stream_info(stream)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await stack.js.get_msg(stream, seq)
        found.append((message.subject or "", message.data or b""))
    return found


async def genuine(stack: Stack, subject: str) -> bytes:
    """The payload of the first event the services published under `subject`."""
    stream = "ZG_CHAIN" if subject.startswith("chain.") else "ZG_SERVING"
    return next(data for s, data in await stored(stack, stream) if s == subject)


async def state(stack: Stack) -> dict[str, Any]:
    """Everything the copies must leave as it was: the user's account in Redis, billing's
    book of it, its settlements, the contract's account and what it paid."""
    user = stack.users[0]
    account = await stack.serving.get_account(user.address, stack.provider.address)
    return {
        "view": await stack.state(user),
        "bill": await stack.redis.hgetall(bill_key(user.address, stack.provider.address)),
        "open": await SettlementStore(stack.redis).open_records(),
        "early": await stack.redis.smembers(EARLY_KEY),
        "chain": (account.balance, account.nonce),
        "settled": await stack.settled_on_chain(),
        "confirmed": len(await stack.confirmations()),
    }


async def drained(stack: Stack) -> bool:
    """Every consumer has had every message acked or rejected: none waits, none in flight."""
    for stream, consumer, _, _ in CONSUMED.values():
        info = await stack.js.consumer_info(stream, consumer)
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def copy_by_reply(insiders: dict[str, NatsClient], subject: str) -> None:
    """Two copies the trick makes, each by one service with its own permissions: billing's
    publish ack and the gateway's stream-info reply."""
    billing, gateway = insiders["billing"], insiders["gateway"]
    await billing.publish("serving.settlement.failed.v1", b"{}", reply=subject)
    await gateway.publish("$JS.API.STREAM.INFO.ZG_SERVING", b"", reply=subject)
    await billing.flush()
    await gateway.flush()


async def empty_status_by_reply(insiders: dict[str, NatsClient]) -> None:
    """The third: the prover's `MSG.NEXT` (no wait) on its idle consumer, answered by an empty
    `404 No Messages` status under each subject; its own subject last, so each request finds
    the consumer empty."""
    prover = insiders["prover"]
    for subject in sorted(CONSUMED, key=lambda s: s == REQUESTED):
        await prover.publish(
            "$JS.API.CONSUMER.MSG.NEXT.ZG_SERVING.prover",
            json.dumps({"batch": 1, "no_wait": True}).encode(),
            reply=subject,
        )
        await prover.flush()


def dropped(caplog: pytest.LogCaptureFixture, subject: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "zg_shared.busread" and f"dropped a message on {subject} " in r.getMessage()
    ]


async def test_copies_on_every_consumed_subject_change_nothing(
    stack: Stack, insiders: dict[str, NatsClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    user = stack.users[0]
    async with running_billing(stack):
        fees = [await stack.send(user)]
        await eventually(functools.partial(settled_once, stack, fees), what="request 1 settled")
        await stack.serving.as_sender(user.key).request_refund(stack.provider.address, 1)

        async def refund_published() -> bool:
            return any(s == REFUND for s, _ in await stored(stack, "ZG_CHAIN"))

        await eventually(refund_published, within_s=20, what="the refund request published")
        await eventually(functools.partial(drained, stack), what="the consumers idle")
        before = await state(stack)
        wanted = {*DUPLICATED, *(other for _, _, _, other in CONSUMED.values())}
        payloads = {s: await genuine(stack, s) for s in wanted}

        await empty_status_by_reply(insiders)
        for subject, (_, _, owner, other) in CONSUMED.items():
            await copy_by_reply(insiders, subject)
            # Another subject's genuine event, by the subject's own publisher.
            await insiders[owner].publish(subject, payloads[other])
            if subject in DUPLICATED:  # its own event again, as a copy past the window is
                await insiders[owner].publish(subject, payloads[subject])
            await insiders[owner].flush()

        # Where the trick's answers landed: under the consumed subjects themselves.
        for subject, data in await stored(stack, "ZG_CHAIN"):
            if subject == FEES and data.startswith(b'{"stream"'):
                assert set(json.loads(data)) == {"stream", "seq"}
                break
        else:
            raise AssertionError("no publish ack stored under chain.fees.settled.v1")

        await eventually(functools.partial(drained, stack), what="every copy consumed")
        # The duplicated settlement request was proven again; billing ignores that proof.
        await eventually(
            lambda: _logged(caplog, "ignored: it is confirmed"), what="the second proof ignored"
        )
        assert await state(stack) == before
        assert await _logged(caplog, "confirmed already, nothing to do")  # the FeesSettled
        for subject in CONSUMED:
            lines = dropped(caplog, subject)
            assert len(lines) == len(TRICKS) + 1, (subject, lines)
            for kind in TRICKS:
                assert any(kind in line for line in lines), (subject, kind, lines)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
            r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
        ]
        for stream, consumer, _, _ in CONSUMED.values():
            assert (await stack.js.consumer_info(stream, consumer)).num_redelivered == 0

        # Every consumer still works: the next request is booked, proven and settled.
        fees.append(await stack.send(user, "and me too"))
        await eventually(functools.partial(settled_once, stack, fees), what="request 2 settled")
    await assert_paid_once(stack, fees)


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)


async def test_copies_in_zg_chain_do_not_move_or_stop_the_indexers_read_back(
    stack: Stack, insiders: dict[str, NatsClient], caplog: pytest.LogCaptureFixture
) -> None:
    """The indexer reads the stream's newest chain event back to know where publishing stopped
    (zg_chain_indexer.stream). What the trick stores after it is none: its answers, and junk
    the gateway published on its own subject copied by billing's `MSG.NEXT` (a JSON list, a
    `position` that is none), which before stopped the read-back, so the indexer could not
    start."""
    caplog.set_level(logging.INFO)
    assert stack.nats_logins is not None
    user = stack.users[0]
    await stack.send(user)  # a served event for billing to copy
    # A chain event for the indexer to publish: the user's deposit.
    await stack.serving.as_sender(user.key).deposit_fund(stack.provider.address, value=1)
    indexer = NatsAccess(**_login(stack, "chain-indexer"))

    async def published() -> bool:
        return bool(await published_positions(indexer, 1))

    await eventually(published, within_s=20, what="the deposit's event published")
    newest = await published_positions(indexer, 1)

    gateway, billing = insiders["gateway"], insiders["billing"]
    for junk in (b"[1]", b'{"position": "nowhere"}'):
        await gateway.publish(SERVED, junk)
    await gateway.flush()
    rebuild = {
        "stream_name": "ZG_SERVING",
        "config": {
            "name": "billing-rebuild",
            "durable_name": "billing-rebuild",
            "filter_subject": SERVED,
            "ack_policy": "none",
            "deliver_policy": "all",
        },
    }
    created = await billing.request(
        f"$JS.API.CONSUMER.CREATE.ZG_SERVING.billing-rebuild.{SERVED}",
        json.dumps(rebuild).encode(),
        timeout=5,
    )
    assert "error" not in json.loads(created.data), created.data
    before = len(await stored(stack, "ZG_CHAIN"))
    for _ in range(3):  # the served event, then the two pieces of junk
        await billing.publish(
            "$JS.API.CONSUMER.MSG.NEXT.ZG_SERVING.billing-rebuild", b'{"batch": 1}', reply=ACCOUNT
        )
    await copy_by_reply(insiders, ACCOUNT)

    async def all_stored() -> bool:
        return len(await stored(stack, "ZG_CHAIN")) == before + 4

    await eventually(all_stored, within_s=10, what="four copies in ZG_CHAIN")
    copies = (await stored(stack, "ZG_CHAIN"))[before:]
    # MSG.NEXT copies keep their subject; the genuine served event is not among them: its
    # `Nats-Expected-Stream: ZG_SERVING` header makes ZG_CHAIN refuse the copy.
    assert sorted(d for s, d in copies if s == SERVED) == [b"[1]", b'{"position": "nowhere"}']

    again = await published_positions(indexer, 1)
    assert again == newest
    skipped = [r.getMessage() for r in caplog.records if "no chain event" in r.getMessage()]
    assert skipped == [], skipped  # the junk is under a serving subject: passed over silently


def _login(stack: Stack, user: str) -> dict[str, Any]:
    assert stack.nats_logins is not None
    return {
        "url": stack.nats_logins.server_url,
        "username": user,
        "password": SecretStr(stack.nats_logins.credentials.passwords[user]),
    }


@pytest.fixture
async def unproven(
    w3: Web3Client,
    keys: list[LocalAccount],
    redis_url: str,
    nats_url: str,
    nats_logins: NatsLogins,
) -> AsyncIterator[Stack]:
    """The pipeline, each service on its own NATS user, no prover until the test starts one."""
    async for built in build_stack(
        w3, keys, redis_url, nats_url, prover=False, nats_logins=nats_logins
    ):
        yield built


async def test_copies_do_not_stop_an_operator_waiting_for_a_settlement(
    unproven: Stack, tmp_path: Path
) -> None:
    """`zg provider settle` follows `serving.settlement.confirmed.v1` until its accounts are
    settled: copies stored there meanwhile (any service's publish ack, API reply or empty
    status) are passed over with one line each; before, the first one ended the command
    (`invalid values`, exit 2) while billing went on settling."""
    stack = unproven
    user = stack.users[0]
    assert stack.nats_logins is not None
    admin = stack.nats_logins.settings("admin")
    password_file = tmp_path / "nats-password"
    password_file.write_text(admin["nats_password"] + "\n")
    fees = [await stack.send(user)]
    async with running_billing(stack, **NEVER), _insiders(stack) as insiders:
        args = ["provider", "settle", "--provider", stack.provider.address]
        args += ["--nats-url", admin["nats_url"], "--timeout", "60"]
        env = {"ZG_NATS_USERNAME": "admin", "ZG_NATS_PASSWORD_FILE": str(password_file)}
        command = asyncio.create_task(zg(*args, env=env))

        async def following() -> bool:  # the command's own consumer of the confirmations
            found = await stack.js.consumers_info("ZG_SERVING")
            return any(c.config.filter_subject == CONFIRMED for c in found)

        await eventually(following, within_s=30, what="the command following confirmations")
        await copy_by_reply(insiders, CONFIRMED)
        await insiders["billing"].publish(
            "$JS.API.CONSUMER.MSG.NEXT.ZG_SERVING.billing-proof-failed",
            json.dumps({"batch": 1, "no_wait": True}).encode(),
            reply=CONFIRMED,
        )
        await insiders["billing"].flush()

        async def copies_stored() -> bool:
            stored_now = await stored(stack, "ZG_SERVING")
            return len([1 for s, d in stored_now if s == CONFIRMED and b"event_id" not in d]) == 3

        await eventually(copies_stored, within_s=10, what="three copies stored")
        async with running_prover(stack):  # only now can the settlement be confirmed
            code, out, err = await command
    assert code == 0, err
    result = json.loads(out)
    assert result["complete"] is True
    assert sum(s["total_fee"] for s in result["settlements"]) == sum(fees)
    assert err.count(f"dropped a message on {CONFIRMED}") == 3, err
    assert "Traceback" not in err


async def test_copies_under_served_do_not_stop_billings_rebuild(
    stack: Stack, insiders: dict[str, NatsClient], caplog: pytest.LogCaptureFixture
) -> None:
    """When Redis lost billing's view (a flush, a failover) billing replays every served
    request from ZG_SERVING, where copies stored under `serving.request.served.v1` stay (no one
    may purge it). Before, the replay stopped at the first copy, every pass again: the requests
    after it were never booked again, so never settled, and the view never marked whole."""
    caplog.set_level(logging.INFO)
    await copy_by_reply(insiders, SERVED)
    await insiders["prover"].publish(
        "$JS.API.CONSUMER.MSG.NEXT.ZG_SERVING.prover",
        json.dumps({"batch": 1, "no_wait": True}).encode(),
        reply=SERVED,
    )
    await insiders["prover"].flush()
    fees = [await stack.send(stack.users[0])]

    async def stored_in_order() -> bool:
        found = [d for s, d in await stored(stack, "ZG_SERVING") if s == SERVED]
        return len(found) == 4 and b"event_id" in found[-1]  # three copies, then the event

    await eventually(stored_in_order, within_s=10, what="three copies, then the event")
    async with running_billing(stack, **NEVER):  # books the request, acks, settles nothing
        await eventually(functools.partial(drained, stack), what="the request booked")
    await stack.redis.flushdb()  # the view lost: only the replay can book the request again

    caplog.clear()
    async with running_billing(stack):
        await eventually(
            functools.partial(settled_once, stack, fees), within_s=30, what="rebuilt and settled"
        )
    await assert_paid_once(stack, fees)
    done = [r.getMessage() for r in caplog.records if r.name == "zg_billing.rebuild"]
    assert "rebuild done: 4 served requests replayed" in done
    assert len(dropped(caplog, SERVED)) == 3  # by the replay; the consumer had them already


async def test_a_copy_sent_to_billings_command_subject_is_no_settle_now(
    unproven: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Only operators may publish `SettleNow` (each settlement costs gas), but a reply subject
    is not checked: the prover, naming billing's command subject as the reply of its own
    `MSG.NEXT`, has a settlement request delivered there, whose `provider` made it a valid
    `SettleNow` for every account. A command now has exactly a command's fields."""
    caplog.set_level(logging.INFO)
    stack = unproven
    first, second = stack.users
    await stack.send(first)
    await stack.send(second)
    async with running_billing(stack, **NEVER) as billing, _insiders(stack) as insiders:

        async def both_booked() -> bool:
            return len(await billing.settler.book.due_accounts()) == 2

        await eventually(both_booked, what="both requests booked")
        await billing.settler.settle_now(first.address)  # as the policy might: one account

        async def requested() -> list[str]:
            return [
                batch["user"]
                for s, d in await stored(stack, "ZG_SERVING")
                if s == REQUESTED
                for batch in json.loads(d)["batches"]
            ]

        async def first_requested() -> bool:
            return await requested() == [first.address]

        await eventually(first_requested, what="the first user's settlement requested")

        # The prover's own consumer (as the prover makes it), then the copy.
        prover = insiders["prover"]
        config = {
            "name": "prover",
            "durable_name": "prover",
            "filter_subject": REQUESTED,
            "ack_policy": "explicit",
        }
        created = await prover.request(
            f"$JS.API.CONSUMER.CREATE.ZG_SERVING.prover.{REQUESTED}",
            json.dumps({"stream_name": "ZG_SERVING", "config": config}).encode(),
            timeout=5,
        )
        assert "error" not in json.loads(created.data), created.data
        await prover.publish(
            "$JS.API.CONSUMER.MSG.NEXT.ZG_SERVING.prover",
            b'{"batch": 1}',
            reply=SettleNow.subject(stack.provider.address),
        )
        await prover.flush()

        async def refused() -> bool:
            return any("is not a SettleNow" in r.getMessage() for r in caplog.records)

        await eventually(refused, within_s=10, what="the copy refused")
        assert await requested() == [first.address]
        # The second account is not flagged either: it waits for the policy, as before.
        assert [s.due_reason for s in await billing.settler.book.due_accounts()] == ["", ""]
