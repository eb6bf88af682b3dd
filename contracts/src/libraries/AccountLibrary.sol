// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IServing} from "../interfaces/IServing.sol";

/// @notice Storage and bookkeeping of (user, provider) accounts. Moves no ether: the Serving
///         contract pays out what these functions return, after they have updated state.
library AccountLibrary {
    /// BN254 scalar field: a signer coordinate at or above it can never match a proof.
    uint256 internal constant SNARK_SCALAR_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    struct AccountMap {
        mapping(bytes32 key => IServing.Account) accounts;
        /// Every key ever added, for enumeration; accounts are never deleted.
        bytes32[] keys;
    }

    function key(address user, address provider) internal pure returns (bytes32) {
        return keccak256(abi.encode(user, provider));
    }

    function get(AccountMap storage map, address user, address provider)
        internal
        view
        returns (IServing.Account storage account)
    {
        account = map.accounts[key(user, provider)];
        if (account.user == address(0)) revert IServing.ServingAccountNotFound(user, provider);
    }

    function add(
        AccountMap storage map,
        address user,
        address provider,
        uint256[2] calldata signer,
        string calldata info,
        uint256 amount
    ) internal returns (IServing.Account storage account) {
        checkSigner(signer);
        bytes32 k = key(user, provider);
        account = map.accounts[k];
        if (account.user != address(0)) revert IServing.ServingAccountExists(user, provider);
        account.user = user;
        account.provider = provider;
        account.balance = amount;
        account.signer = signer;
        account.additionalInfo = info;
        map.keys.push(k);
    }

    /// Two field elements below the BN254 scalar field, not (0, 0): a key a proof can name.
    function checkSigner(uint256[2] calldata signer) internal pure {
        if (signer[0] >= SNARK_SCALAR_FIELD || signer[1] >= SNARK_SCALAR_FIELD) {
            revert IServing.ServingInvalidSigner();
        }
        if (signer[0] == 0 && signer[1] == 0) revert IServing.ServingInvalidSigner();
    }

    /// Makes `signer` the account's key at once; the key it replaces still settles for
    /// `lockTime`, the provider's window to settle what that key signed before the gateway saw
    /// the rotation. One rotation at a time: a second one inside the window would cut the
    /// first key's window short (and let a user void what it signed), so it reverts.
    function rotateSigner(
        IServing.Account storage account,
        uint256[2] calldata signer,
        string calldata info,
        uint256 lockTime
    ) internal {
        checkSigner(signer);
        if (signer[0] == account.signer[0] && signer[1] == account.signer[1]) {
            revert IServing.ServingInvalidSigner();
        }
        if (block.timestamp < account.previousSignerExpiresAt) {
            revert IServing.ServingRotationPending(account.previousSignerExpiresAt);
        }
        account.previousSigner = account.signer;
        account.previousSignerExpiresAt = block.timestamp + lockTime;
        account.signer = signer;
        account.additionalInfo = info;
    }

    /// Whether a chunk proved against (x, y) may settle: the account's key, or the key it
    /// replaced while that one's window lasts.
    function acceptsSigner(IServing.Account storage account, uint256 x, uint256 y)
        internal
        view
        returns (bool)
    {
        if (x == account.signer[0] && y == account.signer[1]) return true;
        return block.timestamp < account.previousSignerExpiresAt && x == account.previousSigner[0]
            && y == account.previousSigner[1];
    }

    /// Sets `amount` aside for the user. An account has at most one open (unprocessed) refund,
    /// always its last entry: a request while one is open adds to it and restarts its lock time
    /// from now (the provider's window to settle must cover every wei asked back), so that
    /// `charge` touches one entry however many refunds were asked for.
    /// @return index of the refund that holds the amount, and that refund's amount now.
    function requestRefund(IServing.Account storage account, uint256 amount)
        internal
        returns (uint256 index, uint256 total)
    {
        if (amount == 0) revert IServing.ServingZeroAmount();
        uint256 available = account.balance - account.pendingRefund;
        if (amount > available) revert IServing.ServingRefundExceedsAvailable(amount, available);
        uint256 count = account.refunds.length;
        if (count > 0 && !account.refunds[count - 1].processed) {
            index = count - 1;
            IServing.Refund storage open = account.refunds[index];
            total = uint256(open.amount) + amount;
            open.amount = SafeCast.toUint128(total);
            open.createdAt = SafeCast.toUint64(block.timestamp);
        } else {
            index = count;
            total = amount;
            account.refunds.push(
                IServing.Refund({
                    amount: SafeCast.toUint128(amount),
                    createdAt: SafeCast.toUint64(block.timestamp),
                    processed: false
                })
            );
        }
        account.pendingRefund += amount;
    }

    /// Marks the refunds processed and removes their amounts from the account.
    /// @return amounts paid per index, in the order given.
    function processRefunds(IServing.Account storage account, uint256[] calldata indices, uint256 lockTime)
        internal
        returns (uint256[] memory amounts)
    {
        amounts = new uint256[](indices.length);
        for (uint256 i = 0; i < indices.length; ++i) {
            uint256 index = indices[i];
            if (index >= account.refunds.length) revert IServing.ServingRefundNotFound(index);
            IServing.Refund storage refund = account.refunds[index];
            if (refund.processed) revert IServing.ServingRefundAlreadyProcessed(index);
            uint256 unlockAt = uint256(refund.createdAt) + lockTime;
            if (block.timestamp < unlockAt) revert IServing.ServingRefundLocked(index, unlockAt);
            refund.processed = true;
            amounts[i] = refund.amount;
            account.balance -= refund.amount;
            account.pendingRefund -= refund.amount;
        }
    }

    /// Takes `fee` from the balance. What the free balance cannot cover comes out of the open
    /// refund (there is at most one, the last entry: see `requestRefund`): the provider served
    /// against funds the user later asked back. Constant cost, whatever the refund history.
    /// @dev The caller has checked `fee <= account.balance`, so the excess fits in
    ///      `pendingRefund`, which is the open refund's amount.
    function charge(IServing.Account storage account, uint256 fee) internal {
        uint256 available = account.balance - account.pendingRefund;
        account.balance -= fee;
        if (fee <= available) return;
        uint256 excess = fee - available;
        account.pendingRefund -= excess;
        uint256 index = account.refunds.length - 1;
        IServing.Refund storage refund = account.refunds[index];
        // Fits: excess <= pendingRefund == refund.amount, a uint128.
        refund.amount -= uint128(excess);
        // An emptied refund has nothing left to pay; closing it keeps processRefund honest.
        if (refund.amount == 0) refund.processed = true;
        emit IServing.RefundReduced(account.user, account.provider, index, refund.amount);
    }
}
