"""EIP-712 digests of the project's Grant and Withdrawal, and strict batch signer recovery.

One API, two implementations: the compiled module ``fastpath._eip712`` (keccak-256 from
pycryptodome's C code, recovery from the libsecp256k1 bundled with coincurve, both called
through C function pointers with the GIL released) when it was built, else the
pure-Python reference in this module (eth-account, eth-keys, eth-hash). Set
``CONSENTGATE_PUREPYTHON=1`` to force the reference. Tests run both on the same inputs
and require the same bytes.

Use::

    from fastpath import eip712

    ds = eip712.domain_separator(chain_id, registry_address)        # 32 bytes
    digests = eip712.grant_digests(ds, messages)                    # list of 32 bytes
    signers = eip712.recover_signers(digests, signatures)           # checksum or None

Messages are in the JSON form the service builds (``authz.consents``): addresses as
``0x`` + 40 hex digits (mixed case must be a valid EIP-55 checksum), strings as ``str``,
arrays as lists of ``str``, booleans as ``bool``, ``uint64`` / ``uint256`` as ``int`` or
a string of ASCII decimal digits (at most 78), ``bytes32`` as ``0x`` + 64 hex digits or
32 ``bytes``. Field lists and type strings are those of :mod:`authz.typed_data`; other
keys are ignored. Anything else raises :class:`TypedDataError` (code
``typed_data_invalid``), in both implementations.

Signature rules (the strict rules of the registry on chain, OpenZeppelin ``ECDSA``):
exactly 65 bytes ``r || s || v``, ``v`` in {27, 28}, ``0 < r < n``, ``0 < s <= n/2``
(EIP-2). A signature that breaks one, or from which no key recovers, gives ``None``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from eth_account.messages import encode_typed_data
from eth_keys import keys
from eth_keys.exceptions import BadSignature, ValidationError
from eth_utils import keccak as _eth_keccak
from eth_utils import to_checksum_address

from authz.typed_data import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    EIP712_DOMAIN_FIELDS,
    GRANT_FIELDS,
    GRANT_TYPE,
    SECP256K1_HALF_N,
    SECP256K1_N,
    WITHDRAWAL_FIELDS,
    WITHDRAWAL_TYPE,
)
from fastpath.errors import FastpathError

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "GRANT_TYPE",
    "IMPLEMENTATION",
    "WITHDRAWAL_TYPE",
    "TypedDataError",
    "bench",
    "domain_separator",
    "grant_digests",
    "grant_struct_hashes",
    "implementations",
    "keccak256",
    "recover_signers",
    "selected",
    "typed_digest",
    "withdrawal_digests",
    "withdrawal_struct_hashes",
]


class TypedDataError(FastpathError, ValueError):
    """A typed-data message, digest or argument is not of the accepted form."""

    code = "typed_data_invalid"


# ---- reference implementation (eth-account / eth-keys / eth-hash) ---------------------

_HEX = re.compile(r"[0-9a-fA-F]*")
_DECIMAL = re.compile(r"[0-9]{1,78}")


def _keccak256(data: bytes) -> bytes:
    """keccak-256 (the original Keccak padding, not SHA3-256) of a bytes-like object."""
    return _eth_keccak(memoryview(data).tobytes())


def _fail(field: str, why: str) -> TypedDataError:
    return TypedDataError(f"field {field!r}: {why}")


def _address(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or value[:2] != "0x":
        raise _fail(field, "address must be '0x' + 40 hex digits")
    digits = value[2:]
    if not _HEX.fullmatch(digits):
        raise _fail(field, "address must be '0x' + 40 hex digits")
    mixed = digits not in (digits.lower(), digits.upper())
    if mixed and to_checksum_address(value) != value:
        raise _fail(field, "mixed-case address with a bad EIP-55 checksum")
    return value.lower()


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _fail(field, "string expected")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(field, "string is not encodable as UTF-8") from None
    return value


def _texts(value: Any, field: str) -> list[str]:
    if not isinstance(value, list | tuple):
        raise _fail(field, "array of strings expected")
    return [_text(item, field) for item in value]


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(field, "bool expected")
    return value


def _uint(bits: int) -> Callable[[Any, str], int]:
    def parse(value: Any, field: str) -> int:
        if isinstance(value, str):
            if not _DECIMAL.fullmatch(value):
                raise _fail(field, "uint as a string must be 1 to 78 ASCII decimal digits")
            value = int(value)
        elif not isinstance(value, int) or isinstance(value, bool):
            raise _fail(field, "uint must be an int or a decimal string")
        if not 0 <= value < 1 << bits:
            raise _fail(field, f"out of range for uint{bits}")
        return value

    return parse


def _bytes32(value: Any, field: str) -> bytes:
    if isinstance(value, bytes):
        if len(value) != 32:
            raise _fail(field, "bytes32 must be 32 bytes")
        return value
    if (
        isinstance(value, str)
        and len(value) == 66
        and value[:2] == "0x"
        and _HEX.fullmatch(value[2:])
    ):
        return bytes.fromhex(value[2:])
    raise _fail(field, "bytes32 must be '0x' + 64 hex digits or 32 bytes")


_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "address": _address,
    "string": _text,
    "string[]": _texts,
    "bool": _flag,
    "uint64": _uint(64),
    "uint256": _uint(256),
    "bytes32": _bytes32,
}


def _normalized(fields: list[dict[str, str]], message: Any) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise TypedDataError(f"a message must be a mapping, got {type(message).__name__}")
    out: dict[str, Any] = {}
    for spec in fields:
        name = spec["name"]
        if name not in message:
            raise _fail(name, "missing")
        out[name] = _PARSERS[spec["type"]](message[name], name)
    return out


def _struct_hashes_of(name: str, fields: list[dict[str, str]]) -> Callable[[Any], list[bytes]]:
    types = {"EIP712Domain": [], name: fields}

    def struct_hashes(messages: Sequence[Mapping[str, Any]]) -> list[bytes]:
        return [
            encode_typed_data(
                full_message={
                    "types": types,
                    "primaryType": name,
                    "domain": {},
                    "message": _normalized(fields, message),
                }
            ).body
            for message in messages
        ]

    return struct_hashes


_grant_struct_hashes = _struct_hashes_of("Grant", GRANT_FIELDS)
_withdrawal_struct_hashes = _struct_hashes_of("Withdrawal", WITHDRAWAL_FIELDS)


def _check_hash32(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise TypedDataError(f"{what} must be 32 bytes")
    return value


def _typed_digest(domain_separator: bytes, struct_hash: bytes) -> bytes:
    """EIP-712 §"Specification": ``keccak256(0x1901 || domainSeparator || hashStruct)``."""
    ds = _check_hash32(domain_separator, "domain_separator")
    return _keccak256(b"\x19\x01" + ds + _check_hash32(struct_hash, "struct_hash"))


def _grant_digests(domain_separator: bytes, messages: Sequence[Mapping[str, Any]]) -> list[bytes]:
    _check_hash32(domain_separator, "domain_separator")
    return [_typed_digest(domain_separator, h) for h in _grant_struct_hashes(messages)]


def _withdrawal_digests(
    domain_separator: bytes, messages: Sequence[Mapping[str, Any]]
) -> list[bytes]:
    _check_hash32(domain_separator, "domain_separator")
    return [_typed_digest(domain_separator, h) for h in _withdrawal_struct_hashes(messages)]


def _domain_separator(
    chain_id: int,
    verifying_contract: str,
    name: str = DOMAIN_NAME,
    version: str = DOMAIN_VERSION,
) -> bytes:
    domain = {
        "name": _text(name, "name"),
        "version": _text(version, "version"),
        "chainId": _uint(256)(chain_id, "chainId"),
        "verifyingContract": _address(verifying_contract, "verifyingContract"),
    }
    signable = encode_typed_data(
        full_message={
            "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "Empty": []},
            "primaryType": "Empty",
            "domain": domain,
            "message": {},
        }
    )
    return bytes(signable.header)


def _signature_bytes(signature: Any) -> bytes | None:
    if isinstance(signature, bytes):
        return signature
    if isinstance(signature, str):
        text = signature[2:] if signature[:2] == "0x" else signature
        if not text.isascii() or not _HEX.fullmatch(text) or len(text) % 2:
            return None
        return bytes.fromhex(text)
    raise TypedDataError(f"a signature must be bytes or a hex str, got {type(signature).__name__}")


def _recover_one(digest: bytes, signature: bytes | None) -> str | None:
    if signature is None or len(signature) != 65:
        return None
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28) or not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_HALF_N:
        return None
    try:
        key = keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValidationError):
        return None
    return str(key.to_checksum_address())


def _recover_signers(digests: Sequence[bytes], signatures: Sequence[Any]) -> list[str | None]:
    digests = list(digests)
    signatures = list(signatures)
    if len(digests) != len(signatures):
        raise TypedDataError(f"{len(digests)} digests but {len(signatures)} signatures")
    for digest in digests:
        _check_hash32(digest, "a digest")
    return [_recover_one(d, _signature_bytes(s)) for d, s in zip(digests, signatures, strict=True)]


REFERENCE = SimpleNamespace(
    IMPLEMENTATION="reference",
    keccak256=_keccak256,
    typed_digest=_typed_digest,
    domain_separator=_domain_separator,
    grant_struct_hashes=_grant_struct_hashes,
    withdrawal_struct_hashes=_withdrawal_struct_hashes,
    grant_digests=_grant_digests,
    withdrawal_digests=_withdrawal_digests,
    recover_signers=_recover_signers,
)
"""The pure-Python implementation, with the same attributes as ``fastpath._eip712``."""


def implementations(reference: Any = REFERENCE) -> dict[str, Any]:
    """Every available implementation by name: ``reference``, and ``compiled`` (the module
    ``fastpath._eip712``, which also holds the compiled Merkle trees) when it was built."""
    found: dict[str, Any] = {"reference": reference}
    try:
        from fastpath import _eip712

        found["compiled"] = _eip712
    except ImportError:  # extension not built (CONSENTGATE_NO_EXTENSIONS=1)
        pass
    return found


def selected(reference: Any = REFERENCE) -> Any:
    """The implementation in use: the compiled one unless ``CONSENTGATE_PUREPYTHON`` is set
    or it was not built."""
    if os.environ.get("CONSENTGATE_PUREPYTHON"):
        return reference
    return implementations(reference).get("compiled", reference)


_impl = selected()
IMPLEMENTATION: str = _impl.IMPLEMENTATION

keccak256: Callable[[bytes], bytes] = _impl.keccak256
"""keccak-256 of ``data`` (any bytes-like object) -> 32 bytes. TypeError for non-buffers."""

typed_digest: Callable[[bytes, bytes], bytes] = _impl.typed_digest
"""``(domain_separator, struct_hash) -> keccak256(0x1901 || ds || sh)`` (EIP-712).

