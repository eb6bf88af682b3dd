# SPDX-License-Identifier: Apache-2.0
"""Redis over TLS with the repository's ACL users: a service's settings (`rediss://` URL, its
user, its password file, the CA file) reach the server; a plaintext client does not. Needs a
redis-server built with TLS (Debian's is; the embedded PyPI one is not) and openssl."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from zg_shared.localservers import free_port, port_open
from zg_shared.redisacl import RedisCredentials
from zg_shared.settings import ServiceSettings

SYSTEM_REDIS = "/usr/bin/redis-server"
pytestmark = pytest.mark.skipif(
    not (Path(SYSTEM_REDIS).is_file() and shutil.which("openssl")),
    reason="needs Debian's redis-server (built with TLS) and openssl",
)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=zg test CA", "-keyout", "ca.key", "-out", "ca.crt",
             cwd=folder)  # fmt: skip
    sign_certificate(folder, "server")


def sign_certificate(folder: Path, name: str, extensions: str = "") -> None:
    """`name`.crt and `name`.key for 127.0.0.1, signed by the CA that make_certificates left in
    `folder`; `extensions`: more x509v3 lines (`extendedKeyUsage=serverAuth`, ...)."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)  # fmt: skip
    (folder / f"{name}.cnf").write_text(f"subjectAltName=IP:127.0.0.1\n{extensions}")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", f"{name}.cnf", "-out", f"{name}.crt",
             cwd=folder)  # fmt: skip


@pytest.fixture(scope="module")
def tls_redis(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, Path, RedisCredentials]]:
    folder = tmp_path_factory.mktemp("redis-tls")
    make_certificates(folder)
    credentials = RedisCredentials.generate()
    acl = credentials.write_acl(folder / "users.acl")
    port = free_port()
    server = subprocess.Popen(
        [
            SYSTEM_REDIS, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
            "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
            "--aclfile", str(acl), "--save", "", "--appendonly", "no", "--dir", str(folder),
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not port_open(port):
            if server.poll() is not None:
                pytest.skip("this redis-server does not take TLS options")
            assert time.monotonic() < deadline, "redis-server did not open its TLS port"
            time.sleep(0.05)
        yield port, folder / "ca.crt", credentials
    finally:
        server.terminate()
        server.wait(10)


async def test_a_service_reaches_redis_over_tls_as_its_user(
    tls_redis: tuple[int, Path, RedisCredentials], tmp_path: Path
) -> None:
    port, ca, credentials = tls_redis
    settings = ServiceSettings(
        environment="test",
        redis_url=f"rediss://127.0.0.1:{port}/0",
        redis_username="billing",
        redis_password=credentials.passwords["billing"],
        redis_ca_file=ca,
    )
    client = Redis.from_url(settings.redis_url, **settings.redis_options())
    try:
        assert await client.set("zg:billing:view", "1")
        assert await client.get("zg:billing:view") == b"1"
    finally:
        await client.aclose()


async def test_plaintext_and_unverified_clients_get_nowhere(
    tls_redis: tuple[int, Path, RedisCredentials],
) -> None:
    port, _, credentials = tls_redis
    password = credentials.passwords["gateway"]
    plaintext = Redis.from_url(
        f"redis://127.0.0.1:{port}/0", username="gateway", password=password, socket_timeout=5
    )
    # No CA given: the system's CAs do not know the server's certificate.
    unverified = Redis.from_url(
        f"rediss://127.0.0.1:{port}/0", username="gateway", password=password, socket_timeout=5
    )
    for client in (plaintext, unverified):
        try:
            with pytest.raises((RedisConnectionError, TimeoutError, OSError)):
                await client.ping()
        finally:
            await client.aclose()
