"""JSON-ready views of verified CWT claims (shared by both implementations)."""

from __future__ import annotations

from typing import Any

from fastpath.tokens import cbor, codes


def jsonable(value: Any) -> Any:
    """Map a decoded CBOR value to JSON types: bytes -> hex, map keys -> str, tagged ->
    its content (tag dropped), simple value -> its number, undefined -> null."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, cbor.Tagged | cbor.Simple):
        return jsonable(value.value)
    return None  # undefined


def _key(key: Any) -> str:
    if isinstance(key, bytes):
        return key.hex()
    return str(key)


def _cose_payload(cose: bytes) -> bytes:
    return cbor.decode(cose, cose_top=True)[2]


def claims_of(profile: str, payload: bytes) -> dict[str, Any]:
    """Claims of a payload that passed the ``cose`` stage.

    ``dcc`` and ``cwt``: every claim, keys as decimal strings (``"1"`` iss, ``"4"`` exp,
    ``"6"`` iat, ``"-260"`` the health certificate). ``sc1``: ``cti`` (hex), ``iat``, ``exp``,
    ``nbf`` when present, ``sub`` (card pseudonym, hex), ``status_index``, ``cert_iat``,
    ``cert_exp`` (NumericDate seconds, int or float as encoded).
    """
    claims = cbor.decode(payload)
    if profile != "sc1":
        return jsonable(claims)
    cert = cbor.decode(_cose_payload(claims[codes.CLAIM_SC1_DEVICE_CERT]))
    return sc1_summary(claims, sc1_cert_summary(cert))


def sc1_cert_summary(cert: Any) -> dict[str, Any]:
    """The device certificate's half of an ``SC1:`` summary, from its claims map:
    ``sub`` (hex), ``status_index``, ``cert_iat``, ``cert_exp``. A gate may cache it per
    certificate (a phone shows codes under one certificate for hours)."""
    return {
        "sub": cert[codes.CLAIM_SUB].hex(),
        "status_index": cert[codes.CLAIM_SC1_STATUS_INDEX],
        "cert_iat": cert.get(codes.CLAIM_IAT),
        "cert_exp": cert[codes.CLAIM_EXP],
    }


def sc1_summary(claims: Any, cert_summary: dict[str, Any]) -> dict[str, Any]:
    """The ``SC1:`` claims a result reports, from the token's claims map (however it was
    decoded) and :func:`sc1_cert_summary` of its device certificate (not modified)."""
    out: dict[str, Any] = {
        "cti": claims[codes.CLAIM_CTI].hex(),
        "iat": claims[codes.CLAIM_IAT],
        "exp": claims[codes.CLAIM_EXP],
    }
    out.update(cert_summary)
    if codes.CLAIM_NBF in claims:
        out["nbf"] = claims[codes.CLAIM_NBF]
    return out
