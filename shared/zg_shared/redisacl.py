# SPDX-License-Identifier: Apache-2.0
"""zgserve's Redis users, from the one ACL source that Kubernetes and compose also use
(`deploy/k8s/base/redis/users.acl`), rendered with passwords for a server we start ourselves:
the local network and the tests. `render` does what `render-acl.sh` beside the source does in
the containers (a test checks both agree).

    credentials = RedisCredentials.generate()      # a fresh password per user
    credentials.write_acl(folder / "users.acl")    # for redis-server --aclfile
    credentials.url("redis://127.0.0.1:6379/0", "admin")
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parents[2]
ACL_DIR = REPO_ROOT / "deploy" / "k8s" / "base" / "redis"
ACL_TEMPLATE = ACL_DIR / "users.acl"
# The replication users (a replica's and the sentinels' logins), only where Sentinel runs.
REPLICATION_ACL = ACL_DIR / "replication.acl"
RENDER_SCRIPT = ACL_DIR / "render-acl.sh"
ADMIN_USER = "admin"
# The ACL user of each service that uses Redis (compose and Kubernetes name them alike).
SERVICE_USERS = {"gateway": "gateway", "billing": "billing", "chain-indexer": "chain-indexer"}


class AclError(ValueError):
    pass


def _rules(template: str) -> list[list[str]]:
    """The template's `user` lines as words, comments and blank lines dropped."""
    rules = []
    for line in template.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        words = line.split()
        if words[0] != "user" or len(words) < 3:
            raise AclError(f"not a 'user NAME on|off ...' line: {line}")
        rules.append(words)
    return rules


def users_with_login(template: str) -> list[str]:
    return [words[1] for words in _rules(template) if words[2] == "on"]


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def render(template: str, passwords: Mapping[str, str]) -> str:
    """The ACL file redis-server loads: each enabled user's rule with its password's hash."""
    lines = []
    for words in _rules(template):
        line = " ".join(words)
        if words[2] == "on":
            password = passwords.get(words[1], "")
            if not password:
                raise AclError(f"no password for Redis user {words[1]}")
            line += f" #{password_hash(password)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def read_passwords(folder: Path, users: list[str]) -> dict[str, str]:
    """Passwords from files named after the users (trailing newlines dropped, as `$(cat)`)."""
    return {u: (folder / u).read_text().rstrip("\n") for u in users if (folder / u).is_file()}


def _joined(template_paths: tuple[Path, ...]) -> str:
    return "\n".join(p.read_text() for p in template_paths or (ACL_TEMPLATE,))


class RedisCredentials(BaseModel):
    """A password for every user of the ACL source."""

    passwords: dict[str, str]

    @classmethod
    def generate(cls, *template_paths: Path) -> RedisCredentials:
        """Passwords for the users of the templates (users.acl when none is named)."""
        template = _joined(template_paths)
        return cls(passwords={u: secrets.token_urlsafe(24) for u in users_with_login(template)})

    def write_acl(self, path: Path, *template_paths: Path) -> Path:
        """The ACL file of the templates (users.acl when none is named), in that order."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(_joined(template_paths), self.passwords))
        path.chmod(0o600)
        return path

    def url(self, base_url: str, user: str) -> str:
        """`base_url` with `user` and its password in it: for tools and tests (services take
        the password from a secret file instead, see ServiceSettings)."""
        parts = urlsplit(base_url)
        netloc = f"{quote(user, safe='')}:{quote(self.passwords[user], safe='')}@{parts.netloc}"
        return urlunsplit(parts._replace(netloc=netloc))
