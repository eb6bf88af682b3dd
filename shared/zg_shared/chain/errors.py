# SPDX-License-Identifier: Apache-2.0
"""Errors raised by chain access.

ChainError
 ├── ContractRevert        the contract refused: carries the custom error's name and args
 │    └── TransactionReverted  ...and the transaction was mined (gas spent)
 └── ChainUnavailable      the RPC endpoint could not be reached or answered with an error
"""

from __future__ import annotations

from typing import Any

from eth_abi.abi import decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address


class ChainError(Exception):
    """Base class for everything chain access raises."""


class ChainUnavailable(ChainError):
    pass


class ContractRevert(ChainError):
    """The contract reverted. `name` is the custom error (e.g. "ServingAccountNotFound"),
    "Error" for a require string, "Panic" for an assert or arithmetic fault, "" if unknown."""

    def __init__(self, name: str, args: dict[str, Any], data: str = "") -> None:
        self.name = name
        self.args_by_name = args
        self.data = data
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
        super().__init__(
            f"{name or 'revert'}({shown})" if name else f"reverted: {data or 'no data'}"
        )


class TransactionReverted(ContractRevert):
    def __init__(self, revert: ContractRevert, tx_hash: str) -> None:
        super().__init__(revert.name, revert.args_by_name, revert.data)
        self.tx_hash = tx_hash


_BUILTIN_ERRORS: list[dict[str, Any]] = [
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
]


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][len('tuple') :]}"
    return str(param["type"])


class RevertDecoder:
    """Maps 4-byte selectors of an ABI's custom errors to readable ContractRevert objects."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for entry in [*abi, *_BUILTIN_ERRORS]:
            if entry.get("type") != "error":
                continue
            types = [_abi_type(p) for p in entry["inputs"]]
            selector = function_signature_to_4byte_selector(f"{entry['name']}({','.join(types)})")
            self._errors[selector] = (entry["name"], [p["name"] for p in entry["inputs"]], types)

    def decode(self, data: str | bytes | None) -> ContractRevert:
        raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else (data or b"")
        hex_data = "0x" + raw.hex()
        known = self._errors.get(raw[:4])
        if known is None:
            return ContractRevert("", {}, hex_data)
        name, names, types = known
        values = [
            to_checksum_address(v) if t == "address" else v
            for t, v in zip(types, decode(types, raw[4:]), strict=True)
        ]
        return ContractRevert(name, dict(zip(names, values, strict=True)), hex_data)
