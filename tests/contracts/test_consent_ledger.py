"""ConsentLedger: grant, withdraw, check; every signature and terms rule (issue 2, "Rules")."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from tests.contracts.contract_support import (
    CATEGORIES,
    CATEGORY_NOT_GRANTED,
    CONTROLLER_SUSPENDED,
    EXPIRED,
    GRANT_FIELDS,
    GRANT_TYPE,
    NOT_FOUND,
    NOT_YET_VALID,
    OK,
    PURPOSES,
    SECP256K1_N,
    WITHDRAWAL_TYPE,
    WITHDRAWN,
    WRONG_CONTROLLER,
    WRONG_PURPOSE,
    Registry,
    assert_reverts,
    h,
    hashed_grant,
)


def test_grant_is_stored_and_checks_ok(registry: Registry) -> None:
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address)
    expected_id = registry.hash_grant(message)
    receipt = registry.grant(message, registry.sign(citizen, "Grant", message))
    (event,) = registry.contract.events.ConsentGranted().process_receipt(receipt)
    consent_id = bytes(event["args"]["consentId"])

    assert consent_id == bytes(expected_id)
    assert registry.check(consent_id) == (True, OK)
    assert registry.check(consent_id, categories=[CATEGORIES[1]]) == (True, OK)
    assert registry.contract.functions.isConsentValid(
        consent_id, registry.department, h(PURPOSES[0]), [h(CATEGORIES[0])]
    ).call()
    record = registry.contract.functions.getConsent(consent_id).call()
    block = registry.chain.w3.eth.get_block(receipt["blockNumber"])
    assert record == (
        citizen.address,
        block["timestamp"],
        False,
        False,
        False,
        registry.department,
        message["validFrom"],
        citizen.address,
        message["validUntil"],
        0,
        h(PURPOSES[0]),
        message["recordHash"],
        [h(c) for c in CATEGORIES[:2]],
    )


def _consent(registry: Registry, consent_id: bytes) -> tuple:
    return tuple(registry.contract.functions.getConsent(consent_id).call())


def test_same_signed_grant_twice_refused_first_unchanged(registry: Registry) -> None:
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address)
    signature = registry.sign(citizen, "Grant", message)
    registry.grant(message, signature)
    consent_id = registry.hash_grant(message)
    before = _consent(registry, consent_id)

    assert_reverts(
        lambda: registry.grant(message, signature), "ConsentAlreadyExists", consentId=consent_id
    )
    assert _consent(registry, consent_id) == before
    assert registry.check(consent_id) == (True, OK)


def test_signature_for_another_chain_id_refused(registry: Registry) -> None:
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address)
    domain = registry.domain(chainId=registry.chain.w3.eth.chain_id + 1)
    error = registry.refuse_grant(
        citizen, message, "ConsentUnauthorizedSigner", domain, subject=citizen.address
    )
    assert error.args["signer"] != citizen.address


def test_signature_for_another_contract_refused(registry: Registry) -> None:
    other = registry.chain.deploy_registry()
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address)
    domain = registry.domain(verifyingContract=other.address)
    error = registry.refuse_grant(
        citizen, message, "ConsentUnauthorizedSigner", domain, subject=citizen.address
    )
    assert error.args["signer"] != citizen.address


def test_deadline_in_the_past_refused(registry: Registry) -> None:
    citizen = registry.citizen()
    deadline = registry.chain.now() - 1
    message = registry.grant_message(citizen.address, deadline=deadline)
    error = registry.refuse_grant(
        citizen,
        message,
        "ConsentDeadlinePassed",
        deadline=deadline,
    )
    assert error.args["timestamp"] > deadline


def test_deadline_zero_refused(registry: Registry) -> None:
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address, deadline=0)
    registry.refuse_grant(
        citizen,
        message,
        "ConsentDeadlineZero",
    )


def test_high_s_signature_refused(registry: Registry) -> None:
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address)
    signature = registry.sign(citizen, "Grant", message)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    high_s = (SECP256K1_N - s).to_bytes(32, "big")
    malleable = r + high_s + bytes([55 - v])  # the same point: s -> n - s, v 27 <-> 28
    assert_reverts(lambda: registry.grant(message, malleable), "ConsentInvalidSignatureS", s=high_s)
    registry.grant(message, signature)  # the canonical form still works


@pytest.mark.parametrize("v", [0, 1])
def test_v_of_0_or_1_refused(registry: Registry, v: int) -> None:
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address)
    signature = registry.sign(citizen, "Grant", message)
    assert_reverts(
        lambda: registry.grant(message, signature[:64] + bytes([v])),
        "ConsentInvalidSignatureV",
        v=v,
    )


def test_signature_not_65_bytes_refused(registry: Registry) -> None:
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address)
    signature = registry.sign(citizen, "Grant", message)
    s_with_parity = int.from_bytes(signature[32:64], "big") | ((signature[64] - 27) << 255)
    compact = signature[:32] + s_with_parity.to_bytes(32, "big")  # EIP-2098, 64 bytes
    for wrong in (compact, signature + b"\x00", b""):
        assert_reverts(
            lambda: registry.grant(message, wrong),  # noqa: B023
            "ConsentInvalidSignatureLength",
            length=len(wrong),
        )


def test_signer_other_than_subject_refused(registry: Registry) -> None:
    citizen, stranger = registry.citizen(), registry.citizen()
    message = registry.grant_message(citizen.address)
    registry.refuse_grant(
        stranger,
        message,
        "ConsentUnauthorizedSigner",
        signer=stranger.address,
        subject=citizen.address,
    )


def _set_guardian(registry: Registry, ward: str, guardian: str, seconds: int = 86400) -> int:
    until = registry.chain.now() + seconds
    registry.chain.send(registry.contract.functions.setGuardian(ward, guardian, until))
    return until


def test_ward_cannot_sign_while_guardian_active_guardian_can(registry: Registry) -> None:
    ward, guardian, stranger = registry.citizen(), registry.citizen(), registry.citizen()
    _set_guardian(registry, ward.address, guardian.address)
    message = registry.grant_message(ward.address)

    registry.refuse_grant(
        ward,
        message,
        "ConsentWardSignatureRefused",
        subject=ward.address,
        guardian=guardian.address,
    )
    registry.refuse_grant(
        stranger,
        message,
        "ConsentUnauthorizedSigner",
        signer=stranger.address,
        subject=ward.address,
    )
    consent_id, _, receipt = registry.signed_grant(guardian, subject=ward.address)
    (event,) = registry.contract.events.ConsentGranted().process_receipt(receipt)
    assert (event["args"]["subject"], event["args"]["signer"]) == (ward.address, guardian.address)
    record = _consent(registry, consent_id)
    assert (record[0], record[7]) == (ward.address, guardian.address)
    assert registry.check(consent_id) == (True, OK)


def test_ward_signs_again_once_guardianship_ended(registry: Registry) -> None:
    ward, guardian = registry.citizen(), registry.citizen()
    _set_guardian(registry, ward.address, guardian.address)
    registry.chain.send(registry.contract.functions.endGuardianship(ward.address))

    consent_id, _, _ = registry.signed_grant(ward)
    assert registry.check(consent_id) == (True, OK)
    message = registry.grant_message(ward.address)
    registry.refuse_grant(
        guardian,
        message,
        "ConsentUnauthorizedSigner",
        signer=guardian.address,
    )


def test_ward_signs_again_after_guardianship_expires(registry: Registry) -> None:
    ward, guardian = registry.citizen(), registry.citizen()
    _set_guardian(registry, ward.address, guardian.address, seconds=100)
    registry.chain.advance(200)

    message = registry.grant_message(ward.address)
    registry.refuse_grant(
        guardian,
        message,
        "ConsentUnauthorizedSigner",
        signer=guardian.address,
    )
    consent_id, _, _ = registry.signed_grant(ward)
    assert registry.check(consent_id) == (True, OK)


def test_unregistered_purpose_refused(registry: Registry) -> None:
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address, purpose="marketing")
    registry.refuse_grant(
        citizen,
        message,
        "DepartmentPurposeNotRegistered",
        department=registry.department,
        purposeHash=h("marketing"),
    )


def test_unregistered_department_refused(registry: Registry) -> None:
    citizen = registry.citizen()
    unknown = Web3.to_checksum_address(h("unknown department")[:20])
    message = registry.grant_message(citizen.address, controller=unknown)
    registry.refuse_grant(
        citizen,
        message,
        "DepartmentNotRegistered",
        department=unknown,
    )


def test_suspended_department_denied_then_reinstated(registry: Registry) -> None:
    citizen = registry.citizen()
    consent_id, _, _ = registry.signed_grant(citizen)
    registry.chain.send(registry.contract.functions.suspendDepartment(registry.department))

    assert registry.check(consent_id) == (False, CONTROLLER_SUSPENDED)
    message = registry.grant_message(citizen.address)
    registry.refuse_grant(
        citizen,
        message,
        "DepartmentNotActive",
        department=registry.department,
    )
    registry.chain.send(registry.contract.functions.reinstateDepartment(registry.department))
    assert registry.check(consent_id) == (True, OK)


@pytest.mark.parametrize(
    ("sensitive", "third_parties"),
    [(True, []), (False, ["insurer-a"]), (True, ["insurer-a", "insurer-b"])],
)
def test_sensitive_or_third_party_needs_separate_consent(
    registry: Registry, sensitive: bool, third_parties: list[str]
) -> None:
    citizen = registry.citizen()
    terms: dict[str, Any] = {"sensitive": sensitive, "thirdParties": third_parties}
    message = registry.grant_message(citizen.address, separateConsent=False, **terms)
    registry.refuse_grant(
        citizen,
        message,
        "ConsentSeparateConsentRequired",
        sensitive=sensitive,
        thirdParty=bool(third_parties),
    )
    consent_id, _, _ = registry.signed_grant(citizen, separateConsent=True, **terms)
    record = _consent(registry, consent_id)
    assert (record[2], record[3]) == (sensitive, bool(third_parties))
    assert registry.check(consent_id) == (True, OK)


def test_category_outside_the_grant_denied(registry: Registry) -> None:
    consent_id, _, _ = registry.signed_grant(registry.citizen())
    assert registry.check(consent_id, categories=[CATEGORIES[2]]) == (False, CATEGORY_NOT_GRANTED)
    assert registry.check(consent_id, categories=list(CATEGORIES)) == (
        False,
        CATEGORY_NOT_GRANTED,
    )
    assert registry.check(consent_id, categories=[CATEGORIES[1], CATEGORIES[0]]) == (True, OK)


def test_wrong_controller_purpose_or_id_denied(registry: Registry) -> None:
    consent_id, _, _ = registry.signed_grant(registry.citizen())
    other = Web3.to_checksum_address(h("other department")[:20])
    assert registry.check(consent_id, controller=other) == (False, WRONG_CONTROLLER)
    assert registry.check(consent_id, purpose=PURPOSES[1]) == (False, WRONG_PURPOSE)
    assert registry.check(h("no such consent")) == (False, NOT_FOUND)


def test_check_after_valid_until_denied(registry: Registry) -> None:
    valid_until = registry.chain.now() + 100
    consent_id, _, _ = registry.signed_grant(registry.citizen(), validUntil=valid_until)
    assert registry.check(consent_id) == (True, OK)
    registry.chain.advance(200)
    assert registry.chain.now() > valid_until
    assert registry.check(consent_id) == (False, EXPIRED)


def test_check_before_valid_from_denied(registry: Registry) -> None:
    valid_from = registry.chain.now() + 1000
    consent_id, _, _ = registry.signed_grant(
        registry.citizen(), validFrom=valid_from, validUntil=valid_from + 86400
    )
    assert registry.check(consent_id) == (False, NOT_YET_VALID)
    registry.chain.advance(2000)
    assert registry.check(consent_id) == (True, OK)


def test_validity_window_is_inclusive(registry: Registry) -> None:
    """Views run at the latest block's timestamp: valid at validFrom and at validUntil."""
    edge = registry.chain.now() + 1000
    starts, _, _ = registry.signed_grant(registry.citizen(), validFrom=edge, validUntil=edge + 99)
    ends, _, _ = registry.signed_grant(registry.citizen(), validUntil=edge)

    registry.chain.mine_at(edge - 1)
    assert [registry.check(starts), registry.check(ends)] == [(False, NOT_YET_VALID), (True, OK)]
    registry.chain.mine_at(edge)
    assert [registry.check(starts), registry.check(ends)] == [(True, OK), (True, OK)]
    registry.chain.mine_at(edge + 1)
    assert [registry.check(starts), registry.check(ends)] == [(True, OK), (False, EXPIRED)]


