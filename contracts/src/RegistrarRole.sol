// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title Registrar role
/// @notice The platform operator's role: registers and suspends departments, records guardianships.
abstract contract RegistrarRole is AccessControl {
    /// @notice Role allowed to manage departments and guardianships.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
}
