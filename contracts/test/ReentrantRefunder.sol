// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IServing} from "../src/interfaces/IServing.sol";

/// @notice Test-only attacker: a user account whose receive() re-enters Serving to be paid twice.
contract ReentrantRefunder {
    IServing.SettlementProof[] private _noProofs;
    address public immutable serving;
    address public immutable provider;
    uint256 public reentryAttempts;
    bool public reentrySucceeded;

    constructor(address serving_, address provider_) {
        serving = serving_;
        provider = provider_;
    }

    function open(uint256[2] calldata signer) external payable {
        (bool ok, bytes memory reason) = serving.call{value: msg.value}(
            abi.encodeWithSignature("addAccount(address,uint256[2],string)", provider, signer, "")
        );
        _bubble(ok, reason);
    }

    function requestRefund(uint256 amount) external {
        (bool ok, bytes memory reason) =
            serving.call(abi.encodeWithSignature("requestRefund(address,uint256)", provider, amount));
        _bubble(ok, reason);
    }

    function processRefund(uint256[] calldata indices) external {
        (bool ok, bytes memory reason) =
            serving.call(abi.encodeWithSignature("processRefund(address,uint256[])", provider, indices));
        _bubble(ok, reason);
    }

    receive() external payable {
        if (reentryAttempts > 0) return;
        reentryAttempts += 1;
        uint256[] memory again = new uint256[](1);
        (bool ok,) = serving.call(abi.encodeWithSignature("processRefund(address,uint256[])", provider, again));
        reentrySucceeded = ok;
    }

    function _bubble(bool ok, bytes memory reason) private pure {
        if (!ok) {
            assembly {
                revert(add(reason, 32), mload(reason))
            }
        }
    }
}
