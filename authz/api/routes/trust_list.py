"""The trust list (issuer keys as the chain holds them) and issuer-key rotation."""

from typing import Any

from fastapi import APIRouter

from authz import devices
from authz.api.deps import Registrar, ServicesDep
from authz.api.gate_schemas import IssuerKeyCreated, KeyRevoked
from authz.errors import NotFound

router = APIRouter(prefix="/v1/trust-list", tags=["trust list"])


@router.get("")
def trust_list(svc: ServicesDep) -> dict[str, Any]:
    """``trust_keys`` (kid, alg, public_key base64, not_before, not_after, revoked), the
    latest anchored ``status_list`` epoch and digest, read from the trust registry."""
    return devices.trust_document(svc)


@router.post("/keys", status_code=201, response_model=IssuerKeyCreated, dependencies=[Registrar])
def add_key(svc: ServicesDep) -> IssuerKeyCreated:
    """Rotate: generate a new issuer key and register it on chain; new device
    certificates are signed with it from now on."""
    key, tx = devices.runtime(svc).trust.add_key(svc.now())
    spec = key.spec()
    return IssuerKeyCreated(
        kid=spec["kid"], not_before=spec["not_before"], not_after=spec["not_after"], tx_hash=tx
    )


@router.delete("/keys/{kid}", response_model=KeyRevoked, dependencies=[Registrar])
def revoke_key(kid: str, svc: ServicesDep) -> KeyRevoked:
    """Revoke an issuer key on chain; gates refuse its certificates after their next
    sync. Errors: 404 ``issuer_key_not_found``, 409 ``issuer_key_already_revoked``."""
    try:
        raw = bytes.fromhex(kid)
    except ValueError:
        raw = b""
    if len(raw) != 8:
        raise NotFound(f"no issuer key {kid!r}", code="issuer_key_not_found")
    return KeyRevoked(kid=kid, tx_hash=devices.runtime(svc).trust.revoke_key(raw))
