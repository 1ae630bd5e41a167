// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Department registry interface
/// @notice The registrar registers data-requesting departments (PII controllers) with the purposes
/// they may ask consent for, and suspends or reinstates them. Purposes are keccak256 hashes of the
/// purpose strings; no text is kept on chain.
interface IDepartmentRegistry {
    /// @notice A department was registered with its first purposes.
    /// @param department The department's address (the consent's controller).
    /// @param purposeHashes keccak256 of each purpose string.
    event DepartmentRegistered(address indexed department, bytes32[] purposeHashes);

    /// @notice Purposes were added to a registered department.
    /// @param department The department's address.
    /// @param purposeHashes keccak256 of each added purpose string.
    event PurposesAdded(address indexed department, bytes32[] purposeHashes);

    /// @notice A department was suspended; every consent check for it is denied until reinstated.
    /// @param department The department's address.
    event DepartmentSuspended(address indexed department);

    /// @notice A suspended department was reinstated.
    /// @param department The department's address.
    event DepartmentReinstated(address indexed department);

    /// @notice The zero address cannot be a department.
    error DepartmentZeroAddress();

    /// @notice The department is already registered.
    /// @param department The offending address.
    error DepartmentAlreadyRegistered(address department);

    /// @notice The department is not registered.
    /// @param department The offending address.
    error DepartmentNotRegistered(address department);

    /// @notice The department is suspended, so it cannot receive new consents.
    /// @param department The offending address.
    error DepartmentNotActive(address department);

    /// @notice The department is already suspended.
    /// @param department The offending address.
    error DepartmentAlreadySuspended(address department);

    /// @notice The department is not suspended, so it cannot be reinstated.
    /// @param department The offending address.
    error DepartmentNotSuspended(address department);

    /// @notice A registration or addition must carry at least one purpose.
    /// @param department The department the empty list was given for.
    error DepartmentNoPurposes(address department);

    /// @notice The purpose is already registered for this department (or repeated in the list).
    /// @param department The department's address.
    /// @param purposeHash The repeated purpose hash.
    error DepartmentPurposeAlreadyRegistered(address department, bytes32 purposeHash);

    /// @notice The purpose is not registered for this department.
    /// @param department The department's address.
    /// @param purposeHash The unknown purpose hash.
    error DepartmentPurposeNotRegistered(address department, bytes32 purposeHash);

    /// @notice Registers a department with its purposes. Registrar only.
    /// @param department The department's address (non-zero, not yet registered).
    /// @param purposeHashes keccak256 of each purpose string; non-empty, no repeats.
    function registerDepartment(address department, bytes32[] calldata purposeHashes) external;

    /// @notice Adds purposes to a registered department. Registrar only.
    /// @param department The department's address.
    /// @param purposeHashes keccak256 of each new purpose string; non-empty, none already registered.
    function addPurposes(address department, bytes32[] calldata purposeHashes) external;

    /// @notice Suspends a registered, active department. Registrar only.
    /// @param department The department's address.
    function suspendDepartment(address department) external;

    /// @notice Reinstates a suspended department. Registrar only.
    /// @param department The department's address.
    function reinstateDepartment(address department) external;

    /// @notice Whether the department is registered and not suspended.
    /// @param department The department's address.
    /// @return active True if registered and not suspended.
    function isDepartmentActive(address department) external view returns (bool active);

    /// @notice Whether the department is registered and whether it is suspended.
    /// @param department The department's address.
    /// @return registered True once registered.
    /// @return suspended True while suspended.
    function departmentStatus(address department) external view returns (bool registered, bool suspended);

    /// @notice Whether the purpose is registered for the department.
    /// @param department The department's address.
    /// @param purposeHash keccak256 of the purpose string.
    /// @return registered True if registered.
    function isPurposeRegistered(address department, bytes32 purposeHash) external view returns (bool registered);
}
