"""Pieces both implementations share: zlib stage, Sig_structure, library signature checks."""

from __future__ import annotations

import zlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from fastpath.tokens.codes import MAX_INFLATED_BYTES
from fastpath.tokens.trust import TrustKey


def inflate(data: bytes) -> bytes | str:
    """The ``zlib`` stage (RFC 1950): inflated bytes, or a reason code string.

    ``zlib_invalid`` (corrupt or truncated stream), ``zlib_trailing`` (bytes after the
    stream's end), ``zlib_too_large`` (more than MAX_INFLATED_BYTES out).
    """
    engine = zlib.decompressobj()
    try:
        out = engine.decompress(data, MAX_INFLATED_BYTES + 1)
    except zlib.error:
        return "zlib_invalid"
    if len(out) > MAX_INFLATED_BYTES:
        return "zlib_too_large"
    if not engine.eof:
        return "zlib_invalid"
    if engine.unused_data:
        return "zlib_trailing"
    return out


def _bstr_head(n: int) -> bytes:
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    return b"\x5a" + n.to_bytes(4, "big")


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """ToBeSigned of COSE_Sign1 (RFC 9052 section 4.4), empty external_aad:
    ``["Signature1", protected, h'', payload]`` in deterministic CBOR."""
    return b"".join(
        (
            b"\x84\x6aSignature1",
            _bstr_head(len(protected)),
            protected,
            b"\x40",
            _bstr_head(len(payload)),
            payload,
        )
    )


def signature_length(key: TrustKey) -> int:
    """Bytes a COSE signature must have for this key: 64 for EdDSA and ES256 (raw r||s,
    RFC 9053 section 2.1), the modulus size for PS256 (RFC 8230 section 2)."""
    if key.alg == "PS256":
        return (key.public_key.key_size + 7) // 8
    return 64


def library_verify(key: TrustKey, message: bytes, signature: bytes) -> bool:
    """Check one signature with a library: Ed25519 through libsodium (PyNaCl), ES256
    (ECDSA P-256 / SHA-256) and PS256 (RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt)
    through OpenSSL (``cryptography``). The length was checked by the caller."""
    if key.alg == "EdDSA":
        try:
            VerifyKey(key.raw).verify(message, signature)
        except BadSignatureError:
            return False
        return True
    try:
        if key.alg == "ES256":
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            key.public_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        else:
            key.public_key.verify(
                signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
    except InvalidSignature:
        return False
    return True