def test_empty_validity_window_refused(registry: Registry) -> None:
    citizen = registry.citizen()
    now = registry.chain.now()
    message = registry.grant_message(citizen.address, validFrom=now, validUntil=now)
    registry.refuse_grant(
        citizen,
        message,
        "ConsentInvalidValidity",
        validFrom=now,
        validUntil=now,
    )


def test_grant_without_categories_refused(registry: Registry) -> None:
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address, piCategories=[])
    registry.refuse_grant(
        citizen,
        message,
        "ConsentNoCategories",
    )


def test_reused_nonce_refused(registry: Registry) -> None:
    citizen = registry.citizen()
    _, first, _ = registry.signed_grant(citizen)
    key = first["nonce"] >> 64
    assert registry.contract.functions.nonces(citizen.address, key).call() == first["nonce"] + 1

    message = registry.grant_message(citizen.address, nonce=first["nonce"], purpose=PURPOSES[1])
    registry.refuse_grant(
        citizen,
        message,
        "InvalidAccountNonce",
        account=citizen.address,
        currentNonce=first["nonce"] + 1,
    )
    registry.signed_grant(citizen, nonce=first["nonce"] + 1, purpose=PURPOSES[1])


def test_withdrawal_is_effective_at_once(registry: Registry) -> None:
    citizen = registry.citizen()
    consent_id, _, _ = registry.signed_grant(citizen)
    message = registry.withdrawal_message(consent_id, citizen.address)
    receipt = registry.withdraw(message, registry.sign(citizen, "Withdrawal", message))

    assert registry.check(consent_id) == (False, WITHDRAWN)
    record = _consent(registry, consent_id)
    block = registry.chain.w3.eth.get_block(receipt["blockNumber"])
    assert (record[4], record[9]) == (True, block["timestamp"])
    again = registry.withdrawal_message(consent_id, citizen.address)
    assert_reverts(
        lambda: registry.withdraw(again, registry.sign(citizen, "Withdrawal", again)),
        "ConsentAlreadyWithdrawn",
        consentId=consent_id,
    )


