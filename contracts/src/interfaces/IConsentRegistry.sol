// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IConsentLedger} from "./IConsentLedger.sol";
import {IDepartmentRegistry} from "./IDepartmentRegistry.sol";
import {IGuardianRegistry} from "./IGuardianRegistry.sol";

/// @title Consent registry interface
/// @notice Everything the deployed ConsentRegistry offers: the consent ledger, the department
/// registry and the guardian registry.
interface IConsentRegistry is IConsentLedger, IDepartmentRegistry, IGuardianRegistry {}
