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

    /// Seconds a refund waits before it can be processed: the provider's window to settle
    /// what it has served against that money.
    uint256 public immutable lockTime;
    ISettlementVerifier public immutable verifier;

    AccountLibrary.AccountMap private _accounts;
    ServiceLibrary.ServiceMap private _services;

    constructor(uint256 lockTime_, ISettlementVerifier verifier_) {
        lockTime = lockTime_;
        verifier = verifier_;
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
        uint256 index = account.requestRefund(amount);
        emit RefundRequested(msg.sender, provider, index, amount, block.timestamp + lockTime);
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

    // ---------------------------------------------------------------- services (provider side)

    function addOrUpdateService(ServiceParams calldata params) external {
        Service storage s = _services.upsert(msg.sender, params);
        emit ServiceUpdated(
            msg.sender,
            s.name,
            s.serviceType,
            s.url,
            s.model,
            s.verifiability,
            s.inputPrice,
            s.outputPrice,
            s.signerAddress,
            s.updatedAt
        );
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
        if (inputs[5] != account.signer[0] || inputs[6] != account.signer[1]) {
            revert ServingSignerMismatch(index);
        }
        if (inputs[2] <= account.nonce) revert ServingNonceTooLow(index, inputs[2], account.nonce);
        fee = inputs[4];
        if (fee > account.balance) revert ServingInsufficientBalance(index, fee, account.balance);
        // The pairing check is the expensive part: it runs only once the cheap checks passed.
        if (!verifier.verifyProof(proof.a, proof.b, proof.c, inputs)) revert ServingInvalidProof(index);

        account.nonce = inputs[3];
        account.charge(fee);
        emit FeesSettled(user, provider, fee, inputs[3]);
        emit BalanceUpdated(user, provider, account.balance, account.pendingRefund);
    }

    // ---------------------------------------------------------------- views

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
