"""Pure-Python reference of the QR token verifier (the compiled module mirrors it).

Stages (names in :mod:`fastpath.tokens.codes`): prefix -> base45 -> zlib (HC1) -> cose
-> kid -> signature -> time -> revocation (SC1) -> replay (SC1).
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from fastpath.tokens import cbor, codes
from fastpath.tokens.base45 import Base45Error, b45decode
from fastpath.tokens.codes import ALG_EDDSA, ALG_NAMES, CERT_PREFIX
from fastpath.tokens.common import inflate, library_verify, sig_structure, signature_length
from fastpath.tokens.result import Result
from fastpath.tokens.status import StatusList
from fastpath.tokens.trust import TrustKey, TrustList

IMPLEMENTATION = "reference"
_MISSING: Any = object()


class _Fail(Exception):
    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


class _Sign1(NamedTuple):
    protected_bytes: bytes
    protected: dict[Any, Any]
    unprotected: dict[Any, Any]
    payload: bytes
    signature: bytes
    claims: dict[Any, Any]


class _Cert(NamedTuple):
    device_key: bytes
    status_index: int
    iat: float | None
    nbf: float | None
    exp: float
    signer: TrustKey
    kid: bytes


def _loads_checked(data: bytes, prefix: str, *, cose_top: bool = False) -> Any:
    try:
        return cbor.decode(data, cose_top=cose_top)
    except cbor.CborError as exc:
        raise _Fail("cose", prefix + exc.reason) from None


def _parse_sign1(data: bytes, prefix: str) -> _Sign1:
    """COSE_Sign1 (RFC 9052 section 4.2) whose payload is a CWT claims map (RFC 8392)."""
    obj = _loads_checked(data, prefix, cose_top=True)
    if type(obj) is not list or len(obj) != 4:
        raise _Fail("cose", prefix + "cose_structure")
    protected_bytes, unprotected, payload, signature = obj
    if type(protected_bytes) is not bytes or type(unprotected) is not dict:
        raise _Fail("cose", prefix + "cose_structure")
    if payload is None:
        raise _Fail("cose", prefix + "cose_detached_payload")
    if type(payload) is not bytes or type(signature) is not bytes:
        raise _Fail("cose", prefix + "cose_structure")
    protected: Any = {}
    if protected_bytes:
        protected = _loads_checked(protected_bytes, prefix)
        if type(protected) is not dict:
            raise _Fail("cose", prefix + "cose_header")
    claims = _loads_checked(payload, prefix)
    if type(claims) is not dict:
        raise _Fail("cose", prefix + "claims_not_map")
    return _Sign1(protected_bytes, protected, unprotected, payload, signature, claims)


def _header(sign1: _Sign1, label: int) -> Any:
    """A header parameter: the protected bucket wins, else the unprotected one."""
    if label in sign1.protected:
        return sign1.protected[label]
    return sign1.unprotected.get(label, _MISSING)


def _numeric_date(claims: dict[Any, Any], label: int, required: bool, prefix: str) -> float | None:
    """NumericDate claim (RFC 8392 section 2): an integer within +-2**53 or a finite float."""
    value = claims.get(label, _MISSING)
    if value is _MISSING:
        if required:
            raise _Fail("cose", prefix + "claim_missing")
        return None
    if type(value) is int and -codes.MAX_SAFE_INT <= value <= codes.MAX_SAFE_INT:
        return float(value)
    if type(value) is float and math.isfinite(value):
        return value
    raise _Fail("cose", prefix + "claim_type")


def _bytes_claim(claims: dict[Any, Any], label: int, limit: int, prefix: str) -> bytes:
    value = claims.get(label, _MISSING)
    if value is _MISSING:
        raise _Fail("cose", prefix + "claim_missing")
    if type(value) is not bytes or not 1 <= len(value) <= limit:
        raise _Fail("cose", prefix + "claim_type")
    return value


def _device_key(claims: dict[Any, Any]) -> bytes:
    """The Ed25519 key confirmed by ``cnf`` (RFC 8747 section 3.2, COSE_Key RFC 9053)."""
    cnf = claims.get(codes.CLAIM_CNF, _MISSING)
    if cnf is _MISSING:
        raise _Fail("cose", CERT_PREFIX + "claim_missing")
    cose_key = cnf.get(1, _MISSING) if type(cnf) is dict else _MISSING
    if type(cose_key) is not dict:
        raise _Fail("cose", CERT_PREFIX + "cnf_invalid")
    kty = cose_key.get(1, _MISSING)
    crv = cose_key.get(-1, _MISSING)
    x = cose_key.get(-2, _MISSING)
    if type(kty) is not int or kty != 1 or type(crv) is not int or crv != 6:
        raise _Fail("cose", CERT_PREFIX + "cnf_invalid")
    if type(x) is not bytes or len(x) != 32:
        raise _Fail("cose", CERT_PREFIX + "cnf_invalid")
    return x


def _verify_with(sign1: _Sign1, keys: Sequence[TrustKey], prefix: str) -> TrustKey:
    """Try every key with the kid whose algorithm matches the header ``alg``."""
    alg = _header(sign1, 1)
    if alg is _MISSING:
        raise _Fail("signature", prefix + "alg_missing")
    if type(alg) is not int or alg not in ALG_NAMES:
        raise _Fail("signature", prefix + "alg_unsupported")
    name = ALG_NAMES[alg]
    candidates = [k for k in keys if k.alg == name]
    if not candidates:
        raise _Fail("signature", prefix + "alg_key_mismatch")
    message = sig_structure(sign1.protected_bytes, sign1.payload)
    tried = False
    for key in candidates:
        if len(sign1.signature) != signature_length(key):
            continue
        tried = True
        if library_verify(key, message, sign1.signature):
            return key
    raise _Fail("signature", prefix + ("signature_invalid" if tried else "signature_encoding"))


def _check_time(
    now: float,
    skew: float,
    iat: float | None,
    nbf: float | None,
    exp: float | None,
    key: TrustKey | None,
    prefix: str,
) -> None:
    """RFC 8392 sections 3.1.4-3.1.6 with ``skew`` seconds of tolerance (inclusive
    bounds), then the signer key's window: not_before <= iat and exp <= not_after."""
    if iat is not None and iat > now + skew:
        raise _Fail("time", prefix + "iat_in_future")
    if nbf is not None and nbf > now + skew:
        raise _Fail("time", prefix + "not_yet_valid")
    if exp is None:
        raise _Fail("time", prefix + "exp_missing")
    if exp < now - skew:
        raise _Fail("time", prefix + "expired")
    if key is None:
        return
    if key.not_before is not None and iat is not None and iat < key.not_before:
        raise _Fail("time", prefix + "key_not_yet_valid")
    if key.not_after is not None and exp > key.not_after:
        raise _Fail("time", prefix + "key_expired")


