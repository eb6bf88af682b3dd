# SPDX-License-Identifier: Apache-2.0
"""`zg provider settle`: an operator makes billing settle now, whatever its policy says, and the
command waits until the settlement is confirmed on chain."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import nats
import pytest

from tests.integration.billing.conftest import Stack, running_billing
from tests.integration.jetstream import NatsLogins
from tests.integration.polling import eventually
from zg_billing.app import BillingApp
from zg_shared.commands import SettleNow, SettleNowReply

pytestmark = pytest.mark.slow
NEVER = {"threshold_fee_wei": 10**30, "sweep_interval_s": 10**6}
PROVIDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


async def zg(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zgserve.cli",
        "--json",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_provider_settle_settles_what_the_policy_would_not(
    stack: Stack, tmp_path: Path
) -> None:
    user = stack.users[0]
    fees = [await stack.send(user) for _ in range(3)]
    async with running_billing(stack, **NEVER) as billing:
        # The policy leaves it alone...
        for _ in range(20):
            if (await billing.settler.book.due_accounts()) and not await billing.settler.tick():
                break
            await asyncio.sleep(0.2)
        assert await stack.settled_on_chain() == []

        # ...until the operator asks, logged in as NATS's admin with the password in a file
        # (never on the command line).
        assert stack.nats_logins is not None
        admin = stack.nats_logins.settings("admin")
        password_file = tmp_path / "nats-password"
        password_file.write_text(admin["nats_password"] + "\n")
        code, out, err = await zg(
            "provider", "settle", "--provider", stack.provider.address,
            "--nats-url", admin["nats_url"], "--timeout", "120",
            env={"ZG_NATS_USERNAME": "admin", "ZG_NATS_PASSWORD_FILE": str(password_file)},
        )  # fmt: skip

    assert code == 0, err
    assert admin["nats_password"] not in out + err
    result = json.loads(out)
    assert result["flagged"] == [user.address]
    assert result["complete"] is True
    assert sum(s["total_fee"] for s in result["settlements"]) == sum(fees)
    on_chain = await stack.settled_on_chain()
    assert sum(e.amount for e in on_chain) == sum(fees)
    assert {s["tx_hash"] for s in result["settlements"]} == {
        e.position.transaction_hash for e in on_chain if e.position
    }


async def test_provider_settle_with_nothing_owed_says_so(stack: Stack) -> None:
    async with running_billing(stack, **NEVER):
        code, out, err = await zg(
            "provider", "settle", "--provider", stack.provider.address,
            "--nats-url", stack.nats_url,
        )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["flagged"] == []


async def test_provider_settle_without_billing_fails_clearly(stack: Stack) -> None:
    code, _, err = await zg(
        "provider", "settle", "--provider", stack.provider.address, "--nats-url", stack.nats_url
    )
    assert code == 6  # unreachable
    assert "no billing service answers" in err


async def test_settle_now_over_plain_nats_is_honoured_once_per_interval(stack: Stack) -> None:
    """Whoever reaches the bus could make billing spend gas on every request; billing honours
    one SettleNow per BILLING_SETTLE_NOW_INTERVAL_S and refuses the rest, flagging nothing."""
    user = stack.users[0]
    fees = [await stack.send(user)]
    async with running_billing(stack, **NEVER) as billing:
        await eventually(lambda: _booked(billing, 1), what="the request booked")
        nc = await nats.connect(stack.nats_url)
        try:

            async def ask() -> SettleNowReply:
                raw = await nc.request(
                    SettleNow.subject(stack.provider.address),
                    SettleNow(provider=stack.provider.address).model_dump_json().encode(),
                    timeout=10,
                )
                return SettleNowReply.model_validate_json(raw.data)

            first = await ask()
            assert first.users == (user.address,)
            assert first.retry_after_s == 0
            await eventually(lambda: _settled(stack, sum(fees)), what="the first settled")

            fees.append(await stack.send(user))
            await eventually(lambda: _booked(billing, 1), what="the next request booked")
            for _ in range(5):
                again = await ask()
                assert again.users == ()
                assert 0 < again.retry_after_s <= 60
            summaries = await billing.settler.book.due_accounts()
            assert [s.due_reason for s in summaries] == [""]
        finally:
            await nc.close()

        code, _, err = await zg(
            "provider", "settle", "--provider", stack.provider.address,
            "--nats-url", stack.nats_url,
        )  # fmt: skip
        assert code == 5
        assert "ask again" in err
        assert await _settled(stack, fees[0])  # the second request is still owed


async def _booked(billing: BillingApp, count: int) -> bool:
    return sum(s.unsettled_count for s in await billing.settler.book.due_accounts()) == count


async def _settled(stack: Stack, total: int) -> bool:
    return sum(e.amount for e in await stack.settled_on_chain()) == total


async def test_provider_settle_with_a_wrong_password_is_refused_in_one_line(
    nats_logins: NatsLogins,
) -> None:
    admin = nats_logins.settings("admin")
    guess = "zg" + "0" * 48
    code, out, err = await zg(
        "provider", "settle", "--provider", PROVIDER, "--nats-url", admin["nats_url"],
        env={"ZG_NATS_USERNAME": "admin", "ZG_NATS_PASSWORD": guess},
    )  # fmt: skip
    assert code == 5  # refused
    assert out == ""
    [line] = err.splitlines()
    assert json.loads(line) == {
        "error": f"NATS at {admin['nats_url']} refused user 'admin': wrong user or password "
        "(Authorization Violation)",
        "exit_code": 5,
    }
    assert guess not in err


async def test_provider_settle_as_a_service_user_is_refused(
    nats_logins: NatsLogins, tmp_path: Path
) -> None:
    """The gateway's NATS user may not ask billing to settle (nor watch the settlements): one
    line, exit 5, at once rather than after the request's timeout; the password never shown."""
    gateway = nats_logins.settings("gateway")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "ZG_NATS_PASSWORD").write_text(gateway["nats_password"])
    code, out, err = await zg(
        "provider", "settle", "--provider", PROVIDER, "--nats-url", gateway["nats_url"],
        "--nats-user", "gateway",
        env={"ZG_SECRETS_DIR": str(secrets)},
    )  # fmt: skip
    assert code == 5
    assert out == ""
    [line] = err.splitlines()
    error = json.loads(line)["error"]
    assert error.startswith("NATS refused user 'gateway' (permissions violation for publish to")
    assert error.endswith("asking billing to settle takes the operators' NATS user, 'admin'")
    assert gateway["nats_password"] not in err
