# SPDX-License-Identifier: Apache-2.0
"""What every `zg` command shares: configuration, amounts, output, spinners and exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import aiohttp
import click
import httpx2
import pydantic
from rich.console import Console
from web3.exceptions import BadFunctionCallOutput, Web3RPCError

from zg_shared.chain import ChainError, ChainUnavailable, ContractRevert
from zgserve._amounts import AmountError, format_wei, parse_amount
from zgserve.client import ZgClient
from zgserve.config import ZgConfig, load_config
from zgserve.errors import (
    AccountError,
    CeilingExceeded,
    ConfigError,
    GatewayRefused,
    InsufficientFunds,
    NotFound,
    ProviderStopped,
    VerificationError,
    ZgError,
)

T = TypeVar("T")
__all__ = [
    "Amount",
    "Context",
    "Exit",
    "describe",
    "format_wei",
    "make_console",
    "one_line",
    "quiet_logging",
    "run",
]
# Without a terminal nothing is wrapped: a line meant to be copied (`export ...`) stays one line.
NO_TERMINAL_WIDTH = 10_000


class Exit(IntEnum):
    """Exit codes (docs/cli.md). 2 is also what click uses for a malformed command line."""

    OK = 0
    ERROR = 1
    USAGE = 2
    VERIFICATION_FAILED = 3
    NOT_FOUND = 4
    REFUSED = 5
    UNREACHABLE = 6


class Amount(click.ParamType[int]):
    """`1000` (wei), `2gwei`, `0.1eth`: positive, or also zero with `allow_zero` (prices)."""

    name = "amount"

    def __init__(self, *, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_amount(str(value), allow_zero=self.allow_zero)
        except AmountError as exc:
            self.fail(str(exc), param, ctx)


def make_console(stream: IO[str]) -> Console:
    """A console for stdout or stderr: rich's own on a terminal (which soft-wraps long lines
    without breaking them); elsewhere (a pipe, a file, a test) lines are never wrapped."""
    if stream.isatty():
        return Console(file=stream)
    return Console(file=stream, width=NO_TERMINAL_WIDTH, soft_wrap=True)


class _OneLine(logging.Formatter):
    """Warnings from the SDK and its libraries as one line each: `zg: message (cause)`."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text = f"{text} ({describe(record.exc_info[1])})"
        return f"zg: {text}"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (click's test runner swaps it)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def quiet_logging() -> None:
    """Log records reach the user as one line each, never with a traceback (a library such
    as nats-py logs one per failed connection attempt); `ZG_DEBUG=1` keeps them whole."""
    root = logging.getLogger()
    if os.environ.get("ZG_DEBUG") or any(isinstance(h, _StderrHandler) for h in root.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(_OneLine())
    handler.setLevel(logging.WARNING)
    root.addHandler(handler)
    if root.level > logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)


def one_line(exc: BaseException) -> str:
    """An error's message on one line (pydantic's span several)."""
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:3]
        )
    return " ".join(str(exc).split())


def describe(exc: BaseException) -> str:
    """The cause of an error in words: its message and, when a deeper cause says something
    else, that too (`Connection error. ([Errno 111] Connection refused)`); an error with no
    message is named by its kind (`TimeoutError` says nothing by itself)."""
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(texts) < 10:
        text = str(seen).strip() or ("timed out" if isinstance(seen, TimeoutError) else "")
        if text and not any(text in t for t in texts):
            texts.append(text)
        seen = seen.__cause__ or seen.__context__
    if not texts:
        return type(exc).__name__
    return texts[0] if len(texts) == 1 else f"{texts[0]} ({texts[-1]})"


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
    limits: dict[str, int | None] = field(default_factory=dict)
    resolved: ZgConfig | None = None

    def config(self) -> ZgConfig:
        self.resolved = load_config(
            rpc_url=self.rpc_url,
            contract=self.contract,
            deployment=self.deployment,
            state_dir=self.home,
            limits=self.limits,
        )
        return self.resolved

    def client(self, need_wallet: bool = True) -> ZgClient:
        """A client of the configured wallet, or of none when the command reads only."""
        config = self.config()
        if not need_wallet:
            config = dataclasses.replace(config, wallet_key=None)
        elif not config.wallet_key:
            raise ConfigError("no wallet key: export ZG_PRIVATE_KEY=0x... (no flag takes it)")
        if config.state_dir is not None and config.state_dir.exists():
            if not config.state_dir.is_dir():
                raise ConfigError(f"the state directory {config.state_dir} is not a directory")
            if not os.access(config.state_dir, os.W_OK):
                raise ConfigError(f"the state directory {config.state_dir} is not writable")
        return ZgClient.from_config(config)

    @property
    def chain(self) -> str:
        """The chain endpoint, as resolved (for error messages)."""
        return self.resolved.rpc_url if self.resolved else (self.rpc_url or "the chain")

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
            self.err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
        sys.exit(int(code))


def run(ctx: Context, work: Callable[[], Awaitable[T]]) -> T:
    """Runs one command's coroutine, mapping what it raises to a message and an exit code."""
    try:
        return asyncio.run(_awaited(work))
    except (VerificationError, ProviderStopped) as exc:
        ctx.fail(Exit.VERIFICATION_FAILED, str(exc))
    except ConfigError as exc:
        ctx.fail(Exit.USAGE, str(exc))
    except pydantic.ValidationError as exc:
        ctx.fail(Exit.USAGE, f"invalid values: {one_line(exc)}")
    except NotFound as exc:
        ctx.fail(Exit.NOT_FOUND, str(exc))
    except (AccountError, GatewayRefused, CeilingExceeded, InsufficientFunds) as exc:
        ctx.fail(Exit.REFUSED, str(exc))
    except ContractRevert as exc:
        ctx.fail(Exit.REFUSED, f"the contract refused: {exc}")
    except BadFunctionCallOutput:
        contract = ctx.resolved.contract if ctx.resolved else "the contract address"
        ctx.fail(Exit.USAGE, f"no Serving contract at {contract} on {ctx.chain}")
    except (ChainUnavailable, aiohttp.ClientError) as exc:
        ctx.fail(Exit.UNREACHABLE, f"the chain at {ctx.chain} is unreachable: {describe(exc)}")
    except Web3RPCError as exc:
        ctx.fail(Exit.ERROR, f"the chain at {ctx.chain} answered with an error: {describe(exc)}")
    except httpx2.TransportError as exc:
        ctx.fail(Exit.UNREACHABLE, f"cannot connect to {_url_of(exc)}: {describe(exc)}")
    except (OSError, TimeoutError) as exc:
        ctx.fail(Exit.UNREACHABLE, f"cannot connect: {describe(exc)}")
    except (ChainError, ZgError) as exc:
        ctx.fail(Exit.ERROR, str(exc))
    except KeyboardInterrupt:
        sys.exit(130)


def _url_of(exc: httpx2.TransportError) -> str:
    try:
        return str(exc.request.url)
    except RuntimeError:
        return "the gateway"


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
