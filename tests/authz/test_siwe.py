"""Sign-In with Ethereum (ERC-4361): parser, builder and verifier in authz.siwe."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains, urls

from authz.siwe import (
    ERROR_CODES,
    MAX_MESSAGE_CHARS,
    SECP256K1_N,
    SiweError,
    SiweMessage,
    build_message,
    format_datetime,
    new_nonce,
    parse_datetime,
    parse_message,
    recover_address,
    verify_message,
)

EXAMPLES = json.loads((Path(__file__).parent / "vectors" / "eip4361_examples.json").read_text())[
    "examples"
]
ERC_EXAMPLE: str = EXAMPLES[0]["message"]

CITIZEN = Account.from_key(
    "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
)
STRANGER = Account.from_key("0x" + "11" * 32)
DOMAIN = "consent.example.gov"
URI_PREFIX = "https://consent.example.gov/v1/auth"
CHAIN_ID = 1337
NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
NONCE = "k3Yx9QbZ2mTq"


class NonceStore:
    """The caller's nonce store: knows issued nonces, marks each used once."""

    def __init__(self, *issued: str) -> None:
        self.unused = set(issued)
        self.calls: list[str] = []

    def consume(self, nonce: str) -> bool:
        self.calls.append(nonce)
        if nonce in self.unused:
            self.unused.remove(nonce)
            return True
        return False


def make(**over: Any) -> str:
    fields: dict[str, Any] = {
        "domain": DOMAIN,
        "address": CITIZEN.address,
        "uri": URI_PREFIX + "/siwe",
        "chain_id": CHAIN_ID,
        "nonce": NONCE,
        "issued_at": NOW - timedelta(seconds=5),
        "statement": "Sign in to see your consents.",
    }
    fields.update(over)
    return build_message(**fields)


def sign(text: str, key: Any = None) -> bytes:
    signed = Account.sign_message(encode_defunct(text=text), (key or CITIZEN).key)
    return bytes(signed.signature)


def verify(text: str, signature: str | bytes, store: NonceStore | None = None, **over: Any):
    kwargs: dict[str, Any] = {
        "domain": DOMAIN,
        "uri_prefix": URI_PREFIX,
        "chain_id": CHAIN_ID,
        "now": NOW,
        "consume_nonce": (store or NonceStore(NONCE)).consume,
    }
    kwargs.update(over)
    return verify_message(text, signature, **kwargs)


def expect(code: str, call: Callable[[], object]) -> SiweError:
    with pytest.raises(SiweError) as info:
        call()
    assert info.value.code == code, str(info.value)
    return info.value


# --- the specification's own examples ------------------------------------------------------


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e["name"] for e in EXAMPLES])
def test_spec_examples_parse_to_their_fields_and_round_trip(ex: dict[str, Any]) -> None:
    msg = parse_message(ex["message"])
    got = asdict(msg)
    for name in ("issued_at", "expiration_time", "not_before"):
        got[name] = None if got[name] is None else got[name].isoformat()
    got["resources"] = list(got["resources"])
    assert got == ex["fields"]
    assert msg.to_text() == ex["message"]
    assert parse_message(msg.to_text()) == msg


def test_spec_example_fields_signed_by_a_real_key_verify() -> None:
    # ERC-4361 publishes no signature and its example address (WETH's contract) has no key:
    # the same fields with the citizen's address, signed through eth-account, must verify.
    text = ERC_EXAMPLE.replace(EXAMPLES[0]["fields"]["address"], CITIZEN.address)
    store = NonceStore("32891756")
    msg = verify_message(
        text,
        sign(text),
        domain="example.com",
        uri_prefix="https://example.com/",
        chain_id=1,
        now=datetime(2021, 9, 30, 16, 25, 30, tzinfo=UTC),
        consume_nonce=store.consume,
    )
    assert msg.address == CITIZEN.address
    assert msg.resources[1] == "https://example.com/my-web2-claim.json"
    assert store.calls == ["32891756"] and store.unused == set()


# --- verification: the happy path -------------------------------------------------------------


def test_message_signed_with_eth_account_verifies_and_consumes_the_nonce() -> None:
    text = make(expiration_time=NOW + timedelta(minutes=5), request_id="req-1")
    store = NonceStore(NONCE, "otherNonce1")
    msg = verify(text, sign(text), store)
    assert msg.address == CITIZEN.address == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert msg.nonce == NONCE and msg.request_id == "req-1"
    assert store.calls == [NONCE] and store.unused == {"otherNonce1"}


