# SPDX-License-Identifier: Apache-2.0
"""Access to the Serving contract: a typed async client, event models, and a local anvil node."""

from zg_shared.chain.anvil import AnvilNode, DevAccount, DevChain, find_anvil
from zg_shared.chain.artifacts import ContractArtifact, load_artifact
from zg_shared.chain.client import ServingClient, connect, deploy_contract
from zg_shared.chain.errors import ChainError, ChainUnavailable, ContractRevert, TransactionReverted
from zg_shared.chain.events import (
    AccountAdded,
    BalanceUpdated,
    EventDecoder,
    FeesSettled,
    FundDeposited,
    LogPosition,
    RefundProcessed,
    RefundReduced,
    RefundRequested,
    ServiceRemoved,
    ServiceUpdated,
    ServingEvent,
    SignerRotated,
)
from zg_shared.chain.models import Account, Refund, Service, ServiceParams, SettlementProof
from zg_shared.chain.sender import TransactionSender, TxResult
from zg_shared.chain.types import Address, Web3Client, checksum

__all__ = [
    "Account",
    "AccountAdded",
    "Address",
    "AnvilNode",
    "BalanceUpdated",
    "ChainError",
    "ChainUnavailable",
    "ContractArtifact",
    "ContractRevert",
    "DevAccount",
    "DevChain",
    "EventDecoder",
    "FeesSettled",
    "FundDeposited",
    "LogPosition",
    "Refund",
    "RefundProcessed",
    "RefundReduced",
    "RefundRequested",
    "Service",
    "ServiceParams",
    "ServiceRemoved",
    "ServiceUpdated",
    "ServingClient",
    "ServingEvent",
    "SettlementProof",
    "SignerRotated",
    "TransactionReverted",
    "TransactionSender",
    "TxResult",
    "Web3Client",
    "checksum",
    "connect",
    "deploy_contract",
    "find_anvil",
    "load_artifact",
]
