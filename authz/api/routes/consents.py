"""Consents: grant (by the citizen's signature), read, withdraw."""

from typing import Any

from fastapi import APIRouter

from authz import consents
from authz.api.deps import Caller, CurrentCitizen, ServicesDep
from authz.api.schemas import (
    AnchoredResult,
    GrantCreate,
    TypedData,
    WithdrawalCreate,
    WithdrawalTypedData,
)
from authz.errors import Forbidden

router = APIRouter(prefix="/v1/consents", tags=["consents"])


def _anchored(a: consents.Anchored) -> AnchoredResult:
    return AnchoredResult(
        consent_id=a.consent_id, status=a.status, tx_hash=a.tx_hash, block_number=a.block_number
    )


@router.post("", status_code=201, response_model=AnchoredResult)
def grant(body: GrantCreate, svc: ServicesDep) -> AnchoredResult:
    """Submit the citizen's EIP-712 signature over a request's Grant; anchors it on chain.

    The signature is the authorization (no bearer needed). Errors: 404
    ``request_not_found``; 409 ``duplicate_grant``; 400 ``signature_malformed``,
    ``signature_bad_v``, ``signature_high_s``, ``signature_expired``, ``wrong_signer``;
    403 ``guardian_required``, ``department_suspended``.
    """
    return _anchored(consents.grant(svc, body.request_id, body.signature))


@router.get("/{consent_id}")
def get(consent_id: str, caller: Caller, svc: ServicesDep) -> dict[str, Any]:
    """The consent record (ISO/IEC TS 27560 field names), ``status`` and ``events`` (each
    with ``tx_hash`` and ``block_number``). For its subject (or guardian) or its department.
    """
    consent = consents.get_consent(svc, consent_id)
    if isinstance(caller, str):
        if not consents.may_act_for(svc, caller, consent.subject):
            raise Forbidden("not this consent's subject", code="not_your_consent")
    elif caller.address != consent.controller:
        raise Forbidden("not this consent's controller", code="not_your_consent")
    return consents.consent_record(svc, consent)


@router.get("/{consent_id}/withdrawal", response_model=WithdrawalTypedData)
def withdrawal_typed_data(
    consent_id: str, citizen: CurrentCitizen, svc: ServicesDep
) -> WithdrawalTypedData:
    """The Withdrawal typed data to sign (fresh nonce, 24 h deadline). Subject or guardian."""
    consent = consents.get_consent(svc, consent_id)
    if not consents.may_act_for(svc, citizen, consent.subject):
        raise Forbidden("not this consent's subject", code="not_your_consent")
    return WithdrawalTypedData(
        typed_data=TypedData(**consents.withdrawal_typed_data(svc, consent_id))
    )


@router.post("/{consent_id}/withdrawal", response_model=AnchoredResult)
def withdraw(consent_id: str, body: WithdrawalCreate, svc: ServicesDep) -> AnchoredResult:
    """Submit the signed Withdrawal; effective at once (every later check is denied).

    Errors: 404 ``consent_not_found``, 409 ``already_withdrawn``, 400
    ``no_withdrawal_offered`` / ``signature_*`` / ``wrong_signer``, 403 ``guardian_required``.
    """
    return _anchored(consents.withdraw(svc, consent_id, body.signature))
