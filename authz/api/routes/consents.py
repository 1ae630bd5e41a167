"""Consents: grant (by the citizen's signature), read, withdraw."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from authz import consents, outbox
from authz.api.deps import Caller, CurrentCitizen, ServicesDep
from authz.api.problems import problem_body
from authz.api.schemas import (
    AnchoredResult,
    GrantBatchCreate,
    GrantBatchItemResult,
    GrantBatchResult,
    GrantCreate,
    TypedData,
    WithdrawalCreate,
    WithdrawalTypedData,
)
from authz.errors import ConsentgateError, Forbidden
from authz.services import Services

router = APIRouter(prefix="/v1/consents", tags=["consents"])
batch_router = APIRouter(prefix="/v1/consent-batches", tags=["consents"])

Wait = Annotated[
    Literal["accepted", "anchored"] | None,
    Query(
        description="`anchored`: hold the response until the item is anchored (or "
        "failed), at most CONSENTGATE_WAIT_TIMEOUT_S; default: answer once the "
        "item is durably accepted (`pending`)."
    ),
]


def _waited(
    svc: Services, results: list[consents.Accepted], wait: str | None
) -> list[consents.Accepted]:
    if wait != "anchored" or not results:
        return results
    waiters = svc.anchor_worker.waiters if svc.anchor_worker else outbox.Waiters(svc.db)
    waiters.wait([r.seq for r in results], svc.settings.wait_timeout_s)
    return consents.refresh(svc, results)


@router.post("", status_code=201, response_model=AnchoredResult)
def grant(body: GrantCreate, svc: ServicesDep, wait: Wait = None) -> dict[str, Any]:
    """Submit the citizen's EIP-712 signature over a request's Grant.

    The grant is verified and committed to the durable outbox before this answers
    (``status``/``anchor`` ``pending``); the anchoring worker puts it on chain. With
    ``?wait=anchored`` the answer waits for ``anchored`` (with ``tx_hash`` and
    ``block_number``) or ``failed``. The signature is the authorization (no bearer).
    Errors: 404 ``request_not_found``; 409 ``duplicate_grant`` (carries the first
    grant's ``consent_id`` and state); 400 ``signature_malformed``, ``signature_bad_v``,
    ``signature_high_s``, ``signature_expired``, ``wrong_signer``; 403
    ``guardian_required``, ``department_suspended``.
    """
    accepted = consents.grant(svc, body.request_id, body.signature)
    return _waited(svc, [accepted], wait)[0].as_dict()


@batch_router.post("", response_model=GrantBatchResult)
def grant_batch(body: GrantBatchCreate, svc: ServicesDep, wait: Wait = None) -> dict[str, Any]:
    """Submit many citizens' signed grants at once (a channel relaying its users).

    ``{"items": [{"request_id", "signature"}, ...]}`` (at most 1000) -> ``{"results":
    [...]}``, one per item in order: ``{"accepted": true, "consent_id", "status",
    "anchor", ...}`` or ``{"accepted": false, "problem": {RFC 9457 problem}}``. Each item
    is accepted or refused on its own; accepted ones are committed together.
    """
    results = consents.accept_grants(svc, [(i.request_id, i.signature) for i in body.items])
    ok = _waited(svc, [r for r in results if isinstance(r, consents.Accepted)], wait)
    done = iter(ok)
    out: list[GrantBatchItemResult] = []
    for r in results:
        if isinstance(r, ConsentgateError):
            out.append(
                GrantBatchItemResult(
                    accepted=False, problem=problem_body(r), consent_id=r.extra.get("consent_id")
                )
            )
        else:
            out.append(GrantBatchItemResult(accepted=True, **next(done).as_dict()))
    return {"results": out}


@router.get("/{consent_id}")
def get(consent_id: str, caller: Caller, svc: ServicesDep) -> dict[str, Any]:
    """The consent record (ISO/IEC TS 27560 field names), ``status`` and ``events`` (each
    with ``tx_hash`` and ``block_number`` once anchored). For its subject (or guardian) or
    its department. Errors: 404 ``consent_not_found``, 403 ``not_your_consent``.
    """
    view = consents.get_consent(svc, consent_id)
    if isinstance(caller, str):
        if not consents.may_act_for(svc, caller, view.subject):
            raise Forbidden("not this consent's subject", code="not_your_consent")
    elif caller.address != view.controller:
        raise Forbidden("not this consent's controller", code="not_your_consent")
    return consents.consent_record(svc, view)


@router.get("/{consent_id}/withdrawal", response_model=WithdrawalTypedData)
def withdrawal_typed_data(
    consent_id: str, citizen: CurrentCitizen, svc: ServicesDep
) -> WithdrawalTypedData:
    """The Withdrawal typed data to sign (fresh nonce, 24 h deadline). Subject or guardian."""
    view = consents.get_consent(svc, consent_id)
    if not consents.may_act_for(svc, citizen, view.subject):
        raise Forbidden("not this consent's subject", code="not_your_consent")
    return WithdrawalTypedData(
        typed_data=TypedData(**consents.withdrawal_typed_data(svc, consent_id))
    )


@router.post("/{consent_id}/withdrawal", response_model=AnchoredResult)
def withdraw(
    consent_id: str, body: WithdrawalCreate, svc: ServicesDep, wait: Wait = None
) -> dict[str, Any]:
    """Submit the signed Withdrawal: ``{"status": "withdrawn", "anchor", ...}``.

    Effective at once: every access check after this answer is denied; anchoring
    follows (``?wait=anchored`` waits for it). Errors: 404 ``consent_not_found``, 409
    ``already_withdrawn`` / ``grant_failed``, 400 ``no_withdrawal_offered`` /
    ``signature_*`` / ``wrong_signer``, 403 ``guardian_required``.
    """
    accepted = consents.withdraw(svc, consent_id, body.signature)
    return _waited(svc, [accepted], wait)[0].as_dict()
