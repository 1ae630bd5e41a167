"""Public vectors: RFC 9285 base45 and the RFC 8392 A.3 signed CWT, on both implementations."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fastpath.tokens.base45 import Base45Error, b45decode, b45encode
from fastpath.tokens.trust import TrustList, key_from_public
from tests.paths import TESTDATA

VECTORS = json.loads((TESTDATA / "vectors.json").read_text())
B45 = VECTORS["base45_rfc9285"]
A3 = VECTORS["cwt_rfc8392_A3"]
A3_COSE = bytes.fromhex(A3["cose_sign1_hex"])


@pytest.mark.parametrize(("plain", "encoded"), B45["encode"])
def test_base45_encode_decode(plain: str, encoded: str) -> None:
    assert b45encode(plain.encode()) == encoded
    assert b45decode(encoded) == plain.encode()


@pytest.mark.parametrize(("text", "why"), B45["decode_must_fail"])
def test_base45_must_fail(text: str, why: str) -> None:
    with pytest.raises(Base45Error):
        b45decode(text)


@pytest.mark.parametrize(("text", "why"), B45["decode_must_fail"])
def test_base45_must_fail_in_pipeline(impl: Any, text: str, why: str) -> None:
    result = impl.Verifier(TrustList(), profile="dcc").verify("HC1:" + text)
    assert (result.valid, result.stage) == (False, "base45"), why
    expected = {"GGW": "base45_overflow", "FG": "base45_overflow", "A": "base45_length"}
    assert result.reason == expected.get(text, "base45_char")


def test_base45_edge_ok() -> None:
    assert b45decode("FGW") == b"\xff\xff"


def _a3_trust() -> TrustList:
    pub = ec.EllipticCurvePublicNumbers(
        int(A3["p256_public_key"]["x"], 16), int(A3["p256_public_key"]["y"], 16), ec.SECP256R1()
    ).public_key()
    return TrustList([key_from_public(b"AsymmetricECDSA256", pub)])


@pytest.mark.parametrize("at", [1443944944, 1444000000, 1444064944])
def test_rfc8392_a3_verifies_inside_window(impl: Any, at: int) -> None:
    result = impl.Verifier(_a3_trust(), profile="cwt").verify(
        bytes.fromhex(A3["cose_sign1_hex"]), at
    )
    assert (result.valid, result.stage, result.reason) == (True, "ok", "ok")
    assert result.kid == b"AsymmetricECDSA256".hex()
    claims = A3["claims"]
    assert result.claims == {
        "1": claims["iss"],
        "2": claims["sub"],
        "3": claims["aud"],
        "4": claims["exp"],
        "5": claims["nbf"],
        "6": claims["iat"],
        "7": claims["cti"],
    }


@pytest.mark.parametrize(
    ("at", "reason"),
    [(1443944943, "iat_in_future"), (1444064945, "expired"), (1_800_000_000, "expired")],
)
def test_rfc8392_a3_time_rejected_outside(impl: Any, at: int, reason: str) -> None:
    result = impl.Verifier(_a3_trust(), profile="cwt").verify(
        bytes.fromhex(A3["cose_sign1_hex"]), at
    )
    assert (result.valid, result.stage, result.reason) == (False, "time", reason)


def test_rfc8392_a3_wrong_key_is_signature_rejection(impl: Any) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    trust = TrustList([key_from_public(b"AsymmetricECDSA256", other)])
    result = impl.Verifier(trust, profile="cwt").verify(A3_COSE)
    assert (result.stage, result.reason) == ("signature", "signature_invalid")