def test_withdrawal_rules(registry: Registry) -> None:
    citizen, stranger = registry.citizen(), registry.citizen()
    consent_id, _, _ = registry.signed_grant(citizen)

    def refused(message: dict, by: LocalAccount, name: str, **args: object) -> None:
        signature = registry.sign(by, "Withdrawal", message)
        assert_reverts(lambda: registry.withdraw(message, signature), name, **args)

    unknown = h("no such consent")
    refused(
        registry.withdrawal_message(unknown, citizen.address),
        citizen,
        "ConsentNotFound",
        consentId=unknown,
    )
    refused(
        registry.withdrawal_message(consent_id, stranger.address),
        stranger,
        "ConsentSubjectMismatch",
        subject=stranger.address,
    )
    refused(
        registry.withdrawal_message(consent_id, citizen.address),
        stranger,
        "ConsentUnauthorizedSigner",
        signer=stranger.address,
    )
    refused(
        registry.withdrawal_message(consent_id, citizen.address, deadline=0),
        citizen,
        "ConsentDeadlineZero",
    )
    past = registry.chain.now() - 1
    refused(
        registry.withdrawal_message(consent_id, citizen.address, deadline=past),
        citizen,
        "ConsentDeadlinePassed",
        deadline=past,
    )
    assert registry.check(consent_id) == (True, OK)


