# SPDX-License-Identifier: Apache-2.0
"""Which deployment of the contract a Redis and the JetStream streams hold state for.

Redis keys and events name accounts by (user, provider) only, and a chain restarted from
genesis (a fresh anvil) puts a fresh contract at the same address: without a check, a service
would read the old deployment's balances, signers and nonces as the new one's. So the state is
stamped with its deployment, and every service checks the stamp at start:

- the identity is (chain id, genesis block hash, contract address). A contract address is
  unique on one chain (Serving cannot self-destruct, and since EIP-6780 nothing can be
  re-created at an address), and a chain started again from genesis has a new genesis hash
  (anvil stamps its genesis block with the start time);
- Redis holds it under `zg:deployment`, each stream in its description;
- the admin step that creates the streams (`claim_streams`, run by `zg-bus-admin
  create-streams`) stamps them with its deployment, and refuses streams stamped by another;
- a service that finds no stamp in Redis claims it for its own deployment; one that finds
  another deployment's stamp, or a stream missing or unstamped (no admin step ran: services
  may not create or change streams), refuses to run (`ForeignDeployment`, exit status 78)
  with one line saying why;
- `reset_state` clears the state for a new deployment (what `zg network up` does: it deploys
  anew every time), after `running_elsewhere` made sure the old deployment is gone.

docs/operations.md ("One deployment's state") explains it for operators.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis

from zg_shared.bus import ONE_TRY, STREAM_CONFIGS, NatsAccess, stream_configs
from zg_shared.bus import connect as connect_nats
from zg_shared.chain.client import connect
from zg_shared.chain.reachable import when_reachable
from zg_shared.chain.types import Address, Hash32, Web3Client

DEPLOYMENT_KEY = "zg:deployment"
# Every key a zgserve service writes starts with this.
STATE_PATTERN = "zg:*"
STREAM_STAMP = "zgserve deployment "
ALL_STREAMS = tuple(c.name for c in STREAM_CONFIGS if c.name is not None)
# sysexits' EX_CONFIG: the service is pointed at the wrong state; restarting will not help.
EXIT_FOREIGN_STATE = 78

log = logging.getLogger(__name__)


class DeploymentIdentity(BaseModel):
    model_config = ConfigDict(frozen=True)

    chain_id: int
    genesis_hash: Hash32
    contract: Address

    def __str__(self) -> str:
        return (
            f"contract {self.contract} on chain {self.chain_id} "
            f"(genesis {self.genesis_hash[:10]}..{self.genesis_hash[-4:]})"
        )


class DeploymentStamp(DeploymentIdentity):
    """The identity as stored, with where the service that stamped it reached the chain (to
    tell whether that deployment still runs)."""

    rpc_url: str = ""

    @property
    def identity(self) -> DeploymentIdentity:
        return DeploymentIdentity(
            chain_id=self.chain_id, genesis_hash=self.genesis_hash, contract=self.contract
        )

    @classmethod
    def parse(cls, text: str | bytes | None) -> DeploymentStamp | None:
        if text is None:
            return None
        raw = text.decode() if isinstance(text, bytes) else text
        with contextlib.suppress(ValidationError):
            return cls.model_validate_json(raw.removeprefix(STREAM_STAMP))
        return None


class ForeignDeployment(RuntimeError):
    """The state this service was pointed at belongs to another deployment."""


async def identify(w3: Web3Client, contract: str) -> DeploymentIdentity:
    genesis = await w3.eth.get_block(0)
    return DeploymentIdentity(
        chain_id=await w3.eth.chain_id, genesis_hash=genesis["hash"], contract=contract
    )


async def identify_when_reachable(w3: Web3Client, contract: str) -> DeploymentIdentity:
    """`identify`, waiting out an RPC endpoint that is not up yet."""
    return await when_reachable(lambda: identify(w3, contract))


def _refusal(where: str, found: DeploymentIdentity | str, ours: DeploymentIdentity) -> str:
    return (
        f"{where} holds the state of another deployment: {found}; this service runs for "
        f"{ours}. Point it at that deployment's own Redis and NATS, or clear the old state "
        f"(`zg network up` does when it deploys anew)."
    )


async def bind_redis(redis: Redis, stamp: DeploymentStamp, where: str = "Redis") -> None:
    """Claims Redis for this deployment, or checks that it is this deployment's."""
    if await redis.set(DEPLOYMENT_KEY, stamp.model_dump_json(), nx=True):
        log.info("Redis now holds the state of %s", stamp.identity)
        return
    found = DeploymentStamp.parse(await redis.get(DEPLOYMENT_KEY))
    if found is None:
        raise ForeignDeployment(_refusal(where, f"unreadable {DEPLOYMENT_KEY}", stamp.identity))
    if found.identity != stamp.identity:
        raise ForeignDeployment(_refusal(where, found.identity, stamp.identity))


async def _stream_info(js: JetStreamContext, name: str) -> StreamInfo:
    try:
        return await js.stream_info(name)
    except NotFoundError:
        raise ForeignDeployment(
            f"JetStream stream {name} does not exist: the admin step creates the streams "
            f"before the services start (`zg-bus-admin create-streams`)."
        ) from None


async def require_streams(bus: NatsAccess | str, names: Iterable[str]) -> None:
    """For a service with no deployment to check (the prover): the streams exist."""
    client = await connect_nats(bus)
    try:
        for name in names:
            await _stream_info(client.jetstream(), name)
    finally:
        await client.close()


