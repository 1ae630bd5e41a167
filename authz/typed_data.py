"""EIP-712 typed data for consent grants and withdrawals, and strict signature checks.

The types here are the contract: ``contracts/src`` declares the same type strings, and a
test checks that the registry's ``grantTypehash()`` equals the hash of :data:`GRANT_TYPE`.
Digests follow EIP-712 §"Specification of the eth_signTypedData JSON RPC": ``keccak256(
"\\x19\\x01" || domainSeparator || hashStruct(message))``, computed by eth-account.
Signature rules follow what the registry enforces on chain (OpenZeppelin ``ECDSA``):
exactly 65 bytes ``r || s || v``, ``v`` in {27, 28}, ``s`` in the lower half of the curve
order (EIP-2), ``r`` and ``s`` non-zero.
"""

from __future__ import annotations

from typing import Any

from eth_account.messages import encode_typed_data
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

from authz.errors import InvalidSignature

DOMAIN_NAME = "consentgate"
DOMAIN_VERSION = "1"

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2

EIP712_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
GRANT_FIELDS = [
    {"name": "subject", "type": "address"},
    {"name": "controller", "type": "address"},
    {"name": "purpose", "type": "string"},
    {"name": "piCategories", "type": "string[]"},
    {"name": "sensitive", "type": "bool"},
    {"name": "thirdParties", "type": "string[]"},
    {"name": "separateConsent", "type": "bool"},
    {"name": "validFrom", "type": "uint64"},
    {"name": "validUntil", "type": "uint64"},
    {"name": "recordHash", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
WITHDRAWAL_FIELDS = [
    {"name": "consentId", "type": "bytes32"},
    {"name": "subject", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def _type_string(name: str, fields: list[dict[str, str]]) -> str:
    return f"{name}({','.join(f['type'] + ' ' + f['name'] for f in fields)})"


GRANT_TYPE = _type_string("Grant", GRANT_FIELDS)
WITHDRAWAL_TYPE = _type_string("Withdrawal", WITHDRAWAL_FIELDS)


def domain(chain_id: int, verifying_contract: str) -> dict[str, Any]:
    """The EIP-712 domain of the consent registry: bound to chain id and contract address."""
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(verifying_contract),
    }


def grant_typed_data(chain_id: int, registry: str, message: dict[str, Any]) -> dict[str, Any]:
    """The ``eth_signTypedData_v4`` document for a Grant.

    ``message`` holds the :data:`GRANT_FIELDS`; ``nonce`` and ``deadline`` (uint256) are
    rendered as decimal strings so JavaScript wallets keep their precision; times are
    Unix seconds.
    """
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "Grant": GRANT_FIELDS},
        "primaryType": "Grant",
        "domain": domain(chain_id, registry),
        "message": message,
    }


def withdrawal_typed_data(chain_id: int, registry: str, message: dict[str, Any]) -> dict[str, Any]:
    """The ``eth_signTypedData_v4`` document for a Withdrawal (fields :data:`WITHDRAWAL_FIELDS`)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "Withdrawal": WITHDRAWAL_FIELDS},
        "primaryType": "Withdrawal",
        "domain": domain(chain_id, registry),
        "message": message,
    }


def digest(typed_data: dict[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest that is signed (``keccak256(0x1901 || domain || struct)``)."""
    signable = encode_typed_data(full_message=typed_data)
    return keccak(b"\x19\x01" + signable.header + signable.body)


def parse_signature(signature: str | bytes) -> tuple[int, int, int]:
    """Parse a 65-byte ``r || s || v`` signature (hex with 0x, or bytes) strictly.

    Returns ``(v, r, s)``. Raises :class:`InvalidSignature` with code
    ``signature_malformed`` (not hex / not 65 bytes), ``signature_bad_v`` (v not 27/28)
    or ``signature_high_s`` (EIP-2: s > n/2), ``signature_malformed`` for r or s out of
    range.
    """
    if isinstance(signature, str):
        text = signature[2:] if signature[:2] in ("0x", "0X") else signature
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise InvalidSignature("signature is not hex", code="signature_malformed") from None
    else:
        raw = bytes(signature)
    if len(raw) != 65:
        raise InvalidSignature(
            f"signature must be 65 bytes (r || s || v), got {len(raw)}", code="signature_malformed"
        )
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:64], "big")
    v = raw[64]
    if v not in (27, 28):
        raise InvalidSignature(f"v must be 27 or 28, got {v}", code="signature_bad_v")
    if not (0 < r < SECP256K1_N) or s == 0:
        raise InvalidSignature("r or s out of range", code="signature_malformed")
    if s > SECP256K1_HALF_N:
        raise InvalidSignature(
            "s is in the upper half of the curve order (EIP-2)", code="signature_high_s"
        )
    return v, r, s


def normalize_signature(signature: str | bytes) -> str:
    """The canonical text of a valid signature: ``0x`` + 130 lower-case hex digits.

    Raises :class:`InvalidSignature` like :func:`parse_signature`.
    """
    v, r, s = parse_signature(signature)
    return "0x" + (r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])).hex()


def recover_signer(digest32: bytes, signature: str | bytes) -> str:
    """Recover the checksum address that signed ``digest32`` (strict, see :func:`parse_signature`).

    Raises :class:`InvalidSignature` (``signature_malformed`` when no key recovers).
    """
    v, r, s = parse_signature(signature)
    try:
        sig = keys.Signature(vrs=(v - 27, r, s))
        return sig.recover_public_key_from_msg_hash(digest32).to_checksum_address()
    except Exception as exc:  # eth-keys raises BadSignature / ValidationError
        raise InvalidSignature(
            "no public key recovers from this signature", code="signature_malformed"
        ) from exc
