# SPDX-License-Identifier: Apache-2.0
"""The Redis pods the overlays ship, run as three "pods" on this machine: the redis-acl
ConfigMap's configure.sh prepares each (ACL files, the server's and the sentinel's
configuration, the primary asked of the other pods' sentinels), then the redis and sentinel
containers' own arguments start the real servers (the venv's redis-server). Each pod gets a
loopback address of its own (127.X.Y.1-3), so the servers keep the ports the manifests give
them; the pods' names (redis-N.redis) become those addresses, and the sentinels here call a
primary down after 1 s instead of 5 s. Nothing else differs.

Checked: the group forms around the first pod; nobody is anonymous; the services' sentinel
user can ask and not reconfigure; each service, with the settings of its ConfigMap, reaches
the primary through the sentinels and follows a failover; the lost primary's pod, prepared
again, comes back as a replica of the new one."""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from tests.integration.polling import eventually
from tests.unit.deploy.common import rendered
from tests.unit.deploy.test_k8s_replication import (
    REDIS_CLIENTS,
    container,
    container_env,
    find,
    service_env,
)
from zg_shared.localservers import find_binary
from zg_shared.redisacl import users_with_login
from zg_shared.redisconn import REDIS_AWAY, redis_client
from zg_shared.settings import ServiceSettings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="needs 127.0.0.0/8 on the loopback"),
]
SIZE = 3
DOWN_AFTER_MS = "1000"
# A key each service may write (its prefix in users.acl).
OWN_KEY = {"gateway": "zg:gateway:t", "billing": "zg:billing:t", "chain-indexer": "zg:indexer:t"}


class ShippedGroup:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.docs = rendered("prod")
        self.sts = find(self.docs, "StatefulSet", "redis")
        base = f"127.{random.randint(16, 250)}.{random.randint(0, 250)}."
        self.addresses = [f"{base}{i + 1}" for i in range(SIZE)]
        self.names = [f"redis-{i}.{self.sts['spec']['serviceName']}" for i in range(SIZE)]
        self.source = folder / "redis-acl"
        self.source.mkdir()
        for file, text in find(self.docs, "ConfigMap", "redis-acl")["data"].items():
            (self.source / file).write_text(text)
        users = set()
        for acl in ("users.acl", "replication.acl", "sentinel.acl"):
            users |= set(users_with_login((self.source / acl).read_text()))
        self.passwords = {user: secrets.token_hex(24) for user in users}
        self.secret = folder / "zgserve-redis-users"
        self.secret.mkdir()
        for user, password in self.passwords.items():
            (self.secret / user).write_text(password)
        self.processes: dict[tuple[int, str], subprocess.Popen[bytes]] = {}

    def local(self, text: str) -> str:
        for name, address in zip(self.names, self.addresses, strict=True):
            text = text.replace(name, address)
        return text

    def configure(self, index: int) -> Path:
        """The init container of pod `index`: configure.sh with its env."""
        out = self.folder / f"conf-{index}"
        out.mkdir(exist_ok=True)
        env = container_env(self.docs, self.sts, "configure")
        pod = {
            "POD_NAME": f"redis-{index}",
            # Kubernetes's $(POD_NAME).redis: this pod's name in the Service.
            "ZG_REDIS_ME": self.addresses[index],
            "ZG_REDIS_SERVERS": self.local(env["ZG_REDIS_SERVERS"]),
            "ZG_REDIS_DOWN_AFTER_MS": DOWN_AFTER_MS,
        }
        assert env["ZG_REDIS_SERVERS"].split() == self.names
        # The pod's mounts: the ConfigMap, the Secret, the memory volume.
        mounts = {
            "/etc/zgserve/redis-acl": self.source,
            "/run/secrets/redis-users": self.secret,
            "/conf": out,
        }
        command = []
        for arg in container(self.sts, "configure")["command"]:
            for mount, here in mounts.items():
                if arg == mount or arg.startswith(f"{mount}/"):
                    arg = f"{here}{arg.removeprefix(mount)}"
            command.append(arg)
        path = f"{Path(find_binary('redis-cli')).parent}:{os.environ['PATH']}"
        subprocess.run(
            command,
            env={**os.environ, **env, **pod, "PATH": path},
            check=True,
            capture_output=True,
            timeout=60,
        )
        return out

    def start(self, index: int) -> None:
        """Pod `index`: its init container, then its redis and sentinel containers."""
        out = self.configure(index)
        data = self.folder / f"data-{index}"
        data.mkdir(exist_ok=True)
        for name in ("redis", "sentinel"):
            args = container(self.sts, name)["args"]
            assert args[0] == "redis-server"
            args = [find_binary("redis-server")] + [
                str(data) if a == "/data" else a.replace("/conf/", f"{out}/") for a in args[1:]
            ]
            args += ["--bind", self.addresses[index]]
            with (self.folder / f"{name}-{index}.log").open("ab") as log:
                self.processes[index, name] = subprocess.Popen(args, stdout=log, stderr=log)
            port = 6379 if name == "redis" else 26379
            self.wait_port(index, port, name)

    def wait_port(self, index: int, port: int, name: str) -> None:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection((self.addresses[index], port), timeout=1).close()
                return
            except OSError:
                process = self.processes[index, name]
                assert process.poll() is None, self.logs()
                assert time.monotonic() < deadline, self.logs()
                time.sleep(0.05)

    def kill(self, index: int) -> None:
        """The pod dies: its server and its sentinel, SIGKILL."""
        for name in ("redis", "sentinel"):
            process = self.processes.pop((index, name))
            process.send_signal(signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait(10)

    def logs(self) -> str:
        return "\n".join(p.read_text()[-1500:] for p in sorted(self.folder.glob("*.log")))

    def _client(self, index: int, port: int, user: str | None) -> redis.Redis:
        password = self.passwords[user] if user else None
        return redis.Redis(host=self.addresses[index], port=port, username=user, password=password)

    def server(self, index: int, user: str | None = "admin") -> redis.Redis:
        return self._client(index, 6379, user)

    def sentinel(self, index: int, user: str | None = "sentinel-client") -> redis.Redis:
        return self._client(index, 26379, user)

    def primary(self, index: int) -> str:
        with self.sentinel(index) as s:
            host, _port = s.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", "zgserve")
        return host.decode() if isinstance(host, bytes) else str(host)

    def settings(self, service: str) -> ServiceSettings:
        """The service's Redis settings from its ConfigMap, the sentinels at their addresses,
        its passwords from the Secret's files."""
        env = service_env(self.docs, service)
        return ServiceSettings(
            redis_url=env["REDIS_URL"],
            redis_username=env["REDIS_USERNAME"],
            redis_password=SecretStr(self.passwords[env["REDIS_USERNAME"]]),
            redis_sentinels=self.local(env["REDIS_SENTINELS"]),
            redis_master_name=env["REDIS_MASTER_NAME"],
            redis_sentinel_username=env["REDIS_SENTINEL_USERNAME"],
            redis_sentinel_password=SecretStr(self.passwords[env["REDIS_SENTINEL_USERNAME"]]),
        )

    def wait_formed(self, primary: int, timeout: float = 60) -> None:
        """Every sentinel names `primary` and knows every running replica and sentinel; every
        other running server replicates `primary`."""
        deadline = time.monotonic() + timeout
        replicas = [i for i in range(SIZE) if i != primary and (i, "redis") in self.processes]
        sentinels = [i for i in range(SIZE) if (i, "sentinel") in self.processes]
        while not self.formed(primary, replicas, sentinels):
            assert time.monotonic() < deadline, self.logs()
            time.sleep(0.1)

    def formed(self, primary: int, replicas: list[int], sentinels: list[int]) -> bool:
        try:
            for i in replicas:
                with self.server(i) as server:
                    if server.info("replication").get("master_link_status") != "up":
                        return False
            for i in sentinels:
                with self.sentinel(i) as sentinel:
                    master = sentinel.sentinel_master("zgserve")
                    known = sentinel.execute_command("SENTINEL REPLICAS", "zgserve")
                if master["ip"] != self.addresses[primary]:
                    return False
                if master["num-other-sentinels"] < len(sentinels) - 1:
                    return False
                ips = {str(r.get("ip", r.get(b"ip", b"")), "utf-8") for r in known}
                if not {self.addresses[r] for r in replicas} <= ips:
                    return False
        except (redis.ConnectionError, ResponseError):
            return False
        return True


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShippedGroup]:
    shipped = ShippedGroup(tmp_path_factory.mktemp("k8s-redis"))
    try:
        try:
            socket.create_server((shipped.addresses[0], 0)).close()
        except OSError:
            pytest.skip(f"cannot listen on {shipped.addresses[0]}")
        for index in range(SIZE):
            shipped.start(index)
        shipped.wait_formed(primary=0)
        yield shipped
    finally:
        shipped.stop()


