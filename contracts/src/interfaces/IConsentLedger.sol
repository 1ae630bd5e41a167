// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Consent ledger interface
/// @notice Grants and withdrawals of consent, each authorized by the citizen's (or the citizen's
/// guardian's) EIP-712 signature and relayed by the service. Only addresses, hashes and the fields
/// a check needs are stored: no strings and no personal information.
interface IConsentLedger {
    /// @notice The signed terms of a consent (EIP-712 primary type `Grant`), with its three text
    /// fields already reduced to their EIP-712 hashes.
    /// @dev Type string (what wallets show and sign, unchanged): Grant(address subject,address controller,
    /// string purpose,string[] piCategories,bool sensitive,string[] thirdParties,bool separateConsent,
    /// uint64 validFrom,uint64 validUntil,bytes32 recordHash,uint256 nonce,uint256 deadline).
    /// Why hashes: calldata is public and permanent, so a `string` argument puts its text on chain
    /// (issue 2: only addresses, hashes and the fields a check needs). EIP-712 encodes a `string` as
    /// keccak256 of its UTF-8 bytes and a `string[]` as keccak256 of the concatenated element hashes,
    /// so the relayer sends exactly those words and the contract computes the same struct hash the
    /// citizen signed; the labels themselves stay off chain. The hashes are unsalted: a short or
    /// guessable label can be found by trying candidates, so labels must never hold personal data.
    /// subject: the citizen; controller: the department;
    /// purposeHash: keccak256(bytes(purpose));
    /// piCategoryHashes: keccak256(bytes(category)) per PI category, in signed order (stored, and the
    /// struct hash uses keccak256(abi.encodePacked(piCategoryHashes)));
    /// thirdPartiesHash: keccak256(abi.encodePacked(keccak256(bytes(t)) for each third party)), which
    /// is keccak256("") for none;
    /// validFrom/validUntil: unix seconds, both inclusive; recordHash: hash of the full off-chain
    /// consent record; nonce: the signer's keyed nonce (key << 64 | sequence, see NoncesKeyed);
    /// deadline: unix seconds, last second the signature may be relayed, never zero.
    struct Grant {
        address subject;
        address controller;
        bytes32 purposeHash;
        bytes32[] piCategoryHashes;
        bool sensitive;
        bytes32 thirdPartiesHash;
        bool separateConsent;
        uint64 validFrom;
        uint64 validUntil;
        bytes32 recordHash;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice A signed withdrawal (EIP-712 primary type `Withdrawal`).
    /// @dev Type string: Withdrawal(bytes32 consentId,address subject,uint256 nonce,uint256 deadline).
    /// nonce and deadline as in Grant.
    struct Withdrawal {
        bytes32 consentId;
        address subject;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice What is kept on chain per consent (fields ordered for storage packing).
    /// @dev grantedAt: block timestamp of the grant (zero means no such consent); signer: the
    /// subject or its guardian; withdrawnAt: block timestamp of the withdrawal, zero before;
    /// purposeHash and piCategoryHashes: keccak256 of the signed strings, in signed order.
    struct ConsentRecord {
        address subject;
        uint64 grantedAt;
        bool sensitive;
        bool thirdParty;
        bool withdrawn;
        address controller;
        uint64 validFrom;
        address signer;
        uint64 validUntil;
        uint64 withdrawnAt;
        bytes32 purposeHash;
        bytes32 recordHash;
        bytes32[] piCategoryHashes;
    }

    /// @notice A consent was granted and stored.
    /// @param consentId The Grant's EIP-712 digest.
    /// @param subject The citizen (PII principal).
    /// @param controller The department (PII controller).
    /// @param signer Who signed: the subject, or the subject's guardian.
    /// @param purposeHash keccak256 of the purpose string.
    /// @param piCategoryHashes keccak256 of each PI category string, in signed order.
    /// @param sensitive Whether sensitive PI is covered.
    /// @param thirdParty Whether PI is provided to third parties.
    /// @param validFrom First valid second (unix time, inclusive).
    /// @param validUntil Last valid second (unix time, inclusive).
    /// @param recordHash Hash of the full off-chain consent record.
    event ConsentGranted(
        bytes32 indexed consentId,
        address indexed subject,
        address indexed controller,
        address signer,
        bytes32 purposeHash,
        bytes32[] piCategoryHashes,
        bool sensitive,
        bool thirdParty,
        uint64 validFrom,
        uint64 validUntil,
        bytes32 recordHash
    );

