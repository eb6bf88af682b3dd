# SPDX-License-Identifier: Apache-2.0
"""Amounts of wei as people write and read them: `1000` (wei), `2.5gwei`, `0.1eth` or `0.1 0G`."""

from __future__ import annotations

from decimal import Decimal, DecimalException, Inexact, localcontext

UNITS = {"wei": 1, "gwei": 10**9, "eth": 10**18, "0g": 10**18}
MAX_WEI = 2**256 - 1  # what the contract can hold


class AmountError(ValueError):
    """Not an amount, or not one allowed here; the message says why, for the user."""


def parse_amount(text: str, *, allow_zero: bool = False) -> int:
    """An amount in wei. Zero only where `allow_zero` (a price may be 0; a deposit may not)."""
    raw = text.strip().lower().replace("_", "")
    for unit in sorted(UNITS, key=len, reverse=True):
        if raw.endswith(unit):
            number, scale = raw[: -len(unit)].strip(), UNITS[unit]
            break
    else:
        number, scale = raw, 1
    with localcontext() as exact:
        exact.prec = 200  # enough digits for any uint256 amount: nothing is rounded
        exact.traps[Inexact] = True
        try:
            value = Decimal(number) * scale
            finite = value.is_finite()
        except DecimalException:
            finite = False
    if not finite:
        raise AmountError(f"not an amount: {text!r} (e.g. 1000, 2gwei, 0.1eth)")
    if value < 0 or (value == 0 and not allow_zero):
        rule = "cannot be negative" if allow_zero else "must be positive"
        raise AmountError(f"amounts {rule}: {text!r}")
    if value != value.to_integral_value():
        raise AmountError(f"{text!r} is not a whole number of wei")
    if value > MAX_WEI:
        raise AmountError(f"{text!r} is more than any account can hold (2^256 - 1 wei)")
    return int(value)


def format_wei(wei: int) -> str:
    if wei >= 10**15:
        return f"{Decimal(wei) / 10**18:f} 0G ({wei} wei)"
    if wei >= 10**6:
        return f"{Decimal(wei) / 10**9:f} gwei ({wei} wei)"
    return f"{wei} wei"