class ReplayCache:
    """Bounded set of seen ``cti`` values, each kept until its token's ``exp``.

    When ``capacity`` entries are held, entries whose exp is before ``now - skew`` are
    dropped; if none can be dropped the scan is refused (``replay_cache_full``: fail
    closed). Memory: the compiled module's table costs 80 bytes per entry of capacity
    (a 40-byte slot — 32-byte key, 8-byte exp — at load factor <= 0.5).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: dict[bytes, float] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, cti: bytes, exp: float, now: float | None, skew: float) -> str | None:
        """Record cti; return a reason code when it must be refused, else None."""
        if cti in self._seen:
            return "replayed"
        if len(self._seen) >= self.capacity:
            if now is not None:
                limit = now - skew
                self._seen = {k: v for k, v in self._seen.items() if not v < limit}
            if len(self._seen) >= self.capacity:
                return "replay_cache_full"
        self._seen[cti] = exp
        return None


class Verifier:
    """Verify scanned codes of one profile against a trust list.

    ``trust``: signer keys (for SC1 the issuers of device certificates). ``profile``:
    "sc1" (``SC1:`` text), "dcc" (``HC1:`` text) or "cwt" (raw COSE_Sign1 bytes, generic
    CWT rules, starting at the ``cose`` stage). ``skew``: seconds of clock tolerance on
    iat/nbf/exp. ``status``: SC1 revocation bitstring (None: no revocation stage).
    ``replay_capacity``: maximum cti values remembered (SC1). ``cert_cache_capacity``:
    verified device certificates
    remembered by SHA-256 of their bytes (cleared when full).
    """

    implementation = IMPLEMENTATION

    def __init__(
        self,
        trust: TrustList,
        *,
        profile: str = "sc1",
        skew: float = 0.0,
        status: StatusList | None = None,
        replay_capacity: int = 100_000,
        cert_cache_capacity: int = 10_000,
    ) -> None:
        if profile not in codes.PROFILES:
            raise ValueError(f"unknown profile {profile!r}")
        self.trust = trust
        self.profile = profile
        self.prefix = codes.PROFILES[profile]
        self.skew = float(skew)
        self.status = status
        self.replay = ReplayCache(replay_capacity)
        self.cert_cache_capacity = cert_cache_capacity
        self._certs: dict[bytes, _Cert] = {}

    def __len__(self) -> int:
        return len(self.replay)

    def memory(self) -> dict[str, float]:
        """Approximate bytes held by the caches (Python objects, measured now).

        Same keys as the compiled module's; the reference's dicts grow with use, so the
        per-entry figures are for the entries held (about 170 bytes per replay entry).
        """
        seen = self.replay._seen
        replay = sys.getsizeof(seen) + sum(sys.getsizeof(k) + 24 for k in seen)
        certs = sys.getsizeof(self._certs) + sum(
            sys.getsizeof(k) + sys.getsizeof(v) + 200 for k, v in self._certs.items()
        )
        return {
            "replay_entries": len(seen),
            "replay_bytes": replay,
            "replay_bytes_per_entry": replay / max(1, len(seen)),
            "cert_cache_bytes": certs,
            "cert_cache_bytes_per_entry": certs / max(1, len(self._certs)),
        }

    def verify_batch(self, qrs: Sequence[Any], at: float | None = None) -> list[Result]:
        """Verify many codes in order (same results as calling :meth:`verify` on each)."""
        return [self.verify(qr, at) for qr in qrs]

    def verify(self, qr: Any, at: float | None = None) -> Result:
        """Run every stage on one scanned text; ``at`` is the clock (POSIX seconds, UTC)
        or None to skip the ``time`` stage. Never raises on any input."""
        state: dict[str, Any] = {"kid": None, "payload": None}
        try:
            self._run(qr, None if at is None else float(at), state)
        except _Fail as fail:
            return Result(
                False, fail.stage, fail.reason, state["kid"], self.profile, state["payload"]
            )
        return Result(True, codes.STAGE_OK, "ok", state["kid"], self.profile, state["payload"])

    def _run(self, qr: Any, now: float | None, state: dict[str, Any]) -> None:
        if self.profile == "cwt":
            if type(qr) is not bytes:
                raise _Fail("prefix", "not_text")
            data = qr
        else:
            data = self._unwrap(qr)
        sign1 = _parse_sign1(data, "")
        claims = sign1.claims
        sc1 = self.profile == "sc1"
        exp = _numeric_date(claims, codes.CLAIM_EXP, sc1, "")
        nbf = _numeric_date(claims, codes.CLAIM_NBF, False, "")
        iat = _numeric_date(claims, codes.CLAIM_IAT, sc1, "")
        if not sc1:
            if self.profile == "dcc":
                hcert = claims.get(codes.CLAIM_HCERT, _MISSING)
                if hcert is _MISSING:
                    raise _Fail("cose", "claim_missing")
                if type(hcert) is not dict or type(hcert.get(1)) is not dict:
                    raise _Fail("cose", "claim_type")
            state["payload"] = sign1.payload
            key = self._kid_and_signature(sign1, state)
            if now is not None:
                _check_time(now, self.skew, iat, nbf, exp, key, "")
            return
        cti = _bytes_claim(claims, codes.CLAIM_CTI, codes.MAX_CTI_BYTES, "")
        cert_bytes = claims.get(codes.CLAIM_SC1_DEVICE_CERT, _MISSING)
        if cert_bytes is _MISSING:
            raise _Fail("cose", "claim_missing")
        if type(cert_bytes) is not bytes:
            raise _Fail("cose", "claim_type")
        digest = hashlib.sha256(cert_bytes).digest()
        cert = self._certs.get(digest)
        if cert is None:
            cert = self._check_cert(cert_bytes, sign1, state)
            if len(self._certs) >= self.cert_cache_capacity:
                self._certs.clear()
            self._certs[digest] = cert
        else:
            state["payload"] = sign1.payload
            state["kid"] = cert.kid.hex()
        # signature: the device key (cnf) over the token
        alg = _header(sign1, 1)
        if alg is _MISSING:
            raise _Fail("signature", "alg_missing")
        if type(alg) is not int or alg not in ALG_NAMES:
            raise _Fail("signature", "alg_unsupported")
        if alg != ALG_EDDSA:
            raise _Fail("signature", "alg_key_mismatch")
        if len(sign1.signature) != 64:
            raise _Fail("signature", "signature_encoding")
        device = TrustKey(b"", "EdDSA", None, cert.device_key)
        if not library_verify(
            device, sig_structure(sign1.protected_bytes, sign1.payload), sign1.signature
        ):
            raise _Fail("signature", "signature_invalid")
        if now is not None:
            _check_time(now, self.skew, iat, nbf, exp, None, "")
            assert iat is not None and exp is not None
            if exp - iat > codes.MAX_SC1_LIFETIME_S:
                raise _Fail("time", "lifetime_too_long")
            _check_time(now, self.skew, cert.iat, cert.nbf, cert.exp, cert.signer, CERT_PREFIX)
        if self.status is not None:
            if cert.status_index >= self.status.size_bits:
                raise _Fail("revocation", "status_index_out_of_range")
            if self.status.is_revoked(cert.status_index):
                raise _Fail("revocation", "revoked")
        assert exp is not None
        refused = self.replay.admit(cti, exp, now, self.skew)
        if refused is not None:
            raise _Fail("replay", refused)

    def _unwrap(self, qr: Any) -> bytes:
        """prefix, base45 and (HC1) zlib stages."""
        if type(qr) is not str:
            raise _Fail("prefix", "not_text")
        if len(qr) > codes.MAX_QR_CHARS:
            raise _Fail("prefix", "too_long")
        if not qr.startswith(self.prefix):
            raise _Fail("prefix", "prefix_mismatch")
        try:
            data = b45decode(qr[len(self.prefix) :])
        except Base45Error as exc:
            raise _Fail("base45", exc.reason) from None
        if self.profile == "dcc":
            inflated = inflate(data)
            if isinstance(inflated, str):
                raise _Fail("zlib", inflated)
            data = inflated
        return data

    def _check_cert(self, cert_bytes: bytes, token: _Sign1, state: dict[str, Any]) -> _Cert:
        """cose, kid and signature stages of the device certificate inside an SC1 token."""
        cert = _parse_sign1(cert_bytes, CERT_PREFIX)
        claims = cert.claims
        _bytes_claim(claims, codes.CLAIM_SUB, codes.MAX_SUB_BYTES, CERT_PREFIX)
        exp = _numeric_date(claims, codes.CLAIM_EXP, True, CERT_PREFIX)
        nbf = _numeric_date(claims, codes.CLAIM_NBF, False, CERT_PREFIX)
        iat = _numeric_date(claims, codes.CLAIM_IAT, False, CERT_PREFIX)
        device_key = _device_key(claims)
        index = claims.get(codes.CLAIM_SC1_STATUS_INDEX, _MISSING)
        if index is _MISSING:
            raise _Fail("cose", CERT_PREFIX + "claim_missing")
        if type(index) is not int or not 0 <= index < codes.MAX_SAFE_INT:
            raise _Fail("cose", CERT_PREFIX + "claim_type")
        state["payload"] = token.payload
        kid = self._kid(cert, state)
        signer = _verify_with(cert, self.trust.lookup(kid), CERT_PREFIX)
        assert exp is not None
        return _Cert(device_key, index, iat, nbf, exp, signer, kid)

    def _kid(self, sign1: _Sign1, state: dict[str, Any]) -> bytes:
        """kid stage: protected kid wins, else unprotected (RFC 9052 section 3.1)."""
        kid = _header(sign1, 4)
        if kid is _MISSING:
            raise _Fail("kid", "kid_missing")
        if type(kid) is not bytes:
            raise _Fail("kid", "kid_type")
        state["kid"] = kid.hex()
        if not self.trust.lookup(kid):
            raise _Fail("kid", "kid_unknown")
        return kid

    def _kid_and_signature(self, sign1: _Sign1, state: dict[str, Any]) -> TrustKey:
        kid = self._kid(sign1, state)
        return _verify_with(sign1, self.trust.lookup(kid), "")
