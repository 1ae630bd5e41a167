"""Hypothesis fuzzing: any input gives a result with a stage and a reason, never an
exception, and both implementations agree field by field (claims included)."""

from __future__ import annotations

import zlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastpath.tokens import codes
from fastpath.tokens.base45 import b45decode, b45encode
from fastpath.tokens.issue import HC1Signer
from fastpath.tokens.trust import TrustList

from .conftest import IMPLS
from .helpers import T0, Card, hc1_token

CARD = Card()
SIGNER = HC1Signer.generate("ES256")
TRUST = {"sc1": TrustList([CARD.issuer.trust_key()]), "dcc": TrustList([SIGNER.trust_key()])}
VALID_SC1 = CARD.code()
VALID_HC1 = hc1_token(SIGNER)
SC1_BYTES = b45decode(VALID_SC1[4:])
HC1_BYTES = zlib.decompress(b45decode(VALID_HC1[4:]))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _all_agree(profile: str, qr: Any, at: float | None = T0) -> dict[str, Any]:
    outcomes = {}
    for name, module in IMPLS.items():
        result = module.Verifier(TRUST.get(profile, TrustList()), profile=profile).verify(qr, at)
        assert result.stage in (*codes.STAGES, "ok")
        assert result.reason in codes.REASONS or result.reason.startswith(codes.CERT_PREFIX)
        assert result.valid == (result.stage == "ok")
        outcomes[name] = result.as_dict()
    first = next(iter(outcomes.values()))
    for name, outcome in outcomes.items():
        assert outcome == first, (name, qr)
    return first


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in edits:
        if not buf:
            buf.append(value)
            continue
        pos %= len(buf)
        if kind == 0:
            buf[pos] = value
        elif kind == 1:
            buf.insert(pos, value)
        elif kind == 2:
            del buf[pos]
        else:
            del buf[pos:]
    return bytes(buf)


EDIT = st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.integers(0, 255))
EDITS = st.lists(EDIT, min_size=1, max_size=4)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_as_cose(data: bytes) -> None:
    _all_agree("cwt", data)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["sc1", "dcc"]))
def test_random_bytes_behind_prefix(data: bytes, profile: str) -> None:
    prefix = codes.PROFILES[profile]
    _all_agree(profile, prefix + b45encode(data))
    _all_agree(profile, prefix + b45encode(zlib.compress(data)))


@FUZZ
@given(st.text(max_size=200), st.sampled_from(["sc1", "dcc"]))
def test_random_text(text: str, profile: str) -> None:
    _all_agree(profile, text)
    _all_agree(profile, codes.PROFILES[profile] + text)


@FUZZ
@given(EDITS)
def test_mutated_sc1_tokens(edits: list[tuple[int, int, int]]) -> None:
    _all_agree("sc1", "SC1:" + b45encode(_mutate(SC1_BYTES, edits)))


@FUZZ
@given(EDITS)
def test_mutated_hc1_tokens(edits: list[tuple[int, int, int]]) -> None:
    mutated = _mutate(HC1_BYTES, edits)
    _all_agree("dcc", "HC1:" + b45encode(zlib.compress(mutated)))
    _all_agree("cwt", mutated, None)


@FUZZ
@given(EDITS)
def test_mutated_text(edits: list[tuple[int, int, int]]) -> None:
    text = _mutate(VALID_SC1.encode(), edits).decode("latin-1")
    _all_agree("sc1", text)


def test_valid_tokens_agree() -> None:
    assert _all_agree("sc1", VALID_SC1)["valid"] is True
    assert _all_agree("dcc", VALID_HC1)["valid"] is True


def test_non_text_inputs() -> None:
    for value in (None, 5, b"SC1:", bytearray(b"x"), ["SC1:"]):
        assert _all_agree("sc1", value)["reason"] == "not_text"
    assert _all_agree("sc1", "SC1:" + "0" * 9000)["reason"] == "too_long"


@FUZZ
@given(
    st.floats(min_value=T0 - 400, max_value=T0 + 90_000, allow_nan=False),
    st.sampled_from([0.0, 5.0, 30.0]),
    st.integers(-100, 100),
    st.sampled_from([30, 60, 301]),
)
def test_clock_and_skew_agree(at: float, skew: float, shift: int, lifetime: int) -> None:
    qr = CARD.code(iat=T0 + shift, lifetime=lifetime)
    outcomes = [
        module.Verifier(TRUST["sc1"], skew=skew).verify(qr, at).as_dict()
        for module in IMPLS.values()
    ]
    assert all(outcome == outcomes[0] for outcome in outcomes)
