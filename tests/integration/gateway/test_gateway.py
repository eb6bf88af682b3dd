# SPDX-License-Identifier: Apache-2.0
"""The gateway end to end over real HTTP: signed requests in, metered responses and receipts
out, every refusal changing nothing, and the served events on JetStream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from eth_account import Account as EthAccount

from tests.integration.gateway.conftest import (
    DEPOSIT,
    INPUT_PRICE,
    OUTPUT_PRICE,
    Provider,
    User,
    chat,
)
from zg_sample_backend import BackendSettings
from zg_shared.chain import checksum
from zg_shared.crypto import generate_private_key, request_message
from zg_shared.localservers import free_port
from zg_shared.receipts import Receipt, receipt_signer

CHAT = "/v1/proxy/chat/chat/completions"
WORDS = "hello there gateway"  # 3 input units


async def wait_for_events(
    provider: Provider, count: int, within_s: float = 60.0
) -> list[dict[str, Any]]:
    """The served events once there are `count` (what is there after `within_s`: a deadline
    for a loaded machine, where the outbox may take seconds; it returns at once when met)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        events = await provider.served_events()
        if len(events) >= count or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.05)


async def test_a_signed_request_is_served_metered_and_receipted(provider: Provider) -> None:
    user = provider.users[0]
    body = chat(WORDS)
    headers = user.headers(provider.address, input_fee=3 * INPUT_PRICE)

    status, response_headers, raw = await provider.post(CHAT, body, headers)

    assert status == 200, raw
    reply = json.loads(raw)
    completion_tokens = reply["usage"]["completion_tokens"]
    assert reply["usage"]["prompt_tokens"] == 3
    output_fee = completion_tokens * OUTPUT_PRICE
    assert response_headers["ZG-Output-Fee"] == str(output_fee)
    receipt = Receipt.for_bodies(
        request_message(user.address, provider.address, 1, 30),
        json.dumps(body).encode(),
        raw,
        output_fee,
    )
    assert receipt_signer(receipt, response_headers["ZG-Signature"]) == checksum(
        (await provider.serving.get_service(provider.address, "chat")).signer_address
    )
    state = await provider.state(user)
    assert state is not None
    assert (state.unsettled, state.output_debt, state.reserved) == (30, output_fee, 0)

    [event] = await wait_for_events(provider, 1)
    assert event["event_id"] == response_headers["ZG-Res-Key"]
    assert (event["user"], event["provider"], event["nonce"]) == (user.address, provider.address, 1)
    assert (event["fee"], event["input_fee"], event["previous_output_fee"]) == (30, 30, 0)
    assert (event["output_units"], event["output_fee"], event["outcome"]) == (
        completion_tokens,
        output_fee,
        "charged",
    )
    assert event["signature"] == headers["Signature"].lower()

    async with provider.http.get(
        f"{provider.url}/v1/proxy/chat/signature/{event['event_id']}"
    ) as resp:
        stored = await resp.json()
    assert stored["signature"] == response_headers["ZG-Signature"]
    assert stored["output_fee"] == output_fee


async def test_the_next_request_pays_the_previous_output_fee(provider: Provider) -> None:
    user = provider.users[0]
    _, first, _ = await provider.post(CHAT, chat(WORDS), user.headers(provider.address, 30))
    owed = int(first["ZG-Output-Fee"])

    status, second, _ = await provider.post(
        CHAT, chat(WORDS), user.headers(provider.address, 30, previous_output_fee=owed)
    )

    assert status == 200
    state = await provider.state(user)
    assert state is not None
    assert state.unsettled == 30 + 30 + owed
    assert state.output_debt == int(second["ZG-Output-Fee"])


async def test_embeddings_charge_input_only(provider: Provider) -> None:
    user = provider.users[0]
    body = {"model": "zg-demo-1", "input": ["one two", "three"]}
    status, headers, raw = await provider.post(
        "/v1/proxy/chat/embeddings", body, user.headers(provider.address, 30)
    )
    assert status == 200, raw
    assert headers["ZG-Output-Fee"] == "0"
    assert len(json.loads(raw)["data"]) == 2


