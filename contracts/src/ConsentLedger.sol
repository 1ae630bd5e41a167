// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {NoncesKeyed} from "@openzeppelin/contracts/utils/NoncesKeyed.sol";

import {IConsentLedger} from "./interfaces/IConsentLedger.sol";
import {DepartmentRegistry} from "./DepartmentRegistry.sol";
import {GuardianRegistry} from "./GuardianRegistry.sol";

/// @title Consent ledger
/// @notice Grant and withdraw consent by EIP-712 signature of the subject or its active guardian,
/// relayed by anyone. The relayed Grant carries the EIP-712 hashes of its text fields, never the
/// text, so no label is ever readable in calldata, state or logs. Signatures carry a keyed nonce (ERC-4337 style: key in the upper 192 bits)
/// of the signer and a mandatory deadline; the domain binds them to this chain and contract.
abstract contract ConsentLedger is IConsentLedger, DepartmentRegistry, GuardianRegistry, EIP712, NoncesKeyed {
    bytes32 private constant GRANT_TYPEHASH =
        keccak256(
            "Grant(address subject,address controller,string purpose,string[] piCategories,bool sensitive,"
            "string[] thirdParties,bool separateConsent,uint64 validFrom,uint64 validUntil,bytes32 recordHash,"
            "uint256 nonce,uint256 deadline)"
        );
    /// @dev EIP-712 hash of an empty string[]: keccak256 of zero concatenated element hashes.
    bytes32 private constant EMPTY_STRING_ARRAY_HASH = keccak256("");
    bytes32 private constant WITHDRAWAL_TYPEHASH =
        keccak256("Withdrawal(bytes32 consentId,address subject,uint256 nonce,uint256 deadline)");

    /// @notice checkConsent reason: the consent is valid.
    uint8 public constant REASON_OK = 0;
    /// @notice checkConsent reason: no consent with this id.
    uint8 public constant REASON_NOT_FOUND = 1;
    /// @notice checkConsent reason: the consent was withdrawn.
    uint8 public constant REASON_WITHDRAWN = 2;
    /// @notice checkConsent reason: block timestamp is before validFrom.
    uint8 public constant REASON_NOT_YET_VALID = 3;
    /// @notice checkConsent reason: block timestamp is after validUntil.
    uint8 public constant REASON_EXPIRED = 4;
    /// @notice checkConsent reason: the consent was given to another controller.
    uint8 public constant REASON_WRONG_CONTROLLER = 5;
    /// @notice checkConsent reason: the consent was given for another purpose.
    uint8 public constant REASON_WRONG_PURPOSE = 6;
    /// @notice checkConsent reason: a category asked for is not in the grant.
    uint8 public constant REASON_CATEGORY_NOT_GRANTED = 7;
    /// @notice checkConsent reason: the controller is suspended (or no longer registered).
    uint8 public constant REASON_CONTROLLER_SUSPENDED = 8;

    mapping(bytes32 consentId => ConsentRecord) private _consents;

    constructor() EIP712("consentgate", "1") {}

    /// @inheritdoc IConsentLedger
    function grant(Grant calldata g, bytes calldata signature) external returns (bytes32 consentId) {
        return _grant(g, signature);
    }

    /// @inheritdoc IConsentLedger
    function grantBatch(
        Grant[] calldata grants,
        bytes[] calldata signatures
    ) external returns (bytes32[] memory consentIds) {
        _checkBatch(grants.length, signatures.length);
        consentIds = new bytes32[](grants.length);
        for (uint256 i = 0; i < grants.length; ++i) {
            consentIds[i] = _grant(grants[i], signatures[i]);
        }
    }

    /// @inheritdoc IConsentLedger
    function withdraw(Withdrawal calldata w, bytes calldata signature) external {
        _withdraw(w, signature);
    }

    /// @inheritdoc IConsentLedger
    function withdrawBatch(Withdrawal[] calldata withdrawals, bytes[] calldata signatures) external {
        _checkBatch(withdrawals.length, signatures.length);
        for (uint256 i = 0; i < withdrawals.length; ++i) {
            _withdraw(withdrawals[i], signatures[i]);
        }
    }

    /// @inheritdoc IConsentLedger
    function checkConsent(
        bytes32 consentId,
        address controller,
        bytes32 purposeHash,
        bytes32[] calldata piCategoryHashes
    ) public view returns (bool valid, uint8 reason) {
        ConsentRecord storage c = _consents[consentId];
        if (c.grantedAt == 0) return (false, REASON_NOT_FOUND);
        if (c.withdrawn) return (false, REASON_WITHDRAWN);
        if (block.timestamp < c.validFrom) return (false, REASON_NOT_YET_VALID);
        if (block.timestamp > c.validUntil) return (false, REASON_EXPIRED);
        if (c.controller != controller) return (false, REASON_WRONG_CONTROLLER);
        if (c.purposeHash != purposeHash) return (false, REASON_WRONG_PURPOSE);
        if (!_isSubset(piCategoryHashes, c.piCategoryHashes)) return (false, REASON_CATEGORY_NOT_GRANTED);
        if (!isDepartmentActive(controller)) return (false, REASON_CONTROLLER_SUSPENDED);
        return (true, REASON_OK);
    }

    /// @inheritdoc IConsentLedger
    function isConsentValid(
        bytes32 consentId,
        address controller,
        bytes32 purposeHash,
        bytes32[] calldata piCategoryHashes
    ) external view returns (bool valid) {
        (valid, ) = checkConsent(consentId, controller, purposeHash, piCategoryHashes);
    }

    /// @inheritdoc IConsentLedger
    function getConsent(bytes32 consentId) external view returns (ConsentRecord memory record) {
        return _consents[consentId];
    }

    /// @inheritdoc IConsentLedger
    function hashGrant(Grant calldata g) external view returns (bytes32 digest) {
        return _hashTypedDataV4(_grantStructHash(g));
    }

    /// @inheritdoc IConsentLedger
    function hashWithdrawal(Withdrawal calldata w) public view returns (bytes32 digest) {
        return _hashTypedDataV4(keccak256(abi.encode(WITHDRAWAL_TYPEHASH, w.consentId, w.subject, w.nonce, w.deadline)));
    }

    /// @inheritdoc IConsentLedger
    function grantTypehash() external pure returns (bytes32 typehash) {
        return GRANT_TYPEHASH;
    }

    /// @inheritdoc IConsentLedger
    function withdrawalTypehash() external pure returns (bytes32 typehash) {
        return WITHDRAWAL_TYPEHASH;
    }

    function _grant(Grant calldata g, bytes calldata signature) private returns (bytes32 consentId) {
        _checkDeadline(g.deadline);
        if (g.validUntil <= g.validFrom) revert ConsentInvalidValidity(g.validFrom, g.validUntil);
        bool thirdParty = g.thirdPartiesHash != EMPTY_STRING_ARRAY_HASH;
        if ((g.sensitive || thirdParty) && !g.separateConsent) {
            revert ConsentSeparateConsentRequired(g.sensitive, thirdParty);
        }
        if (g.piCategoryHashes.length == 0) revert ConsentNoCategories();
        _requireActivePurpose(g.controller, g.purposeHash);

        consentId = _hashTypedDataV4(_grantStructHash(g));
        if (_consents[consentId].grantedAt != 0) revert ConsentAlreadyExists(consentId);
        address signer = _authorizedSigner(consentId, signature, g.subject);
        _useCheckedNonce(signer, g.nonce);

        ConsentRecord storage c = _consents[consentId];
        c.subject = g.subject;
        c.grantedAt = uint64(block.timestamp);
        c.sensitive = g.sensitive;
        c.thirdParty = thirdParty;
        c.controller = g.controller;
        c.validFrom = g.validFrom;
        c.signer = signer;
        c.validUntil = g.validUntil;
        c.purposeHash = g.purposeHash;
        c.recordHash = g.recordHash;
        c.piCategoryHashes = g.piCategoryHashes;

        emit ConsentGranted(
            consentId,
            g.subject,
            g.controller,
            signer,
            g.purposeHash,
            g.piCategoryHashes,
            g.sensitive,
            thirdParty,
            g.validFrom,
            g.validUntil,
            g.recordHash
        );
    }

    function _withdraw(Withdrawal calldata w, bytes calldata signature) private {
        _checkDeadline(w.deadline);
        ConsentRecord storage c = _consents[w.consentId];
        if (c.grantedAt == 0) revert ConsentNotFound(w.consentId);
        if (c.withdrawn) revert ConsentAlreadyWithdrawn(w.consentId);
        if (w.subject != c.subject) revert ConsentSubjectMismatch(w.consentId, w.subject);
        address signer = _authorizedSigner(hashWithdrawal(w), signature, w.subject);
        _useCheckedNonce(signer, w.nonce);

        c.withdrawn = true;
        c.withdrawnAt = uint64(block.timestamp);
        emit ConsentWithdrawn(w.consentId, c.subject, c.controller, signer);
    }

    /// @dev Recovers the signer of `digest` and returns it if it may sign for `subject`: the subject
    /// itself while it has no active guardian, or its active guardian.
    function _authorizedSigner(
        bytes32 digest,
        bytes calldata signature,
        address subject
    ) private view returns (address signer) {
        if (signature.length != 65) revert ConsentInvalidSignatureLength(signature.length);
        uint8 v = uint8(signature[64]);
        if (v != 27 && v != 28) revert ConsentInvalidSignatureV(v);
        (address recovered, ECDSA.RecoverError err, bytes32 errArg) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err == ECDSA.RecoverError.InvalidSignatureS) revert ConsentInvalidSignatureS(errArg);
        if (err != ECDSA.RecoverError.NoError) revert ConsentInvalidSignature();

        address guardian = _activeGuardian(subject);
        if (guardian == address(0)) {
            if (recovered != subject) revert ConsentUnauthorizedSigner(recovered, subject);
        } else if (recovered != guardian) {
            if (recovered == subject) revert ConsentWardSignatureRefused(subject, guardian);
            revert ConsentUnauthorizedSigner(recovered, subject);
        }
        return recovered;
    }

    function _checkDeadline(uint256 deadline) private view {
        if (deadline == 0) revert ConsentDeadlineZero();
        if (block.timestamp > deadline) revert ConsentDeadlinePassed(deadline, block.timestamp);
    }

    function _checkBatch(uint256 items, uint256 signatures) private pure {
        if (items == 0 || items != signatures) revert ConsentBatchLengthMismatch(items, signatures);
    }

    /// @dev hashStruct(Grant) per EIP-712 ("encodeData"): a string is encoded as keccak256 of its
    /// bytes and a string[] as keccak256 of the concatenated element hashes, which is what the hashed
    /// fields already hold (the categories still as their list, hashed here). Encoded in two
    /// halves, which concatenate to exactly abi.encode of all thirteen words, to stay within the stack.
    function _grantStructHash(Grant calldata g) private pure returns (bytes32) {
        bytes memory head = abi.encode(
            GRANT_TYPEHASH,
            g.subject,
            g.controller,
            g.purposeHash,
            keccak256(abi.encodePacked(g.piCategoryHashes)),
            g.sensitive
        );
        bytes memory tail = abi.encode(
            g.thirdPartiesHash,
            g.separateConsent,
            g.validFrom,
            g.validUntil,
            g.recordHash,
            g.nonce,
            g.deadline
        );
        return keccak256(bytes.concat(head, tail));
    }

    function _isSubset(bytes32[] calldata wanted, bytes32[] storage granted) private view returns (bool) {
        uint256 n = granted.length;
        for (uint256 i = 0; i < wanted.length; ++i) {
            bool found = false;
            for (uint256 j = 0; j < n; ++j) {
                if (granted[j] == wanted[i]) {
                    found = true;
                    break;
                }
            }
            if (!found) return false;
        }
        return true;
    }
}
