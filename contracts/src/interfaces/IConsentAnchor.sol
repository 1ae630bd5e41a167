// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IConsentLedger} from "./IConsentLedger.sol";

/// @title Consent anchor interface
/// @notice Batched commitments (docs/anchoring.md): each anchoring transaction posts the roots of
/// the consent tree, the withdrawal status tree and the audit tree with their sizes. Nothing per
/// consent is stored; views check a consent or an audit event against the latest roots.
interface IConsentAnchor {
    /// @notice One anchored batch (fields ordered for storage packing).
    /// @param batchId Sequence number, from 1.
    /// @param consentCount Leaves in the consent tree (consents ever anchored).
    /// @param auditCount Leaves in the audit tree.
    /// @param anchoredAt Block timestamp of the anchoring transaction (unix seconds).
    /// @param consentRoot Root of the consent tree.
    /// @param statusRoot Root of the status tree (ceil(consentCount / 256) words).
    /// @param auditRoot Root of the audit tree.
    struct Batch {
        uint64 batchId;
        uint64 consentCount;
        uint64 auditCount;
        uint64 anchoredAt;
        bytes32 consentRoot;
        bytes32 statusRoot;
        bytes32 auditRoot;
    }

    /// @notice A batch was anchored; its roots are now the latest.
    /// @param batchId The batch's sequence number.
    /// @param consentRoot Root of the consent tree.
    /// @param consentCount Leaves in the consent tree.
    /// @param statusRoot Root of the status tree.
    /// @param auditRoot Root of the audit tree.
    /// @param auditCount Leaves in the audit tree.
    event BatchAnchored(
        uint64 indexed batchId,
        bytes32 consentRoot,
        uint64 consentCount,
        bytes32 statusRoot,
        bytes32 auditRoot,
        uint64 auditCount
    );

    /// @notice The registrar must not be the zero address.
    error AnchorZeroRegistrar();

    /// @notice The registry must not be the zero address.
    error AnchorZeroRegistry();

    /// @notice Batches are anchored in order: the id must be the latest one + 1.
    /// @param batchId The given id.
    /// @param expected The next id.
    error AnchorBatchIdNotNext(uint64 batchId, uint64 expected);

    /// @notice The trees are append-only: the consent count must not decrease.
    /// @param consentCount The given count.
    /// @param previous The latest batch's count.
    error AnchorConsentCountDecreased(uint64 consentCount, uint64 previous);

    /// @notice The trees are append-only: the audit count must not decrease.
    /// @param auditCount The given count.
    /// @param previous The latest batch's count.
    error AnchorAuditCountDecreased(uint64 auditCount, uint64 previous);

    /// @notice A depth-32 tree holds at most 2^32 leaves.
    /// @param count The given count.
    /// @param capacity 2^32.
    error AnchorCountTooLarge(uint64 count, uint64 capacity);

    /// @notice No batch with this id was anchored.
    /// @param batchId The unknown id.
    error AnchorBatchNotFound(uint64 batchId);

    /// @notice The index is not covered by the latest batch: not anchored yet (or never will be).
    /// @param index The given leaf index.
    /// @param count The latest batch's size of that tree (0 before the first batch).
    error AnchorIndexNotAnchored(uint64 index, uint64 count);

    /// @notice Posts a batch's roots and sizes, replacing the latest ones. Registrar only.
    /// @param batchId The latest batch id + 1 (the first batch is 1).
    /// @param consentRoot Root of the consent tree.
    /// @param consentCount Leaves in the consent tree; not less than the latest, at most 2^32.
    /// @param statusRoot Root of the status tree.
    /// @param auditRoot Root of the audit tree.
    /// @param auditCount Leaves in the audit tree; not less than the latest, at most 2^32.
    function anchor(
        uint64 batchId,
        bytes32 consentRoot,
        uint64 consentCount,
        bytes32 statusRoot,
        bytes32 auditRoot,
        uint64 auditCount
    ) external;

    /// @notice The latest batch (all zero before the first one).
    /// @return latestBatch The batch.
    function latest() external view returns (Batch memory latestBatch);

    /// @notice An anchored batch by id.
    /// @dev Reverts with AnchorBatchNotFound for 0 or an id above the latest.
    /// @param batchId The batch's id.
    /// @return anchored The batch.
    function batch(uint64 batchId) external view returns (Batch memory anchored);

    /// @notice Whether a consent receipt is proven by the latest roots, and whether it is withdrawn.
    /// @dev `granted` is true only when every check of checkConsentProof passes; `withdrawn` is
    /// the status bit, read only then (false otherwise). Never reverts on a bad signature or
    /// proof; reverts with AnchorIndexNotAnchored when `index` is not below the latest
    /// consentCount. Time windows (validFrom, validUntil, deadline) and the controller's
    /// registration are not checked: the caller has the Grant and decides.
    /// @param g The signed terms.
    /// @param signature The 65-byte signature (r, s, v) the receipt was anchored with.
    /// @param index The consent's sequence number (leaf index in the consent tree).
    /// @param consentProof The consent leaf's 32 siblings, leaf level first.
    /// @param statusWord The status word `index / 256`.
    /// @param statusProof The status word leaf's 32 siblings, leaf level first.
    /// @return granted The receipt is included, its signature valid and its status word proven.
    /// @return withdrawn Bit `index % 256` of the status word (most significant bit first).
    function verifyConsent(
        IConsentLedger.Grant calldata g,
        bytes calldata signature,
        uint64 index,
        bytes32[32] calldata consentProof,
        bytes32 statusWord,
        bytes32[32] calldata statusProof
    ) external view returns (bool granted, bool withdrawn);

