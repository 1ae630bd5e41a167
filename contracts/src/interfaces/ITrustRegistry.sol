// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Trust registry interface
/// @notice QR issuer keys (key id -> public key, COSE algorithm, validity, revoked flag) and the
/// SHA-256 digests of the published revocation lists (W3C Bitstring Status List) by epoch.
interface ITrustRegistry {
    /// @notice An issuer key as the registry holds it.
    /// @param publicKey Raw public key (32 bytes for Ed25519, SubjectPublicKeyInfo DER otherwise).
    /// @param alg COSE algorithm identifier (-8 EdDSA, -7 ES256).
    /// @param validFrom First second (Unix) a certificate signed by the key may be issued.
    /// @param validUntil Last second (Unix) a certificate signed by the key may be valid.
    /// @param revoked Whether the registrar revoked the key.
    /// @param revokedAt When it was revoked (block timestamp, 0 when not revoked).
    struct IssuerKey {
        bytes publicKey;
        int32 alg;
        uint64 validFrom;
        uint64 validUntil;
        bool revoked;
        uint64 revokedAt;
    }

    /// @notice The key id is already registered (key ids are never reused).
    /// @param kid The key id.
    error TrustKeyExists(bytes8 kid);
    /// @notice No key is registered under this key id.
    /// @param kid The key id.
    error TrustKeyUnknown(bytes8 kid);
    /// @notice The key is already revoked.
    /// @param kid The key id.
    error TrustKeyAlreadyRevoked(bytes8 kid);
    /// @notice The public key is empty or the key id is zero.
    /// @param kid The key id.
    error TrustKeyInvalid(bytes8 kid);
    /// @notice validFrom must be before validUntil.
    /// @param validFrom The given start.
    /// @param validUntil The given end.
    error TrustInvalidValidity(uint64 validFrom, uint64 validUntil);
    /// @notice Epochs are anchored in order, one after the other, starting at 1.
    /// @param expected The next epoch.
    /// @param given The epoch in the call.
    error TrustEpochOutOfOrder(uint64 expected, uint64 given);
    /// @notice A status list digest must not be zero.
    /// @param epoch The epoch in the call.
    error TrustZeroDigest(uint64 epoch);

    /// @notice An issuer key was added.
    /// @param kid The key id.
    /// @param alg COSE algorithm identifier.
    /// @param publicKey The public key bytes.
    /// @param validFrom Start of validity (Unix seconds).
    /// @param validUntil End of validity (Unix seconds).
    event IssuerKeyAdded(bytes8 indexed kid, int32 alg, bytes publicKey, uint64 validFrom, uint64 validUntil);
    /// @notice An issuer key was revoked.
    /// @param kid The key id.
    /// @param revokedAt Block timestamp of the revocation.
    event IssuerKeyRevoked(bytes8 indexed kid, uint64 revokedAt);
    /// @notice The digest of a revocation list was anchored for an epoch.
    /// @param epoch The epoch (1, 2, ...).
    /// @param digest SHA-256 of the published encodedList (ASCII).
    /// @param sizeBits Number of status indexes the list covers.
    event StatusListAnchored(uint64 indexed epoch, bytes32 digest, uint64 sizeBits);

    /// @notice Register an issuer key (registrar only).
    /// @param kid Key id (8 bytes, non-zero).
    /// @param publicKey Public key bytes (non-empty).
    /// @param alg COSE algorithm identifier.
    /// @param validFrom Start of validity (Unix seconds).
    /// @param validUntil End of validity (Unix seconds), after validFrom.
    function addIssuerKey(
        bytes8 kid,
        bytes calldata publicKey,
        int32 alg,
        uint64 validFrom,
        uint64 validUntil
    ) external;

    /// @notice Revoke an issuer key for good (registrar only).
    /// @param kid The key id.
    function revokeIssuerKey(bytes8 kid) external;

    /// @notice Anchor the digest of the revocation list of the next epoch (registrar only).
    /// @param epoch Must equal latestEpoch() + 1.
    /// @param digest SHA-256 of the encodedList (non-zero).
    /// @param sizeBits Number of status indexes the list covers.
    function anchorStatusList(uint64 epoch, bytes32 digest, uint64 sizeBits) external;

    /// @notice One issuer key.
    /// @param kid The key id.
    /// @return key The key; reverts TrustKeyUnknown when absent.
    function issuerKey(bytes8 kid) external view returns (IssuerKey memory key);

    /// @notice Every registered key id, in registration order.
    /// @return kids The key ids.
    function issuerKeyIds() external view returns (bytes8[] memory kids);

    /// @notice The latest anchored epoch (0 before the first).
    /// @return epoch The epoch.
    function latestEpoch() external view returns (uint64 epoch);

    /// @notice The digest anchored for an epoch.
    /// @param epoch The epoch.
    /// @return digest SHA-256 of the list (zero when not anchored).
    /// @return sizeBits Number of status indexes.
    /// @return anchoredAt Block timestamp of the anchoring (0 when not anchored).
    function statusListDigest(
        uint64 epoch
    ) external view returns (bytes32 digest, uint64 sizeBits, uint64 anchoredAt);
}
