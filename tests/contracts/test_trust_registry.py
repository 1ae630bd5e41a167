"""TrustRegistry: issuer keys and status-list digests, registrar only, on both backends."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from web3.contract import Contract

from contracts import load_artifact
from tests.contracts.contract_support import Chain, assert_reverts

KID = bytes.fromhex("0102030405060708")
PUB = bytes(range(32))
EDDSA = -8


@pytest.fixture
def trust(chain: Chain) -> Contract:
    artifact = load_artifact("TrustRegistry")
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = chain.send(factory.constructor(chain.registrar))
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def _events(contract: Contract, name: str, receipt: Any) -> list[dict[str, Any]]:
    return [dict(e["args"]) for e in contract.events[name]().process_receipt(receipt)]


def test_add_and_revoke_issuer_key(chain: Chain, trust: Contract) -> None:
    f = trust.functions
    receipt = chain.send(f.addIssuerKey(KID, PUB, EDDSA, 100, 200))
    assert _events(trust, "IssuerKeyAdded", receipt) == [
        {"kid": KID, "alg": EDDSA, "publicKey": PUB, "validFrom": 100, "validUntil": 200}
    ]
    assert tuple(f.issuerKey(KID).call()) == (PUB, EDDSA, 100, 200, False, 0)
    assert f.issuerKeyIds().call() == [KID]

    receipt = chain.send(f.revokeIssuerKey(KID))
    at = chain.now()
    assert _events(trust, "IssuerKeyRevoked", receipt) == [{"kid": KID, "revokedAt": at}]
    assert tuple(f.issuerKey(KID).call()) == (PUB, EDDSA, 100, 200, True, at)
    assert_reverts(lambda: chain.send(f.revokeIssuerKey(KID)), "TrustKeyAlreadyRevoked", kid=KID)
    assert_reverts(
        lambda: chain.send(f.addIssuerKey(KID, PUB, EDDSA, 1, 2)), "TrustKeyExists", kid=KID
    )


def test_issuer_key_refusals(chain: Chain, trust: Contract) -> None:
    f = trust.functions
    zero = bytes(8)
    assert_reverts(
        lambda: chain.send(f.addIssuerKey(zero, PUB, EDDSA, 1, 2)), "TrustKeyInvalid", kid=zero
    )
    assert_reverts(
        lambda: chain.send(f.addIssuerKey(KID, b"", EDDSA, 1, 2)), "TrustKeyInvalid", kid=KID
    )
    assert_reverts(
        lambda: chain.send(f.addIssuerKey(KID, PUB, EDDSA, 5, 5)),
        "TrustInvalidValidity",
        validFrom=5,
        validUntil=5,
    )
    assert_reverts(lambda: f.issuerKey(KID).call(), "TrustKeyUnknown", kid=KID)
    assert_reverts(lambda: chain.send(f.revokeIssuerKey(KID)), "TrustKeyUnknown", kid=KID)
    assert f.issuerKeyIds().call() == []


def test_only_registrar(chain: Chain, trust: Contract) -> None:
    f = trust.functions
    for fn in (
        f.addIssuerKey(KID, PUB, EDDSA, 1, 2),
        f.revokeIssuerKey(KID),
        f.anchorStatusList(1, b"\x01" * 32, 8),
    ):
        assert_reverts(
            lambda fn=fn: chain.send(fn, sender=chain.outsider),
            "AccessControlUnauthorizedAccount",
            account=chain.outsider,
        )


def test_status_list_epochs_in_order(chain: Chain, trust: Contract) -> None:
    f = trust.functions
    first = hashlib.sha256(b"epoch one").digest()
    second = hashlib.sha256(b"epoch two").digest()
    assert f.latestEpoch().call() == 0
    assert_reverts(
        lambda: chain.send(f.anchorStatusList(2, first, 8)),
        "TrustEpochOutOfOrder",
        expected=1,
        given=2,
    )
    assert_reverts(
        lambda: chain.send(f.anchorStatusList(1, bytes(32), 8)), "TrustZeroDigest", epoch=1
    )
    receipt = chain.send(f.anchorStatusList(1, first, 131072))
    at = chain.now()
    assert _events(trust, "StatusListAnchored", receipt) == [
        {"epoch": 1, "digest": first, "sizeBits": 131072}
    ]
    chain.send(f.anchorStatusList(2, second, 262144))
    assert f.latestEpoch().call() == 2
    assert f.statusListDigest(1).call() == [first, 131072, at]
    assert f.statusListDigest(2).call()[:2] == [second, 262144]
    assert f.statusListDigest(3).call() == [bytes(32), 0, 0]
    assert_reverts(
        lambda: chain.send(f.anchorStatusList(2, first, 8)),
        "TrustEpochOutOfOrder",
        expected=3,
        given=2,
    )


def test_supports_interface(trust: Contract) -> None:
    selectors = [
        "addIssuerKey(bytes8,bytes,int32,uint64,uint64)",
        "revokeIssuerKey(bytes8)",
        "anchorStatusList(uint64,bytes32,uint64)",
        "issuerKey(bytes8)",
        "issuerKeyIds()",
        "latestEpoch()",
        "statusListDigest(uint64)",
    ]
    from eth_utils import keccak

    interface_id = 0
    for sig in selectors:
        interface_id ^= int.from_bytes(keccak(text=sig)[:4], "big")
    assert trust.functions.supportsInterface(interface_id.to_bytes(4, "big")).call() is True
    assert trust.functions.supportsInterface(bytes.fromhex("01ffc9a7")).call() is True
    assert trust.functions.supportsInterface(bytes.fromhex("deadbeef")).call() is False
