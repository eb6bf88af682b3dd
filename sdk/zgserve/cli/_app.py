# SPDX-License-Identifier: Apache-2.0
"""The `zg` commands. `zg --help` lists them; docs/cli.md describes each, with exit codes."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import openai
from rich.table import Table

from zg_shared.chain import Account, ContractRevert, Service, ServiceParams, checksum
from zg_shared.chain.client import MAX_LOCK_TIME_S, MIN_LOCK_TIME_S
from zg_shared.chain.devnet import DEFAULT_LOCK_TIME
from zg_shared.crypto import PublicKey
from zg_shared.localnet import DEFAULT_CIRCUIT_SIZES
from zg_shared.metering import DEFAULT_RULE, RULES
from zgserve._when import when
from zgserve.cli._common import (
    Amount,
    Context,
    Exit,
    describe,
    format_wei,
    make_console,
    one_line,
    quiet_logging,
    run,
)
from zgserve.cli._network import (
    Plan,
    network_dir,
    read_state,
    refuse_unless_free,
    shut_down,
    supervise,
)
from zgserve.cli._network import check as check_network
from zgserve.cli._network import demo as network_demo_run
from zgserve.cli._network import detach as detach_network
from zgserve.cli._network import show as show_network
from zgserve.cli._settle import OperatorNats, settle_now, wait_result
from zgserve.client import RefundStatus, ZgClient
from zgserve.errors import NotFound
from zgserve.evidence import Evidence, verify_evidence
from zgserve.terms import Limits

pass_ctx = click.make_pass_decorator(Context)
F = TypeVar("F", bound=Callable[..., Any])


def _address(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return checksum(value)
    except ValueError:
        raise click.BadParameter(f"not an Ethereum address: {value}") from None


provider_option = click.option(
    "--provider",
    envvar="ZG_PROVIDER",
    required=True,
    callback=_address,
    help="The provider's address [env ZG_PROVIDER].",
)


class _Commands(click.Group):
    """Whatever a command did not turn into a message still ends as one line and exit 1,
    never a traceback (`ZG_DEBUG=1` shows it, for a bug report)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("ZG_DEBUG"):
                raise
            message = (
                f"unexpected {type(exc).__name__}: {describe(exc)} "
                "(run again with ZG_DEBUG=1 for the traceback)"
            )
            if isinstance(ctx.obj, Context):
                ctx.obj.fail(Exit.ERROR, message)
            click.echo(f"error: {message}", err=True)
            ctx.exit(int(Exit.ERROR))


def _ceiling_options(f: F) -> F:
    """A global flag per price ceiling of `Limits`, each also read from `ZG_MAX_...`."""
    for name in reversed(("max_input_price", "max_output_price", "max_request_fee", "max_debt")):
        field = Limits.model_fields[name]
        flag = "--" + name.replace("_", "-")
        f = click.option(
            flag,
            name,
            type=Amount(allow_zero=True),
            help=f"Ceiling: {field.description} [env ZG_{name.upper()}, default "
            f"{format_wei(field.default)}].",
        )(f)
    return f


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--rpc-url", envvar="ZG_RPC_URL", help="Chain RPC URL [env ZG_RPC_URL].")
@click.option(
    "--contract", envvar="ZG_CONTRACT", help="Serving contract address [env ZG_CONTRACT]."
)
@click.option(
    "--deployment",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="ZG_DEPLOYMENT",
    help="Deployment file written by zg-devnet [default var/deployment.json].",
)
@click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="ZG_HOME",
    help="State directory: nonces, evidence [env ZG_HOME, default ~/.zgserve].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@_ceiling_options
@click.version_option(package_name="zgserve")
@click.pass_context
def cli(
    click_ctx: click.Context,
    /,
    rpc_url: str | None,
    contract: str | None,
    deployment: Path | None,
    home: Path | None,
    as_json: bool,
    **ceilings: int | None,
) -> None:
    """The 0G Serving Network from the command line: the marketplace, your accounts with
    providers, paid and verified chat, evidence checks, service registration, and a whole
    local network for development.

    The wallet key is read from ZG_PRIVATE_KEY only (never a flag). The chain and contract
    come from the flags, ZG_RPC_URL / ZG_CONTRACT, or var/deployment.json (zg-devnet).

    Paid requests stay within your ceilings (--max-input-price, ..., or ZG_MAX_*): a request
    that could cost more is refused before it is signed.

    Exit codes: 0 ok, 1 error, 2 usage or configuration, 3 verification failed,
    4 not found, 5 refused (by the contract, the gateway, your ceilings or your wallet's
    balance), 6 unreachable.
    """
    quiet_logging()
    click_ctx.obj = Context(
        rpc_url=rpc_url,
        contract=contract,
        deployment=deployment,
        home=home,
        as_json=as_json,
        err=make_console(sys.stderr),
        out=make_console(sys.stdout),
        limits=ceilings,
    )


