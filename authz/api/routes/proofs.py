"""Proofs and published batches: what a department or an auditor checks on chain."""

from typing import Any

from fastapi import APIRouter

from authz import access, consents, proofs
from authz.api.deps import Caller, Registrar, ServicesDep
from authz.errors import Forbidden

router = APIRouter(tags=["proofs"])


@router.get("/v1/consents/{consent_id}/proof")
def consent_proof(consent_id: str, caller: Caller, svc: ServicesDep) -> dict[str, Any]:
    """Everything needed to check the consent on chain without the service
    (docs/anchoring.md): batched mode gives the signed typed data, signature, index,
    Merkle proofs and batch; direct mode the registry record. Check it with
    ``consentgate proof verify``. For the subject (or guardian) or the controller.
    Errors: 404 ``consent_not_found``, 409 ``not_yet_anchored``, 403 ``not_your_consent``.
    """
    view = consents.get_consent(svc, consent_id)
    if isinstance(caller, str):
        if not consents.may_act_for(svc, caller, view.subject):
            raise Forbidden("not this consent's subject", code="not_your_consent")
    elif caller.address != view.controller:
        raise Forbidden("not this consent's controller", code="not_your_consent")
    return proofs.consent_proof(svc.commitments, consent_id)


@router.get("/v1/access/{access_id}/proof")
def access_proof(access_id: str, caller: Caller, svc: ServicesDep) -> dict[str, Any]:
    """The audit event of an access check with its Merkle proof in the anchored audit
    tree; check it with ``consentgate audit verify``. For the department that checked or
    the subject. Errors: 404 ``access_not_found``, 409 ``not_yet_anchored``."""
    record = access.get_access(svc, access_id)
    if isinstance(caller, str):
        if not consents.may_act_for(svc, caller, record.subject):
            raise Forbidden("not your access record", code="not_your_record")
    elif caller.department_id != record.department_id:
        raise Forbidden("not your access record", code="not_your_record")
    return proofs.audit_proof(svc.commitments, access_id)


@router.get("/v1/batches/{batch_id}", dependencies=[Registrar])
def batch(batch_id: int, svc: ServicesDep) -> dict[str, Any]:
    """A published anchoring batch (receipts, status words, audit events, roots), from
    which an auditor recomputes every root (docs/anchoring.md). Registrar only."""
    return svc.commitments.batch_file(batch_id)
