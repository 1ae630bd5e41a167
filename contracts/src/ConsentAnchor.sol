// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IConsentAnchor} from "./interfaces/IConsentAnchor.sol";
import {IConsentLedger} from "./interfaces/IConsentLedger.sol";
import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import * as MerkleProof32 from "./MerkleProof32.sol";
import {RegistrarRole} from "./RegistrarRole.sol";

/// @title consentgate consent anchor
/// @notice Batched commitments beside a ConsentRegistry (docs/anchoring.md): the registrar posts
/// the consent, status and audit roots; anyone checks a consent receipt or an audit event against
/// the latest roots (or those of an earlier batch) with the citizen's signature and Merkle proofs.
contract ConsentAnchor is IConsentAnchor, RegistrarRole {
    /// @dev EIP-712 hash of an empty string[]: keccak256 of no bytes.
    bytes32 private constant EMPTY_STRING_ARRAY_HASH = keccak256("");

    /// @notice checkConsentProof reason: every check passed.
    uint8 public constant PROOF_OK = 0;
    /// @notice checkConsentProof reason: signature not 65 bytes, v not 27/28, high s, or unrecoverable.
    uint8 public constant PROOF_BAD_SIGNATURE = 1;
    /// @notice checkConsentProof reason: sensitive PI or third parties without separateConsent.
    uint8 public constant PROOF_SEPARATE_CONSENT_REQUIRED = 2;
    /// @notice checkConsentProof reason: the signer is neither the subject nor its active guardian.
    uint8 public constant PROOF_UNAUTHORIZED_SIGNER = 3;
    /// @notice checkConsentProof reason: the subject signed but has an active guardian.
    uint8 public constant PROOF_WARD_SIGNATURE_REFUSED = 4;
    /// @notice checkConsentProof reason: the consent proof does not lead to the batch's consent root.
    uint8 public constant PROOF_CONSENT_NOT_PROVEN = 5;
    /// @notice checkConsentProof reason: the status proof does not lead to the batch's status root.
    uint8 public constant PROOF_STATUS_NOT_PROVEN = 6;

    IConsentRegistry private immutable _registry;
    uint64 private _latestId;
    mapping(uint64 batchId => Batch) private _batches;

    /// @notice Deploys the anchor and gives `registrar` DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE.
    /// @param registrar The platform operator's address.
    /// @param consentRegistry The ConsentRegistry whose EIP-712 domain and guardianships are used.
    constructor(address registrar, address consentRegistry) {
        if (registrar == address(0)) revert AnchorZeroRegistrar();
        if (consentRegistry == address(0)) revert AnchorZeroRegistry();
        _registry = IConsentRegistry(consentRegistry);
        _grantRole(DEFAULT_ADMIN_ROLE, registrar);
        _grantRole(REGISTRAR_ROLE, registrar);
    }

    /// @inheritdoc IConsentAnchor
    function anchor(
        uint64 batchId,
        bytes32 consentRoot,
        uint64 consentCount,
        bytes32 statusRoot,
        bytes32 auditRoot,
        uint64 auditCount
    ) external onlyRole(REGISTRAR_ROLE) {
        uint64 previousId = _latestId;
        if (batchId != previousId + 1) revert AnchorBatchIdNotNext(batchId, previousId + 1);
        Batch storage previous = _batches[previousId];
        if (consentCount < previous.consentCount) {
            revert AnchorConsentCountDecreased(consentCount, previous.consentCount);
        }
        if (auditCount < previous.auditCount) revert AnchorAuditCountDecreased(auditCount, previous.auditCount);
        if (consentCount > MerkleProof32.CAPACITY) {
            revert AnchorCountTooLarge(consentCount, uint64(MerkleProof32.CAPACITY));
        }
        if (auditCount > MerkleProof32.CAPACITY) revert AnchorCountTooLarge(auditCount, uint64(MerkleProof32.CAPACITY));

        _latestId = batchId;
        _batches[batchId] = Batch({
            batchId: batchId,
            consentCount: consentCount,
            auditCount: auditCount,
            anchoredAt: uint64(block.timestamp),
            consentRoot: consentRoot,
            statusRoot: statusRoot,
            auditRoot: auditRoot
        });
        emit BatchAnchored(batchId, consentRoot, consentCount, statusRoot, auditRoot, auditCount);
    }

    /// @inheritdoc IConsentAnchor
    function latest() external view returns (Batch memory latestBatch) {
        return _batches[_latestId];
    }

    /// @inheritdoc IConsentAnchor
    function batch(uint64 batchId) external view returns (Batch memory anchored) {
        return _anchored(batchId);
    }

    /// @inheritdoc IConsentAnchor
    function verifyConsent(
        IConsentLedger.Grant calldata g,
        bytes calldata signature,
        uint64 index,
        bytes32[32] calldata consentProof,
        bytes32 statusWord,
        bytes32[32] calldata statusProof
    ) external view returns (bool granted, bool withdrawn) {
        uint8 reason;
        (reason, withdrawn) = checkConsentProof(g, signature, index, consentProof, statusWord, statusProof);
        granted = reason == PROOF_OK;
    }

    /// @inheritdoc IConsentAnchor
    function checkConsentProof(
        IConsentLedger.Grant calldata g,
        bytes calldata signature,
        uint64 index,
        bytes32[32] calldata consentProof,
        bytes32 statusWord,
        bytes32[32] calldata statusProof
    ) public view returns (uint8 reason, bool withdrawn) {
        return _checkConsentProof(_batches[_latestId], g, signature, index, consentProof, statusWord, statusProof);
    }

    /// @inheritdoc IConsentAnchor
    function checkConsentProofAt(
        uint64 batchId,
        IConsentLedger.Grant calldata g,
        bytes calldata signature,
        uint64 index,
        bytes32[32] calldata consentProof,
        bytes32 statusWord,
        bytes32[32] calldata statusProof
    ) external view returns (uint8 reason, bool withdrawn) {
        return _checkConsentProof(_anchored(batchId), g, signature, index, consentProof, statusWord, statusProof);
    }

    /// @inheritdoc IConsentAnchor
    function verifyAudit(
        bytes32 eventHash,
        uint64 index,
        bytes32[32] calldata proof
    ) external view returns (bool included) {
        return _verifyAudit(_batches[_latestId], eventHash, index, proof);
    }

    /// @inheritdoc IConsentAnchor
    function verifyAuditAt(
        uint64 batchId,
        bytes32 eventHash,
        uint64 index,
        bytes32[32] calldata proof
    ) external view returns (bool included) {
        return _verifyAudit(_anchored(batchId), eventHash, index, proof);
    }

    /// @inheritdoc IConsentAnchor
    function registry() external view returns (address registryAddress) {
        return address(_registry);
    }

    /// @notice ERC-165: also answers true for IConsentAnchor.
    /// @param interfaceId The interface id.
    /// @return supported Whether the interface is supported.
    function supportsInterface(bytes4 interfaceId) public view override(AccessControl) returns (bool supported) {
        return interfaceId == type(IConsentAnchor).interfaceId || super.supportsInterface(interfaceId);
    }

    /// @dev The registry's rule for direct grants, evaluated now: the subject may sign while it has
    /// no active guardian (guardianOf's `until` not passed), otherwise only the guardian.
    function _signerReason(address signer, address subject) private view returns (uint8 reason) {
        (address guardian, uint64 until) = _registry.guardianOf(subject);
        if (guardian == address(0) || block.timestamp > until) {
            return signer == subject ? PROOF_OK : PROOF_UNAUTHORIZED_SIGNER;
        }
        if (signer == guardian) return PROOF_OK;
        return signer == subject ? PROOF_WARD_SIGNATURE_REFUSED : PROOF_UNAUTHORIZED_SIGNER;
    }

    /// @dev The checks of checkConsentProof against the roots of batch `b`.
    function _checkConsentProof(
        Batch storage b,
        IConsentLedger.Grant calldata g,
        bytes calldata signature,
        uint64 index,
        bytes32[32] calldata consentProof,
        bytes32 statusWord,
        bytes32[32] calldata statusProof
    ) private view returns (uint8 reason, bool withdrawn) {
        if (index >= b.consentCount) revert AnchorIndexNotAnchored(index, b.consentCount);
        if (signature.length != 65) return (PROOF_BAD_SIGNATURE, false);
        uint8 v = uint8(signature[64]);
        if (v != 27 && v != 28) return (PROOF_BAD_SIGNATURE, false);
        if ((g.sensitive || g.thirdPartiesHash != EMPTY_STRING_ARRAY_HASH) && !g.separateConsent) {
            return (PROOF_SEPARATE_CONSENT_REQUIRED, false);
        }

        bytes32 digest = _registry.hashGrant(g);
        (address signer, ECDSA.RecoverError err, ) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError) return (PROOF_BAD_SIGNATURE, false);
        reason = _signerReason(signer, g.subject);
        if (reason != PROOF_OK) return (reason, false);

        bytes32 leaf = MerkleProof32.hashLeaf(digest, keccak256(signature));
        if (MerkleProof32.processProof(leaf, index, consentProof) != b.consentRoot) {
            return (PROOF_CONSENT_NOT_PROVEN, false);
        }
        bytes32 wordLeaf = MerkleProof32.hashLeaf(statusWord);
        if (MerkleProof32.processProof(wordLeaf, index / 256, statusProof) != b.statusRoot) {
            return (PROOF_STATUS_NOT_PROVEN, false);
        }
        return (PROOF_OK, (uint256(statusWord) >> (255 - (index % 256))) & 1 == 1);
    }

    /// @dev verifyAudit against the roots of batch `b`.
    function _verifyAudit(
        Batch storage b,
        bytes32 eventHash,
        uint64 index,
        bytes32[32] calldata proof
    ) private view returns (bool included) {
        if (index >= b.auditCount) revert AnchorIndexNotAnchored(index, b.auditCount);
        return MerkleProof32.processProof(MerkleProof32.hashLeaf(eventHash), index, proof) == b.auditRoot;
    }

    /// @dev Anchored batch `batchId`, or revert with AnchorBatchNotFound.
    function _anchored(uint64 batchId) private view returns (Batch storage b) {
        if (batchId == 0 || batchId > _latestId) revert AnchorBatchNotFound(batchId);
        return _batches[batchId];
    }
}