def _tamper(headers: dict[str, str]) -> dict[str, str]:
    signature = headers["Signature"]
    return {**headers, "Signature": signature[:-1] + ("0" if signature[-1] != "0" else "1")}


REFUSALS = [
    # (name, how to build (headers, body, path), status, code)
    (
        "missing header",
        lambda u, p: (
            {k: v for k, v in u.headers(p, 30).items() if k != "Nonce"},
            chat(WORDS),
            CHAT,
        ),
        400,
        "missing_header",
    ),
    (
        "not a number",
        lambda u, p: ({**u.headers(p, 30), "Input-Fee": "-1"}, chat(WORDS), CHAT),
        400,
        "invalid_header",
    ),
    (
        "fee mismatch",
        lambda u, p: ({**u.headers(p, 30), "Fee": "31"}, chat(WORDS), CHAT),
        400,
        "fee_mismatch",
    ),
    (
        "input fee too low",
        lambda u, p: (u.headers(p, 29), chat(WORDS), CHAT),
        400,
        "input_fee_too_low",
    ),
    (
        "bad signature",
        lambda u, p: (_tamper(u.headers(p, 30)), chat(WORDS), CHAT),
        401,
        "invalid_signature",
    ),
    (
        "signed for another fee",
        lambda u, p: ({**u.headers(p, 40), "Input-Fee": "30", "Fee": "30"}, chat(WORDS), CHAT),
        401,
        "invalid_signature",
    ),
    (
        "unknown service",
        lambda u, p: (u.headers(p, 30), chat(WORDS), "/v1/proxy/nope/chat/completions"),
        404,
        "unknown_service",
    ),
    (
        "unknown endpoint",
        lambda u, p: (u.headers(p, 30), chat(WORDS), "/v1/proxy/chat/images/generations"),
        404,
        "unknown_endpoint",
    ),
    (
        "overpaid debt",
        lambda u, p: (u.headers(p, 30, previous_output_fee=10**6), chat(WORDS), CHAT),
        400,
        "overpaid",
    ),
    (
        "balance",
        lambda u, p: (u.headers(p, DEPOSIT), chat(WORDS), CHAT),
        402,
        "insufficient_balance",
    ),
    ("malformed json", lambda u, p: (u.headers(p, 30), None, CHAT), 400, "invalid_json"),
    (
        "bad messages",
        lambda u, p: (u.headers(p, 30), {"messages": "hi"}, CHAT),
        400,
        "invalid_body",
    ),
]