def test_guardian_withdraws_for_ward(registry: Registry) -> None:
    ward, guardian = registry.citizen(), registry.citizen()
    _set_guardian(registry, ward.address, guardian.address)
    consent_id, _, _ = registry.signed_grant(guardian, subject=ward.address)

    message = registry.withdrawal_message(consent_id, ward.address)
    assert_reverts(
        lambda: registry.withdraw(message, registry.sign(ward, "Withdrawal", message)),
        "ConsentWardSignatureRefused",
        subject=ward.address,
        guardian=guardian.address,
    )
    receipt = registry.withdraw(message, registry.sign(guardian, "Withdrawal", message))
    (event,) = registry.contract.events.ConsentWithdrawn().process_receipt(receipt)
    assert event["args"]["signer"] == guardian.address
    assert registry.check(consent_id) == (False, WITHDRAWN)


def test_grant_batch_stores_all(registry: Registry) -> None:
    citizens = [registry.citizen() for _ in range(3)]
    messages = [registry.grant_message(c.address) for c in citizens]
    signatures = [registry.sign(c, "Grant", m) for c, m in zip(citizens, messages, strict=True)]
    fn = registry.grant_batch(messages, signatures)
    ids = [bytes(i) for i in fn.call({"from": registry.chain.registrar})]
    receipt = registry.chain.send(fn)

    events = registry.contract.events.ConsentGranted().process_receipt(receipt)
    assert [bytes(e["args"]["consentId"]) for e in events] == ids
    assert ids == [registry.hash_grant(m) for m in messages]
    assert all(registry.check(i) == (True, OK) for i in ids)


