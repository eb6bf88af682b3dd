# SPDX-License-Identifier: Apache-2.0
"""zgserve's NATS users, from the one configuration source that Kubernetes and compose also
use (`deploy/k8s/base/nats/auth.conf`), with passwords for a server we start ourselves: the
local network and the tests. The file names each password as a variable the server reads
from its environment (`ZG_NATS_PASSWORD_GATEWAY`, ...), so starting the server with
`server_env()` in its environment is all it takes.

    credentials = NatsCredentials.generate()        # a fresh password per user
    env = credentials.server_env()                  # for nats-server --config auth.conf
    credentials.url("nats://127.0.0.1:4222", "admin")
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parents[2]
AUTH_CONF = REPO_ROOT / "deploy" / "k8s" / "base" / "nats" / "auth.conf"
ADMIN_USER = "admin"
# The NATS user of each service (compose and Kubernetes name them alike).
SERVICE_USERS = {
    "gateway": "gateway",
    "billing": "billing",
    "prover": "prover",
    "chain-indexer": "chain-indexer",
}
USERS = (ADMIN_USER, *SERVICE_USERS.values())
_USER_LINE = re.compile(r"\{user:\s*([\w-]+),\s*password:\s*\$(\w+)")


def password_variable(user: str) -> str:
    """The environment variable auth.conf reads `user`'s password from."""
    return "ZG_NATS_PASSWORD_" + user.upper().replace("-", "_")


def inbox_prefix(user: str) -> str:
    """Replies to `user` (request answers, JetStream acks and deliveries) come under this
    prefix, the only subjects auth.conf lets it subscribe to."""
    return f"_INBOX.{user}"


def new_password() -> str:
    """A password nats-server reads back as it is. The configuration parses a variable's value
    as a bare word, so it must start with a letter (a leading digit may be read as a number,
    which fails the server's start) and hold only letters and digits."""
    return "zg" + secrets.token_hex(24)


def configured_users(conf: str) -> dict[str, str]:
    """user -> password variable, as auth.conf declares them."""
    return dict(_USER_LINE.findall(conf))


class NatsCredentials(BaseModel):
    """A password for every user of auth.conf."""

    passwords: dict[str, str]

    @classmethod
    def generate(cls) -> NatsCredentials:
        return cls(passwords={u: new_password() for u in USERS})

    def server_env(self) -> dict[str, str]:
        """The environment nats-server needs to load auth.conf with these passwords."""
        return {password_variable(u): p for u, p in self.passwords.items()}

    def url(self, base_url: str, user: str) -> str:
        """`base_url` with `user` and its password in it: for tools and tests (services take
        the password from a secret file instead, see ServiceSettings)."""
        parts = urlsplit(base_url)
        netloc = f"{quote(user, safe='')}:{quote(self.passwords[user], safe='')}@{parts.netloc}"
        return urlunsplit(parts._replace(netloc=netloc))
