// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IServing} from "../interfaces/IServing.sol";

/// @notice An enumerable map of services keyed by (provider, name).
library ServiceLibrary {
    struct ServiceMap {
        /// Position in `values` plus one; zero means absent.
        mapping(bytes32 key => uint256) slot;
        IServing.Service[] values;
    }

    function key(address provider, string memory name) internal pure returns (bytes32) {
        return keccak256(abi.encode(provider, name));
    }

    function get(ServiceMap storage map, address provider, string memory name)
        internal
        view
        returns (IServing.Service storage)
    {
        uint256 slot = map.slot[key(provider, name)];
        if (slot == 0) revert IServing.ServingServiceNotFound(provider, name);
        return map.values[slot - 1];
    }

    function upsert(ServiceMap storage map, address provider, IServing.ServiceParams calldata params)
        internal
        returns (IServing.Service storage service)
    {
        if (bytes(params.name).length == 0) revert IServing.ServingInvalidService("empty name");
        if (bytes(params.url).length == 0) revert IServing.ServingInvalidService("empty url");
        if (params.signerAddress == address(0)) revert IServing.ServingInvalidService("zero signer");
        if (bytes(params.countingRule).length == 0) revert IServing.ServingInvalidService("empty counting rule");
        bytes32 k = key(provider, params.name);
        uint256 slot = map.slot[k];
        if (slot == 0) {
            map.values.push();
            slot = map.values.length;
            map.slot[k] = slot;
        }
        service = map.values[slot - 1];
        service.provider = provider;
        service.name = params.name;
        service.serviceType = params.serviceType;
        service.url = params.url;
        service.model = params.model;
        service.verifiability = params.verifiability;
        service.inputPrice = params.inputPrice;
        service.outputPrice = params.outputPrice;
        service.signerAddress = params.signerAddress;
        service.updatedAt = block.timestamp;
        service.countingRule = params.countingRule;
    }

    /// Swap-and-pop: O(1), but the order of `values` changes.
    function remove(ServiceMap storage map, address provider, string calldata name) internal {
        bytes32 k = key(provider, name);
        uint256 slot = map.slot[k];
        if (slot == 0) revert IServing.ServingServiceNotFound(provider, name);
        uint256 last = map.values.length;
        if (slot != last) {
            IServing.Service storage moved = map.values[last - 1];
            map.values[slot - 1] = moved;
            map.slot[key(moved.provider, moved.name)] = slot;
        }
        map.values.pop();
        delete map.slot[k];
    }
}
