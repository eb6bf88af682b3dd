# SPDX-License-Identifier: Apache-2.0
"""Who holds a local TCP port: so that "port 8545 is in use" can say by which process.

Linux only (it reads /proc/net/tcp{,6} for the listening socket's inode, then /proc/*/fd for
the process that has it open); elsewhere, or for another user's process that this user may not
inspect, the holder is unknown and the message says only that the port is taken.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from zg_shared.localservers import port_open

PROC = Path("/proc")
LISTEN = "0A"


class PortHolder(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: int
    name: str
    command: str


def _listening_inodes(port: int) -> set[str]:
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                    found.add(inode)
    return found


def port_holder(port: int) -> PortHolder | None:
    """The process listening on `port`, if this user can see it."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not inodes:
        return None
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return _holder(entry)
    return None


def _holder(entry: Path) -> PortHolder:
    name = command = ""
    with contextlib.suppress(OSError):
        name = (entry / "comm").read_text().strip()
    with contextlib.suppress(OSError):
        command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return PortHolder(pid=int(entry.name), name=name, command=command)


def describe_port(port: int) -> str | None:
    """None if nothing listens on 127.0.0.1:`port`, else e.g. "port 8545 is in use by pid
    1234 (anvil)"."""
    if not port_open(port):
        return None
    holder = port_holder(port)
    if holder is None:
        return f"port {port} is in use (by a process this user cannot inspect)"
    return f"port {port} is in use by pid {holder.pid} ({holder.name or holder.command})"


def busy_ports(ports: dict[str, int]) -> list[str]:
    """For each named port that is taken, what holds it: "chain: port 8545 is in use by ..."."""
    found = []
    for role, port in ports.items():
        described = describe_port(port)
        if described is not None:
            found.append(f"{role} {described}")
    return found
