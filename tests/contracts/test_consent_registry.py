"""ConsentRegistry: deployment, roles and ERC-165."""

from __future__ import annotations

from eth_utils import function_signature_to_4byte_selector

from contracts import load_artifact
from tests.contracts.contract_support import Chain, Registry, assert_reverts, h

ZERO = "0x" + "00" * 20


def test_constructor_grants_registrar_roles(registry: Registry) -> None:
    functions, registrar = registry.contract.functions, registry.chain.registrar
    role = bytes(functions.REGISTRAR_ROLE().call())
    assert role == h("REGISTRAR_ROLE")
    assert functions.hasRole(role, registrar).call() is True
    assert functions.hasRole(bytes(32), registrar).call() is True
    assert functions.hasRole(role, registry.chain.outsider).call() is False


def test_zero_registrar_refused(chain: Chain) -> None:
    artifact = load_artifact("ConsentRegistry")
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    assert_reverts(lambda: chain.send(factory.constructor(ZERO)), "ConsentRegistryZeroRegistrar")


def test_admin_can_add_a_registrar(registry: Registry) -> None:
    functions, outsider = registry.contract.functions, registry.chain.outsider
    registry.chain.send(functions.grantRole(h("REGISTRAR_ROLE"), outsider))
    registry.chain.send(functions.suspendDepartment(registry.department), outsider)
    assert functions.isDepartmentActive(registry.department).call() is False


INTERFACES = {
    "IConsentLedger": (
        "grant grantBatch withdraw withdrawBatch checkConsent isConsentValid getConsent"
        " hashGrant hashWithdrawal grantTypehash withdrawalTypehash"
    ),
    "IDepartmentRegistry": (
        "registerDepartment addPurposes suspendDepartment reinstateDepartment"
        " isDepartmentActive departmentStatus isPurposeRegistered"
    ),
    "IGuardianRegistry": "setGuardian endGuardianship guardianOf",
}


def _interface_id(names: str) -> bytes:
    """ERC-165 id: XOR of the selectors of the functions the interface declares."""
    wanted = set(names.split())
    interface_id = 0
    for entry in load_artifact("ConsentRegistry").abi:
        if entry["type"] == "function" and entry["name"] in wanted:
            signature = f"{entry['name']}({','.join(_canonical(i) for i in entry['inputs'])})"
            interface_id ^= int.from_bytes(function_signature_to_4byte_selector(signature), "big")
            wanted.discard(entry["name"])
    assert not wanted
    return interface_id.to_bytes(4, "big")


def _canonical(param: dict) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_canonical(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


def test_supports_interfaces(registry: Registry) -> None:
    supports = registry.contract.functions.supportsInterface
    assert [supports(_interface_id(names)).call() for names in INTERFACES.values()] == [True] * 3
    assert supports(bytes.fromhex("01ffc9a7")).call() is True  # ERC-165
    assert supports(bytes.fromhex("7965db0b")).call() is True  # IAccessControl
    assert supports(bytes.fromhex("ffffffff")).call() is False
    assert supports(bytes(4)).call() is False
