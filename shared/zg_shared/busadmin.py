# SPDX-License-Identifier: Apache-2.0
"""`zg-bus-admin`: the admin step that creates the JetStream streams, run once before the
services (a Kubernetes Job, a compose one-shot, the local network) as NATS's admin user. The
services' own users may not create, update, purge or delete a stream.

    zg-bus-admin create-streams

with BUS_ADMIN_NATS_URL, BUS_ADMIN_RPC_URL and BUS_ADMIN_SERVING_ADDRESS in the environment and
the admin's password in the file BUS_ADMIN_NATS_PASSWORD of the secrets folder (/run/secrets).

It creates `ZG_SERVING` and `ZG_CHAIN` stamped with the deployment the RPC node and contract
name (zg_shared.deployment), or brings existing ones to the repository's configuration; it
refuses, with one line and exit status 78, streams stamped by another deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable

from pydantic import Field, ValidationError
from pydantic_settings import SettingsConfigDict

from zg_shared.bus import NatsAccess
from zg_shared.chain.client import connect as connect_chain
from zg_shared.deployment import (
    ALL_STREAMS,
    EXIT_FOREIGN_STATE,
    DeploymentIdentity,
    DeploymentStamp,
    ForeignDeployment,
    claim_streams,
    identify_when_reachable,
)
from zg_shared.natsauth import ADMIN_USER
from zg_shared.settings import ServiceSettings

EXIT_UNREACHABLE = 1


class BusAdminSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BUS_ADMIN_", extra="ignore", frozen=True)

    nats_username: str = Field(ADMIN_USER, description="NATS's admin user (auth.conf)")


async def prepare_streams(
    bus: NatsAccess | str, rpc_url: str, contract: str, names: Iterable[str] = ALL_STREAMS
) -> tuple[list[str], DeploymentIdentity]:
    """The streams exist, in the repository's configuration, stamped with the deployment of
    `contract` on the chain at `rpc_url`: (the streams created, that deployment). What the
    local network and the tests do too."""
    w3 = connect_chain(rpc_url)
    try:
        identity = await identify_when_reachable(w3, contract)
    finally:
        await w3.provider.disconnect()
    stamp = DeploymentStamp(**identity.model_dump(), rpc_url=rpc_url)
    return await claim_streams(bus, stamp, names), identity


async def create_streams(settings: BusAdminSettings) -> str:
    """Creates or updates the streams; returns what it did, in one line."""
    created, identity = await prepare_streams(
        settings.nats_access(), settings.rpc_url, settings.serving_address
    )
    made = f"created {', '.join(created)}" if created else "streams already there, updated"
    return f"{made}: stamped with {identity}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zg-bus-admin", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("create-streams", help="create the streams (or update them), stamped")
    parser.parse_args(argv)
    try:
        settings = BusAdminSettings()
        if not settings.serving_address:
            raise ValueError("set BUS_ADMIN_SERVING_ADDRESS (the Serving contract)")
        print(asyncio.run(create_streams(settings)))
    except ForeignDeployment as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FOREIGN_STATE
    except (ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # NATS or the RPC node away, a refused login: one line
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