def test_grant_batch_is_atomic(registry: Registry) -> None:
    citizens = [registry.citizen() for _ in range(3)]
    messages = [registry.grant_message(c.address) for c in citizens]
    messages[1]["deadline"] = 0
    signatures = [registry.sign(c, "Grant", m) for c, m in zip(citizens, messages, strict=True)]
    assert_reverts(
        lambda: registry.chain.send(registry.grant_batch(messages, signatures)),
        "ConsentDeadlineZero",
    )
    first = registry.hash_grant(messages[0])
    assert registry.check(first) == (False, NOT_FOUND)
    assert_reverts(
        lambda: registry.chain.send(registry.grant_batch(messages, signatures[:2])),
        "ConsentBatchLengthMismatch",
        items=3,
        signatures=2,
    )
    assert_reverts(
        lambda: registry.chain.send(registry.grant_batch([], [])),
        "ConsentBatchLengthMismatch",
        items=0,
    )


def test_withdraw_batch(registry: Registry) -> None:
    citizens = [registry.citizen() for _ in range(2)]
    ids = [registry.signed_grant(c)[0] for c in citizens]
    messages = [
        registry.withdrawal_message(i, c.address) for i, c in zip(ids, citizens, strict=True)
    ]
    signatures = [
        registry.sign(c, "Withdrawal", m) for c, m in zip(citizens, messages, strict=True)
    ]
    bad = [*messages[:1], registry.withdrawal_message(ids[1], citizens[1].address, deadline=0)]
    assert_reverts(
        lambda: registry.chain.send(registry.contract.functions.withdrawBatch(bad, signatures)),
        "ConsentDeadlineZero",
    )
    assert registry.check(ids[0]) == (True, OK)

    receipt = registry.chain.send(registry.contract.functions.withdrawBatch(messages, signatures))
    events = registry.contract.events.ConsentWithdrawn().process_receipt(receipt)
    assert [bytes(e["args"]["consentId"]) for e in events] == ids
    assert [registry.check(i) for i in ids] == [(False, WITHDRAWN)] * 2


