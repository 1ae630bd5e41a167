// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IDepartmentRegistry} from "./interfaces/IDepartmentRegistry.sol";
import {RegistrarRole} from "./RegistrarRole.sol";

/// @title Department registry
/// @notice Departments (PII controllers) and the purposes each may ask consent for.
abstract contract DepartmentRegistry is IDepartmentRegistry, RegistrarRole {
    struct Department {
        bool registered;
        bool suspended;
    }

    mapping(address department => Department) private _departments;
    mapping(address department => mapping(bytes32 purposeHash => bool)) private _purposes;

    /// @inheritdoc IDepartmentRegistry
    function registerDepartment(
        address department,
        bytes32[] calldata purposeHashes
    ) external onlyRole(REGISTRAR_ROLE) {
        if (department == address(0)) revert DepartmentZeroAddress();
        if (_departments[department].registered) revert DepartmentAlreadyRegistered(department);
        _departments[department].registered = true;
        _addPurposes(department, purposeHashes);
        emit DepartmentRegistered(department, purposeHashes);
    }

    /// @inheritdoc IDepartmentRegistry
    function addPurposes(address department, bytes32[] calldata purposeHashes) external onlyRole(REGISTRAR_ROLE) {
        if (!_departments[department].registered) revert DepartmentNotRegistered(department);
        _addPurposes(department, purposeHashes);
        emit PurposesAdded(department, purposeHashes);
    }

    /// @inheritdoc IDepartmentRegistry
    function suspendDepartment(address department) external onlyRole(REGISTRAR_ROLE) {
        Department storage d = _departments[department];
        if (!d.registered) revert DepartmentNotRegistered(department);
        if (d.suspended) revert DepartmentAlreadySuspended(department);
        d.suspended = true;
        emit DepartmentSuspended(department);
    }

    /// @inheritdoc IDepartmentRegistry
    function reinstateDepartment(address department) external onlyRole(REGISTRAR_ROLE) {
        Department storage d = _departments[department];
        if (!d.registered) revert DepartmentNotRegistered(department);
        if (!d.suspended) revert DepartmentNotSuspended(department);
        d.suspended = false;
        emit DepartmentReinstated(department);
    }

    /// @inheritdoc IDepartmentRegistry
    function isDepartmentActive(address department) public view returns (bool active) {
        Department storage d = _departments[department];
        return d.registered && !d.suspended;
    }

    /// @inheritdoc IDepartmentRegistry
    function departmentStatus(address department) external view returns (bool registered, bool suspended) {
        Department storage d = _departments[department];
        return (d.registered, d.suspended);
    }

    /// @inheritdoc IDepartmentRegistry
    function isPurposeRegistered(address department, bytes32 purposeHash) external view returns (bool registered) {
        return _purposes[department][purposeHash];
    }

    /// @dev Reverts unless `department` is registered, not suspended, and has `purposeHash`.
    function _requireActivePurpose(address department, bytes32 purposeHash) internal view {
        Department storage d = _departments[department];
        if (!d.registered) revert DepartmentNotRegistered(department);
        if (d.suspended) revert DepartmentNotActive(department);
        if (!_purposes[department][purposeHash]) revert DepartmentPurposeNotRegistered(department, purposeHash);
    }

    function _addPurposes(address department, bytes32[] calldata purposeHashes) private {
        if (purposeHashes.length == 0) revert DepartmentNoPurposes(department);
        mapping(bytes32 => bool) storage purposes = _purposes[department];
        for (uint256 i = 0; i < purposeHashes.length; ++i) {
            bytes32 p = purposeHashes[i];
            if (purposes[p]) revert DepartmentPurposeAlreadyRegistered(department, p);
            purposes[p] = true;
        }
    }
}