async def check_streams(
    js: JetStreamContext, identity: DeploymentIdentity, names: Iterable[str]
) -> None:
    """What a service does: each stream exists and carries this deployment's stamp. A service
    may not create or stamp a stream (its NATS user has no right to): the admin step does."""
    for name in names:
        info = await _stream_info(js, name)
        found = DeploymentStamp.parse(info.config.description)
        if found is None:
            raise ForeignDeployment(
                f"JetStream stream {name} names no deployment: stamp it with this one, "
                f"{identity}, by running the admin step (`zg-bus-admin create-streams`)."
            )
        if found.identity != identity:
            raise ForeignDeployment(_refusal(f"JetStream stream {name}", found, identity))


async def claim_streams(
    bus: NatsAccess | str,
    stamp: DeploymentStamp,
    names: Iterable[str] = ALL_STREAMS,
    replicas: int = 1,
) -> list[str]:
    """The admin step: creates each stream stamped with this deployment, or brings an existing
    one to the repository's configuration with `replicas` copies (an unstamped one gets the
    stamp). Refuses streams stamped by another deployment (`ForeignDeployment`). Returns the
    streams created."""
    created = []
    wanted = set(names)
    client = await connect_nats(bus)
    try:
        js = client.jetstream()
        for config in stream_configs(replicas):
            assert config.name is not None
            if config.name not in wanted:
                continue
            try:
                info = await js.stream_info(config.name)
            except NotFoundError:
                description = STREAM_STAMP + stamp.model_dump_json()
                await js.add_stream(replace(config, description=description))
                created.append(config.name)
                continue
            found = DeploymentStamp.parse(info.config.description)
            if found is not None and found.identity != stamp.identity:
                raise ForeignDeployment(
                    _refusal(f"JetStream stream {config.name}", found, stamp.identity)
                )
            description = info.config.description or ""
            if found is None:
                description = STREAM_STAMP + stamp.model_dump_json()
            await js.update_stream(replace(config, description=description))
    finally:
        await client.close()
    return created


async def bind(
    w3: Web3Client,
    contract: str,
    rpc_url: str,
    redis: Redis,
    bus: NatsAccess | str,
    streams: Iterable[str],
) -> DeploymentIdentity:
    """What every service does at start: its deployment, checked against (or stamped on) the
    Redis, and checked against the streams it uses. Raises `ForeignDeployment`."""
    identity = await identify_when_reachable(w3, contract)
    stamp = DeploymentStamp(**identity.model_dump(), rpc_url=rpc_url)
    await bind_redis(redis, stamp)
    client = await connect_nats(bus)
    try:
        await check_streams(client.jetstream(), identity, streams)
    finally:
        await client.close()
    return identity


async def stamped(redis: Redis, bus: NatsAccess | str) -> list[DeploymentStamp]:
    """Every deployment stamp found on this Redis and these streams."""
    found = [DeploymentStamp.parse(await redis.get(DEPLOYMENT_KEY))]
    client = await connect_nats(bus, **ONE_TRY)
    try:
        js = client.jetstream()
        for name in ALL_STREAMS:
            with contextlib.suppress(NotFoundError):
                found.append(DeploymentStamp.parse((await js.stream_info(name)).config.description))
    finally:
        await client.close()
    return [s for s in found if s is not None]


async def still_running(stamp: DeploymentStamp) -> bool:
    """Whether the deployment that stamped the state still answers at its RPC URL."""
    if not stamp.rpc_url:
        return False
    w3 = connect(stamp.rpc_url, timeout=2.0)
    try:
        return await identify(w3, stamp.contract) == stamp.identity
    except Exception:  # unreachable, or not a node any more: that deployment is gone
        return False
    finally:
        await w3.provider.disconnect()


async def running_elsewhere(redis: Redis, bus: NatsAccess | str) -> DeploymentStamp | None:
    """A deployment whose state these servers hold and which still runs, if any."""
    for stamp in await stamped(redis, bus):
        if await still_running(stamp):
            return stamp
    return None


async def reset_state(
    redis: Redis, bus: NatsAccess | str, stamp: DeploymentStamp, replicas: int = 1
) -> int:
    """Clears every zgserve key and stream for a new deployment (as NATS's and Redis's admin),
    creates the streams and stamps the empty state with it. Returns the number of keys
    removed."""
    removed = 0
    batch: list[Any] = []
    async for key in redis.scan_iter(match=STATE_PATTERN, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            removed += await redis.unlink(*batch)
            batch.clear()
    if batch:
        removed += await redis.unlink(*batch)
    client = await connect_nats(bus)
    try:
        js = client.jetstream()
        for name in ALL_STREAMS:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await client.close()
    await claim_streams(bus, stamp, replicas=replicas)
    await redis.set(DEPLOYMENT_KEY, stamp.model_dump_json())
    return removed


@contextlib.contextmanager
def refusing_foreign_state() -> Iterator[None]:
    """For a service's entry point: a `ForeignDeployment` is one clear line and exit status
    78, not a traceback."""
    try:
        yield
    except ForeignDeployment as exc:
        log.critical("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_FOREIGN_STATE)


def describe(stamp: DeploymentStamp) -> str:
    """One line for a person: the deployment and where it runs."""
    where = f" at {stamp.rpc_url}" if stamp.rpc_url else ""
    return f"{stamp.identity}{where}"
