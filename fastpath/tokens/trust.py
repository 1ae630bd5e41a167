"""Trust lists: the signer keys a gate accepts, by key id.

A key id (kid) may be shared by several keys (issuers do reuse them; the EU DCC kid is
only 8 bytes): the verifier tries every key with the kid, in list order (RFC 9052
section 3.1 says kid is a hint, not a unique name).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from fastpath.errors import TrustListError

SUPPORTED_ALGS = ("EdDSA", "ES256", "PS256")


@dataclass(frozen=True)
class TrustKey:
    """One trusted signer key.

    ``kid``: key id bytes. ``alg``: "EdDSA" (Ed25519), "ES256" (P-256), "PS256" (RSA) or
    a descriptive unsupported name (e.g. "EC-secp384r1") that matches no COSE alg.
    ``public_key``: the ``cryptography`` public key object. ``raw``: 32 raw bytes for
    Ed25519, SubjectPublicKeyInfo DER otherwise. ``not_before`` / ``not_after``: the
    key's validity window as POSIX seconds (UTC), None when unbounded; a token's iat
    must not precede it and its exp must not follow it.
    """

    kid: bytes
    alg: str
    public_key: Any = field(repr=False, compare=False)
    raw: bytes = field(repr=False)
    not_before: float | None = None
    not_after: float | None = None


def _alg_of(public_key: Any) -> tuple[str, bytes]:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "EdDSA", raw
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, ec.SECP256R1):
            return "ES256", spki
        return f"EC-{public_key.curve.name}", spki
    if isinstance(public_key, rsa.RSAPublicKey):
        return "PS256", spki
    return type(public_key).__name__, spki


def key_from_public(
    kid: bytes,
    public_key: Any,
    not_before: float | None = None,
    not_after: float | None = None,
) -> TrustKey:
    """Wrap a ``cryptography`` public key (Ed25519, EC, RSA) as a :class:`TrustKey`."""
    alg, raw = _alg_of(public_key)
    return TrustKey(bytes(kid), alg, public_key, raw, not_before, not_after)


def dcc_kid(cert_der: bytes) -> bytes:
    """EU DCC key id: the first 8 bytes of SHA-256 over the certificate's DER."""
    return hashlib.sha256(cert_der).digest()[:8]


def key_from_certificate(cert_der: bytes, kid: bytes | None = None) -> TrustKey:
    """Trust the key of an X.509 certificate (DER); kid defaults to :func:`dcc_kid`.

    The certificate's notBefore/notAfter become the key's validity window. Raises
    :class:`TrustListError` when the bytes are not a certificate.
    """
    from cryptography import x509  # here: its import is a third of a gate's start-up

    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError as exc:
        raise TrustListError(f"not an X.509 DER certificate: {exc}", "certificate_invalid") from exc
    return key_from_public(
        dcc_kid(cert_der) if kid is None else kid,
        cert.public_key(),
        cert.not_valid_before_utc.timestamp(),
        cert.not_valid_after_utc.timestamp(),
    )


def parse_time(text: str) -> float:
    """RFC 3339 / ISO 8601 date-time -> POSIX seconds; no offset means UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if len(value) >= 5 and value[-5] in "+-" and value[-4:].isdigit() and value[-6] != ":":
        value = value[:-2] + ":" + value[-2:]  # +0200 -> +02:00
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise TrustListError(f"not an RFC 3339 time: {text!r}", "time_invalid") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def key_from_spec(spec: Mapping[str, Any]) -> TrustKey:
    """A trust key from its JSON form (``trust_keys`` in the JSONL input).

    ``{"kid": hex, "public_key": base64 (32 raw Ed25519 bytes, or SubjectPublicKeyInfo
    DER), "not_before": RFC 3339 (optional), "not_after": RFC 3339 (optional)}``.
    """
    try:
        kid = bytes.fromhex(spec["kid"])
        material = base64.b64decode(spec["public_key"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise TrustListError(f"bad trust key entry: {exc}", "trust_key_invalid") from exc
    try:
        if len(material) == 32:
            public: Any = ed25519.Ed25519PublicKey.from_public_bytes(material)
        else:
            public = serialization.load_der_public_key(material)
    except ValueError as exc:
        raise TrustListError(f"bad public key: {exc}", "trust_key_invalid") from exc
    nb = spec.get("not_before")
    na = spec.get("not_after")
    return key_from_public(
        kid,
        public,
        None if nb is None else parse_time(nb),
        None if na is None else parse_time(na),
    )


def _certificate_der(text: Any) -> bytes:
    """Base64 DER (line breaks allowed) or a PEM block -> DER bytes."""
    if not isinstance(text, str):
        raise TrustListError("a certificate must be a base64 string", "certificate_invalid")
    if "-----BEGIN" in text:
        from cryptography import x509

        try:
            cert = x509.load_pem_x509_certificate(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise TrustListError(f"bad PEM certificate: {exc}", "certificate_invalid") from exc
        return cert.public_bytes(serialization.Encoding.DER)
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TrustListError(f"bad base64 certificate: {exc}", "certificate_invalid") from exc


class TrustList:
    """An ordered, immutable collection of :class:`TrustKey`, looked up by kid."""

    def __init__(self, keys: Iterable[TrustKey] = ()) -> None:
        self.keys: tuple[TrustKey, ...] = tuple(keys)
        by_kid: dict[bytes, list[TrustKey]] = {}
        for key in self.keys:
            by_kid.setdefault(key.kid, []).append(key)
        self._by_kid = {kid: tuple(keys) for kid, keys in by_kid.items()}

    def lookup(self, kid: bytes) -> tuple[TrustKey, ...]:
        """Every key with this kid, in list order (empty when unknown)."""
        return self._by_kid.get(kid, ())

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TrustList:
        """From ``{"trust_certs": [base64 DER or PEM], "trust_keys": [spec]}`` (both
        optional; see :func:`key_from_spec`). Raises :class:`TrustListError`."""
        keys: list[TrustKey] = []
        for text in doc.get("trust_certs") or ():
            keys.append(key_from_certificate(_certificate_der(text)))
        keys.extend(key_from_spec(spec) for spec in doc.get("trust_keys") or ())
        return cls(keys)
