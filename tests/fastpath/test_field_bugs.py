"""Bugs that token verifiers in the field actually had, each on both implementations."""

from __future__ import annotations

import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from fastpath.tokens import codes
from fastpath.tokens.issue import HC1Signer
from fastpath.tokens.trust import TrustList, key_from_public, parse_time

from .helpers import T0, hc1_claims, hc1_token


@pytest.fixture(scope="module")
def signer() -> HC1Signer:
    return HC1Signer.generate("ES256")


@pytest.fixture(scope="module")
def other() -> HC1Signer:
    return HC1Signer.generate("ES256")


def _verify(impl: Any, trust: TrustList, qr: str, at: float | None = None, skew: float = 0) -> Any:
    return impl.Verifier(trust, profile="dcc", skew=skew).verify(qr, at)


def _outcome(result: Any) -> tuple[bool, str, str]:
    return result.valid, result.stage, result.reason


def test_triplet_above_65535_is_not_bytes(impl: Any, signer: HC1Signer) -> None:
    result = _verify(impl, TrustList([signer.trust_key()]), "HC1:GGW")
    assert _outcome(result) == (False, "base45", "base45_overflow")


def test_valid_payload_without_prefix_is_rejected(impl: Any, signer: HC1Signer) -> None:
    qr = hc1_token(signer)
    trust = TrustList([signer.trust_key()])
    assert _outcome(_verify(impl, trust, qr)) == (True, "ok", "ok")
    assert _outcome(_verify(impl, trust, qr[4:])) == (False, "prefix", "prefix_mismatch")
    assert _outcome(_verify(impl, trust, "hc1:" + qr[4:])) == (False, "prefix", "prefix_mismatch")


@pytest.mark.parametrize("tail", ["hello", "6BF OX N*", "ÄÖÜ", " ", "6BFOXN*TS\n"])
def test_prefix_then_non_base45_is_rejected(impl: Any, signer: HC1Signer, tail: str) -> None:
    result = _verify(impl, TrustList([signer.trust_key()]), "HC1:" + tail)
    assert result.valid is False
    assert result.stage == "base45"


def test_kid_only_in_unprotected_header_is_accepted(impl: Any, signer: HC1Signer) -> None:
    qr = hc1_token(signer, protected={1: codes.ALG_ES256}, unprotected={4: signer.kid})
    result = _verify(impl, TrustList([signer.trust_key()]), qr)
    assert _outcome(result) == (True, "ok", "ok")
    assert result.kid == signer.kid.hex()


def test_kid_in_both_headers_protected_wins(impl: Any, signer: HC1Signer, other: HC1Signer) -> None:
    trust = TrustList([signer.trust_key(), other.trust_key()])
    right = hc1_token(
        signer, protected={1: codes.ALG_ES256, 4: signer.kid}, unprotected={4: other.kid}
    )
    result = _verify(impl, trust, right)
    assert (_outcome(result), result.kid) == ((True, "ok", "ok"), signer.kid.hex())
    # protected names the other key: its signature check fails, the unprotected kid is ignored
    wrong = hc1_token(
        signer, protected={1: codes.ALG_ES256, 4: other.kid}, unprotected={4: signer.kid}
    )
    result = _verify(impl, trust, wrong)
    assert (_outcome(result), result.kid) == (
        (False, "signature", "signature_invalid"),
        other.kid.hex(),
    )
    unknown = hc1_token(
        signer, protected={1: codes.ALG_ES256, 4: b"nope0000"}, unprotected={4: signer.kid}
    )
    assert _outcome(_verify(impl, trust, unknown)) == (False, "kid", "kid_unknown")


def test_two_keys_share_a_kid_only_second_verifies(
    impl: Any, signer: HC1Signer, other: HC1Signer
) -> None:
    decoy = key_from_public(signer.kid, other.private.public_key())
    trust = TrustList([decoy, signer.trust_key()])
    result = _verify(impl, trust, hc1_token(signer))
    assert _outcome(result) == (True, "ok", "ok")
    only_decoy = TrustList([decoy])
    assert _outcome(_verify(impl, only_decoy, hc1_token(signer))) == (
        False,
        "signature",
        "signature_invalid",
    )