# ---------------------------------------------------------------- marketplace


def _service_json(s: Service) -> dict[str, Any]:
    return s.model_dump(mode="json")


@cli.command()
@click.option("--provider", callback=_address, help="Only this provider's services.")
@pass_ctx
def services(ctx: Context, provider: str | None) -> None:
    """List the services on the marketplace, with prices (wei per unit)."""

    async def work() -> list[Service]:
        async with ctx.client(need_wallet=False) as zg:
            with ctx.spinner("reading the registry"):
                found = await zg.services()
        return [s for s in found if provider is None or s.provider == provider]

    found = run(ctx, work)
    if ctx.as_json:
        ctx.emit([_service_json(s) for s in found])
        return
    table = Table(title=f"{len(found)} services")
    for column in ("provider", "name", "type", "model", "input / unit", "output / unit", "url"):
        table.add_column(column)
    for s in found:
        table.add_row(
            s.provider,
            s.name,
            s.service_type,
            s.model,
            format_wei(s.input_price),
            format_wei(s.output_price),
            s.url,
        )
    ctx.out.print(table)


# ---------------------------------------------------------------- accounts


@cli.group()
def account() -> None:
    """Your account with a provider: create, deposit, show, refund, rotate-key."""


@dataclass(frozen=True)
class AccountView:
    account: Account
    refunds: list[RefundStatus]
    chain_now: int  # the latest block's timestamp

    @property
    def previous_key_left_s(self) -> int:
        """Seconds the key replaced by the last rotation still settles (0: none)."""
        return max(0, self.account.previous_signer_expires_at - self.chain_now)


async def _view(zg: ZgClient, provider: str) -> AccountView:
    account, refunds = await zg.account(provider), await zg.refunds(provider)
    now = int((await zg.w3.eth.get_block("latest"))["timestamp"])
    return AccountView(account, refunds, now)


def _refund_json(r: RefundStatus) -> dict[str, Any]:
    return {
        "index": r.index,
        "amount": r.amount,
        "created_at": r.requested_at,
        "processed": r.processed,
        "unlocks_at": r.unlocks_at,
        "unlocks_in_s": r.seconds_left,
        "due": r.due,
    }


def _account_json(view: AccountView) -> dict[str, Any]:
    a = view.account
    data = a.model_dump(mode="json", exclude={"additional_info"})
    data["available"] = a.available
    data["key_in_custody"] = a.additional_info.startswith(("zgk1:", "zgk2:"))
    data["refunds"] = [_refund_json(r) for r in view.refunds]
    return data


def _unlock(r: RefundStatus) -> str:
    if r.processed:
        return "paid out"
    if r.due:
        return "unlocked: zg account refund --process pays it"
    return f"unlocks {when(r.seconds_left)}"


def _show_account(ctx: Context, view: AccountView) -> None:
    if ctx.as_json:
        ctx.emit(_account_json(view))
        return
    a = view.account
    table = Table(show_header=False, title=f"account {a.user} with {a.provider}")
    table.add_row("balance", format_wei(a.balance))
    table.add_row("pending refund", format_wei(a.pending_refund))
    table.add_row("available", format_wei(a.available))
    table.add_row("last settled nonce", str(a.nonce))
    custody = a.additional_info.split(":", 1)[0] if a.additional_info else ""
    table.add_row("signing key", f"in custody on chain ({custody})" if custody else "none")
    if view.previous_key_left_s:
        table.add_row(
            "previous key",
            f"still settles what it signed; expires {when(view.previous_key_left_s)}",
        )
    ctx.out.print(table)
    if view.refunds:
        refunds = Table(title="refunds")
        for column in ("index", "amount", "when"):
            refunds.add_column(column)
        for r in view.refunds:
            refunds.add_row(str(r.index), format_wei(r.amount), _unlock(r))
        ctx.out.print(refunds)


