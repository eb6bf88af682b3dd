# SPDX-License-Identifier: Apache-2.0
"""The service registry (the marketplace list) as kept in Redis: one hash per provider,
service name -> the Service as JSON. The chain indexer keeps it current; until it has run, the
gateway fills it from the contract (`sync_from_chain`).
"""

from __future__ import annotations

from redis.asyncio import Redis

from zg_shared.chain.client import ServingClient
from zg_shared.chain.models import Service

PREFIX = "zg:services"


def services_key(provider: str) -> str:
    return f"{PREFIX}:{provider.lower()}"


class ServiceRegistry:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def put(self, service: Service) -> None:
        await self.redis.hset(
            services_key(service.provider), service.name, service.model_dump_json()
        )

    async def remove(self, provider: str, name: str) -> None:
        await self.redis.hdel(services_key(provider), name)

    async def get(self, provider: str, name: str) -> Service | None:
        raw = await self.redis.hget(services_key(provider), name)
        return Service.model_validate_json(raw) if raw else None

    async def of_provider(self, provider: str) -> list[Service]:
        raw = await self.redis.hgetall(services_key(provider))
        return sorted((Service.model_validate_json(v) for v in raw.values()), key=lambda s: s.name)

    async def everyone(self) -> list[Service]:
        """Every provider's services (the indexer keeps them all), by provider, then name."""
        found: list[Service] = []
        async for key in self.redis.scan_iter(match=f"{PREFIX}:*"):
            raw = await self.redis.hgetall(key)
            found += (Service.model_validate_json(v) for v in raw.values())
        return sorted(found, key=lambda s: (s.provider.lower(), s.name))

    async def sync_from_chain(self, serving: ServingClient, provider: str) -> list[Service]:
        """Replaces the provider's entries with what the contract lists now."""
        services = [
            s for s in await serving.get_all_services() if s.provider.lower() == provider.lower()
        ]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(services_key(provider))
            for service in services:
                pipe.hset(services_key(provider), service.name, service.model_dump_json())
            await pipe.execute()
        return services
