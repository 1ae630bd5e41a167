"""EIP-712 fast path: both implementations against eth-account, bit for bit.

The public EIP-712 Mail vector checks keccak, the domain separator and the 0x1901 wrap;
hypothesis-generated Grants and Withdrawals check the project's own types against the
service's eth-account path (``authz.typed_data.digest``); the strictness cases check the
on-chain signature rules that eth-account alone does not enforce.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz import typed_data
from fastpath import eip712, merkle
from fastpath.eip712 import TypedDataError
from tests.paths import TESTDATA

IMPLS = eip712.implementations()
if not os.environ.get("CONSENTGATE_NO_EXTENSIONS") and "compiled" not in IMPLS:
    raise RuntimeError("fastpath._eip712 is not built: run `make install`")

MAIL = json.loads((TESTDATA / "vectors.json").read_text())["eip712_mail"]
N = typed_data.SECP256K1_N
CHAIN_ID = 31337
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
KEYS = [Account.from_key(bytes([k]) * 32) for k in range(1, 4)]


@pytest.fixture(params=sorted(IMPLS))
def impl(request: pytest.FixtureRequest) -> Any:
    """An implementation (reference namespace or the compiled module)."""
    return IMPLS[request.param]


def _mail_signature() -> bytes:
    sig = MAIL["signature"]
    return bytes.fromhex(sig["r"] + sig["s"]) + bytes([sig["v"]])


# ---- the public vector -------------------------------------------------------------------


def test_keccak_is_keccak_not_sha3(impl: Any) -> None:
    empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert impl.keccak256(b"").hex() == empty
    assert impl.keccak256(bytearray(b"abc")) == impl.keccak256(memoryview(b"abc"))
    assert impl.keccak256(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )


def test_mail_vector(impl: Any) -> None:
    td = MAIL["typed_data"]
    dom = td["domain"]
    ds = impl.domain_separator(
        dom["chainId"], dom["verifyingContract"], dom["name"], dom["version"]
    )
    assert ds.hex() == MAIL["domain_separator"]
    types = td["types"]

    def type_string(name: str) -> str:
        return f"{name}({','.join(f['type'] + ' ' + f['name'] for f in types[name])})"

    person_type = impl.keccak256(type_string("Person").encode())
    mail_type = impl.keccak256((type_string("Mail") + type_string("Person")).encode())
    assert mail_type.hex() == MAIL["type_hash_mail"]

    def person(p: dict[str, str]) -> bytes:
        wallet = bytes(12) + bytes.fromhex(p["wallet"][2:])
        return impl.keccak256(person_type + impl.keccak256(p["name"].encode()) + wallet)

    msg = td["message"]
    contents = impl.keccak256(msg["contents"].encode())
    struct_hash = impl.keccak256(mail_type + person(msg["from"]) + person(msg["to"]) + contents)
    assert struct_hash.hex() == MAIL["struct_hash"]
    digest = impl.typed_digest(ds, struct_hash)
    assert digest.hex() == MAIL["digest"]
    sig = _mail_signature()
    assert impl.recover_signers([digest, digest], [sig, "0x" + sig.hex()]) == [MAIL["signer"]] * 2
    twin = MAIL["high_s_twin_must_be_rejected"]
    high = sig[:32] + bytes.fromhex(twin["s"]) + bytes([twin["v"]])
    assert Account._recover_hash(digest, signature=high) == MAIL["signer"]
    assert impl.recover_signers([digest], [high]) == [None]


def test_domain_separator_of_the_registry(impl: Any) -> None:
    expected = eip712.REFERENCE.domain_separator(CHAIN_ID, REGISTRY)
    assert impl.domain_separator(CHAIN_ID, REGISTRY) == expected
    assert impl.domain_separator(CHAIN_ID, REGISTRY.lower()) == expected
    td = typed_data.grant_typed_data(CHAIN_ID, REGISTRY, _grant())
    from eth_account.messages import encode_typed_data

    assert encode_typed_data(full_message=td).header == expected


# ---- Grant and Withdrawal against the service's eth-account path ---------------------------


def _grant(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "subject": KEYS[0].address,
        "controller": KEYS[1].address,
        "purpose": "loan assessment",
        "piCategories": ["income", "credit_history"],
        "sensitive": False,
        "thirdParties": [],
        "separateConsent": False,
        "validFrom": 1_700_000_000,
        "validUntil": 1_800_000_000,
        "recordHash": "0x" + "ab" * 32,
        "nonce": str(123 << 64),
        "deadline": "1700003600",
    }
    message.update(changes)
    return message


def _withdrawal(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "consentId": "0x" + "cd" * 32,
        "subject": KEYS[0].address,
        "nonce": str(7 << 64),
        "deadline": 1_700_086_400,
    }
    message.update(changes)
    return message


U64 = 2**64 - 1
U256 = 2**256 - 1
texts = st.one_of(
    st.text(max_size=40),
    st.text(min_size=500, max_size=3000),
    st.sampled_from(["", "数据处理", "é\u0301", "\U0001f600 emoji", "a" * 10_000]),
)
addresses = st.builds(
    lambda raw, checksum: typed_data.to_checksum_address(raw) if checksum else "0x" + raw.hex(),
    st.binary(min_size=20, max_size=20),
    st.booleans(),
)


def _uints(bits: int) -> st.SearchStrategy[Any]:
    values = st.one_of(st.integers(0, 2**bits - 1), st.sampled_from([0, 2**bits - 1]))
    return st.one_of(values, values.map(str))


bytes32 = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()),
    st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex().upper()),
    st.binary(min_size=32, max_size=32),
)
grants = st.fixed_dictionaries(
    {
        "subject": addresses,
        "controller": addresses,
        "purpose": texts,
        "piCategories": st.lists(texts, max_size=6),
        "sensitive": st.booleans(),
        "thirdParties": st.lists(texts, max_size=4),
        "separateConsent": st.booleans(),
        "validFrom": _uints(64),
        "validUntil": _uints(64),
        "recordHash": bytes32,
        "nonce": _uints(256),
        "deadline": _uints(256),
    }
)
withdrawals = st.fixed_dictionaries(
    {"consentId": bytes32, "subject": addresses, "nonce": _uints(256), "deadline": _uints(256)}
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


BUILDERS = {
    "grant": (grants, typed_data.grant_typed_data),
    "withdrawal": (withdrawals, typed_data.withdrawal_typed_data),
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@SETTINGS
@given(data=st.data())
def test_digests_match_eth_account(kind: str, data: st.DataObject) -> None:
    strategy, build = BUILDERS[kind]
    messages = data.draw(st.lists(strategy, min_size=1, max_size=4))
    ds = eip712.REFERENCE.domain_separator(CHAIN_ID, REGISTRY)
    expected = [typed_data.digest(build(CHAIN_ID, REGISTRY, m)) for m in messages]
    for impl in IMPLS.values():
        assert getattr(impl, f"{kind}_digests")(ds, messages) == expected
        hashes = getattr(impl, f"{kind}_struct_hashes")(messages)
        assert [impl.typed_digest(ds, h) for h in hashes] == expected


def test_grant_typehash_is_the_contracts(impl: Any) -> None:
    # the compiled encoder derives its layout from authz.typed_data; so does the contract
    assert impl.keccak256(typed_data.GRANT_TYPE.encode()).hex() == (
        eip712.REFERENCE.keccak256(
            b"Grant(address subject,address controller,string purpose,string[] piCategories,"
            b"bool sensitive,string[] thirdParties,bool separateConsent,uint64 validFrom,"
            b"uint64 validUntil,bytes32 recordHash,uint256 nonce,uint256 deadline)"
        ).hex()
    )
    if impl is IMPLS.get("compiled"):
        grant_typehash = impl.keccak256(typed_data.GRANT_TYPE.encode())
        withdrawal_typehash = impl.keccak256(typed_data.WITHDRAWAL_TYPE.encode())
        assert (
            grant_typehash,
            withdrawal_typehash,
        ) == (impl.GRANT_TYPEHASH, impl.WITHDRAWAL_TYPEHASH)


def test_empty_batch_and_order(impl: Any) -> None:
    ds = impl.domain_separator(CHAIN_ID, REGISTRY)
    assert impl.grant_digests(ds, []) == []
    assert impl.recover_signers([], []) == []
    messages = [_grant(purpose=str(i)) for i in range(5)]
    digests = impl.grant_digests(ds, messages)
    assert digests == [impl.grant_digests(ds, [m])[0] for m in messages]
    assert len(set(digests)) == 5


def _flip_one_letter(address: str) -> str:
    i = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:i] + address[i].swapcase() + address[i + 1 :]


BAD_CHECKSUM = _flip_one_letter(KEYS[0].address)
BAD_GRANTS = [
    ("subject", "0x" + "12" * 19),
    ("subject", KEYS[0].address[2:] + "00"),
    ("subject", "0X" + KEYS[0].address[2:]),
    ("subject", BAD_CHECKSUM),
    ("subject", "0x" + "g" * 40),
    ("subject", bytes(20)),
    ("controller", None),
    ("purpose", b"bytes"),
    ("purpose", 5),
    ("purpose", "lone \ud800 surrogate"),
    ("piCategories", "not-a-list"),
    ("piCategories", ["ok", 1]),
    ("sensitive", 1),
    ("sensitive", "true"),
    ("validFrom", -1),
    ("validFrom", 2**64),
    ("validFrom", str(2**64)),
    ("validFrom", True),
    ("validFrom", 1.5),
    ("nonce", "0x10"),
    ("nonce", " 1"),
    ("nonce", ""),
    ("nonce", "1" * 79),
    ("nonce", "٣"),
    ("nonce", 2**256),
    ("deadline", str(2**256)),
    ("recordHash", "0x" + "ab" * 31),
    ("recordHash", bytes(31)),
    ("recordHash", "ab" * 33),
]


@pytest.mark.parametrize(("field", "value"), BAD_GRANTS)
def test_malformed_grants_refused_by_both(impl: Any, field: str, value: Any) -> None:
    ds = impl.domain_separator(CHAIN_ID, REGISTRY)
    with pytest.raises(TypedDataError) as caught:
        impl.grant_digests(ds, [_grant(), _grant(**{field: value})])
    assert field in str(caught.value)
    assert caught.value.code == "typed_data_invalid"


def test_missing_field_and_non_mapping(impl: Any) -> None:
    ds = impl.domain_separator(CHAIN_ID, REGISTRY)
    message = _grant()
    del message["deadline"]
    with pytest.raises(TypedDataError, match="deadline"):
        impl.grant_digests(ds, [message])
    with pytest.raises(TypedDataError):
        impl.grant_digests(ds, [["not", "a", "mapping"]])
    with pytest.raises(TypedDataError):
        impl.grant_digests(ds[:31], [_grant()])
    with pytest.raises(TypedDataError):
        impl.withdrawal_digests(ds, [_withdrawal(consentId="0x1234")])


def test_extra_keys_ignored_and_tuple_arrays(impl: Any) -> None:
    ds = impl.domain_separator(CHAIN_ID, REGISTRY)
    plain = impl.grant_digests(ds, [_grant()])
    assert impl.grant_digests(ds, [{**_grant(), "extra": object()}]) == plain
    tupled = _grant(piCategories=("income", "credit_history"))
    assert impl.grant_digests(ds, [tupled]) == plain


# ---- recovery: strict rules ---------------------------------------------------------------


def _signed(count: int) -> tuple[list[bytes], list[bytes], list[str]]:
    ds = eip712.REFERENCE.domain_separator(CHAIN_ID, REGISTRY)
    messages = [_grant(purpose=f"p{i}", subject=KEYS[i % 3].address) for i in range(count)]
    digests = eip712.REFERENCE.grant_digests(ds, messages)
    sigs = [KEYS[i % 3].unsafe_sign_hash(d).signature for i, d in enumerate(digests)]
    return digests, sigs, [KEYS[i % 3].address for i in range(count)]


def test_recover_signers_match_eth_account(impl: Any) -> None:
    digests, sigs, signers = _signed(9)
    assert [
        Account._recover_hash(d, signature=s) for d, s in zip(digests, sigs, strict=True)
    ] == signers
    assert impl.recover_signers(digests, sigs) == signers
    assert impl.recover_signers(tuple(digests), [s.hex() for s in sigs]) == signers
    # a valid signature over another digest recovers someone else, never None
    other = impl.recover_signers(digests[1:] + digests[:1], sigs)
    assert None not in other and other != signers


def _strictness_cases(sig: bytes) -> dict[str, bytes | str]:
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high = r + (N - s).to_bytes(32, "big") + bytes([55 - v])
    return {
        "64 bytes": sig[:64],
        "66 bytes": sig + b"\x00",
        "v 0/1": sig[:64] + bytes([v - 27]),
        "v 0/1 other parity": sig[:64] + bytes([28 - v]),
        "v 29": sig[:64] + b"\x1d",
        "high-s twin": high,
        "r 0": bytes(32) + sig[32:],
        "r n": N.to_bytes(32, "big") + sig[32:],
        "s 0": r + bytes(32) + sig[64:],
        "s n": r + N.to_bytes(32, "big") + sig[64:],
        "empty": b"",
        "hex not hex": "0x" + "zz" * 65,
        "hex odd": "0x" + sig.hex()[:-1],
        "hex 64 bytes": "0x" + sig[:64].hex(),
        "hex unicode": "0x" + "٣" * 130,
    }


def test_strictness_none_in_both_where_eth_account_recovers(impl: Any) -> None:
    digests, sigs, signers = _signed(1)
    cases = _strictness_cases(sigs[0])
    got = impl.recover_signers([digests[0]] * len(cases), list(cases.values()))
    assert dict(zip(cases, got, strict=True)) == dict.fromkeys(cases)
    # eth-account alone still accepts some of them
    for name in ("v 0/1", "high-s twin"):
        assert Account._recover_hash(digests[0], signature=cases[name]) == signers[0], name


GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798  # x of G


def test_boundary_s_is_half_n(impl: Any) -> None:
    """s = n/2 exactly is allowed (EIP-2: s <= n/2); n/2 + 1 is refused."""
    digest = bytes(range(32))
    r = GX.to_bytes(32, "big")  # a valid x coordinate, so some key recovers
    lo = r + (N // 2).to_bytes(32, "big") + b"\x1b"
    hi = r + (N // 2 + 1).to_bytes(32, "big") + b"\x1b"
    expected = Account._recover_hash(digest, signature=lo)
    assert impl.recover_signers([digest, digest], [lo, hi]) == [expected, None]
    assert Account._recover_hash(digest, signature=hi) != expected


def test_unrecoverable_r_gives_none(impl: Any) -> None:
    # x = 5 is not on secp256k1 (5^3 + 7 = 132 is not a square mod p): nothing recovers
    digest = bytes(32)
    sig = (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b"
    assert eip712.REFERENCE.recover_signers([digest], [sig]) == [None]
    assert impl.recover_signers([digest], [sig]) == [None]


def test_recover_argument_errors(impl: Any) -> None:
    digests, sigs, _ = _signed(2)
    with pytest.raises(TypedDataError):
        impl.recover_signers(digests, sigs[:1])
    with pytest.raises(TypedDataError):
        impl.recover_signers([digests[0][:31]], sigs[:1])
    with pytest.raises(TypedDataError):
        impl.recover_signers(digests[:1], [12345])


signatures = st.one_of(
    st.binary(max_size=70),
    st.builds(
        lambda r, s, v: r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v]),
        st.one_of(st.integers(0, 2**256 - 1), st.sampled_from([0, 1, GX, N - 1, N])),
        st.one_of(st.integers(0, 2**256 - 1), st.sampled_from([0, 1, N // 2, N // 2 + 1])),
        st.sampled_from([0, 1, 27, 28, 29]),
    ),
)


@SETTINGS
@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), signatures), max_size=8))
def test_random_signatures_agree(pairs: list[tuple[bytes, bytes]]) -> None:
    digests = [d for d, _ in pairs]
    sigs = [s for _, s in pairs]
    results = {name: impl.recover_signers(digests, sigs) for name, impl in IMPLS.items()}
    assert len(set(map(tuple, results.values()))) == 1


def test_selected_implementation() -> None:
    expected = "reference" if os.environ.get("CONSENTGATE_PUREPYTHON") else "compiled"
    if "compiled" not in IMPLS:
        expected = "reference"
    assert (expected, expected) == (eip712.IMPLEMENTATION, merkle.IMPLEMENTATION)
    assert eip712.recover_signers is IMPLS[expected].recover_signers


def test_bench_reports_every_figure() -> None:
    if "compiled" not in IMPLS:
        with pytest.raises(RuntimeError):
            eip712.bench(50, 1)
        return
    figures = eip712.bench(50, 1)
    required = {
        "recover_fast_per_s",
        "recover_eth_account_per_s",
        "recover_raw_secp256k1_per_s",
        "fast_per_s",
        "eth_account_per_s",
        "raw_recover_per_s",
        "fast_vs_eth_account",
        "fast_vs_raw",
        "digest_fast_per_s",
        "merkle_extend_fast_per_s",
        "merkle_proof_fast_per_s",
    }
    assert required <= set(figures)
    assert all(figures[key] > 0 for key in required)
    assert figures["fast_vs_raw"] == round(figures["fast_per_s"] / figures["raw_recover_per_s"], 3)
    assert json.loads(json.dumps(figures)) == figures


def test_concurrent_batches_agree(impl: Any) -> None:
    """Batches recovered from several threads at once (the GIL released) stay correct."""
    from concurrent.futures import ThreadPoolExecutor

    digests, sigs, signers = _signed(24)
    ds = impl.domain_separator(CHAIN_ID, REGISTRY)
    messages = [_grant(purpose=f"p{i}", subject=KEYS[i % 3].address) for i in range(24)]

    def work(k: int) -> tuple[list[str | None], list[bytes]]:
        return impl.recover_signers(digests[k:], sigs[k:]), impl.grant_digests(ds, messages[k:])

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(8)))
    for k, (got, got_digests) in enumerate(results):
        assert got == signers[k:]
        assert got_digests == digests[k:]


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**260), 2**260),
    st.floats(allow_nan=False),
    st.binary(max_size=40),
    st.text(max_size=80),
    st.text(alphabet="0123456789abcdefABCDEFx", min_size=40, max_size=68),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
    st.from_regex(r"0x[0-9a-fA-F]{40}", fullmatch=True),
    st.from_regex(r"[0-9]{1,80}", fullmatch=True),
)


def _outcome(impl: Any, call: str, *args: Any) -> Any:
    try:
        return getattr(impl, call)(*args)
    except TypedDataError as exc:
        return ("TypedDataError", str(exc))


@SETTINGS
@given(st.dictionaries(st.sampled_from([f["name"] for f in typed_data.GRANT_FIELDS]), junk))
def test_junk_fields_same_outcome(changes: dict[str, Any]) -> None:
    """Valid or not, both implementations give the same digests or the same error."""
    ds = eip712.REFERENCE.domain_separator(CHAIN_ID, REGISTRY)
    grant, withdrawal = _grant(**changes), _withdrawal(**changes)
    for call, message in (("grant_digests", grant), ("withdrawal_digests", withdrawal)):
        outcomes = [_outcome(impl, call, ds, [message]) for impl in IMPLS.values()]
        assert all(o == outcomes[0] for o in outcomes)
