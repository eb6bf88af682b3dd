# SPDX-License-Identifier: Apache-2.0
"""The compose stack's one-shot secrets job: a folder of secret files per container, on the
`secrets` volume, which compose mounts into each container alone (volume subpath) at
/run/secrets, where the services read them (zg_shared.settings).

- Redis passwords: one per ACL user (deploy/k8s/base/redis/users.acl), made once and kept.
- NATS passwords: one per user (deploy/k8s/base/nats/auth.conf), made once and kept; the
  NATS container reads them all, each service its own, the stream admin job the admin's.
- Keys: from this job's environment, written every start so a changed `.env` applies. compose
  defaults them to anvil's public development keys (account 1 the provider's wallet, account
  2 the gateway's receipt key: two keys, never one), which the services refuse outside
  ENVIRONMENT=development and on any chain but a local one.
- Grafana's admin password: GRAFANA_ADMIN_PASSWORD from this job's environment when set, else
  one made on the first start and kept (there is no default password).

Runs as root (a fresh volume is root's) and hands each folder to the user that reads it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from zg_shared.natsauth import ADMIN_USER as NATS_ADMIN
from zg_shared.natsauth import SERVICE_USERS as NATS_USERS
from zg_shared.natsauth import USERS as NATS_ALL_USERS
from zg_shared.natsauth import new_password as new_nats_password
from zg_shared.redisacl import ADMIN_USER, SERVICE_USERS

KEY_VARS = ("GATEWAY_RECEIPT_PRIVATE_KEY", "BILLING_PROVIDER_PRIVATE_KEY")  # required
GRAFANA_PASSWORD_ENV = "GRAFANA_ADMIN_PASSWORD"  # optional
# Environment variables this job reads (the compose env-var test checks compose against them).
ENV_VARS = (*KEY_VARS, GRAFANA_PASSWORD_ENV)
SERVICE_UID = 10001  # the services' images run as this user
# Each service's folder: its secret files, named as its settings read them.
SECRETS_BY_SERVICE = {
    "gateway": ("GATEWAY_RECEIPT_PRIVATE_KEY", "GATEWAY_REDIS_PASSWORD", "GATEWAY_NATS_PASSWORD"),
    "billing": ("BILLING_PROVIDER_PRIVATE_KEY", "BILLING_REDIS_PASSWORD", "BILLING_NATS_PASSWORD"),
    "prover": ("PROVER_NATS_PASSWORD",),
    "chain-indexer": ("INDEXER_REDIS_PASSWORD", "INDEXER_NATS_PASSWORD"),
    # The admin step that creates the streams (zg_shared.busadmin), as NATS's admin.
    "bus-admin": ("BUS_ADMIN_NATS_PASSWORD",),
}
REDIS_FOLDER = "redis"  # one file per ACL user, read by Redis's ACL renderer (runs as root)
NATS_FOLDER = "nats"  # one file per NATS user, read by the NATS container (runs as root)
GRAFANA_FOLDER = "grafana"
GRAFANA_PASSWORD_FILE = "admin-password"  # GF_SECURITY_ADMIN_PASSWORD__FILE names it
GRAFANA_UID = 472  # the user Grafana's image runs as


def write(path: Path, value: str, uid: int | None) -> None:
    path.write_text(value)
    path.chmod(0o400)
    if uid is not None:
        os.chown(path, uid, uid)


def make(root: Path, env: dict[str, str], uid: int | None) -> None:
    redis = root / REDIS_FOLDER
    redis.mkdir(parents=True, exist_ok=True)
    redis.chmod(0o700)
    passwords = {}
    for user in (ADMIN_USER, *SERVICE_USERS.values()):
        path = redis / user
        if not path.is_file():
            write(path, secrets.token_urlsafe(24), None)
        passwords[user] = path.read_text()
    nats = root / NATS_FOLDER
    nats.mkdir(exist_ok=True)
    nats.chmod(0o700)
    nats_passwords = {}
    for user in NATS_ALL_USERS:
        path = nats / user
        if not path.is_file():
            write(path, new_nats_password(), None)
        nats_passwords[user] = path.read_text()
    values = {name: env[name] for name in KEY_VARS}
    for service, names in SECRETS_BY_SERVICE.items():
        folder = root / service
        folder.mkdir(exist_ok=True)
        folder.chmod(0o500)
        for name in names:
            value = None
            if name.endswith("_REDIS_PASSWORD"):
                value = passwords[SERVICE_USERS[service]]
            elif name.endswith("_NATS_PASSWORD"):
                value = nats_passwords[NATS_USERS.get(service, NATS_ADMIN)]
            path = folder / name
            path.unlink(missing_ok=True)
            write(path, value if value is not None else values[name], uid)
        if uid is not None:
            os.chown(folder, uid, uid)
    make_grafana(root, env.get(GRAFANA_PASSWORD_ENV, ""), uid is not None)


def make_grafana(root: Path, password: str, chown: bool) -> None:
    """Grafana's admin password: the one given, else the one made before, else a new one."""
    folder = root / GRAFANA_FOLDER
    folder.mkdir(exist_ok=True)
    folder.chmod(0o500)
    path = folder / GRAFANA_PASSWORD_FILE
    if not password:
        password = path.read_text() if path.is_file() else secrets.token_urlsafe(18)
    path.unlink(missing_ok=True)
    write(path, password, GRAFANA_UID if chown else None)
    if chown:
        os.chown(folder, GRAFANA_UID, GRAFANA_UID)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the secrets volume, e.g. /secrets")
    parser.add_argument(
        "--owner", type=int, default=SERVICE_UID, help="uid of the services (-1: keep)"
    )
    args = parser.parse_args(argv)
    missing = [name for name in KEY_VARS if not os.environ.get(name)]
    if missing:
        print(f"error: set {', '.join(missing)}", file=sys.stderr)
        return 2
    make(args.root, dict(os.environ), None if args.owner < 0 else args.owner)
    folders = ", ".join(sorted(SECRETS_BY_SERVICE))
    extra = f"{REDIS_FOLDER}, {NATS_FOLDER}, {GRAFANA_FOLDER}"
    print(f"secrets ready under {args.root}: {folders}, {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
