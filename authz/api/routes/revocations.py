"""Revocations (registrar) and the published status lists (public)."""

from typing import Any

from fastapi import APIRouter

from authz import devices
from authz.api.deps import Registrar, ServicesDep
from authz.api.gate_schemas import RevocationCreate, RevocationPublic
from authz.errors import NotFound

router = APIRouter(prefix="/v1/revocations", tags=["revocations"])
status_router = APIRouter(prefix="/v1/status-lists", tags=["revocations"])


@router.post("", status_code=201, response_model=RevocationPublic, dependencies=[Registrar])
def revoke(body: RevocationCreate, svc: ServicesDep) -> RevocationPublic:
    """Revoke a lost card (``subject``), a ``status_index`` or a ``device_certificate_id``;
    a new epoch is anchored on chain before this returns. Errors: 400
    ``revocation_target``, 404 ``device_certificate_not_found``."""
    row, epoch = devices.revoke(
        svc,
        subject=body.subject,
        status_index=body.status_index,
        device_certificate_id=body.device_certificate_id,
        reason=body.reason,
    )
    return RevocationPublic(
        revocation_id=row.revocation_id,
        kind=row.kind,
        status_indexes=row.status_indexes,
        epoch=epoch.epoch,
        digest=epoch.digest,
        tx_hash=epoch.tx_hash,
        block_number=epoch.block_number,
    )


@status_router.get("/{epoch}")
def status_list(epoch: str, svc: ServicesDep) -> dict[str, Any]:
    """The W3C Bitstring Status List of ``epoch`` (or ``latest``): ``encodedList`` (gzip +
    base64url), its SHA-256 ``digest`` and the anchoring transaction. Errors: 404
    ``epoch_not_found``."""
    if epoch != "latest" and not epoch.isdigit():
        raise NotFound(f"no status list for epoch {epoch!r}", code="epoch_not_found")
    row = devices.status_list(svc, None if epoch == "latest" else int(epoch))
    return devices.status_document(svc, row)