    /// @notice Same checks as verifyConsent, answering the first that fails.
    /// @dev Order: 1 BAD_SIGNATURE (not 65 bytes, v not 27/28, high s, or unrecoverable),
    /// 2 SEPARATE_CONSENT_REQUIRED (sensitive or third parties without separateConsent),
    /// 3 UNAUTHORIZED_SIGNER (neither the subject without an active guardian nor the subject's
    /// active guardian, per the registry's guardianOf now), 4 WARD_SIGNATURE_REFUSED (the subject
    /// signed while it has an active guardian), 5 CONSENT_NOT_PROVEN (consent proof does not lead
    /// to the latest consent root), 6 STATUS_NOT_PROVEN (status proof does not lead to the latest
    /// status root); 0 OK. Reverts with AnchorIndexNotAnchored like verifyConsent.
    /// @param g The signed terms.
    /// @param signature The 65-byte signature (r, s, v).
    /// @param index The consent's sequence number.
    /// @param consentProof The consent leaf's siblings.
    /// @param statusWord The status word `index / 256`.
    /// @param statusProof The status word leaf's siblings.
    /// @return reason 0 when proven, else the code of the first failed check.
    /// @return withdrawn The status bit when reason is 0, else false.
    function checkConsentProof(
        IConsentLedger.Grant calldata g,
        bytes calldata signature,
        uint64 index,
        bytes32[32] calldata consentProof,
        bytes32 statusWord,
        bytes32[32] calldata statusProof
    ) external view returns (uint8 reason, bool withdrawn);

    /// @notice checkConsentProof against the roots of an earlier (or the latest) batch.
    /// @dev A proof goes stale: each batch that appends leaves changes siblings of older leaves,
    /// and each withdrawal changes the status root. This view checks a saved proof as of the batch
    /// it was built for, from the stored history: reason 0 means "included, validly signed, and
    /// withdrawn or not as of that batch"; only a proof for the latest batch tells the status now.
    /// The guardian rule is still evaluated now. Reverts with AnchorBatchNotFound for an unknown
    /// batch and AnchorIndexNotAnchored when `index` is not below that batch's consentCount.
    /// @param batchId The batch the proof was built for.
    /// @param g The signed terms.
    /// @param signature The 65-byte signature (r, s, v).
    /// @param index The consent's sequence number.
    /// @param consentProof The consent leaf's siblings in that batch's consent tree.
    /// @param statusWord The status word `index / 256` as of that batch.
    /// @param statusProof The status word leaf's siblings in that batch's status tree.
    /// @return reason 0 when proven, else the code of the first failed check (as checkConsentProof).
    /// @return withdrawn The status bit as of that batch when reason is 0, else false.
    function checkConsentProofAt(
        uint64 batchId,
        IConsentLedger.Grant calldata g,
        bytes calldata signature,
        uint64 index,
        bytes32[32] calldata consentProof,
        bytes32 statusWord,
        bytes32[32] calldata statusProof
    ) external view returns (uint8 reason, bool withdrawn);

    /// @notice Whether an audit event is leaf `index` of the latest audit tree.
    /// @dev Reverts with AnchorIndexNotAnchored when `index` is not below the latest auditCount.
    /// @param eventHash keccak256 of the event's canonical JSON.
    /// @param index The event's position in the audit log.
    /// @param proof The leaf's 32 siblings, leaf level first.
    /// @return included True if the proof leads to the latest audit root.
    function verifyAudit(
        bytes32 eventHash,
        uint64 index,
        bytes32[32] calldata proof
    ) external view returns (bool included);

    /// @notice verifyAudit against the audit root of an earlier (or the latest) batch, so a saved
    /// audit proof stays checkable after later batches have appended events.
    /// @dev Reverts with AnchorBatchNotFound for an unknown batch and AnchorIndexNotAnchored when
    /// `index` is not below that batch's auditCount.
    /// @param batchId The batch the proof was built for.
    /// @param eventHash keccak256 of the event's canonical JSON.
    /// @param index The event's position in the audit log.
    /// @param proof The leaf's 32 siblings in that batch's audit tree.
    /// @return included True if the proof leads to that batch's audit root.
    function verifyAuditAt(
        uint64 batchId,
        bytes32 eventHash,
        uint64 index,
        bytes32[32] calldata proof
    ) external view returns (bool included);

    /// @notice The ConsentRegistry whose EIP-712 domain and guardianships the views use.
    /// @return registryAddress The registry.
    function registry() external view returns (address registryAddress);
}
