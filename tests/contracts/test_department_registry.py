"""DepartmentRegistry: registrar-only management of departments and their purposes."""

from __future__ import annotations

from typing import Any

import pytest
from web3 import Web3

from tests.contracts.contract_support import PURPOSES, Registry, assert_reverts, h

NEW = Web3.to_checksum_address(h("new department")[:20])


def _events(registry: Registry, name: str, receipt: Any) -> list[dict[str, Any]]:
    return [dict(e["args"]) for e in registry.contract.events[name]().process_receipt(receipt)]


def test_register_department(registry: Registry) -> None:
    functions = registry.contract.functions
    hashes = [h("housing-fund"), h("pension")]
    receipt = registry.chain.send(functions.registerDepartment(NEW, hashes))

    assert _events(registry, "DepartmentRegistered", receipt) == [
        {"department": NEW, "purposeHashes": hashes}
    ]
    assert functions.isDepartmentActive(NEW).call() is True
    assert functions.departmentStatus(NEW).call() == [True, False]
    assert [functions.isPurposeRegistered(NEW, p).call() for p in hashes] == [True, True]
    assert functions.isPurposeRegistered(NEW, h(PURPOSES[0])).call() is False
    assert functions.isPurposeRegistered(registry.department, h(PURPOSES[0])).call() is True


def test_register_department_refusals(registry: Registry) -> None:
    functions, send = registry.contract.functions, registry.chain.send
    zero = "0x" + "00" * 20
    assert_reverts(
        lambda: send(functions.registerDepartment(zero, [h("x")])), "DepartmentZeroAddress"
    )
    assert_reverts(
        lambda: send(functions.registerDepartment(registry.department, [h("x")])),
        "DepartmentAlreadyRegistered",
        department=registry.department,
    )
    assert_reverts(
        lambda: send(functions.registerDepartment(NEW, [])), "DepartmentNoPurposes", department=NEW
    )
    assert_reverts(
        lambda: send(functions.registerDepartment(NEW, [h("x"), h("x")])),
        "DepartmentPurposeAlreadyRegistered",
        department=NEW,
        purposeHash=h("x"),
    )
    assert functions.departmentStatus(NEW).call() == [False, False]


def test_add_purposes(registry: Registry) -> None:
    functions, send = registry.contract.functions, registry.chain.send
    receipt = send(functions.addPurposes(registry.department, [h("audit")]))
    assert _events(registry, "PurposesAdded", receipt) == [
        {"department": registry.department, "purposeHashes": [h("audit")]}
    ]
    assert functions.isPurposeRegistered(registry.department, h("audit")).call() is True
    assert_reverts(
        lambda: send(functions.addPurposes(registry.department, [h(PURPOSES[1])])),
        "DepartmentPurposeAlreadyRegistered",
        purposeHash=h(PURPOSES[1]),
    )
    assert_reverts(
        lambda: send(functions.addPurposes(NEW, [h("audit")])),
        "DepartmentNotRegistered",
        department=NEW,
    )
    assert_reverts(
        lambda: send(functions.addPurposes(registry.department, [])), "DepartmentNoPurposes"
    )


def test_suspend_and_reinstate(registry: Registry) -> None:
    functions, send, department = (
        registry.contract.functions,
        registry.chain.send,
        registry.department,
    )
    receipt = send(functions.suspendDepartment(department))
    assert _events(registry, "DepartmentSuspended", receipt) == [{"department": department}]
    assert functions.isDepartmentActive(department).call() is False
    assert functions.departmentStatus(department).call() == [True, True]
    assert_reverts(
        lambda: send(functions.suspendDepartment(department)),
        "DepartmentAlreadySuspended",
        department=department,
    )

    receipt = send(functions.reinstateDepartment(department))
    assert _events(registry, "DepartmentReinstated", receipt) == [{"department": department}]
    assert functions.isDepartmentActive(department).call() is True
    assert_reverts(
        lambda: send(functions.reinstateDepartment(department)),
        "DepartmentNotSuspended",
        department=department,
    )
    for name in ("suspendDepartment", "reinstateDepartment"):
        call = functions[name](NEW)
        assert_reverts(lambda: send(call), "DepartmentNotRegistered", department=NEW)  # noqa: B023


@pytest.mark.parametrize(
    ("function", "args"),
    [
        ("registerDepartment", (NEW, [h("x")])),
        ("addPurposes", (NEW, [h("x")])),
        ("suspendDepartment", (NEW,)),
        ("reinstateDepartment", (NEW,)),
        ("setGuardian", (NEW, NEW, 2**63)),
        ("endGuardianship", (NEW,)),
    ],
)
def test_registrar_only(registry: Registry, function: str, args: tuple[Any, ...]) -> None:
    outsider = registry.chain.outsider
    assert_reverts(
        lambda: registry.chain.send(registry.contract.functions[function](*args), outsider),
        "AccessControlUnauthorizedAccount",
        account=outsider,
        neededRole=h("REGISTRAR_ROLE"),
    )
