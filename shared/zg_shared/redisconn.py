# SPDX-License-Identifier: Apache-2.0
"""The one way a service opens Redis: `redis_client(settings)`.

With `REDIS_SENTINELS` (host:port, comma-separated) the client asks the sentinels where the
primary of `REDIS_MASTER_NAME` is and asks again when a connection fails: a failover (a replica
promoted) is followed without a restart. Without, `REDIS_URL` is the server. Either way the
service logs in as its ACL user (`REDIS_USERNAME`, the password from a secret file), over TLS
with `rediss://`; the sentinels may have a login of their own (`REDIS_SENTINEL_USERNAME`,
`REDIS_SENTINEL_PASSWORD`). In sentinel mode `REDIS_URL` still gives the scheme (TLS or not)
and the database number; its host is not used.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from zg_shared.settings import ServiceSettings, sentinel_addresses

# Redis away rather than wrong: down, unreachable, too slow, or a demoted primary during a
# failover (sentinel's MasterNotFoundError is a ConnectionError). Worth a retry, not a traceback.
REDIS_AWAY: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """A sentinel-managed pool that makes a burst wait for a free connection, as the
    gateway's plain pool does, rather than fail."""


class SentinelRedis(Redis):
    """A client of the primary that also closes its connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", []):
            await sentinel.aclose()


def _database(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def redis_client(
    settings: ServiceSettings, *, max_connections: int | None = None, wait_s: float = 5.0
) -> Redis:
    """A client for this service's Redis. `max_connections`: a bounded pool in which a request
    waits up to `wait_s` for a connection (the gateway); None: redis-py's default pool."""
    options = settings.redis_options()
    if not settings.redis_sentinels:
        if max_connections is None:
            return Redis.from_url(settings.redis_url, **options)
        pool = BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=max_connections, timeout=wait_s, **options
        )
        return Redis(connection_pool=pool)
    sentinel_login: dict[str, Any] = {}
    if settings.redis_sentinel_username:
        sentinel_login["username"] = settings.redis_sentinel_username
    if settings.redis_sentinel_password.get_secret_value():
        sentinel_login["password"] = settings.redis_sentinel_password.get_secret_value()
    tls = settings.redis_url.startswith("rediss://")
    if tls:
        sentinel_login["ssl"] = True
        if settings.redis_ca_file is not None:
            sentinel_login["ssl_ca_certs"] = str(settings.redis_ca_file)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinel_addresses(settings.redis_sentinels),
        sentinel_kwargs=sentinel_login,
        db=_database(settings.redis_url),
        ssl=tls,
        **options,
    )
    if max_connections is None:
        client: Redis = sentinel.master_for(settings.redis_master_name, redis_class=SentinelRedis)
        return client
    client = sentinel.master_for(
        settings.redis_master_name,
        redis_class=SentinelRedis,
        connection_pool_class=BlockingSentinelConnectionPool,
        max_connections=max_connections,
        timeout=wait_s,
    )
    return client


def primary_address(redis: Redis) -> tuple[str, int] | None:
    """Where a sentinel-managed client last found the primary; None for a plain client, or
    before its first connection."""
    address = getattr(redis.connection_pool, "master_address", None)
    return (str(address[0]), int(address[1])) if address else None
