# SPDX-License-Identifier: Apache-2.0
"""What the SDK raises.

ZgError
 ├── ConfigError          missing or inconsistent settings (RPC URL, contract, wallet key)
 ├── AccountError         the account exists already, or its signing key cannot be recovered
 ├── NotFound             no such account or service on chain
 │    ├── NoAccount       (also an AccountError)
 │    └── NoService
 ├── GatewayRefused       the gateway refused a request the SDK itself sent (settle, lookups)
 ├── CeilingExceeded      a request would cost more than one of the user's ceilings allows:
 │                        nothing was sent
 ├── InsufficientFunds    the wallet cannot pay for a transaction (its value plus gas)
 ├── VerificationError    a receipt failed verification: the provider is no longer used
 └── ProviderStopped      a request to a provider that already failed verification

Errors from the chain (`zg_shared.chain.ChainError` and its subclasses) pass through as they are.
"""

from __future__ import annotations

from pathlib import Path

from zgserve._amounts import format_wei


class ZgError(Exception):
    """Base class of every error the SDK raises itself."""


class ConfigError(ZgError):
    pass


class AccountError(ZgError):
    pass


class NotFound(ZgError):
    pass


class NoAccount(NotFound, AccountError):
    pass


class NoService(NotFound):
    pass


class GatewayRefused(ZgError):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"the gateway refused ({status} {code}): {message}")


class CeilingExceeded(ZgError):
    """Beyond one of the user's ceilings (`zgserve.Limits`): `ceiling` is the field's name
    (e.g. `max_input_price`), `value` what the request or the service asks, `limit` the
    ceiling. Raised before anything is signed or sent."""

    def __init__(self, ceiling: str, value: int, limit: int, what: str) -> None:
        self.ceiling = ceiling
        self.value = value
        self.limit = limit
        super().__init__(
            f"refused: {what} is {format_wei(value)}, above your ceiling {ceiling} of "
            f"{format_wei(limit)}; nothing was sent (raise ZG_{ceiling.upper()} if you agree)"
        )


class InsufficientFunds(ZgError):
    """The wallet holds less than a transaction needs: its value plus gas."""

    def __init__(self, wallet: str, balance: int, needed: int, what: str) -> None:
        self.wallet = wallet
        self.balance = balance
        self.needed = needed
        need = f"{format_wei(needed)} plus gas" if needed else "gas"
        super().__init__(f"the wallet {wallet} holds {format_wei(balance)}; {what} needs {need}")


class VerificationError(ZgError):
    """A provider's receipt did not verify. `evidence_path` is where the evidence was written
    (None when the client has no evidence directory; `export_evidence` writes it on demand)."""

    def __init__(self, provider: str, reason: str, evidence_path: Path | None = None) -> None:
        self.provider = provider
        self.reason = reason
        self.evidence_path = evidence_path
        where = f"; evidence written to {evidence_path}" if evidence_path else ""
        super().__init__(
            f"receipt from provider {provider} failed verification: {reason}; "
            f"no more requests will be sent to it{where}"
        )


class ProviderStopped(ZgError):
    def __init__(self, provider: str, cause: VerificationError) -> None:
        self.provider = provider
        self.cause = cause
        super().__init__(
            f"provider {provider} is stopped after a failed verification ({cause.reason})"
        )
