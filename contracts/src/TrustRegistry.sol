// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {ITrustRegistry} from "./interfaces/ITrustRegistry.sol";
import {RegistrarRole} from "./RegistrarRole.sol";

/// @title consentgate trust registry
/// @notice The QR issuer keys gates trust and the digests of the revocation lists they load, so a
/// gate can prove it runs on the current lists.
contract TrustRegistry is ITrustRegistry, RegistrarRole {
    struct Anchor {
        bytes32 digest;
        uint64 sizeBits;
        uint64 anchoredAt;
    }

    /// @notice The registrar must not be the zero address.
    error TrustRegistryZeroRegistrar();

    mapping(bytes8 kid => IssuerKey) private _keys;
    bytes8[] private _kids;
    mapping(uint64 epoch => Anchor) private _anchors;
    uint64 private _latestEpoch;

    /// @notice Deploys the registry and gives `registrar` DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE.
    /// @param registrar The platform operator's address.
    constructor(address registrar) {
        if (registrar == address(0)) revert TrustRegistryZeroRegistrar();
        _grantRole(DEFAULT_ADMIN_ROLE, registrar);
        _grantRole(REGISTRAR_ROLE, registrar);
    }

    /// @inheritdoc ITrustRegistry
    function addIssuerKey(
        bytes8 kid,
        bytes calldata publicKey,
        int32 alg,
        uint64 validFrom,
        uint64 validUntil
    ) external onlyRole(REGISTRAR_ROLE) {
        if (kid == bytes8(0) || publicKey.length == 0) revert TrustKeyInvalid(kid);
        if (_keys[kid].publicKey.length != 0) revert TrustKeyExists(kid);
        if (validFrom >= validUntil) revert TrustInvalidValidity(validFrom, validUntil);
        _keys[kid] = IssuerKey(publicKey, alg, validFrom, validUntil, false, 0);
        _kids.push(kid);
        emit IssuerKeyAdded(kid, alg, publicKey, validFrom, validUntil);
    }

    /// @inheritdoc ITrustRegistry
    function revokeIssuerKey(bytes8 kid) external onlyRole(REGISTRAR_ROLE) {
        IssuerKey storage key = _keys[kid];
        if (key.publicKey.length == 0) revert TrustKeyUnknown(kid);
        if (key.revoked) revert TrustKeyAlreadyRevoked(kid);
        key.revoked = true;
        key.revokedAt = uint64(block.timestamp);
        emit IssuerKeyRevoked(kid, uint64(block.timestamp));
    }

    /// @inheritdoc ITrustRegistry
    function anchorStatusList(uint64 epoch, bytes32 digest, uint64 sizeBits) external onlyRole(REGISTRAR_ROLE) {
        if (epoch != _latestEpoch + 1) revert TrustEpochOutOfOrder(_latestEpoch + 1, epoch);
        if (digest == bytes32(0)) revert TrustZeroDigest(epoch);
        _anchors[epoch] = Anchor(digest, sizeBits, uint64(block.timestamp));
        _latestEpoch = epoch;
        emit StatusListAnchored(epoch, digest, sizeBits);
    }

    /// @inheritdoc ITrustRegistry
    function issuerKey(bytes8 kid) external view returns (IssuerKey memory key) {
        key = _keys[kid];
        if (key.publicKey.length == 0) revert TrustKeyUnknown(kid);
    }

    /// @inheritdoc ITrustRegistry
    function issuerKeyIds() external view returns (bytes8[] memory kids) {
        return _kids;
    }

    /// @inheritdoc ITrustRegistry
    function latestEpoch() external view returns (uint64 epoch) {
        return _latestEpoch;
    }

    /// @inheritdoc ITrustRegistry
    function statusListDigest(
        uint64 epoch
    ) external view returns (bytes32 digest, uint64 sizeBits, uint64 anchoredAt) {
        Anchor storage a = _anchors[epoch];
        return (a.digest, a.sizeBits, a.anchoredAt);
    }

    /// @notice ERC-165: also answers true for ITrustRegistry.
    /// @param interfaceId The interface id.
    /// @return supported Whether the interface is supported.
    function supportsInterface(bytes4 interfaceId) public view override(AccessControl) returns (bool supported) {
        return interfaceId == type(ITrustRegistry).interfaceId || super.supportsInterface(interfaceId);
    }
}
