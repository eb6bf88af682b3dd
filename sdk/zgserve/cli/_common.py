# SPDX-License-Identifier: Apache-2.0
"""What every `zg` command shares: configuration, amounts, output, spinners and exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import httpx2
import pydantic
from rich.console import Console

from zg_shared.chain import ChainError, ChainUnavailable, ContractRevert
from zgserve.client import ZgClient
from zgserve.config import ZgConfig, load_config
from zgserve.errors import (
    AccountError,
    ConfigError,
    GatewayRefused,
    NotFound,
    ProviderStopped,
    VerificationError,
    ZgError,
)

T = TypeVar("T")


class Exit(IntEnum):
    """Exit codes (docs/cli.md). 2 is also what click uses for a malformed command line."""

    OK = 0
    ERROR = 1
    USAGE = 2
    VERIFICATION_FAILED = 3
    NOT_FOUND = 4
    REFUSED = 5
    UNREACHABLE = 6


UNITS = {"wei": 1, "gwei": 10**9, "eth": 10**18, "0g": 10**18}


def parse_amount(text: str) -> int:
    """`1000` (wei), `2.5gwei`, `0.1eth` (or `0g`): an amount in wei."""
    raw = text.strip().lower().replace("_", "")
    for unit in sorted(UNITS, key=len, reverse=True):
        if raw.endswith(unit):
            number, scale = raw[: -len(unit)].strip(), UNITS[unit]
            break
    else:
        number, scale = raw, 1
    try:
        value = Decimal(number) * scale
    except InvalidOperation:
        raise click.BadParameter(f"not an amount: {text!r} (e.g. 1000, 2gwei, 0.1eth)") from None
    if value < 0 or value != value.to_integral_value():
        raise click.BadParameter(f"{text!r} is not a whole number of wei")
    return int(value)


class Amount(click.ParamType[int]):
    name = "amount"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_amount(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def format_wei(wei: int) -> str:
    if wei >= 10**15:
        return f"{Decimal(wei) / 10**18:f} 0G ({wei} wei)"
    if wei >= 10**6:
        return f"{Decimal(wei) / 10**9:f} gwei"
    return f"{wei} wei"


@dataclass
class Context:
    """The global options, shared with every command."""

    rpc_url: str | None
    contract: str | None
    deployment: Path | None
    home: Path | None
    as_json: bool
    err: Console
    out: Console

    def config(self) -> ZgConfig:
        return load_config(
            rpc_url=self.rpc_url,
            contract=self.contract,
            deployment=self.deployment,
            state_dir=self.home,
        )

    def client(self, need_wallet: bool = True) -> ZgClient:
        config = self.config()
        if need_wallet and not config.wallet_key:
            raise ConfigError("no wallet key: export ZG_PRIVATE_KEY=0x... (no flag takes it)")
        return ZgClient.from_config(config)

    @contextlib.contextmanager
    def spinner(self, what: str) -> Iterator[None]:
        if self.as_json or not self.err.is_terminal:
            yield
            return
        with self.err.status(what):
            yield

    def emit(self, data: Any) -> None:
        """One JSON document on stdout (for --json)."""
        click.echo(json.dumps(data, indent=2, default=str))

    def fail(self, code: Exit, message: str) -> NoReturn:
        if self.as_json:
            click.echo(json.dumps({"error": message, "exit_code": int(code)}), err=True)
        else:
            self.err.print(f"[bold red]error:[/] {message}", highlight=False)
        sys.exit(int(code))


def run(ctx: Context, work: Callable[[], Awaitable[T]]) -> T:
    """Runs one command's coroutine, mapping what it raises to a message and an exit code."""
    try:
        return asyncio.run(_awaited(work))
    except VerificationError as exc:
        ctx.fail(Exit.VERIFICATION_FAILED, str(exc))
    except ProviderStopped as exc:
        ctx.fail(Exit.VERIFICATION_FAILED, str(exc))
    except ConfigError as exc:
        ctx.fail(Exit.USAGE, str(exc))
    except pydantic.ValidationError as exc:
        ctx.fail(Exit.USAGE, f"invalid values: {exc}")
    except NotFound as exc:
        ctx.fail(Exit.NOT_FOUND, str(exc))
    except AccountError as exc:
        ctx.fail(Exit.REFUSED, str(exc))
    except GatewayRefused as exc:
        ctx.fail(Exit.REFUSED, str(exc))
    except ContractRevert as exc:
        ctx.fail(Exit.REFUSED, f"the contract refused: {exc}")
    except ChainUnavailable as exc:
        ctx.fail(Exit.UNREACHABLE, f"the chain is unreachable: {exc}")
    except (httpx2.ConnectError, httpx2.TimeoutException, OSError) as exc:
        ctx.fail(Exit.UNREACHABLE, f"cannot connect: {exc}")
    except (ChainError, ZgError) as exc:
        ctx.fail(Exit.ERROR, str(exc))
    except KeyboardInterrupt:
        sys.exit(130)


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