@pytest.mark.parametrize("form", ["bytes", "0x-hex", "bare-hex", "bytearray"])
def test_signature_accepted_as_bytes_or_hex(form: str) -> None:
    text = make()
    raw = sign(text)
    sig: str | bytes = {
        "bytes": raw,
        "0x-hex": "0x" + raw.hex(),
        "bare-hex": raw.hex().upper(),
        "bytearray": bytearray(raw),
    }[form]  # type: ignore[assignment]
    assert verify(text, sig).address == CITIZEN.address


@pytest.mark.parametrize("base", ["http://127.0.0.1:8000", "https://cg.example.gov/api/"])
def test_service_call_pattern_verifies(base: str) -> None:
    # authz.citizens: domain = netloc of the base URL, uri_prefix = the base URL;
    # authz.demo: uri = base URL with one trailing slash, no scheme in the preamble.
    domain = urlsplit(base).netloc
    text = make(domain=domain, uri=base.rstrip("/") + "/", chain_id=31337)
    msg = verify(text, "0x" + sign(text).hex(), domain=domain, uri_prefix=base, chain_id=31337)
    assert (msg.domain, msg.scheme) == (domain, None)


def test_boundaries_that_still_verify() -> None:
    for over in (
        {"issued_at": NOW + timedelta(seconds=60)},  # the allowed clock skew
        {"issued_at": NOW - timedelta(seconds=600)},  # exactly max_age_s old
        {"not_before": NOW},  # not-before <= now
        {"expiration_time": NOW + timedelta(microseconds=1)},
        {"uri": URI_PREFIX},  # the prefix itself
        {"uri": URI_PREFIX + "?next=%2Fconsents"},
        {"scheme": "https"},
        {"scheme": "HTTPS"},  # schemes are case-insensitive (RFC 3986 section 3.1)
    ):
        text = make(**over)
        assert verify(text, sign(text)).nonce == NONCE, over


# --- verification: every error code -----------------------------------------------------------

REFUSALS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("other domain", {"domain": "evil.example"}, {}, "siwe_domain_mismatch"),
    ("domain suffix", {"domain": DOMAIN + ".evil.example"}, {}, "siwe_domain_mismatch"),
    ("domain port", {"domain": DOMAIN + ":8443"}, {}, "siwe_domain_mismatch"),
    ("domain userinfo", {"domain": "me@" + DOMAIN}, {}, "siwe_domain_mismatch"),
    ("origin scheme", {"scheme": "http"}, {}, "siwe_domain_mismatch"),
    ("other uri", {"uri": "https://evil.example/v1/auth"}, {}, "siwe_uri_mismatch"),
    ("uri host suffix", {"uri": URI_PREFIX.replace(".gov", ".gov.evil")}, {}, "siwe_uri_mismatch"),
    ("uri path suffix", {"uri": URI_PREFIX + "entication"}, {}, "siwe_uri_mismatch"),
    ("uri scheme", {"uri": URI_PREFIX.replace("https", "http")}, {}, "siwe_uri_mismatch"),
    ("chain id", {"chain_id": 1}, {}, "siwe_chain_mismatch"),
    ("expired", {"expiration_time": NOW - timedelta(seconds=1)}, {}, "siwe_expired"),
    ("expires now", {"expiration_time": NOW}, {}, "siwe_expired"),
    ("not before", {"not_before": NOW + timedelta(seconds=1)}, {}, "siwe_not_yet_valid"),
    ("future", {"issued_at": NOW + timedelta(seconds=61)}, {}, "siwe_issued_in_future"),
    ("too old", {"issued_at": NOW - timedelta(seconds=601)}, {}, "siwe_too_old"),
    ("too old, short max age", {}, {"max_age_s": 4}, "siwe_too_old"),
]