@account.command("create")
@provider_option
@click.option("--deposit", type=Amount(), help="Deposit now (1000, 2gwei, 0.1eth).")
@pass_ctx
def account_create(ctx: Context, provider: str, deposit: int | None) -> None:
    """Create your account with a provider: a new request-signing key, registered on chain
    and stored there encrypted under your wallet (recoverable on any machine)."""

    async def work() -> AccountView:
        async with ctx.client() as zg:
            with ctx.spinner("creating the account"):
                await zg.create_account(provider, deposit=deposit or 0)
            return await _view(zg, provider)

    _show_account(ctx, run(ctx, work))


@account.command("deposit")
@provider_option
@click.argument("amount", type=Amount())
@pass_ctx
def account_deposit(ctx: Context, provider: str, amount: int) -> None:
    """Add AMOUNT (1000, 2gwei, 0.1eth) to your account with a provider."""

    async def work() -> AccountView:
        async with ctx.client() as zg:
            with ctx.spinner("depositing"):
                await zg.deposit(provider, amount)
            return await _view(zg, provider)

    _show_account(ctx, run(ctx, work))


@account.command("show")
@provider_option
@pass_ctx
def account_show(ctx: Context, provider: str) -> None:
    """Show your balance, settled nonce and refunds with a provider (when each unlocks)."""

    async def work() -> AccountView:
        async with ctx.client() as zg:
            return await _view(zg, provider)

    _show_account(ctx, run(ctx, work))


@account.command("rotate-key")
@provider_option
@pass_ctx
def account_rotate_key(ctx: Context, provider: str) -> None:
    """Replace your request-signing key with a provider (lost or phished): a new key,
    registered on chain and stored there encrypted under your wallet. The provider's gateway
    refuses the old key once it has seen the rotation; the old key still settles what it
    signed before, until the contract's lock time has passed. One rotation per lock time."""

    async def work() -> AccountView:
        async with ctx.client() as zg:
            with ctx.spinner("rotating the signing key"):
                await zg.rotate_signing_key(provider)
            return await _view(zg, provider)

    view = run(ctx, work)
    _show_account(ctx, view)
    if not ctx.as_json:
        ctx.out.print(
            "new signing key registered; the old one stops settling "
            f"{when(view.previous_key_left_s)}",
            highlight=False,
        )


@account.command("refund")
@provider_option
@click.option("--amount", type=Amount(), help="How much to ask back [default: all available].")
@click.option(
    "--process", is_flag=True, help="Pay out the refunds whose lock time has passed instead."
)
@pass_ctx
def account_refund(ctx: Context, provider: str, amount: int | None, process: bool) -> None:
    """Ask for a refund (paid out after the contract's lock time), or with --process pay
    out the refunds that are due and say when the next one unlocks."""

    async def work() -> tuple[AccountView, list[RefundStatus]]:
        async with ctx.client() as zg:
            with ctx.spinner("processing refunds" if process else "requesting a refund"):
                before = await zg.refunds(provider)
                if process:
                    await zg.process_refunds(provider)
                else:
                    await zg.request_refund(provider, amount)
            view = await _view(zg, provider)
            paid = [r for r in before if r.due and view.refunds[r.index].processed]
            return view, paid

    view, paid = run(ctx, work)
    _show_account(ctx, view)
    if ctx.as_json:
        return
    if paid:
        total = sum(r.amount for r in paid)
        ctx.out.print(f"paid out {len(paid)} refund(s): {format_wei(total)}", highlight=False)
    pending = [r for r in view.refunds if not r.processed]
    if pending:
        first = min(pending, key=lambda r: r.seconds_left)
        ctx.out.print(f"the next refund, of {format_wei(first.amount)}, {_unlock(first)}")


# ---------------------------------------------------------------- chat


