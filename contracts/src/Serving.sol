// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IServing} from "./interfaces/IServing.sol";
import {ISettlementVerifier} from "./interfaces/ISettlementVerifier.sol";
import {AccountLibrary} from "./libraries/AccountLibrary.sol";
import {ServiceLibrary} from "./libraries/ServiceLibrary.sol";

/// @title Serving: deposits, a service registry, refunds and proof-verified settlement.
/// @notice Users deposit per provider; providers are paid only against Groth16 proofs that the
///         user signed every settled request. There is no owner: nobody can move a user's funds
///         but the user (refunds) and the provider with valid proofs (settlement).
contract Serving is IServing, ReentrancyGuard {
    using AccountLibrary for AccountLibrary.AccountMap;
    using AccountLibrary for IServing.Account;
    using ServiceLibrary for ServiceLibrary.ServiceMap;

    /// Bounds of `lockTime`: below the minimum a provider has no real window to prove and
    /// settle; the maximum keeps every unlock time far inside uint64 and refunds payable.
    uint256 public constant MIN_LOCK_TIME = 10 minutes;
    uint256 public constant MAX_LOCK_TIME = 365 days;

    /// Seconds a refund waits before it can be processed: the provider's window to settle
    /// what it has served against that money.
    uint256 public immutable lockTime;

    /// One Groth16 verifier per circuit size N, fixed at deployment (no owner can change it).
    /// A mapping costs one cold SLOAD (2,100 gas) per size per settlement, next to ~200k for
    /// the pairing check; it keeps the number of sizes open.
    mapping(uint256 circuitSize => ISettlementVerifier) private _verifiers;
    uint256[] private _circuitSizes;

    AccountLibrary.AccountMap private _accounts;
    ServiceLibrary.ServiceMap private _services;

    constructor(uint256 lockTime_, CircuitVerifier[] memory verifiers_) {
        if (lockTime_ < MIN_LOCK_TIME || lockTime_ > MAX_LOCK_TIME) {
            revert ServingLockTimeOutOfRange(lockTime_, MIN_LOCK_TIME, MAX_LOCK_TIME);
        }
        lockTime = lockTime_;
        for (uint256 i = 0; i < verifiers_.length; ++i) {
            uint256 size = verifiers_[i].circuitSize;
            ISettlementVerifier verifier = verifiers_[i].verifier;
            // A size given twice, or a verifier without code, is a deployment mistake that
            // would only show when the first settlement fails.
            if (size == 0 || address(verifier).code.length == 0 || address(_verifiers[size]) != address(0)) {
                revert ServingInvalidVerifier(size, address(verifier));
            }
            _verifiers[size] = verifier;
            _circuitSizes.push(size);
        }
    }

    // ---------------------------------------------------------------- accounts (user side)

    function addAccount(address provider, uint256[2] calldata signer, string calldata additionalInfo)
        external
        payable
    {
        _accounts.add(msg.sender, provider, signer, additionalInfo, msg.value);
        emit AccountAdded(msg.sender, provider, signer[0], signer[1], msg.value);
        emit BalanceUpdated(msg.sender, provider, msg.value, 0);
    }

    function depositFund(address provider) external payable {
        if (msg.value == 0) revert ServingZeroAmount();
        Account storage account = _accounts.get(msg.sender, provider);
        account.balance += msg.value;
        emit FundDeposited(msg.sender, provider, msg.value);
        emit BalanceUpdated(msg.sender, provider, account.balance, account.pendingRefund);
    }

    function requestRefund(address provider, uint256 amount) external {
        Account storage account = _accounts.get(msg.sender, provider);
        (uint256 index, uint256 total) = account.requestRefund(amount);
        emit RefundRequested(msg.sender, provider, index, total, block.timestamp + lockTime);
        emit BalanceUpdated(msg.sender, provider, account.balance, account.pendingRefund);
    }

    function processRefund(address provider, uint256[] calldata indices) external nonReentrant {
        Account storage account = _accounts.get(msg.sender, provider);
        uint256[] memory amounts = account.processRefunds(indices, lockTime);
        uint256 total = 0;
        for (uint256 i = 0; i < indices.length; ++i) {
            total += amounts[i];
            emit RefundProcessed(msg.sender, provider, indices[i], amounts[i]);
        }
        emit BalanceUpdated(msg.sender, provider, account.balance, account.pendingRefund);
        _pay(msg.sender, total);
    }

    /// @notice Replaces the account's request-signing key (a lost or phished key) with `signer`,
    ///         and its encrypted copy in `additionalInfo`. The new key signs from now on; the
    ///         replaced one still settles for `lockTime` (the provider's window, as for a
    ///         refund), so that what it signed before the provider saw the rotation is paid.
    function rotateSigner(address provider, uint256[2] calldata signer, string calldata additionalInfo)
        external
    {
        Account storage account = _accounts.get(msg.sender, provider);
        account.rotateSigner(signer, additionalInfo, lockTime);
        emit SignerRotated(
            msg.sender,
            provider,
            signer[0],
            signer[1],
            account.previousSigner[0],
            account.previousSigner[1],
            account.previousSignerExpiresAt
        );
        // Every account change ends with the absolute state: indexers publish the account there.
        emit BalanceUpdated(msg.sender, provider, account.balance, account.pendingRefund);
    }

    // ---------------------------------------------------------------- services (provider side)

    function addOrUpdateService(ServiceParams calldata params) external {
        emit ServiceUpdated(msg.sender, _services.upsert(msg.sender, params));
    }

    function removeService(string calldata name) external {
        _services.remove(msg.sender, name);
        emit ServiceRemoved(msg.sender, name);
    }

    // ---------------------------------------------------------------- settlement

    /// @notice Pays the caller for chunks of signed requests, each proven by a Groth16 proof.
    /// @dev Reverts as a whole if any chunk is invalid, so a provider never gets a partial
    ///      settlement it did not ask for. Chunks of one user must come in nonce order: each
    ///      must start above the nonce the previous one settled, which also rules out overlap.
    function settleFees(SettlementProof[] calldata proofs) external nonReentrant {
        if (proofs.length == 0) revert ServingNoProofs();
        uint256 total = 0;
        for (uint256 i = 0; i < proofs.length; ++i) {
            total += _settleChunk(i, proofs[i]);
        }
        _pay(msg.sender, total);
    }

    function _settleChunk(uint256 index, SettlementProof calldata proof) private returns (uint256 fee) {
        uint256[7] calldata inputs = proof.publicInputs;
        if (inputs[0] > type(uint160).max || inputs[1] > type(uint160).max || inputs[3] < inputs[2]) {
            revert ServingInvalidPublicInput(index);
        }
        address user = address(uint160(inputs[0]));
        address provider = address(uint160(inputs[1]));
        if (provider != msg.sender) revert ServingProviderMismatch(index, provider);
        Account storage account = _accounts.get(user, provider);
        if (!account.acceptsSigner(inputs[5], inputs[6])) revert ServingSignerMismatch(index);
        if (inputs[2] <= account.nonce) revert ServingNonceTooLow(index, inputs[2], account.nonce);
        fee = inputs[4];
        if (fee > account.balance) revert ServingInsufficientBalance(index, fee, account.balance);
        ISettlementVerifier verifier = _verifiers[proof.circuitSize];
        if (address(verifier) == address(0)) revert ServingUnknownCircuitSize(index, proof.circuitSize);
        // The pairing check is the expensive part: it runs only once the cheap checks passed.
        if (!verifier.verifyProof(proof.a, proof.b, proof.c, inputs)) revert ServingInvalidProof(index);

        account.nonce = inputs[3];
        account.charge(fee);
        emit FeesSettled(user, provider, fee, inputs[3]);
        emit BalanceUpdated(user, provider, account.balance, account.pendingRefund);
    }

    // ---------------------------------------------------------------- views

    /// The circuit sizes this deployment settles, in the order given at deployment.
    function circuitSizes() external view returns (uint256[] memory) {
        return _circuitSizes;
    }

    /// The verifier of proofs made with SettleBatch(`circuitSize`); zero if there is none.
    function verifierOf(uint256 circuitSize) external view returns (ISettlementVerifier) {
        return _verifiers[circuitSize];
    }

    function getAccount(address user, address provider) external view returns (Account memory) {
        return _accounts.get(user, provider);
    }

    function accountCount() external view returns (uint256) {
        return _accounts.keys.length;
    }

    /// @notice Accounts in creation order, `limit` from `offset`; for indexers that page.
    function getAccounts(uint256 offset, uint256 limit) public view returns (Account[] memory page) {
        bytes32[] storage keys = _accounts.keys;
        uint256 end = _pageEnd(offset, limit, keys.length);
        page = new Account[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            page[i - offset] = _accounts.accounts[keys[i]];
        }
    }

    function getAllAccounts() external view returns (Account[] memory) {
        return getAccounts(0, type(uint256).max);
    }

    function getService(address provider, string calldata name) external view returns (Service memory) {
        return _services.get(provider, name);
    }

    function serviceCount() external view returns (uint256) {
        return _services.values.length;
    }

    function getServices(uint256 offset, uint256 limit) public view returns (Service[] memory page) {
        Service[] storage values = _services.values;
        uint256 end = _pageEnd(offset, limit, values.length);
        page = new Service[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            page[i - offset] = values[i];
        }
    }

    function getAllServices() external view returns (Service[] memory) {
        return getServices(0, type(uint256).max);
    }

    // ---------------------------------------------------------------- internals

    function _pageEnd(uint256 offset, uint256 limit, uint256 length) private pure returns (uint256) {
        if (offset >= length) return offset;
        return length - offset < limit ? length : offset + limit;
    }

    /// Interactions last: every caller has finished its state changes before this runs.
    function _pay(address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert ServingTransferFailed(to, amount);
    }
}
