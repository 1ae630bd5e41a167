"""Issuance: issuer keys, device certificates, ``SC1:`` and ``HC1:`` tokens.

Used by the service (the issuer side), by tests and by load tests. Times are POSIX
seconds (UTC) as CWT NumericDate (RFC 8392 section 2).
"""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from nacl.signing import SigningKey

from fastpath.errors import IssuanceError
from fastpath.tokens import codes
from fastpath.tokens.base45 import b45encode
from fastpath.tokens.common import sig_structure
from fastpath.tokens.trust import TrustKey, dcc_kid, key_from_certificate, key_from_public

Signer = Callable[[bytes], bytes]


def sign1(
    claims: Mapping[Any, Any] | bytes,
    signer: Signer,
    *,
    protected: Mapping[int, Any],
    unprotected: Mapping[int, Any] | None = None,
    tag: str = "18",
) -> bytes:
    """A COSE_Sign1 (RFC 9052 section 4.2) over a CWT claims map (or raw payload bytes).

    ``signer`` maps the ToBeSigned bytes to the raw signature. ``tag``: "18"
    (COSE_Sign1_Tagged), "61" (CWT tag around tag 18) or "" (untagged).
    """
    payload = claims if isinstance(claims, bytes) else cbor2.dumps(dict(claims))
    prot = cbor2.dumps(dict(protected)) if protected else b""
    body = [prot, dict(unprotected or {}), payload, signer(sig_structure(prot, payload))]
    if tag == "":
        return cbor2.dumps(body)
    if tag == "18":
        return cbor2.dumps(cbor2.CBORTag(18, body))
    if tag == "61":
        return cbor2.dumps(cbor2.CBORTag(61, cbor2.CBORTag(18, body)))
    raise IssuanceError(f"unknown tag form {tag!r}")


@dataclass
class IssuerKey:
    """An issuer signing key for device certificates (EdDSA by default, or ES256)."""

    kid: bytes
    alg: str
    private: Any

    @classmethod
    def generate(cls, alg: str = "EdDSA", kid: bytes | None = None) -> IssuerKey:
        """New random key; kid defaults to the first 8 bytes of SHA-256(public key)."""
        if alg == "EdDSA":
            private: Any = SigningKey.generate()
            public = bytes(private.verify_key)
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
            public = private.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        else:
            raise IssuanceError(f"unsupported issuer alg {alg!r}")
        return cls(hashlib.sha256(public).digest()[:8] if kid is None else kid, alg, private)

    @property
    def cose_alg(self) -> int:
        """COSE alg identifier (-8 EdDSA, -7 ES256)."""
        return codes.ALG_EDDSA if self.alg == "EdDSA" else codes.ALG_ES256

    def sign(self, message: bytes) -> bytes:
        """Raw COSE signature: 64 bytes (Ed25519, or ES256 r||s)."""
        if self.alg == "EdDSA":
            return self.private.sign(message).signature
        r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def trust_key(
        self, not_before: float | None = None, not_after: float | None = None
    ) -> TrustKey:
        """The trust-list entry a gate needs for this issuer."""
        if self.alg == "EdDSA":
            from cryptography.hazmat.primitives.asymmetric import ed25519

            public: Any = ed25519.Ed25519PublicKey.from_public_bytes(bytes(self.private.verify_key))
        else:
            public = self.private.public_key()
        return key_from_public(self.kid, public, not_before, not_after)


@dataclass
class DeviceKey:
    """The phone's Ed25519 key (never leaves the device)."""

    private: SigningKey

    @classmethod
    def generate(cls) -> DeviceKey:
        """New random device key."""
        return cls(SigningKey.generate())

    @property
    def public(self) -> bytes:
        """32-byte Ed25519 public key."""
        return bytes(self.private.verify_key)

    def sign(self, message: bytes) -> bytes:
        """64-byte Ed25519 signature."""
        return self.private.sign(message).signature