@cli.command()
@provider_option
@click.option(
    "--service", envvar="ZG_SERVICE", required=True, help="Service name [env ZG_SERVICE]."
)
@click.option(
    "--gateway",
    envvar="ZG_GATEWAY_URL",
    help="Gateway URL [env ZG_GATEWAY_URL; default: the URL the service registered on chain].",
)
@click.option("--stream/--no-stream", default=True, show_default=True, help="Stream the reply.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Bound the reply (and its fee).")
@click.option("--system", help="A system message to start with.")
@click.option(
    "--evidence",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the evidence (signed requests, bodies, receipts) here at the end.",
)
@click.argument("prompt", required=False)
@pass_ctx
def chat(
    ctx: Context,
    provider: str,
    service: str,
    gateway: str | None,
    stream: bool,
    max_tokens: int | None,
    system: str | None,
    evidence: Path | None,
    prompt: str | None,
) -> None:
    """Chat with a service: one-shot with PROMPT (`-` reads stdin), else interactive.
    Every reply's receipt is verified; the last output fee is paid on exit."""
    if prompt == "-":
        prompt = sys.stdin.read()
    interactive = prompt is None
    if interactive and ctx.as_json:
        raise click.UsageError("--json needs a PROMPT (one-shot)")

    async def work() -> dict[str, Any]:
        zg = ctx.client()
        try:
            chat = ChatTurns(provider, service, gateway, stream, max_tokens, system, prompt)
            return await _chat(ctx, zg, chat)
        finally:
            try:
                if evidence is not None and zg.has_state(provider):
                    zg.export_evidence(provider, evidence)
            finally:
                with ctx.spinner("paying the last output fee"):
                    await zg.close()

    result = run(ctx, work)
    if ctx.as_json:
        ctx.emit(result)


@dataclass(frozen=True)
class ChatTurns:
    provider: str
    service: str
    gateway: str | None
    stream: bool
    max_tokens: int | None
    system: str | None
    prompt: str | None


async def _chat(ctx: Context, zg: ZgClient, chat: ChatTurns) -> dict[str, Any]:
    provider, gateway, stream, prompt = chat.provider, chat.gateway, chat.stream, chat.prompt
    system, max_tokens = chat.system, chat.max_tokens
    with ctx.spinner("recovering the signing key"):
        session = await zg.session(provider, chat.service, gateway)
    ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
    messages: list[Any] = [{"role": "system", "content": system}] if system else []
    extra: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
    replies: list[str] = []
    while True:
        text = prompt if prompt is not None else _ask(ctx)
        if text is None:
            break
        messages.append({"role": "user", "content": text})
        try:
            reply = await _one_turn(ctx, ai, session.service.model, messages, stream, extra)
        except openai.APIStatusError as exc:
            ctx.fail(Exit.REFUSED, f"the gateway refused ({exc.status_code}): {exc.message}")
        except openai.APIConnectionError as exc:
            url = session.base_url.removesuffix(f"/v1/proxy/{chat.service}")
            ctx.fail(Exit.UNREACHABLE, f"cannot reach the gateway at {url}: {describe(exc)}")
        messages.append({"role": "assistant", "content": reply})
        replies.append(reply)
        if prompt is not None:
            break
    state = await zg.provider_state(provider)
    return {
        "reply": replies[-1] if replies else "",
        "requests": len(state.records),
        "unpaid_output_fee": state.unpaid,
        "nonces": [r.nonce for r in state.records],
    }


def _ask(ctx: Context) -> str | None:
    try:
        text = ctx.out.input("[bold]you>[/] ")
    except (EOFError, KeyboardInterrupt):
        return None
    return None if text.strip() in ("/exit", "/quit") else text


async def _one_turn(
    ctx: Context,
    ai: openai.AsyncOpenAI,
    model: str,
    messages: list[Any],
    stream: bool,
    extra: dict[str, Any],
) -> str:
    if not stream:
        with ctx.spinner("waiting for the reply"):
            done = await ai.chat.completions.create(model=model, messages=messages, **extra)
        text = done.choices[0].message.content or "" if done.choices else ""
        if not ctx.as_json:
            ctx.out.print(text, highlight=False)
        return text
    parts: list[str] = []
    # Closed on the way out even when cut short (Ctrl-C): the gateway then charges what it
    # relayed, and closing fetches and verifies that receipt, so exit pays it.
    async with await ai.chat.completions.create(
        model=model, messages=messages, stream=True, **extra
    ) as chunks:
        async for chunk in chunks:
            for choice in chunk.choices:
                piece = choice.delta.content or ""
                parts.append(piece)
                if not ctx.as_json:
                    ctx.out.print(piece, end="", highlight=False, soft_wrap=True)
    if not ctx.as_json:
        ctx.out.print()
    return "".join(parts)


# ---------------------------------------------------------------- evidence