    /// @notice A consent was withdrawn; every later check answers WITHDRAWN.
    /// @param consentId The consent's id.
    /// @param subject The citizen.
    /// @param controller The department.
    /// @param signer Who signed the withdrawal: the subject, or the subject's guardian.
    event ConsentWithdrawn(
        bytes32 indexed consentId,
        address indexed subject,
        address indexed controller,
        address signer
    );

    /// @notice A signature deadline of zero is refused: every signature must expire.
    error ConsentDeadlineZero();

    /// @notice The signature's deadline has passed.
    /// @param deadline The signed deadline (unix seconds).
    /// @param timestamp The current block timestamp.
    error ConsentDeadlinePassed(uint256 deadline, uint256 timestamp);

    /// @notice The signature is not exactly 65 bytes (r, s, v).
    /// @param length The given length in bytes.
    error ConsentInvalidSignatureLength(uint256 length);

    /// @notice The signature's v is not 27 or 28.
    /// @param v The given v.
    error ConsentInvalidSignatureV(uint8 v);

    /// @notice The signature's s is in the upper half of the curve order (malleable).
    /// @param s The given s.
    error ConsentInvalidSignatureS(bytes32 s);

    /// @notice No signer could be recovered from the signature.
    error ConsentInvalidSignature();

    /// @notice The signer is neither the subject nor the subject's active guardian. A signature made
    /// for another chain id, another contract or other terms recovers to an unrelated signer and
    /// lands here too.
    /// @param signer The recovered signer.
    /// @param subject The consent's subject.
    error ConsentUnauthorizedSigner(address signer, address subject);

    /// @notice The subject is a ward with an active guardian: only the guardian may sign.
    /// @param subject The ward.
    /// @param guardian The active guardian.
    error ConsentWardSignatureRefused(address subject, address guardian);

    /// @notice validUntil must be later than validFrom.
    /// @param validFrom The signed start.
    /// @param validUntil The signed end.
    error ConsentInvalidValidity(uint64 validFrom, uint64 validUntil);

    /// @notice Sensitive PI or a third-party recipient requires separateConsent (PIPL arts. 23, 29).
    /// @param sensitive The signed sensitive flag.
    /// @param thirdParty Whether third parties were listed (thirdPartiesHash != keccak256("")).
    error ConsentSeparateConsentRequired(bool sensitive, bool thirdParty);

    /// @notice A grant must name at least one PI category.
    error ConsentNoCategories();

    /// @notice A consent with this id already exists (the same signed grant was submitted again).
    /// @param consentId The existing consent's id.
    error ConsentAlreadyExists(bytes32 consentId);

    /// @notice No consent with this id exists.
    /// @param consentId The unknown id.
    error ConsentNotFound(bytes32 consentId);

    /// @notice The consent is already withdrawn.
    /// @param consentId The consent's id.
    error ConsentAlreadyWithdrawn(bytes32 consentId);

    /// @notice The withdrawal names a subject other than the consent's.
    /// @param consentId The consent's id.
    /// @param subject The subject named in the withdrawal.
    error ConsentSubjectMismatch(bytes32 consentId, address subject);

    /// @notice A batch's items and signatures differ in number, or the batch is empty.
    /// @param items Number of items.
    /// @param signatures Number of signatures.
    error ConsentBatchLengthMismatch(uint256 items, uint256 signatures);