@pytest.mark.parametrize(
    ("name", "build", "status", "code"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
async def test_each_refusal_says_why_and_changes_nothing(
    provider: Provider, name: str, build: Any, status: int, code: str
) -> None:
    user = provider.users[0]
    await provider.post(CHAT, chat(WORDS), user.headers(provider.address, 30))  # some state to keep
    await wait_for_events(provider, 1)
    before = await provider.state(user)

    headers, body, path = build(user, provider.address)
    if body is None:
        async with provider.http.post(
            f"{provider.url}{path}",
            data=b"{not json",
            headers={**headers, "Content-Type": "application/json"},
        ) as resp:
            got_status, raw = resp.status, await resp.read()
    else:
        got_status, _, raw = await provider.post(path, body, headers)

    assert got_status == status, raw
    error = json.loads(raw)["error"]
    assert error["code"] == code
    assert error["message"]
    assert await provider.state(user) == before
    await asyncio.sleep(0.2)
    assert len(await provider.served_events()) == 1


async def test_a_reused_nonce_is_a_conflict(provider: Provider) -> None:
    user = provider.users[0]
    headers = user.headers(provider.address, 30)
    assert (await provider.post(CHAT, chat(WORDS), headers))[0] == 200
    status, _, raw = await provider.post(CHAT, chat(WORDS), headers)
    assert status == 409
    assert json.loads(raw)["error"]["code"] == "nonce_reused"


async def test_a_user_without_an_account_must_deposit_first(provider: Provider) -> None:
    stranger = User(EthAccount.from_key("0x" + "77" * 32), generate_private_key())
    status, _, raw = await provider.post(CHAT, chat(WORDS), stranger.headers(provider.address, 30))
    assert status == 402
    assert json.loads(raw)["error"]["code"] == "no_account"


async def test_a_body_over_the_limit_is_413(provider: Provider) -> None:
    user = provider.users[0]
    status, _, raw = await provider.post(
        CHAT, chat("word " * 20_000), user.headers(provider.address, 30)
    )
    assert status == 413
    assert json.loads(raw)["error"]["code"] == "body_too_large"
    assert await provider.state(user) is None  # the gateway never got far enough to load it


async def test_100_concurrent_requests_with_one_nonce_are_served_once(provider: Provider) -> None:
    user = provider.users[0]
    headers = user.headers(provider.address, 30)
    results = await asyncio.gather(*(provider.post(CHAT, chat(WORDS), headers) for _ in range(100)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses.count(200) == 1
    assert statuses.count(409) == 99
    assert len(await wait_for_events(provider, 1)) == 1
    await asyncio.sleep(0.3)
    assert len(await provider.served_events()) == 1


# Slow enough that all fifty are admitted (or refused, after a fresh read of the chain)
# before any finishes and frees its reservation.
@pytest.mark.parametrize(
    "backend_settings", [BackendSettings(port=free_port(), first_token_latency_ms=3000.0)]
)
async def test_a_balance_for_ten_requests_serves_ten_of_fifty(provider: Provider) -> None:
    # Each request needs 30 (input) + 100 x 20 (reserved output) = 2030 wei of balance.
    poor = provider.users[1]
    await provider.serving.as_sender(poor.key).request_refund(
        provider.address, DEPOSIT - 10 * 2030 - 5
    )
    results = await asyncio.gather(
        *(provider.post(CHAT, chat(WORDS), poor.headers(provider.address, 30)) for _ in range(50))
    )
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 10
    assert statuses.count(402) == 40
    state = await provider.state(poor)
    assert state is not None
    assert state.unsettled + state.output_debt <= 10 * 2030 + 5
    assert state.unsettled == 10 * 30
    assert state.reserved == 0
    assert state.output_debt == sum(int(h["ZG-Output-Fee"]) for s, h, _ in results if s == 200)
    assert len(await wait_for_events(provider, 10)) == 10


async def read_sse(
    provider: Provider, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    async with provider.http.post(f"{provider.url}{CHAT}", json=body, headers=headers) as resp:
        try:
            raw = await resp.read()
        except Exception:  # a stream the backend broke off
            raw = b""
        return resp.status, dict(resp.headers), raw


async def test_a_stream_is_relayed_and_metered_from_its_usage_chunk(provider: Provider) -> None:
    user = provider.users[0]
    status, headers, raw = await read_sse(
        provider, chat(WORDS, stream=True), user.headers(provider.address, 30)
    )

    assert status == 200
    text = raw.decode()
    data = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    usage = next(d["usage"] for d in data if d.get("usage"))
    assert text.count("data: [DONE]") == 1
    comment = next(line for line in text.splitlines() if line.startswith(": zg-receipt"))
    fields = dict(part.split("=", 1) for part in comment.split()[2:])
    assert fields["id"] == headers["ZG-Res-Key"]
    assert int(fields["output_fee"]) == usage["completion_tokens"] * OUTPUT_PRICE
    [event] = await wait_for_events(provider, 1)
    assert (event["outcome"], event["streamed"]) == ("charged", True)
    assert event["output_units"] == usage["completion_tokens"]
    state = await provider.state(user)
    assert state is not None
    assert (state.unsettled, state.output_debt, state.reserved) == (
        30,
        int(fields["output_fee"]),
        0,
    )


@pytest.mark.parametrize(
    "backend_settings", [BackendSettings(port=free_port(), fail_after_chunks=3)]
)
async def test_a_stream_the_backend_breaks_off_costs_nothing(provider: Provider) -> None:
    user = provider.users[0]
    headers = user.headers(provider.address, 30)
    status, _, raw = await read_sse(provider, chat(WORDS, stream=True), headers)

    assert status == 200
    assert b"[DONE]" not in raw
    [event] = await wait_for_events(provider, 1)
    assert (event["outcome"], event["reason"]) == ("voided", "backend_broke_off")
    state = await provider.state(user)
    assert state is not None
    assert (state.unsettled, state.output_debt, state.reserved) == (0, 0, 0)
    again, _, _ = await provider.post(CHAT, chat(WORDS), headers)
    assert again == 409  # the nonce stays burned


@pytest.mark.parametrize(
    "backend_settings", [BackendSettings(port=free_port(), status_override=503)]
)
async def test_a_backend_error_is_passed_on_and_costs_nothing(provider: Provider) -> None:
    user = provider.users[0]
    status, _, raw = await provider.post(CHAT, chat(WORDS), user.headers(provider.address, 30))
    assert status == 503
    assert "error" in json.loads(raw)
    [event] = await wait_for_events(provider, 1)
    assert event["outcome"] == "voided"
    state = await provider.state(user)
    assert state is not None
    assert (state.unsettled, state.reserved) == (0, 0)


# The service's backend, in the gateway's configuration, is a closed port.
@pytest.mark.parametrize(
    "gateway_overrides", [{"backends": {"chat": f"http://127.0.0.1:{free_port()}/v1"}}]
)
async def test_an_unreachable_backend_is_502_and_costs_nothing(provider: Provider) -> None:
    user = provider.users[0]

    status, _, raw = await provider.post(CHAT, chat(WORDS), user.headers(provider.address, 30))

    assert status == 502
    assert json.loads(raw)["error"]["code"] == "backend_unavailable"
    state = await provider.state(user)
    assert state is not None
    assert (state.unsettled, state.reserved) == (0, 0)


async def test_the_service_list_shows_prices(provider: Provider) -> None:
    async with provider.http.get(f"{provider.url}/v1/services") as resp:
        listed = await resp.json()
    # Filled from the chain by the first request, or now if none came yet.
    if not listed["data"]:
        await provider.post(CHAT, chat(WORDS), provider.users[0].headers(provider.address, 30))
        async with provider.http.get(f"{provider.url}/v1/services") as resp:
            listed = await resp.json()
    [service] = listed["data"]
    assert (service["name"], service["input_price"], service["output_price"]) == (
        "chat",
        INPUT_PRICE,
        OUTPUT_PRICE,
    )


async def test_health_and_readiness_on_the_internal_port_only(provider: Provider) -> None:
    async with provider.http.get(f"{provider.health_url}/healthz") as resp:
        assert resp.status == 200
    async with provider.http.get(f"{provider.health_url}/readyz") as resp:
        body = await resp.json()
        assert resp.status == 200, body
        assert set(body["checks"]) == {"redis", "nats", "chain"}
    async with provider.http.get(f"{provider.health_url}/metrics") as resp:
        assert resp.status == 200
    for path in ("/healthz", "/readyz", "/metrics"):  # not on the users' port (issue 12 item 8)
        async with provider.http.get(f"{provider.url}{path}") as resp:
            assert resp.status == 404, path


async def test_a_flushed_redis_is_refilled_from_the_chain(provider: Provider) -> None:
    user = provider.users[0]
    assert (await provider.post(CHAT, chat(WORDS), user.headers(provider.address, 30)))[0] == 200
    await provider.redis.flushdb()

    status, _, raw = await provider.post(CHAT, chat(WORDS), user.headers(provider.address, 30))

    assert status == 200, raw
    state = await provider.state(user)
    assert state is not None
    assert state.balance == DEPOSIT
