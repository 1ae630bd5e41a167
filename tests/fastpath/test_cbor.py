"""The strict CBOR reader against cbor2 (RFC 8949), and its own rules."""

from __future__ import annotations

import math
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastpath.tokens import cbor

KEYS = st.one_of(st.integers(-(2**64), 2**64 - 1), st.text(max_size=8), st.binary(max_size=8))
SCALARS = st.one_of(
    st.integers(-(2**64), 2**64 - 1),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_decodes_like_cbor2(value: Any) -> None:
    encoded = cbor2.dumps(value)
    assert _same(cbor.decode(encoded), cbor2.loads(encoded))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_whatever_it_accepts_cbor2_reads_the_same(data: bytes) -> None:
    try:
        ours = cbor.decode(data)
    except cbor.CborError as exc:
        assert exc.reason.startswith("cbor_")
        return
    if _has_tags_or_simple(ours):
        return  # tags are kept as Tagged here, interpreted by cbor2: not comparable
    assert _same(ours, cbor2.loads(data))


def _has_tags_or_simple(value: Any) -> bool:
    if isinstance(value, cbor.Tagged | cbor.Simple) or value is cbor.UNDEFINED:
        return True
    if isinstance(value, list):
        return any(_has_tags_or_simple(v) for v in value)
    if isinstance(value, dict):
        return any(_has_tags_or_simple(v) for v in value.values())
    return False


STRICT_CASES = [
    ("", "cbor_malformed"),
    ("1c", "cbor_malformed"),  # reserved additional information 28
    ("5f4100ff", "cbor_indefinite"),
    ("a20102 0103", "cbor_duplicate_key"),
    ("a1800102", "cbor_key_type"),
    ("6180", "cbor_utf8"),
    ("62eda080", "cbor_utf8"),  # a UTF-16 surrogate
    ("f810", "cbor_malformed"),  # simple value below 32 in two bytes
    ("0101", "cbor_trailing"),
    ("81" * 17 + "00", "cbor_depth"),
    ("c1" * 17 + "00", "cbor_depth"),  # tags count as nesting too
    ("b90101" + "00" * 514, "cbor_too_large"),
    ("5a00000010", "cbor_malformed"),
]


@pytest.mark.parametrize(("hexed", "reason"), STRICT_CASES)
def test_strict_rules(hexed: str, reason: str) -> None:
    with pytest.raises(cbor.CborError) as caught:
        cbor.decode(bytes.fromhex(hexed.replace(" ", "")))
    assert caught.value.reason == reason


def test_tags_are_kept_not_interpreted() -> None:
    assert cbor.decode(bytes.fromhex("c06161")) == cbor.Tagged(0, "a")  # cbor2 raises here
    assert cbor.decode(bytes.fromhex("d28440a0f640"), cose_top=True) == [b"", {}, None, b""]
    with pytest.raises(cbor.CborError, match="cose_tag"):
        cbor.decode(bytes.fromhex("d83d8440a0f640"), cose_top=True)  # 61 not around 18


@pytest.mark.parametrize(("hexed", "reason"), STRICT_CASES)
def test_strict_rules_in_both_pipelines(hexed: str, reason: str) -> None:
    """Each case as the payload of a COSE_Sign1: both verifiers stop at cose with it."""
    from fastpath.tokens.common import sig_structure
    from fastpath.tokens.trust import TrustList

    from .conftest import IMPLS

    payload = bytes.fromhex(hexed.replace(" ", ""))
    bstr = sig_structure(b"", payload)[14:]  # the payload's bstr head and bytes
    cose = b"\xd2\x84\x40\xa0" + bstr + b"\x40"
    for module in IMPLS.values():
        result = module.Verifier(TrustList(), profile="cwt").verify(cose)
        assert (result.stage, result.reason) == ("cose", reason)
