# SPDX-License-Identifier: Apache-2.0
"""Redis started with the repository's ACL source (deploy/k8s/base/redis/users.acl, what
Kubernetes, compose and the local network load) refuses anonymous clients, and each service's
user can neither run dangerous commands nor reach another service's keys."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from zg_shared.localservers import PrivateServer
from zg_shared.redisacl import (
    ACL_TEMPLATE,
    RENDER_SCRIPT,
    SERVICE_USERS,
    RedisCredentials,
    render,
    users_with_login,
)


@pytest.fixture
async def login(
    acl_redis_server: tuple[PrivateServer, RedisCredentials],
) -> AsyncIterator[dict[str, Redis]]:
    running, credentials = acl_redis_server
    clients = {
        user: Redis.from_url(running.url, username=user, password=credentials.passwords[user])
        for user in credentials.passwords
    }
    yield clients
    for client in clients.values():
        await client.aclose()


async def test_an_anonymous_client_is_refused(
    acl_redis_server: tuple[PrivateServer, RedisCredentials],
) -> None:
    running, _ = acl_redis_server
    anonymous = Redis.from_url(running.url)
    try:
        with pytest.raises(AuthenticationError):
            await anonymous.ping()
        with pytest.raises(AuthenticationError):
            await anonymous.set("zg:outbox", "x")
    finally:
        await anonymous.aclose()


async def test_a_wrong_password_is_refused(
    acl_redis_server: tuple[PrivateServer, RedisCredentials],
) -> None:
    running, _ = acl_redis_server
    intruder = Redis.from_url(running.url, username="gateway", password="guessed")
    try:
        with pytest.raises(AuthenticationError):
            await intruder.ping()
    finally:
        await intruder.aclose()


DANGEROUS = [
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("CONFIG", "SET", "appendonly", "no"),
    ("CONFIG", "GET", "requirepass"),
    ("KEYS", "*"),
    ("DEBUG", "SLEEP", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("ACL", "SETUSER", "mallory", "on", ">x", "+@all", "~*"),
    ("SCRIPT", "FLUSH"),
    ("MONITOR",),
    ("REPLICAOF", "127.0.0.1", "1"),
]


@pytest.mark.parametrize("user", sorted(SERVICE_USERS.values()))
@pytest.mark.parametrize("command", DANGEROUS, ids=lambda c: " ".join(c[:2]))
async def test_a_service_runs_no_dangerous_command(
    login: dict[str, Redis], user: str, command: tuple[str, ...]
) -> None:
    with pytest.raises(NoPermissionError):
        await login[user].execute_command(*command)  # type: ignore[no-untyped-call]


async def test_each_service_reaches_only_its_own_keys(login: dict[str, Redis]) -> None:
    account = "zg:acct:{0xprovider:0xuser}"
    for user in SERVICE_USERS.values():
        await login[user].hset(account, "touched_by", user)  # every service's shared view
    await login["gateway"].lpush("zg:outbox", "entry")
    await login["gateway"].set("zg:receipt:1", "signed")
    await login["billing"].set("zg:billing:view", "1")
    await login["chain-indexer"].hset("zg:services:0xprovider", "demo", "{}")
    await login["chain-indexer"].set("zg:indexer:cursor", "1")
    refused = [
        ("gateway", ("SET", "zg:billing:view", "0")),  # billing's state
        ("gateway", ("SET", "zg:indexer:cursor", "0")),
        ("billing", ("LPUSH", "zg:outbox", "forged")),  # the gateway's outbox
        ("billing", ("HSET", "zg:services:0xprovider", "demo", "{}")),  # the registry
        ("billing", ("GET", "zg:receipt:1")),
        ("chain-indexer", ("LPUSH", "zg:outbox", "forged")),
        ("chain-indexer", ("SET", "zg:billing:view", "0")),
        ("gateway", ("SET", "unprefixed", "x")),
    ]
    for user, command in refused:
        with pytest.raises(NoPermissionError):
            await login[user].execute_command(*command)  # type: ignore[no-untyped-call]
    assert await login["admin"].lrange("zg:outbox", 0, -1) == [b"entry"]
    assert await login["admin"].get("zg:billing:view") == b"1"


async def test_lua_scripts_run_under_the_callers_rules(login: dict[str, Redis]) -> None:
    """The services' checks are Lua scripts: a script cannot reach past its caller's keys."""
    script = "return redis.call('SET', KEYS[1], ARGV[1])"
    assert await login["billing"].eval(script, 1, "zg:billing:early", "1") == b"OK"
    with pytest.raises(ResponseError, match=r"(?i)permission"):
        await login["billing"].eval(script, 1, "zg:outbox", "forged")
    assert b"forged" not in await login["admin"].lrange("zg:outbox", 0, -1)


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="render-acl.sh needs sha256sum")
def test_the_shell_renderer_agrees_with_python(tmp_path: Path) -> None:
    """Containers render with render-acl.sh, the local network with Python: same file."""
    credentials = RedisCredentials.generate()
    folder = tmp_path / "passwords"
    folder.mkdir()
    (tmp_path / "~zg:glob-bait").write_text("")  # a file a stray glob would expand to
    for user, password in credentials.passwords.items():
        (folder / user).write_text(password + "\n")  # a trailing newline is not part of it
    shell = subprocess.run(
        ["sh", str(RENDER_SCRIPT), str(ACL_TEMPLATE), str(folder)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert shell == render(ACL_TEMPLATE.read_text(), credentials.passwords)
    assert set(users_with_login(ACL_TEMPLATE.read_text())) == {"admin", *SERVICE_USERS.values()}
    (folder / "billing").unlink()
    missing = subprocess.run(
        ["sh", str(RENDER_SCRIPT), str(ACL_TEMPLATE), str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0
    assert "billing" in missing.stderr
