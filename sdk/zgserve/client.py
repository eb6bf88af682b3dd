# SPDX-License-Identifier: Apache-2.0
"""ZgClient: the user's side of the 0G Serving Network, async.

async with ZgClient.from_config(load_config()) as zg:
    await zg.create_account(provider, deposit=10**17)
    session = await zg.session(provider, "demo-chat")   # the gateway URL registered on chain
    ai = openai.AsyncOpenAI(base_url=session.base_url, api_key="zg", http_client=session.http)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import httpx2
from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount

from zg_shared.chain import (
    Account,
    ChainUnavailable,
    ContractRevert,
    Service,
    ServiceParams,
    ServingClient,
    TxResult,
    Web3Client,
    checksum,
    connect,
)
from zg_shared.crypto import (
    CustodyContext,
    CustodyError,
    PublicKey,
    blob_generation,
    decrypt_signing_key,
    encrypt_signing_key,
    generate_private_key,
    prv2pub,
)
from zg_shared.endpoints import FEE_ONLY_ENDPOINT
from zgserve._amounts import format_wei
from zgserve._nonces import NonceAllocator
from zgserve._provider import ProviderState
from zgserve._transport import TERMS_MAX_AGE_S, PaidTransport
from zgserve._when import when
from zgserve.config import ZgConfig
from zgserve.errors import (
    AccountError,
    ConfigError,
    GatewayRefused,
    InsufficientFunds,
    NoAccount,
    NoService,
    ZgError,
)
from zgserve.terms import Limits, ServiceTerms

DEFAULT_TIMEOUT_S = 300.0
T = TypeVar("T")


@dataclass(frozen=True)
class ServiceSession:
    """One service of one provider: point an OpenAI client at `base_url` with `http`."""

    provider: str
    service: Service
    base_url: str
    http: httpx2.AsyncClient
    transport: PaidTransport


class ZgClient:
    """Accounts, the marketplace and paid sessions for one wallet on one Serving contract."""

    def __init__(
        self,
        rpc_url: str,
        contract: str,
        wallet_key: str | None = None,
        *,
        state_dir: Path | None = None,
        evidence_dir: Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        limits: Limits | None = None,
        terms_max_age_s: float = TERMS_MAX_AGE_S,
    ) -> None:
        self._wallet: LocalAccount | None = _wallet(wallet_key) if wallet_key else None
        try:
            contract = checksum(contract)
        except ValueError:
            raise ConfigError(f"the contract address {contract!r} is not an address") from None
        self.rpc_url = rpc_url
        self.w3: Web3Client = connect(rpc_url)
        self.chain = ServingClient(self.w3, contract, self._wallet)
        self.state_dir = state_dir
        self.evidence_dir = evidence_dir or (state_dir / "evidence" if state_dir else None)
        self.timeout_s = timeout_s
        self.limits = limits or Limits()
        self.terms_max_age_s = terms_max_age_s
        self._chain_id: int | None = None
        self._providers: dict[str, ProviderState] = {}
        self._sessions: list[ServiceSession] = []

    @classmethod
    def from_config(
        cls,
        config: ZgConfig,
        *,
        evidence_dir: Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> ZgClient:
        return cls(
            config.rpc_url,
            config.contract,
            config.wallet_key,
            state_dir=config.state_dir,
            evidence_dir=evidence_dir,
            timeout_s=timeout_s,
            limits=config.limits,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(settle=kind is None)

    # ------------------------------------------------------------ identity

    @property
    def address(self) -> str:
        return str(self._require_wallet().address)

    def _require_wallet(self) -> LocalAccount:
        if self._wallet is None:
            raise ConfigError("no wallet key: set ZG_PRIVATE_KEY (never pass it on a command line)")
        return self._wallet

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self.w3.eth.chain_id)
        return self._chain_id

    async def _custody(self, provider: str) -> CustodyContext:
        return CustodyContext(await self.chain_id(), self.chain.address, provider, self.address)

    # ------------------------------------------------------------ marketplace

    async def services(self) -> list[Service]:
        return await self.chain.get_all_services()

    async def service(self, provider: str, name: str) -> Service:
        try:
            return await self.chain.get_service(provider, name)
        except ContractRevert as exc:
            raise NoService(f"provider {provider} has no service {name!r} ({exc.name})") from None

    # ------------------------------------------------------------ accounts

    async def account(self, provider: str) -> Account:
        try:
            return await self.chain.get_account(self.address, provider)
        except ContractRevert as exc:
            if exc.name == "ServingAccountNotFound":
                raise NoAccount(f"no account with provider {provider}: create one first") from None
            raise

    async def has_account(self, provider: str) -> bool:
        try:
            await self.account(provider)
        except NoAccount:
            return False
        return True

    async def create_account(self, provider: str, deposit: int = 0) -> Account:
        """Generates the request-signing key, registers its public key, stores it encrypted in
        `additionalInfo` (recoverable with the wallet key alone), and deposits `deposit` wei."""
        provider = checksum(provider)
        if await self.has_account(provider):
            raise AccountError(f"an account with provider {provider} already exists")
        prv = generate_private_key()
        pub = prv2pub(prv)
        blob = encrypt_signing_key(self._require_wallet().key, await self._custody(provider), prv)
        await self._paying(
            deposit,
            f"creating the account with a deposit of {format_wei(deposit)}",
            lambda: self.chain.add_account(provider, pub.as_tuple(), blob, value=deposit),
        )
        return await self.account(provider)

    async def rotate_signing_key(self, provider: str) -> TxResult:
        """Replaces the account's request-signing key (lost or phished) with a new one,
        registered on chain and stored there encrypted like the first.

        The gateway refuses the old key once its indexer has seen the rotation, and takes the
        new one from then; until then it still knows only the old key. The old key keeps
        settling for the contract's lock time, so the provider is paid for what it signed
        before. One rotation per lock time: another one inside it raises AccountError (the
        contract would revert it, `ServingRotationPending`)."""
        account = await self.account(provider)
        now = int((await self.w3.eth.get_block("latest"))["timestamp"])
        if account.previous_signer_expires_at > now:
            raise AccountError(
                "the signing key was rotated less than a lock time ago: the key before it stops "
                f"settling {when(account.previous_signer_expires_at - now)}; rotate "
                "again after that"
            )
        # The next generation: its wallet message differs, so a signature phished for the
        # key being replaced does not open this one (docs/key-custody.md).
        try:
            generation = blob_generation(account.additional_info) + 1
        except CustodyError:
            generation = 1
        ctx = replace(await self._custody(account.provider), generation=generation)
        prv = generate_private_key()
        pub = prv2pub(prv)
        blob = encrypt_signing_key(self._require_wallet().key, ctx, prv)
        result = await self._paying(
            0,
            "rotating the signing key",
            lambda: self.chain.rotate_signer(account.provider, pub.as_tuple(), blob),
        )
        state = self._providers.get(account.provider)
        if state is not None:  # signs with the new key from now on, nonces continuing
            state.signing_key, state.signer = prv, pub
        return result

    async def recover_signing_key(self, provider: str) -> bytes:
        """The account's signing key, decrypted from the chain with the wallet key."""
        account = await self.account(provider)
        try:
            return decrypt_signing_key(
                self._require_wallet().key,
                await self._custody(account.provider),
                account.additional_info,
                PublicKey(*account.signer),
            )
        except CustodyError as exc:
            raise AccountError(f"cannot recover the signing key from the chain: {exc}") from exc

    async def deposit(self, provider: str, amount: int) -> TxResult:
        return await self._paying(
            amount,
            f"depositing {format_wei(amount)}",
            lambda: self.chain.deposit_fund(provider, value=amount),
        )

    async def request_refund(self, provider: str, amount: int | None = None) -> TxResult:
        """Asks for `amount` wei back (all that is available when None); it can be processed
        after the contract's lock time, which leaves the provider time to settle."""
        if amount is None:
            amount = (await self.account(provider)).available
        return await self._paying(
            0, "requesting a refund", lambda: self.chain.request_refund(provider, amount)
        )

    async def refunds(self, provider: str) -> list[RefundStatus]:
        """The account's refunds, each with when it unlocks by the chain's clock."""
        account = await self.account(provider)
        lock = await self.chain.lock_time()
        now = int((await self.w3.eth.get_block("latest"))["timestamp"])
        return [
            RefundStatus(
                index=i,
                amount=r.amount,
                requested_at=r.created_at,
                unlocks_at=r.created_at + lock,
                processed=r.processed,
                seconds_left=max(0, r.created_at + lock - now),
            )
            for i, r in enumerate(account.refunds)
        ]

    async def refundable(self, provider: str) -> list[int]:
        """Indices of refunds whose lock time has passed and that are not processed yet."""
        return [r.index for r in await self.refunds(provider) if r.due]

    async def process_refunds(self, provider: str, indices: list[int] | None = None) -> TxResult:
        if indices is None:
            refunds = await self.refunds(provider)
            indices = [r.index for r in refunds if r.due]
            if not indices:
                pending = [r for r in refunds if not r.processed]
                if not pending:
                    raise AccountError("there is no refund to process: ask for one first")
                first = min(pending, key=lambda r: r.seconds_left)
                raise AccountError(
                    f"no refund has passed its lock time yet: the next, of "
                    f"{format_wei(first.amount)}, unlocks {when(first.seconds_left)}"
                )
        chosen = indices
        return await self._paying(
            0, "processing refunds", lambda: self.chain.process_refund(provider, chosen)
        )

    async def _paying(self, value: int, what: str, send: Callable[[], Awaitable[T]]) -> T:
        """Sends a transaction of `value` wei, refused with the wallet's balance and what was
        needed when the wallet cannot pay its value and gas (InsufficientFunds)."""
        wallet = self._require_wallet().address
        balance = int(await self.w3.eth.get_balance(wallet))
        if balance < value:
            raise InsufficientFunds(wallet, balance, value, what)
        try:
            return await send()
        except ChainUnavailable as exc:
            if "insufficient funds" not in str(exc).lower():
                raise
            balance = int(await self.w3.eth.get_balance(wallet))
            raise InsufficientFunds(wallet, balance, value, what) from None

    # ------------------------------------------------------------ provider side

    async def register_service(self, params: ServiceParams) -> TxResult:
        return await self._paying(
            0,
            f"registering service {params.name!r}",
            lambda: self.chain.add_or_update_service(params),
        )

    async def remove_service(self, name: str) -> TxResult:
        return await self._paying(
            0, f"removing service {name!r}", lambda: self.chain.remove_service(name)
        )

    # ------------------------------------------------------------ paid requests

    async def provider_state(self, provider: str) -> ProviderState:
        provider = checksum(provider)
        state = self._providers.get(provider)
        if state is None:
            prv = await self.recover_signing_key(provider)
            chain_id = await self.chain_id()
            nonce_file = (
                self.state_dir
                / "nonces"
                / f"{chain_id}-{self.chain.address}-{self.address}-{provider}"
                if self.state_dir is not None
                else None
            )
            state = ProviderState(
                chain_id=chain_id,
                contract=self.chain.address,
                user=self.address,
                provider=provider,
                signing_key=prv,
                signer=prv2pub(prv),
                nonces=NonceAllocator(nonce_file),
                evidence_dir=self.evidence_dir,
            )
            self._providers[provider] = state
        return state

    async def session(
        self,
        provider: str,
        service: str,
        gateway_url: str | None = None,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> ServiceSession:
        """An httpx2 client that pays for and verifies every call to `service` through the
        provider's gateway: the URL the service registered on chain, unless `gateway_url`
        overrides it. Refused (CeilingExceeded) when its prices are above the ceilings.
        Closed by `close()`."""
        state = await self.provider_state(provider)
        registered = await self.service(state.provider, service)
        url = (gateway_url or registered.url).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"the gateway URL {url!r} is not an http(s) URL"
                if gateway_url
                else f"service {service!r} of {state.provider} registers the URL {url!r}, "
                "which is not an http(s) URL: pass the gateway's URL"
            )

        async def read_terms(name: str) -> ServiceTerms:
            return ServiceTerms.of(await self.service(state.provider, name))

        paid = PaidTransport(
            state, read_terms, self.limits, transport, terms_max_age_s=self.terms_max_age_s
        )
        paid.learn(ServiceTerms.of(registered))
        http = httpx2.AsyncClient(transport=paid, timeout=self.timeout_s)
        session = ServiceSession(
            provider=state.provider,
            service=registered,
            base_url=f"{url}/v1/proxy/{service}",
            http=http,
            transport=paid,
        )
        self._sessions.append(session)
        return session

    def has_state(self, provider: str) -> bool:
        """Whether this client has sent requests to (or opened a session with) `provider`."""
        return checksum(provider) in self._providers

    def unpaid(self, provider: str) -> int:
        """Output fees received and not yet paid to `provider`."""
        state = self._providers.get(checksum(provider))
        return state.unpaid if state else 0

    async def settle(self, provider: str) -> int:
        """Pays the output fees still owed to `provider` with one fee-only request (the
        gateway's `settle` endpoint: no input, no backend call). Returns what was paid."""
        state = self._providers.get(checksum(provider))
        if state is None or state.unpaid == 0 or state.failure is not None:
            return 0
        session = next((s for s in self._sessions if s.provider == state.provider), None)
        if session is None:
            return 0
        owed = state.unpaid
        response = await session.http.post(f"{session.base_url}/{FEE_ONLY_ENDPOINT}", json={})
        if response.status_code != 200:
            raise GatewayRefused(response.status_code, _code(response), response.text[:200])
        return owed

    def export_evidence(self, provider: str, path: Path) -> Path:
        """Writes what was exchanged with `provider` (requests, bodies, receipts) to `path`."""
        state = self._providers.get(checksum(provider))
        if state is None:
            raise ZgError(f"nothing was exchanged with provider {provider}")
        return state.export(path)

    async def close(self, *, settle: bool = True) -> None:
        """Pays the last output fees (unless `settle` is False) and closes every connection."""
        try:
            if settle:
                for provider in list(self._providers):
                    await self.settle(provider)
        finally:
            for session in self._sessions:
                await session.http.aclose()
            self._sessions.clear()
            await self.w3.provider.disconnect()


@dataclass(frozen=True)
class RefundStatus:
    """One refund of an account; times are the chain's (block timestamps)."""

    index: int
    amount: int
    requested_at: int
    unlocks_at: int
    processed: bool
    seconds_left: int  # until it unlocks, from the latest block (0: unlocked)

    @property
    def due(self) -> bool:
        """Unlocked and not paid out yet: `process_refunds` pays it."""
        return not self.processed and self.seconds_left == 0


def _wallet(key: str) -> LocalAccount:
    """The wallet from its key, or a ConfigError that never shows the key."""
    try:
        wallet: LocalAccount = EthAccount.from_key(key)
    except ValueError:
        digits = key.strip().removeprefix("0x")
        raise ConfigError(
            "the wallet key (ZG_PRIVATE_KEY) is not a private key: it must be 0x and 64 hex "
            f"digits (32 bytes) of a valid secp256k1 key; the one given has {len(digits)} "
            "characters after 0x"
        ) from None
    return wallet


def _code(response: httpx2.Response) -> str:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return ""
    return str(error.get("code", "")) if isinstance(error, dict) else ""
