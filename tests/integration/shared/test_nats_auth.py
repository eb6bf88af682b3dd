# SPDX-License-Identifier: Apache-2.0
"""NATS started with the repository's own users and permissions (deploy/k8s/base/nats/auth.conf,
the file Kubernetes and compose load): nobody is anonymous, each service publishes only the
subjects it owns and touches only its own consumers, no service can purge, delete or change a
stream, and `ZG_SERVING` refuses purges and deletions even to the admin. Before, an anonymous
client forged `chain.fees.settled.v1`, purged `ZG_SERVING`, shortened `ZG_CHAIN`'s max age and
deleted billing's consumers (issue 12 items 1-2)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import SecretStr

from tests.integration.jetstream import fresh_streams
from tests.integration.polling import eventually
from zg_shared.bus import ONE_TRY, STREAM_CONFIGS, NatsAccess
from zg_shared.localservers import PrivateServer, find_binary
from zg_shared.natsauth import AUTH_CONF, NatsCredentials, inbox_prefix, password_variable

# Each service's own subject, and one it must not publish: what the issue forged.
OWN_AND_FORGED = {
    "gateway": ("serving.request.served.v1", "chain.fees.settled.v1"),
    "billing": ("serving.settlement.requested.v1", "chain.fees.settled.v1"),
    "prover": ("serving.proof.ready.v1", "serving.request.served.v1"),
    "chain-indexer": ("chain.fees.settled.v1", "serving.proof.failed.v1"),
}
REFUSED_WITHIN_S = 1.0


class Login:
    """A connection as one NATS user, keeping the errors the server sent it."""

    def __init__(self, client: NatsClient, errors: list[Exception]) -> None:
        self.client = client
        self.errors = errors
        self.js = client.jetstream(timeout=REFUSED_WITHIN_S)

    def violations(self) -> list[str]:
        return [str(e) for e in self.errors if "permissions violation" in str(e)]


@pytest.fixture
async def streams(nats_url: str) -> None:
    await fresh_streams(nats_url)


@pytest.fixture
async def login(
    nats_server: PrivateServer, nats_credentials: NatsCredentials
) -> AsyncIterator[object]:
    opened: list[NatsClient] = []

    async def as_user(user: str) -> Login:
        errors: list[Exception] = []

        async def remember(exc: Exception) -> None:
            errors.append(exc)

        access = NatsAccess(
            url=nats_server.url,
            username=user,
            password=SecretStr(nats_credentials.passwords[user]),
        )
        client = await access.connect(error_cb=remember)
        opened.append(client)
        return Login(client, errors)

    yield as_user
    for client in opened:
        await client.close()


async def messages(nats_url: str, stream: str) -> int:
    client = await nats.connect(nats_url)
    try:
        return int((await client.jetstream().stream_info(stream)).state.messages)
    finally:
        await client.close()


async def refused(access: NatsAccess) -> str:
    """Why the server refused this login (the client closed, its socket too)."""
    client = NatsClient()
    try:
        await client.connect(**access.connect_options(), **ONE_TRY)
    except nats.errors.Error as exc:
        return str(exc)
    finally:
        await client.close()
    raise AssertionError("logged in")


async def test_an_anonymous_client_is_refused(nats_server: PrivateServer) -> None:
    assert "Authorization Violation" in await refused(NatsAccess(url=nats_server.url))


async def test_a_wrong_password_is_refused(nats_server: PrivateServer) -> None:
    access = NatsAccess(url=nats_server.url, username="billing", password=SecretStr("guess"))
    assert "Authorization Violation" in await refused(access)


@pytest.mark.parametrize("user", sorted(OWN_AND_FORGED))
async def test_a_service_publishes_its_own_subjects_and_no_other(
    user: str, login: object, streams: None, nats_url: str
) -> None:
    service: Login = await login(user)  # type: ignore[operator]
    own, forged = OWN_AND_FORGED[user]
    ack = await service.js.publish(own, b"{}")
    assert ack.seq == 1

    stream = "ZG_CHAIN" if forged.startswith("chain.") else "ZG_SERVING"
    before = await messages(nats_url, stream)
    with pytest.raises(TimeoutError):  # the server drops it: no stream ever answers
        await service.js.publish(forged, json.dumps({"final_nonce": 2**64 - 1}).encode())
    assert await messages(nats_url, stream) == before
    assert service.violations() == [f'nats: permissions violation for publish to "{forged}"']


async def test_no_service_purges_deletes_or_changes_a_stream(
    login: object, streams: None, nats_url: str
) -> None:
    billing: Login = await login("billing")  # type: ignore[operator]
    indexer: Login = await login("chain-indexer")  # type: ignore[operator]
    await billing.js.publish("serving.settlement.requested.v1", b"{}")

    with pytest.raises(TimeoutError):
        await billing.js.purge_stream("ZG_SERVING")
    with pytest.raises(TimeoutError):
        await billing.js.delete_stream("ZG_SERVING")
    with pytest.raises(TimeoutError):
        await indexer.js.update_stream(replace(STREAM_CONFIGS[1], max_age=1.0))
    assert await messages(nats_url, "ZG_SERVING") == 1
    admin = await nats.connect(nats_url)
    try:
        chain = await admin.jetstream().stream_info("ZG_CHAIN")
        assert chain.config.max_age == STREAM_CONFIGS[1].max_age
    finally:
        await admin.close()
    assert len(billing.violations()) == 2
    assert len(indexer.violations()) == 1


async def test_zg_serving_refuses_purges_and_deletions_even_to_the_admin(
    streams: None, nats_url: str
) -> None:
    admin = await nats.connect(nats_url)
    js = admin.jetstream()
    try:
        ack = await js.publish("serving.request.served.v1", b"{}")
        with pytest.raises(nats.js.errors.APIError, match="purge not permitted"):
            await js.purge_stream("ZG_SERVING")
        with pytest.raises(nats.js.errors.APIError, match="delete not permitted"):
            await js.delete_msg("ZG_SERVING", ack.seq)
        with pytest.raises(nats.js.errors.APIError, match="can not cancel deny purge"):
            await js.update_stream(replace(STREAM_CONFIGS[0], deny_purge=False))
        assert (await js.stream_info("ZG_SERVING")).state.messages == 1
    finally:
        await admin.close()


async def test_a_service_touches_only_its_own_consumers(
    login: object, streams: None, nats_url: str
) -> None:
    """The gateway cannot delete billing's durable consumer, nor read from it; billing can make
    and read its own."""
    admin = await nats.connect(nats_url)
    try:
        await admin.jetstream().add_consumer(
            "ZG_SERVING",
            ConsumerConfig(
                durable_name="billing-served",
                filter_subject="serving.request.served.v1",
                ack_policy=AckPolicy.EXPLICIT,
            ),
        )
    finally:
        await admin.close()
    gateway: Login = await login("gateway")  # type: ignore[operator]
    with pytest.raises(TimeoutError):
        await gateway.js.delete_consumer("ZG_SERVING", "billing-served")
    with pytest.raises(TimeoutError):
        await gateway.js.consumer_info("ZG_SERVING", "billing-served")
    assert len(gateway.violations()) == 2

    billing: Login = await login("billing")  # type: ignore[operator]
    await gateway.js.publish("serving.request.served.v1", b'{"n": 1}')
    subscription = await billing.js.pull_subscribe_bind("billing-served", stream="ZG_SERVING")
    [message] = await subscription.fetch(1, timeout=5)
    await message.ack()
    assert message.data == b'{"n": 1}'
    assert billing.violations() == []


def own_consumer(name: str, subject: str, **config: Any) -> ConsumerConfig:
    """A durable pull consumer as the services make one (nats-py's pull_subscribe)."""
    return ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        **config,
    )