Raises :class:`TypedDataError` unless both are 32 ``bytes``."""

domain_separator: Callable[..., bytes] = _impl.domain_separator
"""``(chain_id, verifying_contract, name="consentgate", version="1") -> 32 bytes``:
``hashStruct(EIP712Domain)`` with the four fields of :data:`EIP712_DOMAIN_FIELDS`
(EIP-712 §"Definition of domainSeparator"). Raises :class:`TypedDataError`."""

grant_struct_hashes: Callable[[Sequence[Mapping[str, Any]]], list[bytes]] = (
    _impl.grant_struct_hashes
)
"""``hashStruct(Grant)`` (EIP-712 §"Definition of hashStruct") of each message -> list of
32 bytes, in order. Raises :class:`TypedDataError` on the first malformed message."""

withdrawal_struct_hashes: Callable[[Sequence[Mapping[str, Any]]], list[bytes]] = (
    _impl.withdrawal_struct_hashes
)
"""``hashStruct(Withdrawal)`` of each message, as :func:`grant_struct_hashes`."""

grant_digests: Callable[[bytes, Sequence[Mapping[str, Any]]], list[bytes]] = _impl.grant_digests
"""``(domain_separator, messages) -> [keccak256(0x1901 || ds || hashStruct(Grant))]``:
the digests the citizens sign, which are also the consent ids. Raises
:class:`TypedDataError`."""

withdrawal_digests: Callable[[bytes, Sequence[Mapping[str, Any]]], list[bytes]] = (
    _impl.withdrawal_digests
)
"""The Withdrawal digests, as :func:`grant_digests`."""

recover_signers: Callable[[Sequence[bytes], Sequence[Any]], list[str | None]] = (
    _impl.recover_signers
)
"""``(digests, signatures) -> [checksum address or None]``, in order.

