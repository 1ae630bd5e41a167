"""Consent requests, grants, withdrawals and consent records: the consent logic.

Rules enforced here (each also enforced on chain by the registry):

- a request's purpose must be one the department registered; a suspended department
  cannot ask;
- sensitive PI categories (PIPL art. 28) or any third-party recipient make the request
  sensitive/third-party, and the signed Grant then carries ``separateConsent = true``
  (PIPL arts. 23 and 29: a separate consent, given by this very signature);
- only the PII principal signs, or, while a guardianship is active (a minor under 14,
  or an elder's delegation; PIPL art. 31), only the registered guardian;
- a grant is accepted once; a withdrawal takes effect in the index before the response.

Times are Unix seconds; RFC 3339 strings at the API edge.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_utils import keccak
from sqlalchemy import select

from authz import typed_data
from authz.departments import is_active
from authz.errors import BadRequest, Conflict, Forbidden, InvalidSignature, NotFound
from authz.ids import checksum, new_id
from authz.models import (
    Consent,
    ConsentEvent,
    ConsentRequest,
    Department,
    Guardianship,
    WithdrawalIntent,
)
from authz.services import Services

# PIPL art. 28 sensitive personal information, as PI category names of this service.
SENSITIVE_CATEGORIES = frozenset(
    {
        "biometric",
        "religious_belief",
        "specific_identity",
        "medical_health",
        "financial_account",
        "location_tracking",
        "minor_data",
    }
)
SCHEMA_VERSION = "ISO/IEC TS 27560:2023"
COLLECTION_METHOD = "EIP-712 typed-data signature by the PII principal (or guardian)"
WITHDRAWAL_TTL_S = 24 * 3600
MAX_VALIDITY_S = 50 * 365 * 24 * 3600


def rfc3339(ts: int) -> str:
    """Unix seconds -> RFC 3339 UTC text (``2026-01-02T03:04:05Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_hash(record: dict[str, Any]) -> str:
    """``keccak256`` of the record's canonical JSON (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "0x" + keccak(canonical.encode()).hex()


def fresh_nonce() -> str:
    """A keyed nonce for the registry (OpenZeppelin ``NoncesKeyed``): ``key << 64``.

    The 192-bit key is random per message, so many messages can be outstanding for one
    signer; the sequence part is 0. Rendered as a decimal string (uint256).
    """
    return str(secrets.randbits(192) << 64)


@dataclass(frozen=True)
class CreatedRequest:
    """A stored consent request and the typed data the citizen signs."""

    request: ConsentRequest
    typed_data: dict[str, Any]


def create_request(
    svc: Services,
    dept: Department,
    *,
    subject: str,
    purpose: str,
    pii_categories: list[str],
    sensitive: bool,
    third_parties: list[str],
    legal_basis: str,
    jurisdiction: str,
    notice_url: str,
    retention_days: int,
    valid_until: int,
) -> CreatedRequest:
    """Store a department's consent request and build the Grant typed data.

    Raises :class:`Forbidden` ``purpose_not_registered`` / ``department_suspended``,
    :class:`BadRequest` ``invalid_validity`` when ``valid_until`` is not in the future
    (or more than 50 years ahead), ``invalid_address`` for a bad subject.
    """
    subject = checksum(subject, "subject")
    if purpose not in dept.purposes:
        raise Forbidden(
            f"purpose {purpose!r} is not registered for this department",
            code="purpose_not_registered",
        )
    if not is_active(svc, dept.address):
        raise Forbidden("the department is suspended", code="department_suspended")
    now = svc.now()
    if valid_until <= now or valid_until > now + MAX_VALIDITY_S:
        raise BadRequest(
            "valid_until must be in the future (at most 50 years)", code="invalid_validity"
        )
    categories = list(dict.fromkeys(pii_categories))
    is_sensitive = sensitive or any(c in SENSITIVE_CATEGORIES for c in categories)
    request_id = new_id("req")
    record = {
        "schema_version": SCHEMA_VERSION,
        "request_id": request_id,
        "pii_principal_id": subject,
        "pii_controller": {
            "department_id": dept.department_id,
            "name": dept.name,
            "address": dept.address,
        },
        "purposes": [purpose],
        "pii_categories": categories,
        "sensitive": is_sensitive,
        "third_party_recipients": list(third_parties),
        "legal_basis": legal_basis,
        "jurisdiction": jurisdiction,
        "collection_method": COLLECTION_METHOD,
        "notice_url": notice_url,
        "retention_period_days": retention_days,
        "valid_from": now,
        "valid_until": valid_until,
        "created_at": now,
    }
    r_hash = record_hash(record)
    deadline = now + svc.settings.request_ttl_s
    message = {
        "subject": subject,
        "controller": dept.address,
        "purpose": purpose,
        "piCategories": categories,
        "sensitive": is_sensitive,
        "thirdParties": list(third_parties),
        "separateConsent": is_sensitive or bool(third_parties),
        "validFrom": now,
        "validUntil": valid_until,
        "recordHash": r_hash,
        "nonce": fresh_nonce(),
        "deadline": str(deadline),
    }
    td = typed_data.grant_typed_data(svc.ledger.chain_id, svc.ledger.address, message)
    request = ConsentRequest(
        request_id=request_id,
        department_id=dept.department_id,
        subject=subject,
        record=record,
        message=message,
        record_hash=r_hash,
        consent_id="0x" + typed_data.digest(td).hex(),
        created_at=now,
        deadline=deadline,
    )
    with svc.db.session() as s:
        s.add(request)
    return CreatedRequest(request, td)


def get_request(svc: Services, request_id: str) -> ConsentRequest:
    """Load a consent request; raises :class:`NotFound` ``request_not_found``."""
    with svc.db.sessions() as s:
        req = s.get(ConsentRequest, request_id)
    if req is None:
        raise NotFound(f"no consent request {request_id}", code="request_not_found")
    return req


def request_typed_data(svc: Services, req: ConsentRequest) -> dict[str, Any]:
    """The Grant typed data of a stored request (what the citizen signs)."""
    return typed_data.grant_typed_data(svc.ledger.chain_id, svc.ledger.address, req.message)


def allowed_signer(svc: Services, subject: str) -> tuple[str, bool]:
    """Who may sign for ``subject`` now: ``(address, is_guardian)``.

    The registered guardian while the guardianship is active (``until`` inclusive),
    else the subject.
    """
    with svc.db.sessions() as s:
        g = s.get(Guardianship, subject)
    if g is not None and g.active and g.until >= svc.now():
        return g.guardian, True
    return subject, False


def _check_signer(svc: Services, subject: str, signer: str) -> None:
    expected, is_guardian = allowed_signer(svc, subject)
    if signer == expected:
        return
    if is_guardian and signer == subject:
        raise Forbidden(
            "this PII principal has a registered guardian; only the guardian "
            "may sign (PIPL art. 31)",
            code="guardian_required",
        )
    raise InvalidSignature(
        f"signed by {signer}, not by the subject or its guardian", code="wrong_signer"
    )


@dataclass(frozen=True)
class Anchored:
    """Result of a grant or withdrawal anchored on chain."""

    consent_id: str
    status: str
    tx_hash: str
    block_number: int


def grant(svc: Services, request_id: str, signature: str) -> Anchored:
    """Verify a citizen's signed Grant and anchor it on chain (one transaction).

    Raises :class:`NotFound` ``request_not_found``; :class:`Conflict` ``duplicate_grant``
    when the request was already granted (the first grant stays unchanged);
    :class:`InvalidSignature` (``signature_malformed``, ``signature_bad_v``,
    ``signature_high_s``, ``signature_expired``, ``wrong_signer``); :class:`Forbidden`
    ``guardian_required`` / ``department_suspended``.
    """
    req = get_request(svc, request_id)
    with svc.db.sessions() as s:
        if s.get(Consent, req.consent_id) is not None:
            raise Conflict(
                "this consent request was already granted",
                code="duplicate_grant",
                consent_id=req.consent_id,
            )
    if int(req.message["deadline"]) < svc.now():
        raise InvalidSignature(
            "the request's signature deadline has passed", code="signature_expired"
        )
    td = request_typed_data(svc, req)
    digest = typed_data.digest(td)
    signer = typed_data.recover_signer(digest, signature)
    _check_signer(svc, req.subject, signer)
    if not is_active(svc, req.message["controller"]):
        raise Forbidden("the department is suspended", code="department_suspended")
    sig = bytes.fromhex(signature[2:] if signature.startswith("0x") else signature)
    try:
        result = svc.ledger.send("grant", _grant_tuple(req.message), sig)
    except Conflict as exc:
        raise Conflict(
            "this consent request was already granted",
            code="duplicate_grant",
            consent_id=req.consent_id,
        ) from exc
    svc.indexer.sync(result.block_number)
    return Anchored(req.consent_id, "active", result.tx_hash, result.block_number)


def _grant_tuple(m: dict[str, Any]) -> tuple[Any, ...]:
    return (
        m["subject"],
        m["controller"],
        m["purpose"],
        list(m["piCategories"]),
        m["sensitive"],
        list(m["thirdParties"]),
        m["separateConsent"],
        int(m["validFrom"]),
        int(m["validUntil"]),
        bytes.fromhex(m["recordHash"][2:]),
        int(m["nonce"]),
        int(m["deadline"]),
    )


def get_consent(svc: Services, consent_id: str) -> Consent:
    """Load a consent from the index; raises :class:`NotFound` ``consent_not_found``."""
    with svc.db.sessions() as s:
        row = s.get(Consent, consent_id.lower())
    if row is None:
        raise NotFound(f"no consent {consent_id}", code="consent_not_found")
    return row


def may_act_for(svc: Services, address: str, subject: str) -> bool:
    """Whether a signed-in citizen ``address`` may see/act for ``subject``'s consents."""
    return address == subject or allowed_signer(svc, subject) == (address, True)


def withdrawal_typed_data(svc: Services, consent_id: str) -> dict[str, Any]:
    """A fresh Withdrawal for the consent (new nonce, deadline in 24 h), remembered.

    Raises :class:`NotFound` ``consent_not_found``, :class:`Conflict` ``already_withdrawn``.
    """
    consent = get_consent(svc, consent_id)
    if consent.withdrawn:
        raise Conflict("the consent is already withdrawn", code="already_withdrawn")
    deadline = svc.now() + WITHDRAWAL_TTL_S
    message = {
        "consentId": consent.consent_id,
        "subject": consent.subject,
        "nonce": fresh_nonce(),
        "deadline": str(deadline),
    }
    with svc.db.session() as s:
        s.add(WithdrawalIntent(consent_id=consent.consent_id, message=message, deadline=deadline))
    return typed_data.withdrawal_typed_data(svc.ledger.chain_id, svc.ledger.address, message)


def withdraw(svc: Services, consent_id: str, signature: str) -> Anchored:
    """Verify a signed Withdrawal against the offered ones and anchor it.

    The index marks the consent withdrawn before this returns, so every later access
    check is denied (fail closed). Raises :class:`NotFound`, :class:`Conflict`
    ``already_withdrawn``, :class:`InvalidSignature` (``no_withdrawal_offered``,
    ``signature_*``, ``wrong_signer``), :class:`Forbidden` ``guardian_required``.
    """
    consent = get_consent(svc, consent_id)
    if consent.withdrawn:
        raise Conflict("the consent is already withdrawn", code="already_withdrawn")
    typed_data.parse_signature(signature)
    now = svc.now()
    with svc.db.sessions() as s:
        intents = s.scalars(
            select(WithdrawalIntent)
            .where(
                WithdrawalIntent.consent_id == consent.consent_id, WithdrawalIntent.deadline >= now
            )
            .order_by(WithdrawalIntent.id.desc())
            .limit(32)
        ).all()
    if not intents:
        raise InvalidSignature(
            "no live withdrawal was offered for this consent; GET the withdrawal typed data first",
            code="no_withdrawal_offered",
        )
    expected, _ = allowed_signer(svc, consent.subject)
    chosen = None
    signers = set()
    for intent in intents:
        td = typed_data.withdrawal_typed_data(
            svc.ledger.chain_id, svc.ledger.address, intent.message
        )
        signer = typed_data.recover_signer(typed_data.digest(td), signature)
        signers.add(signer)
        if signer == expected:
            chosen = intent
            break
    if chosen is None:
        signer = consent.subject if consent.subject in signers else next(iter(signers))
        _check_signer(svc, consent.subject, signer)
        raise InvalidSignature(
            "signature does not match an offered withdrawal", code="wrong_signer"
        )
    m = chosen.message
    sig = bytes.fromhex(signature[2:] if signature.startswith("0x") else signature)
    args = (bytes.fromhex(m["consentId"][2:]), m["subject"], int(m["nonce"]), int(m["deadline"]))
    result = svc.ledger.send("withdraw", args, sig)
    svc.indexer.sync(result.block_number)
    return Anchored(consent.consent_id, "withdrawn", result.tx_hash, result.block_number)


def consent_status(consent: Consent, now: int) -> str:
    """``withdrawn``, ``expired``, ``not_yet_valid`` or ``active`` at ``now``."""
    if consent.withdrawn:
        return "withdrawn"
    if now > consent.valid_until:
        return "expired"
    if now < consent.valid_from:
        return "not_yet_valid"
    return "active"


def consent_record(svc: Services, consent: Consent) -> dict[str, Any]:
    """The consent record (ISO/IEC TS 27560 field names), status and event history."""
    with svc.db.sessions() as s:
        req = s.get(ConsentRequest, consent.request_id) if consent.request_id else None
        events = s.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.consent_id == consent.consent_id)
            .order_by(ConsentEvent.block_number, ConsentEvent.log_index)
        ).all()
    record: dict[str, Any] = dict(req.record) if req is not None else {}
    now = svc.now()
    status = consent_status(consent, now)
    history = [
        {
            "event": e.event,
            "time": rfc3339(e.block_time),
            "tx_hash": e.tx_hash,
            "block_number": e.block_number,
            "signer": e.signer,
        }
        for e in events
    ]
    if status == "expired":
        history.append(
            {
                "event": "expired",
                "time": rfc3339(consent.valid_until),
                "tx_hash": None,
                "block_number": None,
                "signer": None,
            }
        )
    record.update(
        {
            "schema_version": SCHEMA_VERSION,
            "record_id": consent.consent_id,
            "consent_id": consent.consent_id,
            "pii_principal_id": consent.subject,
            "signer": consent.signer,
            "signed_by_guardian": consent.signer != consent.subject,
            "purposes": [consent.purpose] if consent.purpose else [],
            "pii_categories": consent.pii_categories,
            "sensitive": consent.sensitive,
            "valid_from": rfc3339(consent.valid_from),
            "valid_until": rfc3339(consent.valid_until),
            "record_hash": consent.record_hash,
            "withdrawal_method": "EIP-712 Withdrawal signed by the PII principal: "
            f"GET then POST /v1/consents/{consent.consent_id}/withdrawal",
            "consent_status": status,
            "status": status,
            "anchor": {
                "chain_id": svc.ledger.chain_id,
                "registry": svc.ledger.address,
                "tx_hash": consent.granted_tx,
                "block_number": consent.granted_block,
            },
            "events": history,
        }
    )
    if "created_at" in record and isinstance(record["created_at"], int):
        record["created_at"] = rfc3339(record["created_at"])
    return record


def consents_of(svc: Services, subject: str) -> list[dict[str, Any]]:
    """Every consent of a PII principal, newest first, as consent records."""
    with svc.db.sessions() as s:
        rows = s.scalars(
            select(Consent).where(Consent.subject == subject).order_by(Consent.granted_block.desc())
        ).all()
    return [consent_record(svc, c) for c in rows]


def department_of(svc: Services, consent: Consent) -> Department | None:
    """The registered department that is the consent's controller (None if unknown)."""
    with svc.db.sessions() as s:
        return s.scalar(select(Department).where(Department.address == consent.controller))
