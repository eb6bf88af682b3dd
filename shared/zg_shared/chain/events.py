# SPDX-License-Identifier: Apache-2.0
"""The Serving contract's events as pydantic models, and a decoder from raw logs.

Every event carries where it was seen (`LogPosition`), so that an indexer can checkpoint,
deduplicate and roll back on a reorg.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from eth_abi.abi import decode
from eth_utils.abi import event_signature_to_log_topic
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from zg_shared.chain.models import Service
from zg_shared.chain.types import Address, Hash32, Uint256, Wei


class LogPosition(BaseModel):
    model_config = ConfigDict(frozen=True)

    block_number: int
    block_hash: Hash32
    transaction_hash: Hash32
    log_index: int


class ServingEvent(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    EVENT: ClassVar[str]
    position: LogPosition | None = None


class AccountAdded(ServingEvent):
    EVENT = "AccountAdded"
    user: Address
    provider: Address
    signer_x: Uint256
    signer_y: Uint256
    amount: Wei


class FundDeposited(ServingEvent):
    EVENT = "FundDeposited"
    user: Address
    provider: Address
    amount: Wei


class RefundRequested(ServingEvent):
    EVENT = "RefundRequested"
    user: Address
    provider: Address
    index: int
    amount: Wei
    unlock_at: int


class RefundProcessed(ServingEvent):
    EVENT = "RefundProcessed"
    user: Address
    provider: Address
    index: int
    amount: Wei


class RefundReduced(ServingEvent):
    EVENT = "RefundReduced"
    user: Address
    provider: Address
    index: int
    remaining: Wei


class SignerRotated(ServingEvent):
    """The account's request-signing key became (signer_x, signer_y); the previous key still
    settles until `previous_expires_at`."""

    EVENT = "SignerRotated"
    user: Address
    provider: Address
    signer_x: Uint256
    signer_y: Uint256
    previous_signer_x: Uint256
    previous_signer_y: Uint256
    previous_expires_at: int


class BalanceUpdated(ServingEvent):
    EVENT = "BalanceUpdated"
    user: Address
    provider: Address
    balance: Wei
    pending_refund: Wei


class FeesSettled(ServingEvent):
    EVENT = "FeesSettled"
    user: Address
    provider: Address
    amount: Wei
    final_nonce: Uint256


class ServiceUpdated(ServingEvent):
    EVENT = "ServiceUpdated"
    provider: Address
    service: Service


class ServiceRemoved(ServingEvent):
    EVENT = "ServiceRemoved"
    provider: Address
    name: str


EVENT_TYPES: tuple[type[ServingEvent], ...] = (
    AccountAdded,
    FundDeposited,
    RefundRequested,
    RefundProcessed,
    RefundReduced,
    SignerRotated,
    BalanceUpdated,
    FeesSettled,
    ServiceUpdated,
    ServiceRemoved,
)


def _hex(value: Any) -> str:
    return value.hex() if isinstance(value, bytes | bytearray) else str(value)


def _abi_type(param: Mapping[str, Any]) -> str:
    """The eth_abi type string of an ABI parameter: a struct is a tuple of its components."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind.removeprefix('tuple')}"
    return kind


def _named(param: Mapping[str, Any], value: Any) -> Any:
    """A decoded struct (a tuple) as a dict keyed by its components' names."""
    if param["type"] == "tuple":
        return {c["name"]: _named(c, v) for c, v in zip(param["components"], value, strict=True)}
    return value


class EventDecoder:
    """Decodes raw logs (from receipts or eth_getLogs) of one contract into event models."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        by_name = {t.EVENT: t for t in EVENT_TYPES}
        self._events: dict[bytes, tuple[type[ServingEvent], dict[str, Any]]] = {}
        for entry in abi:
            if entry.get("type") != "event" or entry["name"] not in by_name:
                continue
            signature = f"{entry['name']}({','.join(_abi_type(i) for i in entry['inputs'])})"
            self._events[event_signature_to_log_topic(signature)] = (by_name[entry["name"]], entry)
        missing = set(by_name) - {t.EVENT for t, _ in self._events.values()}
        if missing:
            raise ValueError(f"ABI lacks events {sorted(missing)}: artifacts out of date?")

    @property
    def topics(self) -> list[str]:
        return ["0x" + topic.hex() for topic in self._events]

    def decode(self, log: Mapping[str, Any]) -> ServingEvent | None:
        """The event in `log`, or None if the log is not one of ours."""
        topics = [bytes.fromhex(_hex(t).removeprefix("0x")) for t in log["topics"]]
        if not topics or topics[0] not in self._events:
            return None
        model, abi = self._events[topics[0]]
        indexed = [i for i in abi["inputs"] if i["indexed"]]
        plain = [i for i in abi["inputs"] if not i["indexed"]]
        values: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=True):
            (values[param["name"]],) = decode([param["type"]], topic)
        data = bytes.fromhex(_hex(log["data"]).removeprefix("0x"))
        for param, value in zip(plain, decode([_abi_type(p) for p in plain], data), strict=True):
            values[param["name"]] = _named(param, value)
        position = LogPosition(
            block_number=log["blockNumber"],
            block_hash=log["blockHash"],
            transaction_hash=log["transactionHash"],
            log_index=log["logIndex"],
        )
        return model.model_validate({**values, "position": position})

    def decode_all(self, logs: Iterable[Mapping[str, Any]]) -> list[ServingEvent]:
        return [event for log in logs if (event := self.decode(log)) is not None]
