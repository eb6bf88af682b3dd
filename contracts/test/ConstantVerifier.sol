// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ISettlementVerifier} from "../src/interfaces/ISettlementVerifier.sol";

/// @notice Test-only verifier that gives the same answer for every proof, so that tests can
///         drive settlement's bookkeeping (and measure its gas) without proving anything.
contract ConstantVerifier is ISettlementVerifier {
    bool public immutable answer;

    constructor(bool answer_) {
        answer = answer_;
    }

    function verifyProof(uint256[2] calldata, uint256[2][2] calldata, uint256[2] calldata, uint256[7] calldata)
        external
        view
        returns (bool)
    {
        return answer;
    }
}