@pytest.mark.parametrize(
    ("fields", "kwargs", "code"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refused_claims_do_not_burn_the_nonce(
    fields: dict[str, Any], kwargs: dict[str, Any], code: str
) -> None:
    text = make(**fields)
    store = NonceStore(NONCE)
    expect(code, lambda: verify(text, sign(text), store, **kwargs))
    assert store.calls == [] and store.unused == {NONCE}


def test_signature_by_another_key_is_an_address_mismatch() -> None:
    text = make()
    store = NonceStore(NONCE)
    expect("siwe_address_mismatch", lambda: verify(text, sign(text, STRANGER), store))
    assert store.calls == []


def test_text_tampered_after_signing_is_refused() -> None:
    text = make()
    tampered = text.replace("your consents", "all consents")
    assert parse_message(tampered).statement == "Sign in to see all consents."
    expect("siwe_address_mismatch", lambda: verify(tampered, sign(text)))


def test_high_s_twin_of_a_valid_signature_is_refused() -> None:
    text = make()
    sig = sign(text)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    # the malleable twin is a valid ECDSA signature by the same key ...
    vrs = (55 - v, int.from_bytes(r, "big"), SECP256K1_N - s)
    assert Account.recover_message(encode_defunct(text=text), vrs=vrs) == CITIZEN.address
    # ... and still refused (EIP-2 low s)
    err = expect("siwe_bad_signature", lambda: verify(text, high))
    assert "low" in str(err)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda sig: sig[:64] + bytes([sig[64] - 27]), id="v-0-or-1"),
        pytest.param(lambda sig: sig[:64] + b"\x1d", id="v-29"),
        pytest.param(lambda sig: sig[:64], id="64-bytes"),
        pytest.param(lambda sig: sig + b"\x00", id="66-bytes"),
        pytest.param(lambda sig: b"", id="empty"),
        pytest.param(lambda sig: bytes(32) + sig[32:], id="r-zero"),
        pytest.param(lambda sig: sig[:32] + bytes(32) + sig[64:], id="s-zero"),
        pytest.param(lambda sig: SECP256K1_N.to_bytes(32, "big") + sig[32:], id="r-is-n"),
        pytest.param(lambda sig: (5).to_bytes(32, "big") + sig[32:], id="r-not-on-curve"),
        pytest.param(lambda sig: "0x" + sig.hex()[:-1] + "g", id="non-hex"),
        pytest.param(lambda sig: "0x" + sig.hex()[:-1], id="odd-hex"),
        pytest.param(lambda sig: 12345, id="not-bytes"),
    ],
)
def test_malformed_signatures_are_refused(mangle: Callable[[bytes], Any]) -> None:
    text = make()
    store = NonceStore(NONCE)
    expect("siwe_bad_signature", lambda: verify(text, mangle(sign(text)), store))
    assert store.calls == []


def test_v_zero_one_form_would_otherwise_recover_the_signer() -> None:
    text = make()
    sig = sign(text)
    assert recover_address(text, sig) == CITIZEN.address
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    assert Account.recover_message(encode_defunct(text=text), vrs=(sig[64] - 27, r, s)) == (
        CITIZEN.address
    )
    expect("siwe_bad_signature", lambda: recover_address(text, sig[:64] + bytes([sig[64] - 27])))


def test_nonce_is_single_use() -> None:
    text = make()
    sig = sign(text)
    store = NonceStore(NONCE)
    assert verify(text, sig, store).nonce == NONCE
    expect("siwe_nonce_invalid", lambda: verify(text, sig, store))
    assert store.calls == [NONCE, NONCE]


def test_nonce_never_issued_is_refused() -> None:
    text = make(nonce="neverIssued42")
    expect("siwe_nonce_invalid", lambda: verify(text, sign(text), NonceStore(NONCE)))


def test_naive_now_is_a_caller_error_not_a_refusal() -> None:
    text = make()
    with pytest.raises(ValueError, match="timezone-aware") as info:
        verify(text, sign(text), now=NOW.replace(tzinfo=None))
    assert not isinstance(info.value, SiweError)


def test_malformed_message_is_refused_before_the_signature() -> None:
    text = make() + "\n"
    store = NonceStore(NONCE)
    expect("siwe_malformed", lambda: verify(text, sign(text), store))
    assert store.calls == []


# --- the parser: strict ABNF ------------------------------------------------------------------

LINES = ERC_EXAMPLE.split("\n")


def _lines(*replacements: tuple[int, str | None]) -> str:
    out: list[str | None] = list(LINES)
    for index, value in replacements:
        out[index] = value
    return "\n".join(line for line in out if line is not None)