def test_ecdsa_der_signature_is_rejected(impl: Any, signer: HC1Signer) -> None:
    def der_sign(message: bytes) -> bytes:
        return signer.private.sign(message, ec.ECDSA(hashes.SHA256()))  # type: ignore[no-any-return]

    result = _verify(impl, TrustList([signer.trust_key()]), hc1_token(signer, sign=der_sign))
    assert _outcome(result) == (False, "signature", "signature_encoding")


def test_es256_header_with_p384_key_is_rejected(impl: Any, signer: HC1Signer) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    trust = TrustList([key_from_public(signer.kid, p384.public_key())])
    result = _verify(impl, trust, hc1_token(signer))
    assert _outcome(result) == (False, "signature", "alg_key_mismatch")


@pytest.mark.parametrize("at", [T0 - 100, T0, T0 + 3600])
def test_clock_exactly_at_iat_and_exp_is_inclusive(impl: Any, signer: HC1Signer, at: int) -> None:
    qr = hc1_token(signer, claims=hc1_claims(iat=T0 - 100, exp=T0 + 3600))
    assert _outcome(_verify(impl, TrustList([signer.trust_key()]), qr, at)) == (True, "ok", "ok")


@pytest.mark.parametrize(("at", "reason"), [(T0 - 101, "iat_in_future"), (T0 + 3601, "expired")])
def test_one_second_outside_is_rejected(impl: Any, signer: HC1Signer, at: int, reason: str) -> None:
    qr = hc1_token(signer, claims=hc1_claims(iat=T0 - 100, exp=T0 + 3600))
    assert _outcome(_verify(impl, TrustList([signer.trust_key()]), qr, at)) == (
        False,
        "time",
        reason,
    )


@pytest.mark.parametrize(("ahead", "ok"), [(29, True), (30, True), (31, False), (300, False)])
def test_iat_ahead_of_clock_within_and_beyond_skew(
    impl: Any, signer: HC1Signer, ahead: int, ok: bool
) -> None:
    qr = hc1_token(signer, claims=hc1_claims(iat=T0 + ahead, exp=T0 + 3600))
    result = _verify(impl, TrustList([signer.trust_key()]), qr, T0, skew=30)
    assert _outcome(result) == ((True, "ok", "ok") if ok else (False, "time", "iat_in_future"))


def test_float_numeric_dates(impl: Any, signer: HC1Signer) -> None:
    qr = hc1_token(signer, claims=hc1_claims(iat=T0 - 0.5, exp=T0 + 0.25))
    trust = TrustList([signer.trust_key()])
    assert _outcome(_verify(impl, trust, qr, T0 + 0.25)) == (True, "ok", "ok")
    assert _outcome(_verify(impl, trust, qr, T0 + 0.5)) == (False, "time", "expired")


def test_device_clock_in_another_time_zone(impl: Any, signer: HC1Signer) -> None:
    """All times are UTC instants: +08:00 wall time names the same instant as Z."""
    utc = parse_time("2027-01-15T08:00:00Z")
    assert utc == T0
    for spelled in ("2027-01-15T16:00:00+08:00", "2027-01-15T03:00:00-0500", "2027-01-15T08:00:00"):
        assert parse_time(spelled) == utc
    qr = hc1_token(signer, claims=hc1_claims(iat=T0, exp=T0 + 60))
    trust = TrustList([signer.trust_key()])
    at = parse_time("2027-01-15T16:00:30+08:00")
    assert _outcome(_verify(impl, trust, qr, at)) == (True, "ok", "ok")
    # read as local wall time without its offset, it would be 8 hours late
    assert _outcome(_verify(impl, trust, qr, parse_time("2027-01-15T16:00:30Z"))) == (
        False,
        "time",
        "expired",
    )


