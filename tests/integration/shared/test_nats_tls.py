# SPDX-License-Identifier: Apache-2.0
"""NATS over TLS with the repository's users: a service's settings (its user, its password
file, the CA file) reach the server through nats-py and through faststream's broker; the
server takes no client without TLS. Needs openssl."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker
from pydantic import SecretStr

from tests.integration.shared.test_redis_tls import make_certificates
from zg_shared.bus import STREAM_CONFIGS
from zg_shared.localservers import free_port, port_open, server_command
from zg_shared.natsauth import AUTH_CONF, NatsCredentials
from zg_shared.settings import ServiceSettings

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")


@pytest.fixture(scope="module")
def tls_nats(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, Path, NatsCredentials]]:
    folder = tmp_path_factory.mktemp("nats-tls")
    make_certificates(folder)
    credentials = NatsCredentials.generate()
    port = free_port()
    command = server_command("nats", port, folder, AUTH_CONF)
    command += ["--tls", "--tlscert", str(folder / "server.crt")]
    command += ["--tlskey", str(folder / "server.key")]
    with (folder / "nats.log").open("ab") as log:
        server = subprocess.Popen(
            command, env={**os.environ, **credentials.server_env()}, stdout=log, stderr=log
        )
    try:
        for _ in range(500):
            if port_open(port):
                break
            assert server.poll() is None, (folder / "nats.log").read_text()
            subprocess.run(["sleep", "0.02"], check=True)
        yield port, folder / "ca.crt", credentials
    finally:
        server.terminate()
        server.wait(10)


def settings(port: int, ca: Path, credentials: NatsCredentials, user: str) -> ServiceSettings:
    return ServiceSettings(
        nats_url=f"tls://127.0.0.1:{port}",
        nats_username=user,
        nats_password=SecretStr(credentials.passwords[user]),
        nats_ca_file=ca,
    )


async def test_a_service_reaches_nats_over_tls_with_its_settings(
    tls_nats: tuple[int, Path, NatsCredentials],
) -> None:
    port, ca, credentials = tls_nats
    admin = await settings(port, ca, credentials, "admin").nats_access().connect()
    try:
        for config in STREAM_CONFIGS:
            await admin.jetstream().add_stream(config)
    finally:
        await admin.close()
    access = settings(port, ca, credentials, "gateway").nats_access()
    client = await access.connect()
    try:
        ack = await client.jetstream().publish("serving.request.served.v1", b"{}")
        assert ack.stream == "ZG_SERVING"
    finally:
        await client.close()
    broker = NatsBroker(**settings(port, ca, credentials, "prover").nats_access().broker_options())
    await broker.connect()
    try:
        ack = await broker.publish(b"{}", "serving.proof.ready.v1", stream="ZG_SERVING")
        assert ack is not None
        assert ack.seq == 2
    finally:
        await broker.stop()


async def test_the_server_takes_no_client_without_tls(
    tls_nats: tuple[int, Path, NatsCredentials],
) -> None:
    """Plain TCP: the server asks for TLS before anything else (nats-py then verifies the
    server's certificate against the CA file, or the system's store without one)."""
    port, _, _ = tls_nats
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        info = json.loads((await reader.readline()).removeprefix(b"INFO "))
    finally:
        writer.close()
    assert info["tls_required"] is True
