# SPDX-License-Identifier: Apache-2.0
"""Signs and sends transactions from one local key: nonces, gas, fees, receipts, reverts.

Nonces are allocated under a lock from the node's pending count, so that many transactions
can be in flight from one process and a transaction the node dropped leaves no gap. A
transaction not mined in `bump_after_s` is replaced by the same one with higher fees. One sender per
key per process: two senders for one key would race for nonces.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from aiohttp import ClientError
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexStr
from pydantic import BaseModel, ConfigDict
from web3.exceptions import (
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import TxParams

from zg_shared.chain.errors import (
    ChainUnavailable,
    ContractRevert,
    RevertDecoder,
    TransactionReverted,
)
from zg_shared.chain.events import EventDecoder, ServingEvent
from zg_shared.chain.types import Address, Web3Client

# Headroom over eth_estimateGas: estimates are exact for the state they ran on; a little slack
# keeps a transaction alive when state moves between estimate and inclusion.
GAS_MARGIN_NUM, GAS_MARGIN_DEN = 6, 5
# A replacement must pay more than the transaction it replaces (nodes ask >= 10% more).
BUMP_NUM, BUMP_DEN = 5, 4
RECEIPT_POLL_S = 0.1
log = logging.getLogger(__name__)


class TxResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    tx_hash: str
    block_number: int
    gas_used: int
    fee_paid: int = 0
    contract_address: Address | None = None
    events: tuple[ServingEvent, ...] = ()

    def events_of(self, kind: type[ServingEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def revert_data(exc: ContractLogicError) -> str | None:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    return data


class TransactionSender:
    def __init__(
        self,
        w3: Web3Client,
        account: LocalAccount,
        reverts: RevertDecoder,
        events: EventDecoder | None = None,
        receipt_timeout: float = 120.0,
        bump_after_s: float | None = 30.0,
        max_bumps: int = 3,
    ) -> None:
        self.w3 = w3
        self.account = account
        self._reverts = reverts
        self._events = events
        self._receipt_timeout = receipt_timeout
        self._bump_after_s = bump_after_s
        self._max_bumps = max_bumps
        self._nonce_lock = asyncio.Lock()
        self._chain_id: int | None = None

    @property
    def address(self) -> ChecksumAddress:
        return self.account.address

    async def send(self, tx: dict[str, Any], gas: int | None = None) -> TxResult:
        """Estimate (which surfaces reverts before any gas is spent), sign, send, wait."""
        tx = {"from": self.address, "value": 0, **tx}
        try:
            if gas is None:
                estimate = await self.w3.eth.estimate_gas(cast(TxParams, tx))
                gas = estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN
            full = {**tx, "gas": gas}
            nonce, fees, tx_hash = await self._send_new(full)
            receipt, tx_hash = await self._mined(full, nonce, fees, tx_hash)
        except ContractLogicError as exc:
            raise self._reverts.decode(revert_data(exc)) from None
        except TimeExhausted as exc:
            raise ChainUnavailable(
                f"transaction not mined in {self._receipt_timeout}s: {exc}"
            ) from exc
        except (ClientError, OSError, Web3RPCError) as exc:
            raise ChainUnavailable(f"RPC failed: {exc}") from exc
        if receipt["status"] != 1:
            raise TransactionReverted(
                await self._replay_revert(tx, receipt["blockNumber"]), tx_hash
            )
        logs = receipt["logs"]
        return TxResult(
            tx_hash=tx_hash,
            block_number=receipt["blockNumber"],
            gas_used=receipt["gasUsed"],
            fee_paid=receipt["gasUsed"] * receipt["effectiveGasPrice"],
            contract_address=receipt.get("contractAddress"),
            events=tuple(self._events.decode_all(logs)) if self._events else (),
        )

    async def _send_new(self, tx: dict[str, Any]) -> tuple[int, dict[str, int], str]:
        """Takes the next nonce and broadcasts; returns (nonce, fees, tx hash)."""
        if self._chain_id is None:
            self._chain_id = await self.w3.eth.chain_id
        fees = await self._fees()
        async with self._nonce_lock:
            # Sends are serialised here and each one reaches the node before the next, so the
            # node's pending count is exact; asking it every time also heals a gap left by a
            # transaction the node dropped (a reorg, a restarted node).
            nonce = await self.w3.eth.get_transaction_count(self.account.address, "pending")
            return nonce, fees, await self._broadcast(tx, nonce, fees)

    async def _broadcast(self, tx: dict[str, Any], nonce: int, fees: dict[str, int]) -> str:
        full = {**tx, **fees, "nonce": nonce, "chainId": self._chain_id, "type": 2}
        signed = self.account.sign_transaction(full)
        tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
        return "0x" + bytes(tx_hash).hex()

    async def _mined(
        self, tx: dict[str, Any], nonce: int, fees: dict[str, int], first: str
    ) -> tuple[Any, str]:
        """Waits for the transaction, replacing it with higher fees (same nonce) every
        `bump_after_s` while it is not mined, at most `max_bumps` times. Whichever version
        is mined is the one returned; the others can never be, since they share its nonce."""
        loop = asyncio.get_running_loop()
        hashes = [first]
        deadline = loop.time() + self._receipt_timeout
        next_bump = loop.time() + (self._bump_after_s or self._receipt_timeout)
        while True:
            for tx_hash in reversed(hashes):
                try:
                    return await self.w3.eth.get_transaction_receipt(HexStr(tx_hash)), tx_hash
                except TransactionNotFound:
                    continue
            now = loop.time()
            if now >= deadline:
                raise TimeExhausted(f"none of {hashes} mined in {self._receipt_timeout}s")
            if self._bump_after_s and now >= next_bump and len(hashes) <= self._max_bumps:
                fees = {k: v * BUMP_NUM // BUMP_DEN + 1 for k, v in fees.items()}
                try:
                    hashes.append(await self._broadcast(tx, nonce, fees))
                    log.warning(
                        "transaction %s not mined in %.0fs: replaced with higher fees (%s)",
                        hashes[0],
                        self._bump_after_s,
                        hashes[-1],
                    )
                except Web3RPCError as exc:  # one of ours was mined meanwhile ("nonce too low")
                    log.info("replacement of %s not sent: %s", hashes[0], exc)
                next_bump = now + self._bump_after_s
            await asyncio.sleep(RECEIPT_POLL_S)

    async def _fees(self) -> dict[str, int]:
        block = await self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas", 0))
        tip = int(await self.w3.eth.max_priority_fee)
        # Twice the base fee survives several full blocks of base-fee growth.
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}

    async def _replay_revert(self, tx: dict[str, Any], block_number: int) -> ContractRevert:
        """A mined transaction failed: re-run it on the state it saw to learn why."""
        try:
            await self.w3.eth.call(cast(TxParams, tx), block_number - 1)
        except ContractLogicError as exc:
            return self._reverts.decode(revert_data(exc))
        return ContractRevert("", {}, "")