    /// @notice Stores a consent authorized by the subject's (or guardian's) EIP-712 signature.
    /// @param g The signed terms, text fields as their EIP-712 hashes (see Grant).
    /// @param signature 65-byte signature (r, s, v) with low s and v in {27, 28}.
    /// @return consentId The Grant's EIP-712 digest, which identifies the consent.
    function grant(Grant calldata g, bytes calldata signature) external returns (bytes32 consentId);

    /// @notice Stores many consents atomically: any bad item reverts the whole batch with its error.
    /// @param grants The signed terms.
    /// @param signatures One signature per item, same order.
    /// @return consentIds The consent ids, same order.
    function grantBatch(
        Grant[] calldata grants,
        bytes[] calldata signatures
    ) external returns (bytes32[] memory consentIds);

    /// @notice Withdraws a consent, authorized by the subject's (or guardian's) EIP-712 signature.
    /// @param w The signed withdrawal.
    /// @param signature 65-byte signature (r, s, v) with low s and v in {27, 28}.
    function withdraw(Withdrawal calldata w, bytes calldata signature) external;

    /// @notice Withdraws many consents atomically: any bad item reverts the whole batch with its error.
    /// @param withdrawals The signed withdrawals.
    /// @param signatures One signature per item, same order.
    function withdrawBatch(Withdrawal[] calldata withdrawals, bytes[] calldata signatures) external;

    /// @notice Whether a consent is valid now for this controller, purpose and PI categories.
    /// @dev Checks in this order, answering the first that fails: 1 NOT_FOUND, 2 WITHDRAWN,
    /// 3 NOT_YET_VALID (timestamp < validFrom), 4 EXPIRED (timestamp > validUntil),
    /// 5 WRONG_CONTROLLER, 6 WRONG_PURPOSE, 7 CATEGORY_NOT_GRANTED (not a subset),
    /// 8 CONTROLLER_SUSPENDED; 0 OK.
    /// @param consentId The consent's id.
    /// @param controller The department asking.
    /// @param purposeHash keccak256 of the purpose string.
    /// @param piCategoryHashes keccak256 of each PI category asked for; must be a subset of the grant.
    /// @return valid True if every check passes.
    /// @return reason 0 when valid, else the code of the first failed check.
    function checkConsent(
        bytes32 consentId,
        address controller,
        bytes32 purposeHash,
        bytes32[] calldata piCategoryHashes
    ) external view returns (bool valid, uint8 reason);

    /// @notice Same as checkConsent, answering only the verdict.
    /// @param consentId The consent's id.
    /// @param controller The department asking.
    /// @param purposeHash keccak256 of the purpose string.
    /// @param piCategoryHashes keccak256 of each PI category asked for.
    /// @return valid True if checkConsent answers OK.
    function isConsentValid(
        bytes32 consentId,
        address controller,
        bytes32 purposeHash,
        bytes32[] calldata piCategoryHashes
    ) external view returns (bool valid);

    /// @notice The stored consent record (all zero if none).
    /// @param consentId The consent's id.
    /// @return record The record.
    function getConsent(bytes32 consentId) external view returns (ConsentRecord memory record);

    /// @notice The full EIP-712 digest of a Grant under this contract's domain (= its consentId).
    /// @dev Equal to the digest a wallet computes over the string form of the same terms.
    /// @param g The terms, text fields as their EIP-712 hashes.
    /// @return digest keccak256("\x19\x01" || domainSeparator || hashStruct(g)).
    function hashGrant(Grant calldata g) external view returns (bytes32 digest);

    /// @notice The full EIP-712 digest of a Withdrawal under this contract's domain.
    /// @param w The withdrawal.
    /// @return digest keccak256("\x19\x01" || domainSeparator || hashStruct(w)).
    function hashWithdrawal(Withdrawal calldata w) external view returns (bytes32 digest);

    /// @notice The Grant typehash.
    /// @return typehash keccak256 of the Grant type string.
    function grantTypehash() external pure returns (bytes32 typehash);

    /// @notice The Withdrawal typehash.
    /// @return typehash keccak256 of the Withdrawal type string.
    function withdrawalTypehash() external pure returns (bytes32 typehash);
}