@cli.command()
@click.argument("evidence", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--against-chain",
    is_flag=True,
    help="Also check that the user's key is the account's registered signer and compare each "
    "service's receipt signer with the registry (needs the chain: --rpc-url, --contract).",
)
@pass_ctx
def verify(ctx: Context, evidence: Path, against_chain: bool) -> None:
    """Check an evidence file offline: every request signature, every receipt against the
    service's registered signer, every output fee against usage x price.
    Exit 0 when all verify, 3 when any fails, 2 when the file is not evidence."""
    try:
        loaded = Evidence.read(evidence)
        findings = verify_evidence(loaded)
    except ValueError as exc:
        ctx.fail(Exit.USAGE, f"{evidence} is not a zgserve evidence file: {one_line(exc)}")
    failed = [f for f in findings if not f.ok]
    problems, notes = run(ctx, lambda: _against_chain(ctx, loaded)) if against_chain else ([], [])
    if ctx.as_json:
        ctx.emit(
            {
                "valid": not failed and not problems,
                "provider": loaded.provider,
                "user": loaded.user,
                "records": len(findings),
                "failed": [f.model_dump() for f in failed],
                "chain_problems": problems,
                "chain_notes": notes,
            }
        )
    else:
        table = Table(title=f"{evidence}: {len(findings)} records, provider {loaded.provider}")
        for column in ("nonce", "service", "verdict"):
            table.add_column(column)
        for f in findings:
            verdict = "[green]ok[/]" if f.ok else f"[red]FAILED[/] {f.reason}"
            table.add_row(str(f.nonce), f.service, verdict)
        ctx.out.print(table)
        for line in problems:
            ctx.out.print(f"[red]chain:[/] {line}", highlight=False)
        for line in notes:
            ctx.out.print(f"[yellow]chain:[/] {line}", highlight=False)
    if failed or problems:
        sys.exit(int(Exit.VERIFICATION_FAILED))


async def _against_chain(ctx: Context, evidence: Evidence) -> tuple[list[str], list[str]]:
    """Problems (the evidence does not belong to this chain's account) and notes (the
    registry changed since: the evidence's terms are what the SDK saw then)."""
    problems: list[str] = []
    notes: list[str] = []
    async with ctx.client(need_wallet=False) as zg:
        if await zg.chain_id() != evidence.chain_id or zg.chain.address != evidence.contract:
            problems.append(
                f"the evidence is for chain {evidence.chain_id} contract {evidence.contract}, "
                f"not {await zg.chain_id()} {zg.chain.address}"
            )
            return problems, notes
        try:
            account = await zg.chain.get_account(evidence.user, evidence.provider)
        except ContractRevert:
            problems.append(f"no account of {evidence.user} with {evidence.provider} on chain")
            return problems, notes
        if PublicKey(*account.signer).to_hex() != evidence.signer:
            problems.append("the user's key in the evidence is not the account's registered signer")
        for name, terms in evidence.services.items():
            try:
                registered = await zg.service(evidence.provider, name)
            except NotFound:
                notes.append(f"service {name!r} is no longer registered")
                continue
            if registered.signer_address != terms.signer_address:
                notes.append(
                    f"service {name!r} now registers receipt signer {registered.signer_address}"
                    f" (the evidence has {terms.signer_address})"
                )
    return problems, notes


# ---------------------------------------------------------------- provider


@cli.group()
def provider() -> None:
    """Register, update or remove your services, or settle now (you are the provider:
    ZG_PRIVATE_KEY)."""


def _service_options(required: bool) -> Callable[[F], F]:
    def wrap(f: F) -> F:
        for option in reversed(
            [
                click.option("--name", required=True, help="Service name."),
                click.option(
                    "--url",
                    required=required,
                    help="Your gateway's public URL: users reach the service there.",
                ),
                click.option("--model", required=required, help="Model name."),
                click.option("--type", "service_type", help="Service type [chatbot]."),
                click.option("--verifiability", help="Verifiability (e.g. none, TeeML)."),
                click.option(
                    "--input-price",
                    type=Amount(allow_zero=True),
                    required=required,
                    help="Per input unit.",
                ),
                click.option(
                    "--output-price",
                    type=Amount(allow_zero=True),
                    required=required,
                    help="Per output unit.",
                ),
                click.option(
                    "--signer",
                    "signer_address",
                    callback=_address,
                    required=required,
                    help="Address whose key signs receipts (the gateway's receipt key).",
                ),
                click.option(
                    "--rule",
                    "counting_rule",
                    type=click.Choice(sorted(RULES)),
                    help=f"How units are counted [{DEFAULT_RULE}].",
                ),
            ]
        ):
            f = option(f)
        return f

    return wrap


