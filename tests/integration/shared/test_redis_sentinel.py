# SPDX-License-Identifier: Apache-2.0
"""Redis with Sentinel (zg_shared.localservers.RedisSentinels: a primary, a replica, three
sentinels, the repository's ACL users): a service's client (zg_shared.redisconn) follows a
failover without a restart, and with GATEWAY_REDIS_WAIT_REPLICAS a finished request is on
the replica before the gateway answers, so the primary's SIGKILL right after loses no fee."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tests.integration.gateway.test_ledger import open_account, paid
from tests.integration.polling import eventually
from zg_gateway.ledger import OUTBOX_KEY, Ledger
from zg_shared.accounts import AccountStore
from zg_shared.localservers import RedisSentinels
from zg_shared.redisconn import primary_address, redis_client
from zg_shared.settings import ServiceSettings

ETHER = 10**18


@pytest.fixture
def group() -> Iterator[RedisSentinels]:
    with RedisSentinels() as servers:
        yield servers


def settings(group: RedisSentinels, user: str, **more: object) -> ServiceSettings:
    return ServiceSettings(
        environment="test",
        redis_sentinels=group.sentinels,
        redis_master_name=RedisSentinels.MASTER_NAME,
        redis_username=user,
        redis_password=SecretStr(group.credentials.passwords[user]),
        redis_sentinel_password=SecretStr(group.sentinel_password),
        **more,  # type: ignore[arg-type]
    )


@pytest.fixture
async def gateway_redis(group: RedisSentinels) -> AsyncIterator[Redis]:
    """The gateway's client: through the sentinels, its bounded pool, its ACL user."""
    client = redis_client(settings(group, "gateway"), max_connections=8)
    yield client
    await client.aclose(close_connection_pool=True)


async def test_a_service_follows_a_failover_to_the_promoted_replica(
    group: RedisSentinels, gateway_redis: Redis
) -> None:
    await gateway_redis.ping()
    assert primary_address(gateway_redis) == ("127.0.0.1", group.ports[0])

    group.kill(0)
    killed = time.monotonic()

    async def writes_again() -> bool:
        try:
            await gateway_redis.incr("zg:acct:after")
        except (RedisConnectionError, RedisTimeoutError, ReadOnlyError):
            return False
        return True

    await eventually(writes_again, 30, "writes on the promoted replica")
    print(f"\n[redis failover] writes again {time.monotonic() - killed:.2f} s after SIGKILL")
    assert primary_address(gateway_redis) == ("127.0.0.1", group.ports[1])
    # Billing and the indexer open theirs the same way (their own ACL users).
    billing = redis_client(settings(group, "billing"))
    try:
        await billing.set("zg:billing:ok", "1")
    finally:
        await billing.aclose()


async def test_a_finished_request_is_on_the_replica_before_the_gateway_answers(
    group: RedisSentinels, gateway_redis: Redis
) -> None:
    store = AccountStore(gateway_redis)
    await open_account(store, balance=ETHER)
    replica = Redis.from_url(group.url("admin", 1))
    try:
        for ledger_options, nonces in (({}, range(1, 51)), ({"wait_replicas": 1}, range(51, 101))):
            ledger = Ledger(gateway_redis, **ledger_options)  # type: ignore[arg-type]
            began = time.perf_counter()
            for nonce in nonces:
                assert (await ledger.admit(paid(nonce), 0, ETHER, 1)).admitted
                assert await ledger.finish(
                    paid(nonce).user, paid(nonce).provider, nonce, charged=True,
                    outbox_entry=f"served-{nonce}",
                )  # fmt: skip
                if ledger_options:  # no waiting: the replica holds it as finish returns
                    assert await replica.lindex(OUTBOX_KEY, 0) == f"served-{nonce}".encode()
            per_finish_ms = (time.perf_counter() - began) * 1000 / len(nonces)
            print(f"\n[redis wait] {ledger_options or 'no WAIT'}: {per_finish_ms:.2f} ms/request")

        group.kill(0)  # right after the last answer: nothing in flight to the replica
        await eventually(lambda: _promoted(replica), 30, "the replica promoted")
        assert await replica.llen(OUTBOX_KEY) == 100
    finally:
        await replica.aclose()


async def _promoted(replica: Redis) -> bool:
    try:
        return bool((await replica.info("replication"))["role"] == "master")
    except RedisConnectionError:  # the sentinels close its clients as they promote it
        return False