def issue_device_cert(
    issuer: IssuerKey,
    device_public: bytes,
    sub: bytes,
    status_index: int,
    *,
    iat: float,
    exp: float,
    nbf: float | None = None,
) -> bytes:
    """Issuer-signed device certificate (a CWT in COSE_Sign1, tag 18).

    Claims: sub (card pseudonym bytes, 1..64), iat, exp, nbf (optional), cnf = {1:
    COSE_Key OKP/Ed25519 x} (RFC 8747 section 3.2), status index (claim -65538).
    """
    if len(device_public) != 32 or not 1 <= len(sub) <= codes.MAX_SUB_BYTES:
        raise IssuanceError("device key must be 32 bytes and sub 1..64 bytes")
    claims: dict[int, Any] = {
        codes.CLAIM_SUB: sub,
        codes.CLAIM_EXP: exp,
        codes.CLAIM_IAT: iat,
        codes.CLAIM_CNF: {1: {1: 1, -1: 6, -2: device_public}},
        codes.CLAIM_SC1_STATUS_INDEX: status_index,
    }
    if nbf is not None:
        claims[codes.CLAIM_NBF] = nbf
    return sign1(claims, issuer.sign, protected={1: issuer.cose_alg, 4: issuer.kid})


def sign_sc1(
    device: DeviceKey,
    cert: bytes,
    *,
    iat: float | None = None,
    lifetime: float = 60,
    cti: bytes | None = None,
) -> str:
    """An ``SC1:`` code: base45 of a COSE_Sign1 (EdDSA, device key) over {iat, exp, cti,
    device certificate}; no compression. iat defaults to now (int seconds), cti to 16
    random bytes (the one-time nonce)."""
    now = int(time.time()) if iat is None else iat
    claims = {
        codes.CLAIM_EXP: now + lifetime,
        codes.CLAIM_IAT: now,
        codes.CLAIM_CTI: os.urandom(16) if cti is None else cti,
        codes.CLAIM_SC1_DEVICE_CERT: cert,
    }
    return codes.PREFIX_SC1 + b45encode(sign1(claims, device.sign, protected={1: codes.ALG_EDDSA}))


@dataclass
class HC1Signer:
    """A DCC document signer: private key plus its self-signed X.509 certificate (DER)."""

    alg: str
    private: Any
    cert_der: bytes

    @classmethod
    def generate(
        cls,
        alg: str = "ES256",
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> HC1Signer:
        """New key (P-256 for ES256, RSA-2048 for PS256) and certificate."""
        if alg == "ES256":
            private: Any = ec.generate_private_key(ec.SECP256R1())
        elif alg == "PS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise IssuanceError(f"unsupported DCC alg {alg!r}")
        start = not_before or datetime(2020, 1, 1, tzinfo=UTC)
        end = not_after or start + timedelta(days=3650)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "consentgate test DSC")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .sign(private, hashes.SHA256())
        )
        return cls(alg, private, cert.public_bytes(serialization.Encoding.DER))

    @property
    def kid(self) -> bytes:
        """First 8 bytes of SHA-256 over the certificate DER."""
        return dcc_kid(self.cert_der)

    def trust_key(self) -> TrustKey:
        """Trust-list entry from the certificate."""
        return key_from_certificate(self.cert_der)

    def sign(self, message: bytes) -> bytes:
        """Raw COSE signature (ES256 r||s, or PS256 with a 32-byte salt)."""
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.private.sign(
            message,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )

    def sign_cose(self, claims: Mapping[Any, Any]) -> bytes:
        """COSE_Sign1 bytes (kid and alg protected)."""
        alg = codes.ALG_ES256 if self.alg == "ES256" else codes.ALG_PS256
        return sign1(claims, self.sign, protected={1: alg, 4: self.kid})


def hc1_text(cose: bytes) -> str:
    """``HC1:`` + base45(zlib(COSE_Sign1))."""
    return codes.PREFIX_HC1 + b45encode(zlib.compress(cose, 9))


def sign_hc1(signer: HC1Signer, *, iat: float, exp: float, hcert: Any = None) -> str:
    """A DCC ``HC1:`` code with claims iss, iat, exp and hcert (-260: {1: hcert})."""
    body = hcert if hcert is not None else {"ver": "1.3.0", "nam": {"fn": "Test", "gn": "A"}}
    claims = {1: "XX", codes.CLAIM_IAT: iat, codes.CLAIM_EXP: exp, -260: {1: body}}
    return hc1_text(signer.sign_cose(claims))