BILLING_SERVED = own_consumer("billing-served", "serving.request.served.v1")
PROVER = own_consumer("prover", "serving.settlement.requested.v1")


async def consumers(nats_url: str) -> dict[str, str | None]:
    """ZG_SERVING's consumers and their filter subjects, as the admin sees them."""
    admin = await nats.connect(nats_url)
    try:
        found = await admin.jetstream().consumers_info("ZG_SERVING")
        return {c.name: c.config.filter_subject for c in found}
    finally:
        await admin.close()


async def test_no_service_makes_changes_or_deletes_another_services_consumer(
    login: object, streams: None, nats_url: str
) -> None:
    """auth.conf lets each service create its consumers only by the API subject naming the
    consumer and its one filter subject; the server holds the request's body to both."""
    billing: Login = await login("billing")  # type: ignore[operator]
    prover: Login = await login("prover")  # type: ignore[operator]
    await billing.js.add_consumer("ZG_SERVING", BILLING_SERVED)
    await prover.js.add_consumer("ZG_SERVING", PROVER)
    before = await consumers(nats_url)
    assert before == {
        "billing-served": "serving.request.served.v1",
        "prover": "serving.settlement.requested.v1",
    }

    with pytest.raises(TimeoutError):  # another's name
        await prover.js.add_consumer("ZG_SERVING", BILLING_SERVED)
    with pytest.raises(TimeoutError):  # its own name, another event
        await prover.js.add_consumer(
            "ZG_SERVING", own_consumer("prover", "serving.request.served.v1")
        )
    with pytest.raises(TimeoutError):
        await billing.js.delete_consumer("ZG_SERVING", "prover")
    with pytest.raises(TimeoutError):
        await prover.js.delete_consumer("ZG_SERVING", "billing-served")
    assert len(prover.violations()) == 3
    assert len(billing.violations()) == 1

    # Through its own API subject, a body naming another consumer or filter is refused.
    own_subject = "$JS.API.CONSUMER.CREATE.ZG_SERVING.billing-served.serving.request.served.v1"
    for config in (
        replace(PROVER, filter_subject="serving.request.served.v1"),
        replace(BILLING_SERVED, filter_subject="serving.>"),
    ):
        body = json.dumps({"stream_name": "ZG_SERVING", "config": config.as_dict()})
        answer = await billing.client.request(own_subject, body.encode(), timeout=5)
        assert "error" in json.loads(answer.data), answer.data
    assert await consumers(nats_url) == before