def _params(existing: Service | None, values: dict[str, Any]) -> ServiceParams:
    base: dict[str, Any] = existing.model_dump() if existing is not None else {}
    base.pop("provider", None)
    base.pop("updated_at", None)
    for key, value in values.items():
        if value is not None:
            base[key] = value
    base.setdefault("service_type", "chatbot")
    base.setdefault("verifiability", "none")
    return ServiceParams.model_validate(base)


def _provider_change(ctx: Context, name: str, values: dict[str, Any], update: bool) -> None:
    async def work() -> Service:
        async with ctx.client() as zg:
            existing = None
            if update:
                existing = await zg.service(zg.address, name)
            with ctx.spinner("registering the service"):
                await zg.register_service(_params(existing, {"name": name, **values}))
            return await zg.service(zg.address, name)

    registered = run(ctx, work)
    if ctx.as_json:
        ctx.emit(_service_json(registered))
    else:
        ctx.out.print(
            f"{registered.name}: {registered.model} at {registered.url}, input "
            f"{format_wei(registered.input_price)}, output {format_wei(registered.output_price)}"
            f" per unit, receipts signed by {registered.signer_address}"
        )


@provider.command("register")
@_service_options(required=True)
@pass_ctx
def provider_register(ctx: Context, /, name: str, **values: Any) -> None:
    """Register a service (or replace it entirely)."""
    _provider_change(ctx, name, values, update=False)


@provider.command("update")
@_service_options(required=False)
@pass_ctx
def provider_update(ctx: Context, /, name: str, **values: Any) -> None:
    """Change some fields of a registered service; the others stay."""
    _provider_change(ctx, name, values, update=True)


@provider.command("remove")
@click.option("--name", required=True, help="Service name.")
@pass_ctx
def provider_remove(ctx: Context, name: str) -> None:
    """Remove one of your services from the registry."""

    async def work() -> str:
        async with ctx.client() as zg:
            await zg.service(zg.address, name)  # not found -> exit 4
            with ctx.spinner("removing the service"):
                result = await zg.remove_service(name)
            return result.tx_hash

    tx = run(ctx, work)
    if ctx.as_json:
        ctx.emit({"removed": name, "tx_hash": tx})
    else:
        ctx.out.print(f"removed {name} (tx {tx})")


@provider.command("settle")
@click.option("--provider", "provider_address", callback=_address, help="Default: your wallet's.")
@click.option("--user", callback=_address, help="Settle only this user's account.")
@click.option(
    "--nats-url", help="The provider's NATS [env ZG_NATS_URL; default nats://127.0.0.1:4222]."
)
@click.option(
    "--nats-user", help="The operators' NATS user [env ZG_NATS_USERNAME; with a password: admin]."
)
@click.option(
    "--nats-password-file",
    type=click.Path(dir_okay=False),
    help="A file holding its password [env ZG_NATS_PASSWORD_FILE; or ZG_NATS_PASSWORD].",
)
@click.option(
    "--nats-ca-file", type=click.Path(dir_okay=False), help="CA for TLS [env ZG_NATS_CA_FILE]."
)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait.")
@pass_ctx
def provider_settle(
    ctx: Context,
    provider_address: str | None,
    user: str | None,
    nats_url: str | None,
    nats_user: str | None,
    nats_password_file: str | None,
    nats_ca_file: str | None,
    timeout: float,
) -> None:
    """Ask your billing service to settle now (whatever its policy says), and wait until the
    settlements are confirmed on chain. No flag takes the NATS password: ZG_NATS_PASSWORD_FILE,
    the file ZG_NATS_PASSWORD in ZG_SECRETS_DIR, or ZG_NATS_PASSWORD."""
    given: dict[str, Any] = {
        "nats_url": nats_url,
        "nats_username": nats_user,
        "nats_password_file": nats_password_file,
        "nats_ca_file": nats_ca_file,
    }

    async def work() -> dict[str, Any]:
        bus = OperatorNats(**{k: v for k, v in given.items() if v is not None}).nats_access()
        provider_ = provider_address
        if provider_ is None:
            async with ctx.client() as zg:
                provider_ = zg.address
        return await settle_now(
            ctx,
            bus,
            checksum(provider_),
            checksum(user) if user else None,
            timeout,
        )

    wait_result(ctx, run(ctx, work))


