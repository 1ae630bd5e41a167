"""ConsentLedger: grant, withdraw, check; every signature and terms rule (issue 2, "Rules")."""

from __future__ import annotations

from contract_support import (
    CATEGORIES,
    OK,
    PURPOSES,
    Registry,
    h,
)


def test_grant_is_stored_and_checks_ok(registry: Registry) -> None:
    citizen = registry.citizen()
    message = registry.grant_message(citizen.address)
    expected_id = registry.contract.functions.hashGrant(message).call()
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
