"""The committed artifacts: fresh against the sources, and the loader that reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from chain_node.errors import ErrorRegistry, decode_revert
from contracts import (
    ArtifactNotFoundError,
    ContractsError,
    artifact_names,
    error_abis,
    load_artifact,
)
from contracts.artifacts import ARTIFACTS_DIR
from contracts.build import SETTINGS, build, source_hash


def test_committed_artifacts_are_fresh(tmp_path: Path) -> None:
    """Rebuilding the sources gives byte-identical files; if not, run `make contracts`."""
    written = build(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in ARTIFACTS_DIR.glob("*.json"))
    for path in written:
        committed = ARTIFACTS_DIR / path.name
        assert path.read_bytes() == committed.read_bytes(), f"{committed} is stale"


def test_artifact_fields() -> None:
    artifact = load_artifact("ConsentRegistry")
    assert artifact_names() == ["ConsentAnchor", "ConsentRegistry", "TrustRegistry"]
    assert artifact.name == "ConsentRegistry"
    assert artifact.compiler_version.startswith("0.8.30+commit.")
    assert artifact.source_hash == source_hash()
    assert SETTINGS["evmVersion"] == "cancun"
    # CBOR metadata at the end of the runtime code names the compiler: solc 0.8.30
    assert artifact.deployed_bytecode.endswith(b"dsolcC\x00\x08\x1e\x00\x33")
    constructor = [e for e in artifact.abi if e["type"] == "constructor"]
    assert constructor[0]["inputs"] == [
        {"internalType": "address", "name": "registrar", "type": "address"}
    ]
    assert len(artifact.deployed_bytecode) <= 24_576  # EIP-170 runtime size limit
    assert load_artifact("ConsentRegistry") is artifact


@pytest.mark.parametrize("name", ["Nope", "../ConsentRegistry", ""])
def test_unknown_artifact(name: str) -> None:
    with pytest.raises(ArtifactNotFoundError) as info:
        load_artifact(name)
    assert isinstance(info.value, ContractsError)
    assert isinstance(info.value, LookupError)
    assert info.value.code == "artifact_not_found"


def test_error_abis_cover_the_custom_errors() -> None:
    names = {entry["name"] for entry in error_abis()}
    assert {
        "ConsentAlreadyExists",
        "ConsentDeadlineZero",
        "ConsentDeadlinePassed",
        "ConsentInvalidSignatureLength",
        "ConsentInvalidSignatureV",
        "ConsentInvalidSignatureS",
        "ConsentUnauthorizedSigner",
        "ConsentWardSignatureRefused",
        "DepartmentPurposeNotRegistered",
        "GuardianNotSet",
        "InvalidAccountNonce",
        "AccessControlUnauthorizedAccount",
    } <= names
    assert all(entry["type"] == "error" for entry in error_abis())
    error_abis()[0]["name"] = "changed"
    assert error_abis()[0]["name"] != "changed"


def test_error_abis_decode_through_the_chain_layer() -> None:
    errors = ErrorRegistry(error_abis())
    assert len(errors) == len(error_abis())  # no two errors share a selector
    selector = function_signature_to_4byte_selector("ConsentDeadlinePassed(uint256,uint256)")
    payload = selector + encode(["uint256", "uint256"], [5, 9])
    assert decode_revert(payload, errors) == (
        "ConsentDeadlinePassed",
        (5, 9),
        "0x" + selector.hex(),
    )
