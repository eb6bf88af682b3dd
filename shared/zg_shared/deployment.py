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
- a service that finds no stamp claims the state for its own deployment; one that finds
  another deployment's stamp refuses to run (`ForeignDeployment`, exit status 78), naming both;
- `reset_state` clears the state for a new deployment (what `zg network up` does: it deploys
  anew every time), after `running_elsewhere` made sure the old deployment is gone.

docs/operations.md ("One deployment's state") explains it for operators.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis

from zg_shared.bus import STREAM_CONFIGS
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


async def bind_streams(js: JetStreamContext, stamp: DeploymentStamp, names: Iterable[str]) -> None:
    """Claims each stream for this deployment (its description), or checks that it is this
    deployment's. The streams exist already (`ensure_streams`)."""
    for name in names:
        info = await js.stream_info(name)
        found = DeploymentStamp.parse(info.config.description)
        if found is None:
            info.config.description = STREAM_STAMP + stamp.model_dump_json()
            await js.update_stream(info.config)
        elif found.identity != stamp.identity:
            raise ForeignDeployment(_refusal(f"JetStream stream {name}", found, stamp.identity))


async def bind(
    w3: Web3Client,
    contract: str,
    rpc_url: str,
    redis: Redis,
    nats_url: str,
    streams: Iterable[str],
) -> DeploymentIdentity:
    """What every service does at start: its deployment, checked against (or stamped on) the
    Redis and the streams it uses. Raises `ForeignDeployment`."""
    identity = await identify_when_reachable(w3, contract)
    stamp = DeploymentStamp(**identity.model_dump(), rpc_url=rpc_url)
    await bind_redis(redis, stamp)
    client = await connect_nats(nats_url)
    try:
        await bind_streams(client.jetstream(), stamp, streams)
    finally:
        await client.close()
    return identity


async def stamped(redis: Redis, nats_url: str) -> list[DeploymentStamp]:
    """Every deployment stamp found on this Redis and these streams."""
    found = [DeploymentStamp.parse(await redis.get(DEPLOYMENT_KEY))]
    client = await connect_nats(nats_url)
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


async def running_elsewhere(redis: Redis, nats_url: str) -> DeploymentStamp | None:
    """A deployment whose state these servers hold and which still runs, if any."""
    for stamp in await stamped(redis, nats_url):
        if await still_running(stamp):
            return stamp
    return None


async def reset_state(redis: Redis, nats_url: str, stamp: DeploymentStamp) -> int:
    """Clears every zgserve key and stream for a new deployment, and stamps the empty state
    with it. Returns the number of keys removed."""
    removed = 0
    batch: list[Any] = []
    async for key in redis.scan_iter(match=STATE_PATTERN, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            removed += await redis.unlink(*batch)
            batch.clear()
    if batch:
        removed += await redis.unlink(*batch)
    client = await connect_nats(nats_url)
    try:
        js = client.jetstream()
        for name in ALL_STREAMS:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await client.close()
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
