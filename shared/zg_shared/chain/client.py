# SPDX-License-Identifier: Apache-2.0
"""A typed async client for the Serving contract over web3.py's AsyncWeb3."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiohttp import ClientError
from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexStr
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from zg_shared.chain.artifacts import ContractArtifact, load_artifact
from zg_shared.chain.errors import ChainError, ChainUnavailable, RevertDecoder
from zg_shared.chain.events import EventDecoder, LogPosition, ServingEvent
from zg_shared.chain.models import Account, Service, ServiceParams, SettlementProof
from zg_shared.chain.sender import TransactionSender, TxResult, revert_data
from zg_shared.chain.types import Address, Web3Client, checksum, hex32

DEFAULT_PAGE = 100
# The contract's MIN_LOCK_TIME and MAX_LOCK_TIME: its constructor refuses a lock time outside.
MIN_LOCK_TIME_S = 10 * 60
MAX_LOCK_TIME_S = 365 * 24 * 3600
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def connect(rpc_url: str, timeout: float = 30.0) -> Web3Client:
    provider = AsyncWeb3.AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": timeout})
    w3: Web3Client = AsyncWeb3(provider)
    return w3


async def deploy_contract(
    w3: Web3Client, deployer: LocalAccount, artifact: ContractArtifact, *args: Any
) -> TxResult:
    """Deploys any compiled contract; the address is in `TxResult.contract_address`."""
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    data = factory.constructor(*args).data_in_transaction
    sender = TransactionSender(w3, deployer, RevertDecoder(artifact.abi))
    result = await sender.send({"data": data})
    if result.contract_address is None:
        raise ChainError(f"deploying {artifact.contract_name} created no contract")
    return result


class ServingClient:
    """One Serving contract, seen by one sender (or read-only without a key).

    Views raise ContractRevert for missing entries; transactions return a TxResult with the
    decoded events, and raise ContractRevert (nothing mined) or TransactionReverted.
    """

    def __init__(
        self,
        w3: Web3Client,
        address: str,
        account: LocalAccount | None = None,
        *,
        receipt_timeout: float = 120.0,
        bump_after_s: float | None = 30.0,
    ) -> None:
        artifact = load_artifact("Serving")
        self.w3 = w3
        # decode_tuples: structs come back as named tuples, which `_plain` turns into dicts.
        self.contract: AsyncContract = w3.eth.contract(
            address=checksum(address), abi=artifact.abi, decode_tuples=True
        )
        self.reverts = RevertDecoder(artifact.abi)
        self.events = EventDecoder(artifact.abi)
        self._sender = (
            TransactionSender(w3, account, self.reverts, self.events, receipt_timeout, bump_after_s)
            if account is not None
            else None
        )

    @classmethod
    async def deploy(
        cls,
        w3: Web3Client,
        deployer: LocalAccount,
        *,
        lock_time: int,
        verifiers: Mapping[int, str] | None = None,
    ) -> ServingClient:
        """Deploys `Serving` with one deployed verifier per circuit size N (`{4: address,
        64: address}`), fixed for the contract's life; none means settlement always reverts
        (`ServingUnknownCircuitSize`), for tests that never settle."""
        # (circuitSize, verifier) tuples: web3's constructor encoder takes no dicts for structs.
        entries = [(size, checksum(address)) for size, address in (verifiers or {}).items()]
        result = await deploy_contract(w3, deployer, load_artifact("Serving"), lock_time, entries)
        assert result.contract_address is not None
        return cls(w3, result.contract_address, deployer)

    def as_sender(self, account: LocalAccount | str) -> ServingClient:
        """The same contract and connection, sending from another key."""
        key = EthAccount.from_key(account) if isinstance(account, str) else account
        return ServingClient(self.w3, self.address, key)

    @property
    def address(self) -> ChecksumAddress:
        return self.contract.address

    @property
    def sender(self) -> ChecksumAddress:
        return self._require_sender().address

    # ------------------------------------------------------------ user transactions

    async def add_account(
        self, provider: str, signer: tuple[int, int], additional_info: str = "", *, value: int = 0
    ) -> TxResult:
        return await self._transact(
            "addAccount", checksum(provider), list(signer), additional_info, value=value
        )

    async def deposit_fund(self, provider: str, *, value: int) -> TxResult:
        return await self._transact("depositFund", checksum(provider), value=value)

    async def request_refund(self, provider: str, amount: int) -> TxResult:
        return await self._transact("requestRefund", checksum(provider), amount)

    async def process_refund(self, provider: str, indices: Sequence[int]) -> TxResult:
        return await self._transact("processRefund", checksum(provider), list(indices))

    async def rotate_signer(
        self, provider: str, signer: tuple[int, int], additional_info: str = ""
    ) -> TxResult:
        return await self._transact(
            "rotateSigner", checksum(provider), list(signer), additional_info
        )

    # ------------------------------------------------------------ provider transactions

    async def add_or_update_service(self, params: ServiceParams) -> TxResult:
        return await self._transact("addOrUpdateService", params.to_abi())

    async def remove_service(self, name: str) -> TxResult:
        return await self._transact("removeService", name)

    async def settle_fees(
        self, proofs: Sequence[SettlementProof], *, gas: int | None = None
    ) -> TxResult:
        return await self._transact("settleFees", [p.to_abi() for p in proofs], gas=gas)

    # ------------------------------------------------------------ views

    async def lock_time(self) -> int:
        return int(await self._view("lockTime"))

    async def chain_time(self) -> int:
        """The latest block's timestamp: the clock the contract's lock times run on."""
        return int((await self.w3.eth.get_block("latest"))["timestamp"])

    async def verifier_of(self, circuit_size: int) -> Address | None:
        """The verifier of SettleBatch(`circuit_size`) proofs, or None if this contract has none."""
        address = checksum(await self._view("verifierOf", circuit_size))
        return None if address == ZERO_ADDRESS else address

    async def verifiers(self) -> dict[int, Address]:
        """Every circuit size this contract settles, with its verifier."""
        sizes = [int(n) for n in await self._view("circuitSizes")]
        return {n: checksum(await self._view("verifierOf", n)) for n in sizes}

    async def get_account(self, user: str, provider: str, *, block: int | None = None) -> Account:
        """The account now, or as of `block`."""
        row = await self._view("getAccount", checksum(user), checksum(provider), block=block)
        return Account.model_validate(_plain(row))

    async def account_count(self) -> int:
        return int(await self._view("accountCount"))

    async def iter_accounts(self, page: int = DEFAULT_PAGE) -> AsyncIterator[Account]:
        """Every account, fetched a page at a time so that no single call grows unbounded."""
        offset = 0
        while True:
            rows = await self._view("getAccounts", offset, page)
            for row in rows:
                yield Account.model_validate(_plain(row))
            if len(rows) < page:
                return
            offset += page

    async def get_all_accounts(self) -> list[Account]:
        return [a async for a in self.iter_accounts()]

    async def get_service(self, provider: str, name: str) -> Service:
        row = await self._view("getService", checksum(provider), name)
        return Service.model_validate(_plain(row))

    async def service_count(self) -> int:
        return int(await self._view("serviceCount"))

    async def get_all_services(self, page: int = DEFAULT_PAGE) -> list[Service]:
        services: list[Service] = []
        offset = 0
        while True:
            rows = await self._view("getServices", offset, page)
            services += [Service.model_validate(_plain(r)) for r in rows]
            if len(rows) < page:
                return services
            offset += page

    async def get_events(self, from_block: int, to_block: int) -> list[ServingEvent]:
        """The contract's events in a block range, in chain order."""
        logs = await self.w3.eth.get_logs(
            {"address": self.contract.address, "fromBlock": from_block, "toBlock": to_block}
        )
        return self.events.decode_all(logs)

    async def event_at(self, position: LogPosition) -> ServingEvent | None:
        """The contract's event at `position`, if the chain has that log there: the
        transaction's receipt holds a log of this contract at that index, in that block (a
        reorg that moved it makes it another position). None otherwise. Whoever is told of a
        chain event by someone else (the bus) believes this, not the message."""
        try:
            receipt = await self.w3.eth.get_transaction_receipt(HexStr(position.transaction_hash))
        except TransactionNotFound:
            return None
        except (ClientError, OSError, TimeoutError, Web3RPCError) as exc:
            raise ChainUnavailable(f"RPC failed: {exc}") from exc
        for entry in receipt["logs"]:
            if (
                int(entry["logIndex"]) == position.log_index
                and str(entry["address"]).lower() == self.address.lower()
                and hex32(entry["blockHash"]) == position.block_hash
            ):
                return self.events.decode(entry)
        return None

    # ------------------------------------------------------------ plumbing

    def _require_sender(self) -> TransactionSender:
        if self._sender is None:
            raise ChainError("this client is read-only: give it an account to send transactions")
        return self._sender

    async def _transact(
        self, fn: str, *args: Any, value: int = 0, gas: int | None = None
    ) -> TxResult:
        sender = self._require_sender()
        data = self.contract.encode_abi(fn, args=list(args))
        return await sender.send(
            {"to": self.contract.address, "data": data, "value": value}, gas=gas
        )

    async def _view(self, fn: str, *args: Any, block: int | None = None) -> Any:
        try:
            return await self.contract.functions[fn](*args).call(
                block_identifier=block if block is not None else "latest"
            )
        except ContractLogicError as exc:
            raise self.reverts.decode(revert_data(exc)) from None


def _plain(value: Any) -> Any:
    """Named tuples (decoded structs) to dicts keyed by ABI name, recursively."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
