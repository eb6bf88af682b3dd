# SPDX-License-Identifier: Apache-2.0
"""Starts and drives a local anvil node for development and tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from web3.types import RPCEndpoint

from zg_shared.chain.client import connect
from zg_shared.chain.types import Address, Web3Client
from zg_shared.localservers import free_port

ANVIL_NPM_BIN = Path("node_modules") / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


def find_anvil() -> str:
    """$ZG_ANVIL_BIN, else `anvil` on PATH, else the npm package in this or a parent folder."""
    explicit = os.environ.get("ZG_ANVIL_BIN")
    if explicit:
        return explicit
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    for folder in [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]:
        candidate = folder / ANVIL_NPM_BIN
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(
        "anvil not found: run `npm ci` (package.json pins it) or set ZG_ANVIL_BIN"
    )


class DevAccount(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: Address
    private_key: str


async def _read_config(path: Path, deadline: float) -> dict[str, Any]:
    """anvil opens its port before it has finished writing --config-out: wait for whole JSON."""
    while True:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            raw: dict[str, Any] = json.loads(await asyncio.to_thread(path.read_text))
            return raw
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"anvil wrote no readable config to {path}")
        await asyncio.sleep(0.05)


class AnvilNode:
    """An anvil process on a free local port, with its funded dev accounts.

    async with AnvilNode() as node:
        w3 = node.web3()
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        chain_id: int = 31337,
        accounts: int = 10,
        balance_ether: int = 10_000,
        block_time: float | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.chain_id = chain_id
        self._args = [
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(chain_id),
            "--accounts",
            str(accounts),
            "--balance",
            str(balance_ether),
            "--silent",
        ]
        if block_time is not None:
            self._args += ["--block-time", str(block_time)]
        self._args += list(extra_args)
        self._process: asyncio.subprocess.Process | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="zg-anvil-")
        self.accounts: list[DevAccount] = []

    @property
    def pid(self) -> int | None:
        """The anvil process's id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def web3(self) -> Web3Client:
        return connect(self.rpc_url)

    async def start(self, ready_timeout: float = 20.0) -> None:
        config = Path(self._tmp.name) / "anvil.json"
        self._process = await asyncio.create_subprocess_exec(
            find_anvil(),
            *self._args,
            "--config-out",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        deadline = asyncio.get_running_loop().time() + ready_timeout
        while not await self._port_open():
            if self._process.returncode is not None:
                err = await self._process.stderr.read() if self._process.stderr else b""
                raise RuntimeError(f"anvil exited with {self._process.returncode}: {err.decode()}")
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise TimeoutError(f"anvil not ready on port {self.port} in {ready_timeout}s")
            await asyncio.sleep(0.05)
        raw = await _read_config(config, deadline)
        self.accounts = [
            DevAccount(address=a, private_key=k)
            for a, k in zip(raw["available_accounts"], raw["private_keys"], strict=True)
        ]

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._process = None
        self._tmp.cleanup()

    async def _port_open(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class DevChain:
    """Test-node controls (anvil's and hardhat's `evm_*` methods) over any AsyncWeb3."""

    def __init__(self, w3: Web3Client) -> None:
        self.w3 = w3

    async def _rpc(self, method: str, params: list[Any]) -> Any:
        response = await self.w3.provider.make_request(RPCEndpoint(method), params)
        if "error" in response:
            raise RuntimeError(f"{method} failed: {response['error']}")
        return response.get("result")

    async def increase_time(self, seconds: int) -> None:
        """Moves the clock forward and mines a block, so that the next call sees the new time."""
        await self._rpc("evm_increaseTime", [seconds])
        await self.mine()

    async def mine(self, blocks: int = 1) -> None:
        await self._rpc("anvil_mine", [hex(blocks)])

    async def snapshot(self) -> str:
        return str(await self._rpc("evm_snapshot", []))

    async def revert(self, snapshot_id: str) -> None:
        if not await self._rpc("evm_revert", [snapshot_id]):
            raise RuntimeError(f"snapshot {snapshot_id} unknown")

    async def set_balance(self, address: str, wei: int) -> None:
        await self._rpc("anvil_setBalance", [address, hex(wei)])
