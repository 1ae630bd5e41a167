"""Consent requests: a department asks a citizen for consent."""

from fastapi import APIRouter

from authz import consents
from authz.api.deps import Caller, CurrentDepartment, ServicesDep
from authz.api.schemas import (
    ConsentRequestCreate,
    ConsentRequestCreated,
    ConsentRequestPublic,
    TypedData,
)
from authz.errors import Forbidden
from authz.models import Consent

router = APIRouter(prefix="/v1/consent-requests", tags=["consent-requests"])


@router.post("", status_code=201, response_model=ConsentRequestCreated)
def create(
    body: ConsentRequestCreate, dept: CurrentDepartment, svc: ServicesDep
) -> ConsentRequestCreated:
    """Ask ``subject`` for consent; returns the EIP-712 typed data the citizen signs
    (exactly what ``eth_signTypedData_v4`` takes).

    Errors: 401 ``invalid_api_key``, 403 ``purpose_not_registered`` /
    ``department_suspended``, 400 ``invalid_validity`` / ``invalid_address``, 422.
    """
    created = consents.create_request(
        svc,
        dept,
        subject=body.subject,
        purpose=body.purpose,
        pii_categories=body.pii_categories,
        sensitive=body.sensitive,
        third_parties=body.third_parties,
        legal_basis=body.legal_basis,
        jurisdiction=body.jurisdiction,
        notice_url=body.notice_url,
        retention_days=body.retention_days,
        valid_until=int(body.valid_until.timestamp()),
    )
    return ConsentRequestCreated(
        request_id=created.request.request_id,
        consent_id=created.request.consent_id,
        typed_data=TypedData(**created.typed_data),
    )


@router.get("/{request_id}", response_model=ConsentRequestPublic)
def get(request_id: str, caller: Caller, svc: ServicesDep) -> ConsentRequestPublic:
    """A request, its record and typed data, for its subject (or guardian) or its department."""
    req = consents.get_request(svc, request_id)
    if isinstance(caller, str):
        if not consents.may_act_for(svc, caller, req.subject):
            raise Forbidden("not this request's subject", code="not_your_request")
    elif caller.department_id != req.department_id:
        raise Forbidden("not this department's request", code="not_your_request")
    with svc.db.sessions() as s:
        granted = s.get(Consent, req.consent_id) is not None
    return ConsentRequestPublic(
        request_id=req.request_id,
        consent_id=req.consent_id,
        typed_data=TypedData(**consents.request_typed_data(svc, req)),
        subject=req.subject,
        department_id=req.department_id,
        record=req.record,
        granted=granted,
    )