def test_signer_key_validity_window(impl: Any) -> None:
    from datetime import UTC, datetime

    short = HC1Signer.generate(
        "ES256",
        not_before=datetime(2026, 1, 1, tzinfo=UTC),
        not_after=datetime(2027, 1, 15, 8, 30, tzinfo=UTC),
    )
    trust = TrustList([short.trust_key()])
    inside = hc1_token(short, claims=hc1_claims(iat=T0, exp=T0 + 1800))
    assert _outcome(_verify(impl, trust, inside, T0)) == (True, "ok", "ok")
    beyond = hc1_token(short, claims=hc1_claims(iat=T0, exp=T0 + 1801))
    assert _outcome(_verify(impl, trust, beyond, T0)) == (False, "time", "key_expired")
    before = hc1_token(short, claims=hc1_claims(iat=1_700_000_000, exp=T0 + 60))
    assert _outcome(_verify(impl, trust, before, T0)) == (False, "time", "key_not_yet_valid")


def test_ps256_round_trip(impl: Any) -> None:
    rsa_signer = HC1Signer.generate("PS256")
    trust = TrustList([rsa_signer.trust_key()])
    assert _outcome(_verify(impl, trust, hc1_token(rsa_signer), T0)) == (True, "ok", "ok")
    bad = hc1_token(rsa_signer, sign=lambda m: bytes(256))
    assert _outcome(_verify(impl, trust, bad)) == (False, "signature", "signature_invalid")
    short = hc1_token(rsa_signer, sign=lambda m: bytes(64))
    assert _outcome(_verify(impl, trust, short)) == (False, "signature", "signature_encoding")


@pytest.mark.parametrize("tag", ["18", "61", ""])
def test_cose_tag_forms(impl: Any, signer: HC1Signer, tag: str) -> None:
    result = _verify(impl, TrustList([signer.trust_key()]), hc1_token(signer, tag=tag))
    assert _outcome(result) == (True, "ok", "ok")


def test_openssl_pointer_path_and_fallback_agree(signer: HC1Signer) -> None:
    """The compiled module verifies ES256/PS256 through libcrypto pointers (GIL released)
    or, with CONSENTGATE_NO_OPENSSL_POINTERS=1, through ``cryptography``: same results."""
    import base64
    import json
    import subprocess
    import sys

    rsa_signer = HC1Signer.generate("PS256")
    cases = [
        (signer, hc1_token(signer)),
        (signer, hc1_token(signer, sign=lambda m: bytes(64))),
        (rsa_signer, hc1_token(rsa_signer)),
        (rsa_signer, hc1_token(rsa_signer, sign=lambda m: bytes(256))),
    ]
    script = (
        "import base64, json, sys\n"
        "from fastpath import _tokens\n"
        "from fastpath.tokens.trust import TrustList, key_from_certificate\n"
        "out = []\n"
        "for cert, qr in json.loads(sys.stdin.read()):\n"
        "    trust = TrustList([key_from_certificate(base64.b64decode(cert))])\n"
        "    r = _tokens.Verifier(trust, profile='dcc').verify(qr)\n"
        "    out.append([r.valid, r.stage, r.reason])\n"
        "print(json.dumps([_tokens.OPENSSL_WITHOUT_GIL, out]))\n"
    )
    payload = json.dumps([[base64.b64encode(s.cert_der).decode(), qr] for s, qr in cases])
    runs = []
    for env_value in ("", "1"):
        env = {**os.environ, "CONSENTGATE_NO_OPENSSL_POINTERS": env_value}
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=payload,
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        runs.append(json.loads(done.stdout))
    assert runs[1][0] is False
    expected = [
        [True, "ok", "ok"],
        [False, "signature", "signature_invalid"],
        [True, "ok", "ok"],
        [False, "signature", "signature_invalid"],
    ]
    assert runs[0][1] == runs[1][1] == expected