def test_the_first_pod_leads_a_new_group(group: ShippedGroup) -> None:
    with group.server(0) as primary:
        assert primary.info("replication")["role"] == "master"
        assert primary.info("replication")["connected_slaves"] == SIZE - 1
    with group.sentinel(1) as sentinel:
        replicas = sentinel.execute_command("SENTINEL REPLICAS", "zgserve")
        assert len(replicas) == SIZE - 1
        master = dict(sentinel.sentinel_master("zgserve"))
        assert int(master["quorum"]) == 2
        assert int(master["num-other-sentinels"]) == SIZE - 1


def test_nobody_is_anonymous(group: ShippedGroup) -> None:
    for client in (group.server(1, None), group.sentinel(1, None)):
        with (
            client,
            pytest.raises((AuthenticationError, ResponseError), match=r"NOAUTH|authenticated"),
        ):
            client.ping()


def test_the_services_sentinel_user_asks_and_changes_nothing(group: ShippedGroup) -> None:
    with group.sentinel(2) as sentinel:
        assert group.primary(2) == group.addresses[0]
        for command in (
            ("SENTINEL SET", "zgserve", "quorum", "1"),
            ("SENTINEL MONITOR", "other", "127.0.0.1", "6390", "1"),
            ("SENTINEL REMOVE", "zgserve"),
            ("SENTINEL FAILOVER", "zgserve"),
            ("SENTINEL RESET", "*"),
        ):
            with pytest.raises(NoPermissionError):
                sentinel.execute_command(*command)


async def test_services_follow_a_failover_and_the_lost_primary_returns_as_a_replica(
    group: ShippedGroup,
) -> None:
    clients = {name: redis_client(group.settings(name)) for name in REDIS_CLIENTS}
    try:
        for name, client in clients.items():
            assert await client.set(OWN_KEY[name], "before")
            with pytest.raises(NoPermissionError):
                await client.flushall()
        group.kill(0)

        async def written() -> bool:
            try:
                for name, client in clients.items():
                    await client.set(OWN_KEY[name], "after")
            except REDIS_AWAY:
                return False
            return True

        await eventually(written, within_s=60, what="the services writing after the failover")
        promoted = group.addresses.index(group.primary(1))
        assert promoted in {1, 2}
        group.start(0)  # the pod again: configure.sh asks the sentinels
        group.wait_formed(primary=promoted)
        with group.server(0) as server:
            assert server.info("replication")["role"] == "slave"
        assert "replicaof" in (group.folder / "conf-0" / "redis.conf").read_text()
    finally:
        for client in clients.values():
            await client.aclose()
