// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IGuardianRegistry} from "./interfaces/IGuardianRegistry.sol";
import {RegistrarRole} from "./RegistrarRole.sol";

/// @title Guardian registry
/// @notice Guardian -> ward records with an end date, kept by the registrar.
abstract contract GuardianRegistry is IGuardianRegistry, RegistrarRole {
    struct Guardianship {
        address guardian;
        uint64 until;
    }

    mapping(address ward => Guardianship) private _guardianships;

    /// @inheritdoc IGuardianRegistry
    function setGuardian(address ward, address guardian, uint64 until) external onlyRole(REGISTRAR_ROLE) {
        if (ward == address(0) || guardian == address(0)) revert GuardianZeroAddress();
        if (ward == guardian) revert GuardianIsWard(ward);
        if (until < block.timestamp) revert GuardianUntilInPast(until, block.timestamp);
        _guardianships[ward] = Guardianship(guardian, until);
        emit GuardianSet(ward, guardian, until);
    }

    /// @inheritdoc IGuardianRegistry
    function endGuardianship(address ward) external onlyRole(REGISTRAR_ROLE) {
        address guardian = _guardianships[ward].guardian;
        if (guardian == address(0)) revert GuardianNotSet(ward);
        delete _guardianships[ward];
        emit GuardianshipEnded(ward, guardian);
    }

    /// @inheritdoc IGuardianRegistry
    function guardianOf(address ward) external view returns (address guardian, uint64 until) {
        Guardianship storage g = _guardianships[ward];
        return (g.guardian, g.until);
    }

    /// @dev The ward's guardian if the guardianship is active now (timestamp <= until), else zero.
    function _activeGuardian(address ward) internal view returns (address) {
        Guardianship storage g = _guardianships[ward];
        return block.timestamp <= g.until ? g.guardian : address(0);
    }
}
