// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice A Groth16 verifier for the SettleBatch circuit, as generated from its verification key.
/// @dev Public inputs, in the circuit's order: [user, provider, initNonce, finalNonce, totalFee,
///      signerX, signerY]. `b` takes each G2 coordinate pair reversed, as snarkjs's Solidity
///      calldata does.
interface ISettlementVerifier {
    function verifyProof(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[7] calldata publicInputs
    ) external view returns (bool);
}
