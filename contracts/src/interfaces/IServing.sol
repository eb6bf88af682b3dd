// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ISettlementVerifier} from "./ISettlementVerifier.sol";

/// @notice Types, events and errors of the Serving contract, kept apart so that tools and other
///         contracts can use them without the implementation.
interface IServing {
    /// Packed into one storage slot: a refund request costs one new slot, not three.
    struct Refund {
        uint128 amount;
        uint64 createdAt;
        bool processed;
    }

    struct Account {
        address user;
        address provider;
        /// Last settled request nonce: a settlement must start above it.
        uint256 nonce;
        uint256 balance;
        /// Part of `balance` promised back to the user: the open refund's amount.
        uint256 pendingRefund;
        /// The user's BabyJubJub request-signing public key (x, y).
        uint256[2] signer;
        /// The key `rotateSigner` replaced, still accepted by `settleFees` until
        /// `previousSignerExpiresAt` (zero: none), so that requests it signed before the
        /// provider saw the rotation can still be settled.
        uint256[2] previousSigner;
        uint256 previousSignerExpiresAt;
        /// Every refund asked for; only the last can be open (unprocessed).
        Refund[] refunds;
        /// The user's signing key, encrypted by the client; opaque to the chain.
        string additionalInfo;
    }

    struct Service {
        address provider;
        string name;
        string serviceType;
        string url;
        string model;
        string verifiability;
        /// Wei per input unit and per output unit.
        uint256 inputPrice;
        uint256 outputPrice;
        /// The secp256k1 address that signs the provider's response receipts.
        address signerAddress;
        uint256 updatedAt;
        /// How request and response units are counted (e.g. "words"); never empty.
        string countingRule;
    }

    struct ServiceParams {
        string name;
        string serviceType;
        string url;
        string model;
        string verifiability;
        uint256 inputPrice;
        uint256 outputPrice;
        address signerAddress;
        string countingRule;
    }

    /// One Groth16 proof for one chunk of one user's requests (see ISettlementVerifier).
    struct SettlementProof {
        /// N of the SettleBatch(N) circuit it was proved with: picks the verifier.
        uint256 circuitSize;
        uint256[2] a;
        uint256[2][2] b;
        uint256[2] c;
        uint256[7] publicInputs;
    }

    /// A verifier for one circuit size, given to the constructor.
    struct CircuitVerifier {
        uint256 circuitSize;
        ISettlementVerifier verifier;
    }

    event AccountAdded(
        address indexed user, address indexed provider, uint256 signerX, uint256 signerY, uint256 amount
    );
    event FundDeposited(address indexed user, address indexed provider, uint256 amount);
    /// A refund opened or added to: `amount` is the refund's whole amount now (absolute, like
    /// BalanceUpdated) and `unlockAt` its new unlock time.
    event RefundRequested(
        address indexed user, address indexed provider, uint256 index, uint256 amount, uint256 unlockAt
    );
    event RefundProcessed(address indexed user, address indexed provider, uint256 index, uint256 amount);
    /// A pending refund shrunk because a settlement needed the funds it had set aside.
    event RefundReduced(address indexed user, address indexed provider, uint256 index, uint256 remaining);
    /// The account's request-signing key changed to (signerX, signerY); the previous key settles
    /// until `previousExpiresAt`.
    event SignerRotated(
        address indexed user,
        address indexed provider,
        uint256 signerX,
        uint256 signerY,
        uint256 previousSignerX,
        uint256 previousSignerY,
        uint256 previousExpiresAt
    );
    /// The account's balance after any change; absolute values, so that replays are idempotent.
    event BalanceUpdated(address indexed user, address indexed provider, uint256 balance, uint256 pendingRefund);
    event FeesSettled(address indexed user, address indexed provider, uint256 amount, uint256 finalNonce);
    /// The service as it now stands.
    event ServiceUpdated(address indexed provider, Service service);
    event ServiceRemoved(address indexed provider, string name);

    error ServingLockTimeOutOfRange(uint256 lockTime, uint256 min, uint256 max);
    error ServingInvalidVerifier(uint256 circuitSize, address verifier);
    error ServingAccountExists(address user, address provider);
    error ServingAccountNotFound(address user, address provider);
    error ServingInvalidSigner();
    error ServingRotationPending(uint256 previousExpiresAt);
    error ServingZeroAmount();
    error ServingRefundExceedsAvailable(uint256 amount, uint256 available);
    error ServingRefundNotFound(uint256 index);
    error ServingRefundAlreadyProcessed(uint256 index);
    error ServingRefundLocked(uint256 index, uint256 unlockAt);
    error ServingInvalidService(string reason);
    error ServingServiceNotFound(address provider, string name);
    error ServingNoProofs();
    error ServingUnknownCircuitSize(uint256 proofIndex, uint256 circuitSize);
    error ServingInvalidPublicInput(uint256 proofIndex);
    error ServingProviderMismatch(uint256 proofIndex, address provider);
    error ServingSignerMismatch(uint256 proofIndex);
    error ServingNonceTooLow(uint256 proofIndex, uint256 initNonce, uint256 settledNonce);
    error ServingInsufficientBalance(uint256 proofIndex, uint256 fee, uint256 balance);
    error ServingInvalidProof(uint256 proofIndex);
    error ServingTransferFailed(address to, uint256 amount);
}
