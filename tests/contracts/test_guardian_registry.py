"""GuardianRegistry: the registrar's guardian -> ward records with an end date."""

from __future__ import annotations

from tests.contracts.contract_support import Registry, assert_reverts

ZERO = "0x" + "00" * 20


def test_set_and_end_guardianship(registry: Registry) -> None:
    ward, guardian, successor = (registry.citizen().address for _ in range(3))
    functions, send = registry.contract.functions, registry.chain.send
    assert functions.guardianOf(ward).call() == [ZERO, 0]

    until = registry.chain.now() + 86400
    receipt = send(functions.setGuardian(ward, guardian, until))
    (event,) = registry.contract.events.GuardianSet().process_receipt(receipt)
    assert dict(event["args"]) == {"ward": ward, "guardian": guardian, "until": until}
    assert functions.guardianOf(ward).call() == [guardian, until]

    send(functions.setGuardian(ward, successor, until + 1))  # replaces the earlier record
    assert functions.guardianOf(ward).call() == [successor, until + 1]

    receipt = send(functions.endGuardianship(ward))
    (event,) = registry.contract.events.GuardianshipEnded().process_receipt(receipt)
    assert dict(event["args"]) == {"ward": ward, "guardian": successor}
    assert functions.guardianOf(ward).call() == [ZERO, 0]


def test_guardianship_refusals(registry: Registry) -> None:
    ward, guardian = registry.citizen().address, registry.citizen().address
    functions, send = registry.contract.functions, registry.chain.send
    later = registry.chain.now() + 86400
    assert_reverts(
        lambda: send(functions.setGuardian(ZERO, guardian, later)), "GuardianZeroAddress"
    )
    assert_reverts(lambda: send(functions.setGuardian(ward, ZERO, later)), "GuardianZeroAddress")
    assert_reverts(
        lambda: send(functions.setGuardian(ward, ward, later)), "GuardianIsWard", ward=ward
    )
    past = registry.chain.now() - 1
    error = assert_reverts(
        lambda: send(functions.setGuardian(ward, guardian, past)),
        "GuardianUntilInPast",
        until=past,
    )
    assert error.args["timestamp"] > past
    assert_reverts(lambda: send(functions.endGuardianship(ward)), "GuardianNotSet", ward=ward)
    assert functions.guardianOf(ward).call() == [ZERO, 0]