MALFORMED: dict[str, str] = {
    "empty": "",
    "only LF": "\n",
    "trailing LF": ERC_EXAMPLE + "\n",
    "extra trailing line": ERC_EXAMPLE + "\n- https://example.com/x\nExtra: 1",
    "unknown field at end": ERC_EXAMPLE.replace("\nResources:", "\nFoo: bar\nResources:"),
    "CRLF line ends": ERC_EXAMPLE.replace("\n", "\r\n"),
    "CR in statement": ERC_EXAMPLE.replace("Terms of", "Terms\rof"),
    "missing Version line": _lines((6, None)),
    "missing Nonce line": _lines((8, None)),
    "missing Issued At": _lines((9, None), (10, None), (11, None), (12, None)),
    "Version 2": _lines((6, "Version: 2")),
    "Chain ID before Version": _lines((6, "Chain ID: 1"), (7, "Version: 1")),
    "duplicate Nonce": _lines((8, "Nonce: 32891756\nNonce: 32891756")),
    "lower-case field name": _lines((5, "uri: https://example.com/login")),
    "two spaces after colon": _lines((5, "URI:  https://example.com/login")),
    "preamble wording": _lines((0, "example.com wants you to sign in with your ethereum account:")),
    "preamble trailing space": _lines((0, LINES[0] + " ")),
    "domain with space": _lines((0, "exa mple.com" + LINES[0][11:])),
    "domain with path": _lines((0, "example.com/login" + LINES[0][11:])),
    "scheme with one slash": _lines((0, "https:/example.com" + LINES[0][11:])),
    "scheme starting with digit": _lines((0, "1https://example.com" + LINES[0][11:])),
    "empty scheme": _lines((0, "://example.com" + LINES[0][11:])),
    "lower-case address": _lines((1, LINES[1].lower())),
    "bad checksum address": _lines((1, LINES[1].replace("C02aaA", "c02aaA"))),
    "short address": _lines((1, LINES[1][:-1])),
    "0X address prefix": _lines((1, "0X" + LINES[1][2:])),
    "no blank line after address": _lines((2, None)),
    "no blank line after statement": _lines((4, None)),
    "statement over two lines": _lines((3, "I accept\nthe terms")),
    "statement non-ASCII": _lines((3, "J'accepte les conditions générales")),
    "statement double quote": _lines((3, 'I accept the "terms"')),
    "statement percent": _lines((3, "100% agreed")),
    "statement tab": _lines((3, "I\taccept")),
    "one blank line, no statement": _lines((3, None), (4, None)),
    "three blank lines, no statement": _lines((3, "\n")),
    "relative uri": _lines((5, "URI: /login")),
    "uri with space": _lines((5, "URI: https://example.com/log in")),
    "uri bad percent": _lines((5, "URI: https://example.com/%zz")),
    "uri bad IPv6": _lines((5, "URI: https://[::1::2]/login")),
    "empty uri": _lines((5, "URI: ")),
    "chain id hex": _lines((7, "Chain ID: 0x1")),
    "chain id negative": _lines((7, "Chain ID: -1")),
    "chain id empty": _lines((7, "Chain ID: ")),
    "chain id too long": _lines((7, "Chain ID: " + "9" * 79)),
    "chain id 5000 digits": _lines((7, "Chain ID: " + "9" * 5000)),
    "nonce too short": _lines((8, "Nonce: 3289175")),
    "nonce punctuation": _lines((8, "Nonce: 32891756-x")),
    "nonce non-ASCII digit": _lines((8, "Nonce: 3289175\u0664")),
    "issued-at space separator": _lines((9, "Issued At: 2021-09-30 16:25:24Z")),
    "issued-at no offset": _lines((9, "Issued At: 2021-09-30T16:25:24")),
    "issued-at no seconds": _lines((9, "Issued At: 2021-09-30T16:25Z")),
    "issued-at Feb 30": _lines((9, "Issued At: 2021-02-30T16:25:24Z")),
    "issued-at hour 24": _lines((9, "Issued At: 2021-09-30T24:00:00Z")),
    "issued-at leap second": _lines((9, "Issued At: 2016-12-31T23:59:60Z")),
    "issued-at offset 24h": _lines((9, "Issued At: 2021-09-30T16:25:24+24:00")),
    "issued-at year 0": _lines((9, "Issued At: 0000-01-01T00:00:00Z")),
    "issued-at before year 1 in UTC": _lines((9, "Issued At: 0001-01-01T00:00:00+01:00")),
    "issued-at empty fraction": _lines((9, "Issued At: 2021-09-30T16:25:24.Z")),
    "not-before before expiration": _lines(
        (9, LINES[9] + "\nNot Before: 2021-09-30T16:25:24Z\nExpiration Time: 2021-09-30T17:00:00Z")
    ),
    "request id with space": _lines((9, LINES[9] + "\nRequest ID: a b")),
    "request id with slash": _lines((9, LINES[9] + "\nRequest ID: a/b")),
    "Resources with space": _lines((10, "Resources: ")),
    "resource without space": _lines((11, "-ipfs://bafy")),
    "resource not a URI": _lines((11, "- not a uri")),
    "resource list item without header": _lines((10, None)),
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_messages_are_refused(text: str) -> None:
    expect("siwe_malformed", lambda: parse_message(text))


def test_overlong_message_is_refused() -> None:
    resources = [f"https://example.com/r/{i:05d}" for i in range(1000)]
    text = "\n".join([ERC_EXAMPLE, *(f"- {r}" for r in resources)])
    assert len(text) > MAX_MESSAGE_CHARS
    expect("siwe_malformed", lambda: parse_message(text))
    expect("siwe_malformed", lambda: make(resources=resources))


def test_non_str_message_is_refused() -> None:
    expect("siwe_malformed", lambda: parse_message(ERC_EXAMPLE.encode()))  # type: ignore[arg-type]


# Texts that the ABNF allows, with the field that shows how each was read.
ACCEPTED: list[tuple[str, str, str, object]] = [
    ("no statement: two blank lines", _lines((3, None)), "statement", None),
    ("empty statement: three blank lines", _lines((3, "")), "statement", ""),
    (
        "statement that looks like a field",
        _lines((3, "URI: https://a.example")),
        "uri",
        LINES[5][5:],
    ),
    (
        "statement with reserved chars",
        _lines((3, "a:/?#[]@!$&'()*+,;=-._~ z")),
        "statement",
        "a:/?#[]@!$&'()*+,;=-._~ z",
    ),
    ("explicit http scheme", _lines((0, "http://" + LINES[0])), "scheme", "http"),
    ("IPv6 domain with port", _lines((0, "[::1]:8443" + LINES[0][11:])), "domain", "[::1]:8443"),
    ("IPv4 domain", _lines((0, "127.0.0.1:8000" + LINES[0][11:])), "domain", "127.0.0.1:8000"),
    ("userinfo domain", _lines((0, "me@example.com" + LINES[0][11:])), "domain", "me@example.com"),
    (
        "urn uri",
        _lines((5, "URI: urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66")),
        "uri",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
    ),
    (
        "uri with IPv6, query, fragment",
        _lines((5, "URI: https://[2001:db8::7]:1/a?b=c/d#e?f")),
        "uri",
        "https://[2001:db8::7]:1/a?b=c/d#e?f",
    ),
    (
        "did uri",
        _lines((5, "URI: did:pkh:eip155:1:" + LINES[1])),
        "uri",
        "did:pkh:eip155:1:" + LINES[1],
    ),
    ("chain id with leading zero", _lines((7, "Chain ID: 01")), "chain_id", 1),
    ("large chain id", _lines((7, "Chain ID: 4294967295")), "chain_id", 4294967295),
    ("long nonce", _lines((8, "Nonce: " + "aZ9" * 40)), "nonce", "aZ9" * 40),
    (
        "offset time",
        _lines((9, "Issued At: 2021-10-01T00:25:24+08:00")),
        "issued_at",
        datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC),
    ),
    (
        "-00:00 offset",
        _lines((9, "Issued At: 2021-09-30T16:25:24-00:00")),
        "issued_at",
        datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC),
    ),
    (
        "lower-case t and z",
        _lines((9, "Issued At: 2021-09-30t16:25:24z")),
        "issued_at",
        datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC),
    ),
    (
        "nanoseconds truncated",
        _lines((9, "Issued At: 2021-09-30T16:25:24.123456789Z")),
        "issued_at",
        datetime(2021, 9, 30, 16, 25, 24, 123456, tzinfo=UTC),
    ),
    ("empty request id", _lines((9, LINES[9] + "\nRequest ID: ")), "request_id", ""),
    (
        "pchar request id",
        _lines((9, LINES[9] + "\nRequest ID: a:b@c%20d!$&'()*+,;=")),
        "request_id",
        "a:b@c%20d!$&'()*+,;=",
    ),
    ("empty Resources section", _lines((11, None), (12, None)), "resources", ()),
    ("no Resources section", _lines((10, None), (11, None), (12, None)), "resources", ()),
]