def test_typehash_getters_equal_hash_of_type_strings(registry: Registry) -> None:
    functions = registry.contract.functions
    assert bytes(functions.grantTypehash().call()) == keccak(text=GRANT_TYPE)
    assert bytes(functions.withdrawalTypehash().call()) == keccak(text=WITHDRAWAL_TYPE)


@pytest.mark.parametrize(
    "terms",
    [
        {
            "purpose": "医保结算 · medical claims",
            "piCategories": ["身份证号", "diagnosis", ""],
            "thirdParties": ["insurer-a", "保险公司 B"],
        },
        {"purpose": "", "piCategories": [], "thirdParties": []},
        {"purpose": "ünïcødé 🙂", "piCategories": ["🙂"], "thirdParties": [""]},
    ],
    ids=["unicode", "empty", "empty-strings"],
)
def test_hashed_digest_equals_eth_account_string_digest(
    registry: Registry, terms: dict[str, Any]
) -> None:
    """hashGrant over the hashed struct = eth-account's digest of the string form (EIP-712)."""
    grant = registry.grant_message(registry.citizen().address, sensitive=True, **terms)
    assert registry.hash_grant(grant) == registry.digest("Grant", grant)


def test_withdrawal_digest_equals_eth_account(registry: Registry) -> None:
    withdrawal = registry.withdrawal_message(h("consent"), registry.citizen().address)
    assert bytes(registry.contract.functions.hashWithdrawal(withdrawal).call()) == registry.digest(
        "Withdrawal", withdrawal
    )


PII_PURPOSE = "医保结算 claims of Zhang San"
PII_CATEGORIES = ["身份证号 110101199003071234", "diagnosis of Zhang San"]
PII_THIRD_PARTIES = ["Zhang San", "110101199003071234", "李四 (guardian)"]


def test_grant_calldata_and_logs_carry_no_label(registry: Registry) -> None:
    """Issue 2, "No personal information on chain": only the labels' hashes are relayed."""
    registry.chain.send(
        registry.contract.functions.addPurposes(registry.department, [h(PII_PURPOSE)])
    )
    citizen = registry.citizen()
    message = registry.grant_message(
        citizen.address,
        purpose=PII_PURPOSE,
        piCategories=PII_CATEGORIES,
        thirdParties=PII_THIRD_PARTIES,
        separateConsent=True,
    )
    signature = registry.sign(citizen, "Grant", message)
    receipt = registry.grant(message, signature)
    calldata = bytes(registry.chain.w3.eth.get_transaction(receipt["transactionHash"])["input"])
    logged = b"".join(bytes(log["data"]) for log in receipt["logs"])

    labels = [PII_PURPOSE, *PII_CATEGORIES, *PII_THIRD_PARTIES]
    # words too, at >= 5 UTF-8 bytes so random hash bytes cannot match one by chance
    pieces = {word for label in labels for word in label.split(" ") if len(word.encode()) >= 5}
    for text in [*labels, *pieces]:
        assert text.encode() not in calldata, text
        assert text.encode() not in logged, text
    assert h(PII_PURPOSE) in calldata  # what travels instead
    assert keccak(b"".join(h(t) for t in PII_THIRD_PARTIES)) in calldata

    # the same check finds the labels in the string-form encoding the contract used to take
    string_type = "(" + ",".join(f["type"] for f in GRANT_FIELDS) + ")"
    string_form = encode([string_type], [tuple(message[f["name"]] for f in GRANT_FIELDS)])
    assert all(text.encode() in string_form for text in labels)


def test_hashed_fields_are_bound_by_the_signature(registry: Registry) -> None:
    """A relayer cannot hide the third parties (to skip separate consent) or swap a hash."""
    citizen = registry.citizen()
    message = registry.grant_message(
        citizen.address, thirdParties=["insurer-a"], separateConsent=True
    )
    signature = registry.sign(citizen, "Grant", message)
    for forged in (
        {"thirdPartiesHash": keccak(b"")},
        {"purposeHash": h(PURPOSES[1])},
        {"piCategoryHashes": [h(CATEGORIES[0])]},
    ):
        relayed = {**hashed_grant(message), **forged}
        error = assert_reverts(
            lambda: registry.chain.send(registry.contract.functions.grant(relayed, signature)),  # noqa: B023
            "ConsentUnauthorizedSigner",
            subject=citizen.address,
        )
        assert error.args["signer"] != citizen.address
    registry.grant(message, signature)