# ---------------------------------------------------------------- network


@cli.group()
def network() -> None:
    """Run the whole network on this machine (development and demos)."""


@network.command("up")
@network_dir
@click.option("--detach", is_flag=True, help="Run in the background; return once it is ready.")
@click.option("--chain-port", type=int, default=8545, show_default=True)
@click.option("--nats-port", type=int, default=4222, show_default=True)
@click.option("--redis-port", type=int, default=6379, show_default=True)
@click.option("--gateway-port", type=int, default=3080, show_default=True)
@click.option("--backend-port", type=int, default=8000, show_default=True)
@click.option(
    "--lock-time",
    type=click.IntRange(MIN_LOCK_TIME_S, MAX_LOCK_TIME_S),
    default=DEFAULT_LOCK_TIME,
    show_default=True,
    help="Refund lock, s.",
)
@click.option(
    "--settle-threshold",
    type=Amount(),
    default=1,
    show_default=True,
    help="Billing settles an account once it owes this much.",
)
@click.option(
    "--circuit-size",
    "circuit_sizes",
    type=click.IntRange(1),
    multiple=True,
    default=DEFAULT_CIRCUIT_SIZES,
    show_default=True,
    help="SettleBatch(N) sizes to settle with (repeat for several); sizes without committed "
    "keys get single-party DEV keys, made once on this machine (~2 min at 64).",
)
@click.option(
    "--demo",
    "demo_requests",
    type=click.IntRange(0, 100),
    default=0,
    show_default=True,
    help="Once up, a demo user sends this many requests and waits for them to settle.",
)
@pass_ctx
def network_up(
    ctx: Context,
    directory: Path,
    detach: bool,
    chain_port: int,
    nats_port: int,
    redis_port: int,
    gateway_port: int,
    backend_port: int,
    lock_time: int,
    settle_threshold: int,
    circuit_sizes: tuple[int, ...],
    demo_requests: int,
) -> None:
    """Start a local chain, NATS, Redis, the contracts, a demo service and the provider's
    services (sample backend, gateway, prover, billing, chain indexer) as processes."""
    plan = Plan(
        directory=directory,
        chain_port=chain_port,
        nats_port=nats_port,
        redis_port=redis_port,
        gateway_port=gateway_port,
        backend_port=backend_port,
        lock_time=lock_time,
        settle_threshold=settle_threshold,
        demo_requests=demo_requests,
        circuit_sizes=tuple(circuit_sizes),
    )
    refuse_unless_free(ctx, plan)
    if detach:
        args = [
            "--dir", str(directory), "--chain-port", str(chain_port),
            "--nats-port", str(nats_port), "--redis-port", str(redis_port),
            "--gateway-port", str(gateway_port), "--backend-port", str(backend_port),
            "--lock-time", str(lock_time), "--settle-threshold", str(settle_threshold),
            "--demo", str(demo_requests),
            *(a for n in circuit_sizes for a in ("--circuit-size", str(n))),
        ]  # fmt: skip
        sys.exit(detach_network(ctx, args, directory))
    sys.exit(run(ctx, lambda: supervise(ctx, plan)))


@network.command("status")
@network_dir
@pass_ctx
def network_status(ctx: Context, directory: Path) -> None:
    """Show every process of the running network and whether it is healthy."""
    state = read_state(ctx, directory)
    report = asyncio.run(check_network(state))
    show_network(ctx, state, report)
    if not all(r["healthy"] for r in report.values()):
        sys.exit(int(Exit.ERROR))


@network.command("down")
@network_dir
@pass_ctx
def network_down(ctx: Context, directory: Path) -> None:
    """Stop the network `zg network up` started (all its processes)."""
    shut_down(ctx, directory)


@network.command("demo")
@network_dir
@click.option("--requests", type=click.IntRange(1, 100), default=3, show_default=True)
@pass_ctx
def network_demo(ctx: Context, directory: Path, requests: int) -> None:
    """A demo user on the running network: creates an account, sends a few streamed chats
    (verified), pays the last output fee, and waits until they are settled on chain."""
    result = run(ctx, lambda: network_demo_run(ctx, directory, requests))
    if not result["settled"]:
        sys.exit(int(Exit.ERROR))
