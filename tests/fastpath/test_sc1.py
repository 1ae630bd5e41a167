"""SC1 card codes: issuance, QR round trip, revocation, replay, caches, on both implementations."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from fastpath.errors import StatusListError
from fastpath.tokens import codes
from fastpath.tokens.base45 import b45encode
from fastpath.tokens.issue import DeviceKey, IssuerKey, issue_device_cert, sign1
from fastpath.tokens.qr import qr_png, read_qr_texts
from fastpath.tokens.status import StatusList
from fastpath.tokens.trust import TrustList

from .helpers import T0, Card


@pytest.fixture(scope="module")
def card() -> Card:
    return Card()


def _trust(card: Card, **window: float) -> TrustList:
    return TrustList([card.issuer.trust_key(**window)])


def _outcome(result: Any) -> tuple[bool, str, str]:
    return result.valid, result.stage, result.reason


def test_issue_render_scan_verify(impl: Any, card: Card) -> None:
    qr = card.code()
    texts = read_qr_texts(qr_png(qr))
    assert texts == [qr]
    result = impl.Verifier(_trust(card)).verify(texts[0], T0 + 5)
    assert _outcome(result) == (True, "ok", "ok")
    assert result.kid == card.issuer.kid.hex()
    claims = result.claims
    assert claims["sub"] == "01" * 32
    assert claims["status_index"] == 7
    assert (claims["iat"], claims["exp"]) == (T0, T0 + 60)
    assert (claims["cert_iat"], claims["cert_exp"]) == (T0 - 3600, T0 + 86400)
    assert len(claims["cti"]) == 32


def test_replay_is_rejected_second_time(impl: Any, card: Card) -> None:
    verifier = impl.Verifier(_trust(card))
    qr = card.code()
    assert _outcome(verifier.verify(qr, T0)) == (True, "ok", "ok")
    assert _outcome(verifier.verify(qr, T0 + 1)) == (False, "replay", "replayed")
    assert _outcome(verifier.verify(card.code(), T0 + 1)) == (True, "ok", "ok")


def test_replay_cache_is_bounded_and_purges_expired(impl: Any, card: Card) -> None:
    verifier = impl.Verifier(_trust(card), replay_capacity=3)
    for _ in range(3):
        assert verifier.verify(card.code(iat=T0), T0).valid
    # full, nothing expired yet: fail closed
    assert _outcome(verifier.verify(card.code(iat=T0), T0)) == (
        False,
        "replay",
        "replay_cache_full",
    )
    # the first three expire at T0 + 60; a later scan purges them
    later = card.code(iat=T0 + 100)
    assert _outcome(verifier.verify(later, T0 + 100)) == (True, "ok", "ok")
    assert _outcome(verifier.verify(later, T0 + 101)) == (False, "replay", "replayed")


def test_long_cti_is_remembered(impl: Any, card: Card) -> None:
    verifier = impl.Verifier(_trust(card))
    qr = card.code(cti=b"\x07" * 64)
    assert verifier.verify(qr, T0).valid
    assert verifier.verify(qr, T0).reason == "replayed"
    assert impl.Verifier(_trust(card)).verify(card.code(cti=b"\x07" * 65), T0).reason == (
        "claim_type"
    )


def test_revocation_bitstring(impl: Any) -> None:
    status = StatusList(size_bits=1024)
    revoked = Card(index=42)
    fine = Card(revoked.issuer, index=43)
    outside = Card(revoked.issuer, index=1024)
    verifier = impl.Verifier(_trust(revoked), status=status)
    assert verifier.verify(revoked.code(), T0).valid
    status.set(42)
    assert _outcome(verifier.verify(revoked.code(), T0)) == (False, "revocation", "revoked")
    assert _outcome(verifier.verify(fine.code(), T0)) == (True, "ok", "ok")
    assert _outcome(verifier.verify(outside.code(), T0)) == (
        False,
        "revocation",
        "status_index_out_of_range",
    )


def test_status_list_publication_round_trip() -> None:
    status = StatusList()
    status.set(0)
    status.set(131071)
    decoded = StatusList.decode(status.encode())
    assert decoded.size_bits == 131072
    assert decoded.is_revoked(0) and decoded.is_revoked(131071)
    assert not decoded.is_revoked(1)
    assert status.bytes()[0] == 0x80  # index 0 is the most significant bit of byte 0
    with pytest.raises(StatusListError):
        StatusList.decode("not*base64")


def test_unknown_issuer_and_wrong_issuer_key(impl: Any, card: Card) -> None:
    assert _outcome(impl.Verifier(TrustList()).verify(card.code(), T0)) == (
        False,
        "kid",
        "kid_unknown",
    )
    impostor = IssuerKey.generate(kid=card.issuer.kid)
    result = impl.Verifier(TrustList([impostor.trust_key()])).verify(card.code(), T0)
    assert _outcome(result) == (False, "signature", "cert_signature_invalid")


def test_token_signed_by_another_device_is_rejected(impl: Any, card: Card) -> None:
    thief = DeviceKey.generate()
    claims = {
        codes.CLAIM_EXP: T0 + 60,
        codes.CLAIM_IAT: T0,
        codes.CLAIM_CTI: os.urandom(16),
        codes.CLAIM_SC1_DEVICE_CERT: card.cert,
    }
    qr = "SC1:" + b45encode(sign1(claims, thief.sign, protected={1: codes.ALG_EDDSA}))
    result = impl.Verifier(_trust(card)).verify(qr, T0)
    assert _outcome(result) == (False, "signature", "signature_invalid")


@pytest.mark.parametrize(
    ("at", "outcome"),
    [
        (T0 - 1, (False, "time", "iat_in_future")),
        (T0 + 61, (False, "time", "expired")),
        (T0 + 86401 - 60, (True, "ok", "ok")),
    ],
)
def test_token_time(impl: Any, card: Card, at: float, outcome: tuple[bool, str, str]) -> None:
    qr = card.code(iat=at if outcome[0] else T0)
    assert _outcome(impl.Verifier(_trust(card)).verify(qr, at)) == outcome


def test_certificate_expiry_and_issuer_window(impl: Any, card: Card) -> None:
    late = T0 + 86400 + 10
    assert _outcome(impl.Verifier(_trust(card)).verify(card.code(iat=late), late)) == (
        False,
        "time",
        "cert_expired",
    )
    trust = _trust(card, not_after=T0 + 3600)
    assert _outcome(impl.Verifier(trust).verify(card.code(), T0)) == (
        False,
        "time",
        "cert_key_expired",
    )


def test_lifetime_limit(impl: Any, card: Card) -> None:
    result = impl.Verifier(_trust(card)).verify(card.code(lifetime=301), T0)
    assert _outcome(result) == (False, "time", "lifetime_too_long")


def test_no_clock_skips_time(impl: Any, card: Card) -> None:
    assert _outcome(impl.Verifier(_trust(card)).verify(card.code(iat=1))) == (True, "ok", "ok")


def test_cached_certificate_gives_same_results(impl: Any, card: Card) -> None:
    verifier = impl.Verifier(_trust(card), cert_cache_capacity=1)
    other = Card(card.issuer)
    outcomes = [_outcome(verifier.verify(c.code(), T0)) for c in (card, other, card, card, other)]
    assert outcomes == [(True, "ok", "ok")] * 5


def test_es256_issuer(impl: Any) -> None:
    issuer = IssuerKey.generate("ES256")
    card = Card(issuer)
    assert _outcome(impl.Verifier(_trust(card)).verify(card.code(), T0)) == (True, "ok", "ok")


def test_certificate_claims_are_checked(impl: Any, card: Card) -> None:
    device = DeviceKey.generate()
    bad_cert = sign1(
        {codes.CLAIM_SUB: b"x", codes.CLAIM_EXP: T0 + 10, codes.CLAIM_CNF: {1: {1: 1}}},
        card.issuer.sign,
        protected={1: codes.ALG_EDDSA, 4: card.issuer.kid},
    )
    claims = {
        codes.CLAIM_EXP: T0 + 60,
        codes.CLAIM_IAT: T0,
        codes.CLAIM_CTI: b"n",
        codes.CLAIM_SC1_DEVICE_CERT: bad_cert,
    }
    qr = "SC1:" + b45encode(sign1(claims, device.sign, protected={1: codes.ALG_EDDSA}))
    result = impl.Verifier(_trust(card)).verify(qr, T0)
    assert _outcome(result) == (False, "cose", "cert_cnf_invalid")
    assert result.claims == {}


def test_issue_device_cert_validates_inputs(card: Card) -> None:
    from fastpath.errors import IssuanceError

    with pytest.raises(IssuanceError):
        issue_device_cert(card.issuer, b"short", b"s", 1, iat=T0, exp=T0 + 1)


def test_batch_equals_single_and_threads_agree(impl: Any, card: Card) -> None:
    codes_ = [card.code() for _ in range(40)] + ["SC1:GGW", "nope", b"raw", card.code(lifetime=999)]
    single = [impl.Verifier(_trust(card)).verify(q, T0).as_dict() for q in codes_]
    batch = [r.as_dict() for r in impl.Verifier(_trust(card)).verify_batch(codes_, T0)]
    assert batch == single
    shared = impl.Verifier(_trust(card))
    out: dict[int, list[dict[str, Any]]] = {}

    def work(k: int) -> None:
        out[k] = [r.as_dict() for r in shared.verify_batch(codes_[k::2], T0)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = [None] * len(codes_)
    merged[0::2] = out[0]
    merged[1::2] = out[1]
    assert merged == single


def test_memory_accounting(impl: Any, card: Card) -> None:
    verifier = impl.Verifier(_trust(card), replay_capacity=1000, cert_cache_capacity=100)
    for _ in range(5):
        assert verifier.verify(card.code(), T0).valid
    memory = verifier.memory()
    assert memory["replay_entries"] == len(verifier) == 5
    assert memory["replay_bytes"] > 0 and memory["cert_cache_bytes"] > 0
    if impl.IMPLEMENTATION == "compiled":
        # fixed tables: 2048 slots x 40 bytes for 1000 entries; 128 x 120 bytes for 100
        assert memory["replay_bytes"] == 2048 * 40
        assert 80 <= memory["replay_bytes_per_entry"] <= 160
        assert memory["cert_cache_bytes"] == 128 * 120


def test_result_is_immutable_and_picklable(impl: Any, card: Card) -> None:
    import copy
    import pickle

    result = impl.Verifier(_trust(card)).verify(card.code(), T0)
    with pytest.raises(AttributeError):
        result.valid = False
    clone = pickle.loads(pickle.dumps(result))
    assert clone == result == copy.copy(result)
    assert clone.claims["sub"] == "01" * 32
