// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IConsentLedger} from "./interfaces/IConsentLedger.sol";
import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IDepartmentRegistry} from "./interfaces/IDepartmentRegistry.sol";
import {IGuardianRegistry} from "./interfaces/IGuardianRegistry.sol";
import {ConsentLedger} from "./ConsentLedger.sol";

/// @title consentgate consent registry
/// @notice The deployable registry: consent ledger, department registry and guardian registry,
/// administered by one registrar (EIP-712 domain: name "consentgate", version "1").
contract ConsentRegistry is IConsentRegistry, ConsentLedger {
    /// @notice The registrar must not be the zero address.
    error ConsentRegistryZeroRegistrar();

    /// @notice Deploys the registry and gives `registrar` DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE.
    /// @param registrar The platform operator's address.
    constructor(address registrar) {
        if (registrar == address(0)) revert ConsentRegistryZeroRegistrar();
        _grantRole(DEFAULT_ADMIN_ROLE, registrar);
        _grantRole(REGISTRAR_ROLE, registrar);
    }

    /// @notice ERC-165: also answers true for IConsentLedger, IDepartmentRegistry and
    /// IGuardianRegistry (an interface id covers only the functions an interface declares itself,
    /// so the empty IConsentRegistry has none of its own).
    /// @param interfaceId The interface id.
    /// @return supported Whether the interface is supported.
    function supportsInterface(bytes4 interfaceId) public view override(AccessControl) returns (bool supported) {
        return
            interfaceId == type(IConsentLedger).interfaceId ||
            interfaceId == type(IDepartmentRegistry).interfaceId ||
            interfaceId == type(IGuardianRegistry).interfaceId ||
            super.supportsInterface(interfaceId);
    }
}