def test_one_empty_third_party_label_still_counts_as_a_third_party(registry: Registry) -> None:
    """[""] hashes to keccak256(keccak256("")), not keccak256(""): it is a listed recipient."""
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address, thirdParties=[""], separateConsent=False)
    registry.refuse_grant(
        citizen, message, "ConsentSeparateConsentRequired", sensitive=False, thirdParty=True
    )


def test_domain_is_bound_to_chain_and_contract(registry: Registry) -> None:
    fields, name, version, chain_id, contract, salt, extensions = (
        registry.contract.functions.eip712Domain().call()
    )
    assert (name, version) == ("consentgate", "1")
    assert chain_id == registry.chain.w3.eth.chain_id
    assert contract == registry.address
    assert (fields, salt, extensions) == (b"\x0f", b"\x00" * 32, [])


def test_events_carry_the_consent_fields(registry: Registry) -> None:
    citizen = registry.citizen()
    consent_id, message, receipt = registry.signed_grant(
        citizen, sensitive=True, thirdParties=["insurer-a"], separateConsent=True
    )
    (granted,) = registry.contract.events.ConsentGranted().process_receipt(receipt)
    assert granted["address"] == registry.address
    assert dict(granted["args"]) == {
        "consentId": consent_id,
        "subject": citizen.address,
        "controller": registry.department,
        "signer": citizen.address,
        "purposeHash": h(PURPOSES[0]),
        "piCategoryHashes": [h(c) for c in CATEGORIES[:2]],
        "sensitive": True,
        "thirdParty": True,
        "validFrom": message["validFrom"],
        "validUntil": message["validUntil"],
        "recordHash": message["recordHash"],
    }
    log = receipt["logs"][0]
    assert [bytes(t) for t in log["topics"][1:]] == [
        consent_id,
        bytes(12) + bytes.fromhex(citizen.address[2:]),
        bytes(12) + bytes.fromhex(registry.department[2:]),
    ]

    withdrawal = registry.withdrawal_message(consent_id, citizen.address)
    receipt = registry.withdraw(withdrawal, registry.sign(citizen, "Withdrawal", withdrawal))
    (withdrawn,) = registry.contract.events.ConsentWithdrawn().process_receipt(receipt)
    assert dict(withdrawn["args"]) == {
        "consentId": consent_id,
        "subject": citizen.address,
        "controller": registry.department,
        "signer": citizen.address,
    }


def test_reasons_follow_the_documented_order(registry: Registry) -> None:
    """checkConsent answers the first failing check: 1, 2, 3, 4, then 5, 6, 7, 8."""
    citizen = registry.citizen()
    other = Web3.to_checksum_address(h("other department")[:20])
    withdrawn, _, _ = registry.signed_grant(citizen)
    message = registry.withdrawal_message(withdrawn, citizen.address)
    registry.withdraw(message, registry.sign(citizen, "Withdrawal", message))
    expiring, _, _ = registry.signed_grant(citizen, validUntil=registry.chain.now() + 100)
    fine, _, _ = registry.signed_grant(citizen)
    registry.chain.advance(200)
    registry.chain.send(registry.contract.functions.suspendDepartment(registry.department))

    assert registry.check(withdrawn, controller=other) == (False, WITHDRAWN)
    assert registry.check(expiring, purpose=PURPOSES[1]) == (False, EXPIRED)
    assert registry.check(fine, controller=other, purpose=PURPOSES[1]) == (False, WRONG_CONTROLLER)
    assert registry.check(fine, purpose=PURPOSES[1], categories=["x"]) == (False, WRONG_PURPOSE)
    assert registry.check(fine, categories=["x"]) == (False, CATEGORY_NOT_GRANTED)
    assert registry.check(fine) == (False, CONTROLLER_SUSPENDED)