async def test_replicas_share_their_consumer_and_may_update_it(
    login: object, streams: None, nats_url: str
) -> None:
    """Two instances of billing (leader and standby) or of the prover (a work queue) create or
    bind the same durable at once, and each reads from it; a new version of the service may
    change its own consumer's settings."""
    # Each consumer's events come from their owner: served requests from the gateway,
    # settlement requests from billing.
    publishers: list[Login] = [await login("gateway"), await login("billing")]  # type: ignore[operator]
    for user, config, publisher in (
        ("billing", BILLING_SERVED, publishers[0]),
        ("prover", PROVER, publishers[1]),
    ):
        instances: list[Login] = [await login(user), await login(user)]  # type: ignore[operator]
        assert config.filter_subject is not None
        assert config.durable_name is not None
        subscriptions = await asyncio.gather(
            *(
                i.js.pull_subscribe(
                    config.filter_subject,
                    durable=config.durable_name,
                    stream="ZG_SERVING",
                    config=replace(config),
                    inbox_prefix=f"{inbox_prefix(user)}.".encode(),
                )
                for i in instances
            )
        )
        for n in (1, 2):
            await publisher.js.publish(config.filter_subject, json.dumps({"n": n}).encode())
        read = []
        for subscription in subscriptions:  # one message each, in turn: both instances work
            [message] = await subscription.fetch(1, timeout=5)
            await message.ack()
            read.append(json.loads(message.data)["n"])
        assert read == [1, 2]
        updated = await instances[1].js.add_consumer(
            "ZG_SERVING", replace(config, ack_wait=45.0, max_ack_pending=500)
        )
        assert (updated.config.ack_wait, updated.config.max_ack_pending) == (45.0, 500)
        assert [i.violations() for i in instances] == [[], []]


async def test_a_service_hears_nothing_but_its_own_inbox(login: object, streams: None) -> None:
    """No service reads the events on the bus directly, or the replies meant for another
    (JetStream delivers a consumer's messages to its owner's inbox)."""
    gateway: Login = await login("gateway")  # type: ignore[operator]
    for subject in ("serving.>", "chain.>", f"{inbox_prefix('billing')}.>", "_INBOX.>"):
        with contextlib.suppress(nats.errors.Error):
            await gateway.client.subscribe(subject)
        await gateway.client.flush()

    async def all_refused() -> bool:
        return len([v for v in gateway.violations() if "subscription" in v]) == 4

    await eventually(all_refused, within_s=10, what="four subscriptions refused")


async def test_only_an_operator_asks_billing_to_settle(login: object, nats_url: str) -> None:
    """SettleNow spends gas on demand: the services may not send it, the admin may."""
    gateway: Login = await login("gateway")  # type: ignore[operator]
    billing: Login = await login("billing")  # type: ignore[operator]
    heard = await billing.client.subscribe("zg.billing.*.settle-now")
    await gateway.client.publish("zg.billing.0xprovider.settle-now", b"{}")
    await gateway.client.flush()

    async def refused() -> bool:
        return gateway.violations() == [
            'nats: permissions violation for publish to "zg.billing.0xprovider.settle-now"'
        ]

    await eventually(refused, what="the publish refused")
    admin = await nats.connect(nats_url)
    try:
        await admin.publish("zg.billing.0xprovider.settle-now", b"{}")
        await admin.flush()
        message = await heard.next_msg(timeout=5)  # the operator's, the only one
    finally:
        await admin.close()
    assert message.data == b"{}"
    assert heard.pending_msgs == 0


def test_generated_passwords_load_and_a_leading_digit_does_not() -> None:
    """nats-server reads a password variable as a bare word: the generated ones always load; a
    leading digit (as `openssl rand` or `token_urlsafe` may give) can stop the server, hence the
    `zg` prefix in docs/operations.md."""

    def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [find_binary("nats-server"), "--config", str(AUTH_CONF), "-t"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=30,
        )

    for _ in range(20):
        passwords = NatsCredentials.generate().server_env()
        assert check(passwords).returncode == 0
        assert all(re.fullmatch(r"zg[0-9a-f]{48}", p) for p in passwords.values())
    broken = check({**passwords, password_variable("gateway"): "4-abc"})
    assert broken.returncode != 0
    assert "ZG_NATS_PASSWORD_GATEWAY" in broken.stderr + broken.stdout
