"""A citizen's own views: their consents and who accessed what, when."""

from typing import Any

from fastapi import APIRouter

from authz import access, consents
from authz.api.deps import CurrentCitizen, ServicesDep
from authz.errors import Forbidden
from authz.ids import checksum

router = APIRouter(prefix="/v1/subjects", tags=["subjects"])


def _own(svc: ServicesDep, citizen: str, address: str) -> str:
    subject = checksum(address)
    if not consents.may_act_for(svc, citizen, subject):
        raise Forbidden(
            "a citizen sees only their own (or their ward's) records", code="not_your_records"
        )
    return subject


@router.get("/{address}/consents")
def list_consents(address: str, citizen: CurrentCitizen, svc: ServicesDep) -> dict[str, Any]:
    """``{"subject", "consents": [consent record, ...]}``, newest first."""
    subject = _own(svc, citizen, address)
    return {"subject": subject, "consents": consents.consents_of(svc, subject)}


@router.get("/{address}/access-log")
def access_log(address: str, citizen: CurrentCitizen, svc: ServicesDep) -> dict[str, Any]:
    """``{"subject", "entries": [{access_id, department_name, purpose, pii_categories,
    allowed, reason, consent_id, at}, ...]}``, newest first (at most 500)."""
    subject = _own(svc, citizen, address)
    return {"subject": subject, "entries": access.access_log_of(svc, subject)}


@router.get("/{address}/consent-requests")
def open_requests(address: str, citizen: CurrentCitizen, svc: ServicesDep) -> dict[str, Any]:
    """``{"subject", "requests": [{request_id, consent_id, record, typed_data}, ...]}``: the
    requests still waiting for this citizen's (or ward's) signature, newest first."""
    subject = _own(svc, citizen, address)
    return {"subject": subject, "requests": consents.open_requests_of(svc, subject)}