@pytest.mark.parametrize(
    ("text", "name", "value"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED]
)
def test_abnf_corners_are_accepted(text: str, name: str, value: object) -> None:
    msg = parse_message(text)
    assert getattr(msg, name) == value
    assert parse_message(msg.to_text()) == msg


def test_all_optional_fields_in_order_round_trip() -> None:
    text = _lines(
        (
            9,
            "Issued At: 2021-09-30T16:25:24.5Z\n"
            "Expiration Time: 2021-09-30T17:25:24.123Z\n"
            "Not Before: 2021-09-30T16:20:24.000001Z\n"
            "Request ID: 7e5f",
        )
    )
    msg = parse_message(text)
    assert msg.issued_at == datetime(2021, 9, 30, 16, 25, 24, 500000, tzinfo=UTC)
    assert msg.expiration_time == datetime(2021, 9, 30, 17, 25, 24, 123000, tzinfo=UTC)
    assert msg.not_before == datetime(2021, 9, 30, 16, 20, 24, 1, tzinfo=UTC)
    assert msg.request_id == "7e5f"
    # canonical fractions: 3 digits for whole milliseconds, 6 otherwise
    assert msg.to_text() == text.replace("24.5Z", "24.500Z")


def test_datetime_helpers() -> None:
    assert format_datetime(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    tz = timezone(timedelta(hours=-5))
    assert format_datetime(datetime(2026, 1, 1, 20, 0, 0, 10, tzinfo=tz)) == (
        "2026-01-02T01:00:00.000010Z"
    )
    assert parse_datetime("9999-12-31T23:59:59.999999Z") == datetime.max.replace(tzinfo=UTC)
    expect("siwe_malformed", lambda: parse_datetime("9999-12-31T23:59:59-00:01"))


# --- building -----------------------------------------------------------------------------


def test_build_message_writes_the_abnf_layout() -> None:
    text = make(
        scheme="https",
        expiration_time=NOW + timedelta(minutes=10),
        not_before=NOW - timedelta(seconds=5),
        request_id="r1",
        resources=["https://consent.example.gov/v1/subjects/me"],
    )
    assert text == (
        "https://consent.example.gov wants you to sign in with your Ethereum account:\n"
        f"{CITIZEN.address}\n"
        "\n"
        "Sign in to see your consents.\n"
        "\n"
        "URI: https://consent.example.gov/v1/auth/siwe\n"
        "Version: 1\n"
        "Chain ID: 1337\n"
        f"Nonce: {NONCE}\n"
        "Issued At: 2026-11-29T09:59:55Z\n"
        "Expiration Time: 2026-11-29T10:10:00Z\n"
        "Not Before: 2026-11-29T09:59:55Z\n"
        "Request ID: r1\n"
        "Resources:\n"
        "- https://consent.example.gov/v1/subjects/me"
    )
    assert make(statement=None).split("\n")[1:5] == [
        CITIZEN.address,
        "",
        "",
        "URI: " + URI_PREFIX + "/siwe",
    ]


@pytest.mark.parametrize(
    "over",
    [
        {"statement": "line one\nline two"},
        {"statement": "x\n\nURI: https://evil.example"},
        {"nonce": "short7x"},
        {"nonce": "has space 1"},
        {"address": CITIZEN.address.lower()},
        {"address": "0x" + "00" * 19},
        {"domain": "example.com/path"},
        {"uri": "not a uri"},
        {"chain_id": -1},
        {"chain_id": 2**256},
        {"chain_id": True},
        {"chain_id": "1"},
        {"issued_at": NOW.replace(tzinfo=None)},
        {"issued_at": "2026-11-29T10:00:00Z"},
        {"expiration_time": NOW.replace(tzinfo=None)},
        {"request_id": "a\nb"},
        {"resources": "https://example.com"},
        {"resources": ["https://example.com", "bad uri"]},
        {"scheme": "ht tp"},
    ],
    ids=lambda over: next(iter(over)),
)
def test_build_message_refuses_fields_outside_the_grammar(over: dict[str, Any]) -> None:
    expect("siwe_malformed", lambda: make(**over))


def test_datetimes_outside_utc_years_are_malformed() -> None:
    early = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    expect("siwe_malformed", lambda: make(issued_at=early))


def test_message_object_normalizes_to_utc() -> None:
    tz = timezone(timedelta(hours=8))
    msg = SiweMessage(
        domain=DOMAIN,
        address=CITIZEN.address,
        uri=URI_PREFIX,
        chain_id=1,
        nonce=NONCE,
        issued_at=datetime(2026, 11, 29, 18, 0, tzinfo=tz),
        resources=["https://a.example"],  # type: ignore[arg-type]
    )
    assert msg.issued_at.tzinfo is UTC and msg.issued_at.hour == 10
    assert msg.resources == ("https://a.example",)


def test_new_nonce_is_long_unique_and_valid() -> None:
    nonces = {new_nonce() for _ in range(200)}
    assert len(nonces) == 200
    for nonce in nonces:
        assert re.fullmatch(r"[0-9a-f]{32}", nonce)  # 128 bits
    text = make(nonce=nonces.pop())
    assert parse_message(text).nonce in text


def test_error_codes_are_stable() -> None:
    assert {
        "siwe_malformed",
        "siwe_domain_mismatch",
        "siwe_uri_mismatch",
        "siwe_chain_mismatch",
        "siwe_expired",
        "siwe_not_yet_valid",
        "siwe_issued_in_future",
        "siwe_too_old",
        "siwe_bad_signature",
        "siwe_address_mismatch",
        "siwe_nonce_invalid",
    } == ERROR_CODES
    err = SiweError("siwe_expired", "message has expired")
    assert isinstance(err, ValueError) and err.code == "siwe_expired"
    assert str(err) == "message has expired"
    with pytest.raises(ValueError, match="unknown SIWE error code"):
        SiweError("siwe_other", "x")


# --- properties ---------------------------------------------------------------------------


def _parses_or_is_malformed(text: str) -> None:
    """Any text either parses into a message that round-trips or is siwe_malformed."""
    try:
        msg = parse_message(text)
    except SiweError as err:
        assert err.code == "siwe_malformed"
    else:
        assert parse_message(msg.to_text()) == msg


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
@example(ERC_EXAMPLE.replace("Z\n", "Z\r\n"))
@example("\n".join(LINES[:10]) + "\nResources:\n- ")
def test_random_text_raises_only_siwe_errors(text: str) -> None:
    _parses_or_is_malformed(text)


@settings(max_examples=300)
@given(
    st.integers(0, len(ERC_EXAMPLE)),
    st.integers(0, 3),
    st.text(alphabet="\n :-./0aZ\r\x00é", max_size=3),
)
def test_edited_spec_example_raises_only_siwe_errors(pos: int, cut: int, insert: str) -> None:
    _parses_or_is_malformed(ERC_EXAMPLE[:pos] + insert + ERC_EXAMPLE[pos + cut :])


_STATEMENT_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"%<>\\^`{|}')
_PCHARS = "abcXYZ019-._~!$&'()*+,;=:@"
_UTC_TIMES = st.datetimes(timezones=st.just(UTC))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.none() | st.sampled_from(["https", "http", "wss", "chrome-extension"]),
    domain=domains(max_length=60)
    | st.builds(lambda d, p: f"{d}:{p}", domains(max_length=40), st.integers(0, 65535)),
    key=st.binary(min_size=20, max_size=20),
    statement=st.none() | st.text(alphabet=_STATEMENT_CHARS, max_size=80),
    uri=urls(),
    chain_id=st.integers(0, 2**256 - 1),
    nonce=st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        min_size=8,
        max_size=40,
    ),
    issued_at=_UTC_TIMES,
    expiration_time=st.none() | _UTC_TIMES,
    not_before=st.none() | _UTC_TIMES,
    request_id=st.none() | st.text(alphabet=_PCHARS, max_size=30),
    resources=st.lists(urls(), max_size=4),
)
def test_build_then_parse_round_trips(key: bytes, **fields: Any) -> None:
    fields["address"] = to_checksum_address(key)
    text = build_message(**fields)
    msg = parse_message(text)
    for name, value in fields.items():
        want = tuple(value) if name == "resources" else value
        assert getattr(msg, name) == want, name
    assert msg.version == "1"
    assert msg.to_text() == text