``digests``: 32 ``bytes`` each; ``signatures``: 65 ``bytes`` ``r || s || v`` or the same
as hex ``str`` (``0x`` optional). ``None`` where the signature breaks the strict rules of
the module docstring (EIP-2 low s, v in {27, 28}) or no key recovers. Raises
:class:`TypedDataError` when the lengths differ, a digest is not 32 bytes or a signature
is neither bytes nor str. The compiled implementation releases the GIL for the batch."""


# ---- benchmark (``fastpath.eip712.bench``) ---------------------------------------------


def _race(runs: dict[str, Callable[[], int]], repeat: int) -> dict[str, float]:
    """Best rate (items per second) of each run over ``repeat`` rounds.

    The runs alternate within each round, so paired figures share the machine's load.
    Single-threaded runs are timed in CPU seconds of this process (other processes on the
    shared machine do not count); runs whose name ends in ``_wall_per_s`` or holds
    ``2threads`` on the wall clock.
    """
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeat):
        for name, run in runs.items():
            wall = "2threads" in name or name.endswith("_wall_per_s")
            clock = time.perf_counter if wall else time.process_time
            start = clock()
            count = run()
            best[name] = max(best[name], count / max(clock() - start, 1e-9))
    return best


def bench_fixture(count: int) -> tuple[bytes, list[dict[str, Any]], list[bytes], list[bytes]]:
    """``count`` Grant messages, their digests and low-s 65-byte signatures (8 keys)."""
    from coincurve import PrivateKey

    keys_ = [PrivateKey(bytes([k + 1]) * 32) for k in range(8)]
    registry = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    ds = REFERENCE.domain_separator(31337, registry)
    messages = []
    for i in range(count):
        public = keys_[i % 8].public_key.format(compressed=False)[1:]
        messages.append(
            {
                "subject": to_checksum_address(_keccak256(public)[12:]),
                "controller": registry,
                "purpose": f"loan assessment {i}",
                "piCategories": ["income", "credit_history", "identity"],
                "sensitive": i % 2 == 0,
                "thirdParties": ["credit bureau"] if i % 3 == 0 else [],
                "separateConsent": i % 2 == 0,
                "validFrom": 1_700_000_000,
                "validUntil": 1_800_000_000,
                "recordHash": "0x" + _keccak256(i.to_bytes(8, "big")).hex(),
                "nonce": str((i + 1) << 64),
                "deadline": "1700003600",
            }
        )
    digests = implementations().get("compiled", REFERENCE).grant_digests(ds, messages)
    signatures = []
    for i, digest in enumerate(digests):
        raw = keys_[i % 8].sign_recoverable(digest, hasher=None)
        signatures.append(raw[:64] + bytes([raw[64] + 27]))
    return ds, messages, digests, signatures


def bench(count: int = 2000, repeat: int = 5) -> dict[str, Any]:
    """Throughput of the EIP-712 fast path against eth-account and raw libsecp256k1.

    ``count`` signed Grants (the slow baselines run on ``count // 10``, at least 50);
    every figure is items per second, best of ``repeat`` rounds; ratios compare figures
    of the same run (DESIGN.md "Performance stance"). Keys:

    - ``recover_fast_per_s`` (compiled :func:`recover_signers`, one batch),
      ``recover_fast_2threads_per_s`` against ``recover_fast_wall_per_s`` (two threads vs
      one, both on the wall clock: the GIL is released; ``recover_2threads_vs_1`` nears 2
      only when two cores are free),
      ``recover_reference_per_s``, ``recover_eth_account_per_s``
      (``Account._recover_hash`` per digest), ``recover_raw_secp256k1_per_s``
      (coincurve's ``PublicKey.from_signature_and_message`` alone: the library as Python
      reaches it), ``recover_c_loop_per_s`` (parse + recover in a C loop, no checks, no
      address: the library's own limit); ratios ``recover_fast_vs_eth_account``,
      ``recover_fast_vs_raw``, ``recover_fast_vs_c_loop``.
    - Digest + recovery (``consentgate bench signatures``): ``fast_per_s``,
      ``eth_account_per_s`` (``encode_typed_data`` + ``Account.recover_message`` per
      grant), ``raw_recover_per_s`` (= ``recover_raw_secp256k1_per_s``), ratios
      ``fast_vs_eth_account`` (target >= 3) and ``fast_vs_raw`` (target >= 0.8).
    - ``digest_fast_per_s``, ``digest_reference_per_s``; Merkle leaves appended
      (``merkle_extend_*_per_s``) and proofs generated (``merkle_proof_*_per_s``).

    Raises RuntimeError when the compiled module is not built.
    """
    from coincurve import PublicKey
    from eth_account import Account

    from fastpath import merkle
    from fastpath.threads import on_threads

    fast = implementations().get("compiled")
    if fast is None:
        raise RuntimeError("the compiled module fastpath._eip712 is not built")
    ds, messages, digests, sigs = bench_fixture(count)
    small = max(50, count // 10)
    recid_sigs = [s[:64] + bytes([s[64] - 27]) for s in sigs]
    typed = [
        {
            "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "Grant": GRANT_FIELDS},
            "primaryType": "Grant",
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": 31337,
                "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            },
            "message": m,
        }
        for m in messages[:small]
    ]
    expected = fast.recover_signers(digests, sigs)
    if None in expected or fast.grant_digests(ds, messages[:small]) != digests[:small]:
        raise RuntimeError("benchmark fixture does not verify")

    def checked(got: list[Any], want: list[Any]) -> int:
        if got != want:
            raise RuntimeError("benchmark run returned wrong results")
        return len(got)

    def two_threads() -> int:
        halves = [(digests[0::2], sigs[0::2]), (digests[1::2], sigs[1::2])]
        return on_threads(lambda half: len(fast.recover_signers(*half)), halves)

    def raw_coincurve() -> int:
        for sig, digest in zip(recid_sigs, digests, strict=True):
            PublicKey.from_signature_and_message(sig, digest, hasher=None)
        return count

    def eth_account_recover() -> int:
        got = [
            Account._recover_hash(d, signature=s)
            for d, s in zip(digests[:small], sigs[:small], strict=True)
        ]
        return checked(got, expected[:small])

    def eth_account_full() -> int:
        got = [
            Account.recover_message(encode_typed_data(full_message=td), signature=s)
            for td, s in zip(typed, sigs[:small], strict=True)
        ]
        return checked(got, expected[:small])

    def fast_full() -> int:
        return checked(fast.recover_signers(fast.grant_digests(ds, messages), sigs), expected)

    leaves = [merkle.leaf_hash(d) for d in digests] * 8
    ref_tree = merkle.REFERENCE.IncrementalTree(leaves[:small])
    fast_tree = fast.IncrementalTree(leaves)
    out: dict[str, Any] = {"count": count, "implementation": fast.IMPLEMENTATION}
    out.update(
        _race(
            {
                "recover_fast_per_s": lambda: checked(
                    fast.recover_signers(digests, sigs), expected
                ),
                "recover_fast_wall_per_s": lambda: len(fast.recover_signers(digests, sigs)),
                "recover_fast_2threads_per_s": two_threads,
                "recover_raw_secp256k1_per_s": raw_coincurve,
                "recover_c_loop_per_s": lambda: fast.raw_recover(digests, sigs),
                "recover_eth_account_per_s": eth_account_recover,
                "recover_reference_per_s": lambda: checked(
                    REFERENCE.recover_signers(digests[:small], sigs[:small]), expected[:small]
                ),
                "fast_per_s": fast_full,
                "eth_account_per_s": eth_account_full,
                "digest_fast_per_s": lambda: len(fast.grant_digests(ds, messages)),
                "digest_reference_per_s": lambda: len(
                    REFERENCE.grant_digests(ds, messages[:small])
                ),
                "merkle_extend_fast_per_s": lambda: fast.IncrementalTree(leaves).size,
                "merkle_extend_reference_per_s": lambda: (
                    merkle.REFERENCE.IncrementalTree(leaves[:small]).size
                ),
                "merkle_proof_fast_per_s": lambda: len(fast_tree.proofs(range(count))),
                "merkle_proof_reference_per_s": lambda: len(ref_tree.proofs(range(small))),
            },
            repeat,
        )
    )
    out["raw_recover_per_s"] = out["recover_raw_secp256k1_per_s"]
    pairs = {
        "recover_fast_vs_eth_account": ("recover_fast_per_s", "recover_eth_account_per_s"),
        "recover_fast_vs_raw": ("recover_fast_per_s", "recover_raw_secp256k1_per_s"),
        "recover_fast_vs_c_loop": ("recover_fast_per_s", "recover_c_loop_per_s"),
        "recover_2threads_vs_1": ("recover_fast_2threads_per_s", "recover_fast_wall_per_s"),
        "fast_vs_eth_account": ("fast_per_s", "eth_account_per_s"),
        "fast_vs_raw": ("fast_per_s", "raw_recover_per_s"),
        "digest_fast_vs_reference": ("digest_fast_per_s", "digest_reference_per_s"),
        "merkle_extend_fast_vs_reference": (
            "merkle_extend_fast_per_s",
            "merkle_extend_reference_per_s",
        ),
    }
    for key, (num, den) in pairs.items():
        out[key] = round(out[num] / out[den], 3)
    for key, value in out.items():
        if key.endswith("_per_s"):
            out[key] = round(value, 1)
    return out
