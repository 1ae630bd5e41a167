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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from eth_utils import keccak
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from authz import audit, outbox, typed_data
from authz.departments import is_active
from authz.errors import (
    BadRequest,
    Conflict,
    ConsentgateError,
    Forbidden,
    InvalidSignature,
    NotFound,
)
from authz.ids import checksum, new_id
from authz.models import (
    AcceptedWithdrawal,
    AuditEvent,
    Consent,
    ConsentEvent,
    ConsentRequest,
    Department,
    Guardianship,
    OutboxItem,
    WithdrawalIntent,
    table_of,
)
from authz.services import Services
from fastpath import eip712

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
# Words that make a free-form category sensitive too (e.g. "health", "face_image").
SENSITIVE_WORDS = (
    "biometric",
    "face",
    "fingerprint",
    "iris",
    "voiceprint",
    "genetic",
    "dna",
    "health",
    "medical",
    "diagnos",
    "prescription",
    "religio",
    "belief",
    "sexual",
    "ethnic",
    "criminal",
    "financial",
    "bank",
    "account",
    "credit",
    "location",
    "trajectory",
    "track",
    "minor",
    "child",
    "identity_document",
    "id_number",
    "specific_identity",
)
SCHEMA_VERSION = "ISO/IEC TS 27560:2023"


def is_sensitive_category(category: str) -> bool:
    """PIPL art. 28: a category is sensitive when named in :data:`SENSITIVE_CATEGORIES`
    or when it contains one of :data:`SENSITIVE_WORDS`."""
    return category in SENSITIVE_CATEGORIES or any(w in category for w in SENSITIVE_WORDS)


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
    is_sensitive = sensitive or any(is_sensitive_category(c) for c in categories)
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


def _allowed(g: Guardianship | None, subject: str, now: int) -> tuple[str, bool]:
    if g is not None and g.active and g.until >= now:
        return g.guardian, True
    return subject, False


def allowed_signer(svc: Services, subject: str) -> tuple[str, bool]:
    """Who may sign for ``subject`` now: ``(address, is_guardian)``.

    The registered guardian while the guardianship is active (``until`` inclusive),
    else the subject.
    """
    with svc.db.sessions() as s:
        g = s.get(Guardianship, subject)
    return _allowed(g, subject, svc.now())


def _signer_error(
    subject: str, signer: str, expected: str, is_guardian: bool
) -> ConsentgateError | None:
    if signer == expected:
        return None
    if is_guardian and signer == subject:
        return Forbidden(
            "this PII principal has a registered guardian; only the guardian "
            "may sign (PIPL art. 31)",
            code="guardian_required",
        )
    return InvalidSignature(
        f"the signature recovers to {signer}, who is neither the subject {subject} nor its "
        "active guardian (a signature over another chain id or registry address also "
        "recovers to an unrelated address)",
        code="wrong_signer",
    )


def _check_signer(svc: Services, subject: str, signer: str) -> None:
    error = _signer_error(subject, signer, *allowed_signer(svc, subject))
    if error is not None:
        raise error


@dataclass(frozen=True)
class Accepted:
    """An accepted grant or withdrawal and where its anchoring stands.

    ``status``: for a grant the anchoring state (``pending``, ``anchored``, ``failed``);
    for a withdrawal always ``withdrawn`` (effective at once). ``anchor``: the anchoring
    state for both. ``tx_hash``/``block_number`` once anchored, ``error_code`` once failed.
    ``seq`` is the outbox sequence number.
    """

    consent_id: str
    status: str
    anchor: str
    tx_hash: str | None
    block_number: int | None
    seq: int
    error_code: str | None = None
    kind: str = "grant"

    def as_dict(self) -> dict[str, Any]:
        """The API body of this result."""
        body: dict[str, Any] = {
            "consent_id": self.consent_id,
            "status": self.status,
            "anchor": self.anchor,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
        }
        if self.error_code:
            body["error_code"] = self.error_code
        return body


def accepted_from(item: OutboxItem | Any) -> Accepted:
    """The :class:`Accepted` view of an outbox item as it stands now (an
    :class:`OutboxItem` or a row with its columns, as :func:`outbox.get_many` reads)."""
    status = item.state if item.kind == "grant" else "withdrawn"
    return Accepted(
        item.consent_id,
        status,
        item.state,
        item.tx_hash,
        item.block_number,
        item.seq,
        item.error_code,
        item.kind,
    )


def refresh(svc: Services, accepted: Sequence[Accepted]) -> list[Accepted]:
    """Re-read accepted items' anchoring state from the outbox (one read for all of
    them), in the same order; an item no longer found is returned as it was."""
    items = outbox.get_many(svc.db, [a.seq for a in accepted])
    return [accepted_from(items[a.seq]) if a.seq in items else a for a in accepted]


def _duplicate(item: OutboxItem) -> Conflict:
    current = accepted_from(item).as_dict()
    if item.kind == "grant":
        return Conflict(
            "this consent request was already granted", code="duplicate_grant", **current
        )
    return Conflict("the consent is already withdrawn", code="already_withdrawn", **current)


class _Request(NamedTuple):
    """The columns of a consent request that accepting its grant needs (the ORM entity
    would also decode the record document)."""

    request_id: str
    consent_id: str
    subject: str
    message: dict[str, Any]
    signer: str = ""  # who signed the grant, once verified


def _verify_grants(
    svc: Services, items: Sequence[tuple[str, str]]
) -> tuple[list[ConsentgateError | None], list[tuple[int, _Request, str]]]:
    """Check a batch of signed grants with one query per table and one batch recovery
    (the compiled EIP-712 fast path, GIL released). Returns per-item errors and the
    verified ``(position, request with its signer, canonical signature)``."""
    errors: list[ConsentgateError | None] = [None] * len(items)
    now = svc.now()
    with svc.db.sessions() as s:
        reqs = {
            r.request_id: _Request(*r)
            for r in s.execute(
                select(
                    ConsentRequest.request_id,
                    ConsentRequest.consent_id,
                    ConsentRequest.subject,
                    ConsentRequest.message,
                ).where(ConsentRequest.request_id.in_({rid for rid, _ in items}))
            )
        }
    candidates: list[tuple[int, _Request, str]] = []
    for pos, (request_id, signature) in enumerate(items):
        req = reqs.get(request_id)
        if req is None:
            errors[pos] = NotFound(f"no consent request {request_id}", code="request_not_found")
            continue
        if int(req.message["deadline"]) < now:
            errors[pos] = InvalidSignature(
                "the request's signature deadline has passed", code="signature_expired"
            )
            continue
        try:
            candidates.append((pos, req, typed_data.normalize_signature(signature)))
        except InvalidSignature as exc:
            errors[pos] = exc
    signers = eip712.recover_signers(
        [bytes.fromhex(r.consent_id[2:]) for _, r, _ in candidates],
        [bytes.fromhex(sig[2:]) for _, _, sig in candidates],
    )
    with svc.db.sessions() as s:
        subjects = {r.subject for _, r, _ in candidates}
        guardians = {
            g.ward: g
            for g in s.scalars(select(Guardianship).where(Guardianship.ward.in_(subjects)))
        }
    active: dict[str, bool] = {}
    verified = []
    for (pos, req, sig), signer in zip(candidates, signers, strict=True):
        if signer is None:
            errors[pos] = InvalidSignature(
                "no public key recovers from this signature", code="signature_malformed"
            )
            continue
        error = _signer_error(
            req.subject, signer, *_allowed(guardians.get(req.subject), req.subject, now)
        )
        controller = req.message["controller"]
        if error is None:
            if controller not in active:
                active[controller] = is_active(svc, controller)
            if not active[controller]:
                error = Forbidden("the department is suspended", code="department_suspended")
        if error is not None:
            errors[pos] = error
            continue
        verified.append((pos, req._replace(signer=signer), sig))
    return errors, verified


def accept_grants(
    svc: Services, items: Sequence[tuple[str, str]]
) -> list[Accepted | ConsentgateError]:
    """Verify citizens' signed Grants and commit the good ones to the outbox at once.

    ``items`` are ``(request_id, signature)`` pairs; the result has one entry per item,
    in order: an :class:`Accepted` (``pending``) or the error that refused it (see
    :func:`grant`). All accepted items are committed in one transaction before this
    returns; each item is accepted or refused on its own.
    """
    errors, checked = _verify_grants(svc, items)
    results: list[Accepted | ConsentgateError | None] = list(errors)
    verified: list[tuple[int, _Request, str]] = []
    seen: set[str] = set()
    for pos, req, sig in checked:
        if req.consent_id in seen:
            results[pos] = Conflict(
                "the same grant appears twice in this batch",
                code="duplicate_grant",
                consent_id=req.consent_id,
            )
            continue
        seen.add(req.consent_id)
        verified.append((pos, req, sig))
    if verified:
        try:
            accepted = _commit_grants(svc, verified, results, one_by_one=False)
        except IntegrityError:  # a concurrent request inserted one of these items first
            accepted = _commit_grants(svc, verified, results, one_by_one=True)
        for pos, acc in accepted:
            results[pos] = acc
        svc.wake_anchoring()
    return [r for r in results if r is not None]


def _commit_grants(
    svc: Services,
    verified: list[tuple[int, _Request, str]],
    results: list[Accepted | ConsentgateError | None],
    one_by_one: bool,
) -> list[tuple[int, Accepted]]:
    """Insert the verified grants (and their audit events) in one transaction: one
    multi-row INSERT per table. With ``one_by_one`` each item goes in its own savepoint,
    so an item a concurrent request inserted first becomes that item's
    ``duplicate_grant`` and the others still go in.

    Duplicates are looked up and the rows built before the write transaction, which
    holds the database's one write lock for the statements and the commit only (a
    concurrent duplicate still fails the insert on ``dedupe_key``)."""
    ids = [req.consent_id for _, req, _ in verified]
    with svc.db.sessions() as s:
        existing = {
            i.dedupe_key: i
            for i in s.scalars(select(OutboxItem).where(OutboxItem.dedupe_key.in_(ids)))
        }
        legacy = set(s.scalars(select(Consent.consent_id).where(Consent.consent_id.in_(ids))))
    todo: list[tuple[int, _Request, str]] = []
    for pos, req, sig in verified:
        if req.consent_id in existing:
            results[pos] = _duplicate(existing[req.consent_id])
        elif req.consent_id in legacy:
            results[pos] = _already_granted(req.consent_id)
        else:
            todo.append((pos, req, sig))
    if not todo:
        return []
    rows = _grant_rows(todo)
    with svc.db.write_session() as s:
        if not one_by_one:
            return _insert_grants(s, todo, *rows)
        added: list[tuple[int, Accepted]] = []
        for k, (pos, req, sig) in enumerate(todo):
            savepoint = s.begin_nested()
            try:
                added += _insert_grants(s, [(pos, req, sig)], [rows[0][k]], [rows[1][k]])
                savepoint.commit()
            except IntegrityError:
                savepoint.rollback()
                results[pos] = _already_granted(req.consent_id)
        return added


def _already_granted(consent_id: str) -> Conflict:
    return Conflict(
        "this consent request was already granted", code="duplicate_grant", consent_id=consent_id
    )


def _grant_rows(
    todo: list[tuple[int, _Request, str]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The outbox rows and audit event rows of verified grants, in order."""
    items = [
        outbox.item_row(
            "grant",
            outbox.grant_key(req.consent_id),
            req.consent_id,
            req.subject,
            {
                "message": req.message,
                "signature": sig,
                "request_id": req.request_id,
                "signer": req.signer,
            },
        )
        for _, req, sig in todo
    ]
    events = [
        audit.event_row(
            "grant",
            req.consent_id,
            {
                "consent_id": req.consent_id,
                "subject": req.subject,
                "controller": req.message["controller"],
                "at_ms": item["created_ms"],
            },
        )
        for (_, req, _), item in zip(todo, items, strict=True)
    ]
    return items, events


def _insert_grants(
    s: Any,
    todo: list[tuple[int, _Request, str]],
    items: list[dict[str, Any]],
    events: list[dict[str, Any]],
) -> list[tuple[int, Accepted]]:
    """Insert the rows of :func:`_grant_rows` (Core bulk inserts, then the new seqs read
    back by dedupe key); raises ``IntegrityError`` on a duplicate."""
    s.execute(insert(table_of(OutboxItem)), items)  # one Core executemany; no RETURNING:
    # SQLite returns ordered keys only one row per statement
    seq_of = dict(
        s.execute(
            select(OutboxItem.dedupe_key, OutboxItem.seq).where(
                OutboxItem.dedupe_key.in_([i["dedupe_key"] for i in items])
            )
        ).all()
    )
    s.execute(insert(table_of(AuditEvent)), events)
    return [
        (pos, Accepted(req.consent_id, "pending", "pending", None, None, seq_of[req.consent_id]))
        for pos, req, _ in todo
    ]


def grant(svc: Services, request_id: str, signature: str) -> Accepted:
    """Verify a citizen's signed Grant and commit it to the outbox (``pending``).

    The anchoring worker then anchors it (:mod:`authz.anchoring`). Raises
    :class:`NotFound` ``request_not_found``; :class:`Conflict` ``duplicate_grant`` when
    the request was already granted (the first grant stays unchanged; the problem carries
    its ``consent_id`` and state); :class:`InvalidSignature` (``signature_malformed``,
    ``signature_bad_v``, ``signature_high_s``, ``signature_expired``, ``wrong_signer``);
    :class:`Forbidden` ``guardian_required`` / ``department_suspended``.
    """
    result = accept_grants(svc, [(request_id, signature)])[0]
    if isinstance(result, ConsentgateError):
        raise result
    return result


@dataclass(frozen=True)
class ConsentView:
    """One consent as the service knows it: anchored (from the chain projection) or
    accepted and still in the outbox (``anchor`` ``pending``/``failed``).

    ``withdrawn`` is true as soon as a withdrawal is accepted (before it is anchored).
    """

    consent_id: str
    subject: str
    controller: str
    signer: str | None
    purpose: str | None
    pii_categories: list[str]
    sensitive: bool
    valid_from: int
    valid_until: int
    record_hash: str
    request_id: str | None
    anchor: str
    granted_tx: str | None
    granted_block: int | None
    withdrawn: bool
    withdrawal_anchor: str | None


def _view(s: Any, consent_id: str) -> ConsentView | None:
    row = s.get(Consent, consent_id)
    w_item = s.scalar(
        select(OutboxItem).where(OutboxItem.dedupe_key == outbox.withdrawal_key(consent_id))
    )
    accepted_w = s.get(AcceptedWithdrawal, consent_id) is not None
    w_anchor = (
        w_item.state if w_item is not None else ("anchored" if row and row.withdrawn else None)
    )
    if row is not None:
        return ConsentView(
            row.consent_id,
            row.subject,
            row.controller,
            row.signer,
            row.purpose,
            list(row.pii_categories),
            row.sensitive,
            row.valid_from,
            row.valid_until,
            row.record_hash,
            row.request_id,
            "anchored",
            row.granted_tx,
            row.granted_block,
            row.withdrawn or accepted_w,
            w_anchor,
        )
    item = s.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == consent_id))
    if item is None or item.kind != "grant":
        return None
    m = item.payload["message"]
    return ConsentView(
        consent_id,
        m["subject"],
        m["controller"],
        None,
        m["purpose"],
        list(m["piCategories"]),
        bool(m["sensitive"]),
        int(m["validFrom"]),
        int(m["validUntil"]),
        m["recordHash"],
        item.payload.get("request_id"),
        item.state,
        item.tx_hash,
        item.block_number,
        accepted_w,
        w_anchor,
    )


def get_consent(svc: Services, consent_id: str) -> ConsentView:
    """A consent, anchored or still pending; raises :class:`NotFound` ``consent_not_found``."""
    with svc.db.sessions() as s:
        view = _view(s, consent_id.lower())
    if view is None:
        raise NotFound(f"no consent {consent_id}", code="consent_not_found")
    return view


def may_act_for(svc: Services, address: str, subject: str) -> bool:
    """Whether a signed-in citizen ``address`` may see/act for ``subject``'s consents."""
    return address == subject or allowed_signer(svc, subject) == (address, True)


def _withdrawable(svc: Services, consent_id: str) -> ConsentView:
    view = get_consent(svc, consent_id)
    if view.withdrawn:
        raise Conflict(
            "the consent is already withdrawn",
            code="already_withdrawn",
            consent_id=view.consent_id,
            anchor=view.withdrawal_anchor,
        )
    if view.anchor == "failed":
        raise Conflict(
            "the grant was refused by the chain; there is nothing to withdraw",
            code="grant_failed",
            consent_id=view.consent_id,
        )
    return view


def withdrawal_typed_data(svc: Services, consent_id: str) -> dict[str, Any]:
    """The Withdrawal to sign for the consent: the newest offered one while it has more
    than 12 h left, else a fresh one (new nonce, deadline in 24 h), remembered.

    Raises :class:`NotFound` ``consent_not_found``, :class:`Conflict` ``already_withdrawn``
    / ``grant_failed``.
    """
    view = _withdrawable(svc, consent_id)
    now = svc.now()
    with svc.db.sessions() as s:
        live = s.scalar(
            select(WithdrawalIntent)
            .where(
                WithdrawalIntent.consent_id == view.consent_id,
                WithdrawalIntent.deadline >= now + WITHDRAWAL_TTL_S // 2,
            )
            .order_by(WithdrawalIntent.id.desc())
            .limit(1)
        )
    if live is not None:  # reuse: repeated GETs do not pile up offers
        return typed_data.withdrawal_typed_data(
            svc.ledger.chain_id, svc.ledger.address, live.message
        )
    deadline = now + WITHDRAWAL_TTL_S
    message = {
        "consentId": view.consent_id,
        "subject": view.subject,
        "nonce": fresh_nonce(),
        "deadline": str(deadline),
    }
    with svc.db.session() as s:
        s.add(WithdrawalIntent(consent_id=view.consent_id, message=message, deadline=deadline))
    return typed_data.withdrawal_typed_data(svc.ledger.chain_id, svc.ledger.address, message)


def withdraw(svc: Services, consent_id: str, signature: str) -> Accepted:
    """Verify a signed Withdrawal against the offered ones and commit it.

    Effective at once: the withdrawal is recorded (and every later access check denied,
    fail closed) in the same transaction that puts it in the outbox for anchoring.
    Raises :class:`NotFound`, :class:`Conflict` ``already_withdrawn`` / ``grant_failed``,
    :class:`InvalidSignature` (``no_withdrawal_offered``, ``signature_*``,
    ``wrong_signer``), :class:`Forbidden` ``guardian_required``.
    """
    view = _withdrawable(svc, consent_id)
    typed_data.parse_signature(signature)
    now = svc.now()
    with svc.db.sessions() as s:
        intents = s.scalars(
            select(WithdrawalIntent)
            .where(WithdrawalIntent.consent_id == view.consent_id, WithdrawalIntent.deadline >= now)
            .order_by(WithdrawalIntent.id.desc())
            .limit(32)
        ).all()
    if not intents:
        raise InvalidSignature(
            "no live withdrawal was offered for this consent; GET the withdrawal typed data first",
            code="no_withdrawal_offered",
        )
    expected, _ = allowed_signer(svc, view.subject)
    chosen = None
    signers: list[str] = []
    for intent in intents:
        td = typed_data.withdrawal_typed_data(
            svc.ledger.chain_id, svc.ledger.address, intent.message
        )
        signer = typed_data.recover_signer(typed_data.digest(td), signature)
        signers.append(signer)
        if signer == expected:
            chosen = intent
            break
    if chosen is None:
        # report against the newest offer: that is the one a client normally signs
        signer = view.subject if view.subject in signers else signers[0]
        _check_signer(svc, view.subject, signer)
        raise InvalidSignature(
            "signature does not match an offered withdrawal", code="wrong_signer"
        )
    sig = typed_data.normalize_signature(signature)
    try:
        with svc.db.session() as s:
            item = outbox.enqueue(
                s,
                "withdrawal",
                outbox.withdrawal_key(view.consent_id),
                view.consent_id,
                view.subject,
                {"message": chosen.message, "signature": sig},
            )
            s.flush()
            s.add(
                AcceptedWithdrawal(
                    consent_id=view.consent_id,
                    signer=expected,
                    accepted_ms=outbox.now_ms(),
                    outbox_seq=item.seq,
                )
            )
            audit.append(
                s,
                "withdrawal",
                view.consent_id,
                {
                    "consent_id": view.consent_id,
                    "subject": view.subject,
                    "controller": view.controller,
                    "signer": expected,
                    "at_ms": outbox.now_ms(),
                },
            )
            s.flush()
            accepted = accepted_from(item)
    except IntegrityError:
        raise Conflict(
            "the consent is already withdrawn", code="already_withdrawn", consent_id=view.consent_id
        ) from None
    svc.wake_anchoring()
    return accepted


def consent_status(view: ConsentView, now: int) -> str:
    """``withdrawn``, ``pending``, ``failed``, ``expired``, ``not_yet_valid`` or ``active``."""
    if view.withdrawn:
        return "withdrawn"
    if view.anchor in ("pending", "failed"):
        return view.anchor
    if now > view.valid_until:
        return "expired"
    if now < view.valid_from:
        return "not_yet_valid"
    return "active"


def consent_record(svc: Services, view: ConsentView) -> dict[str, Any]:
    """The consent record (ISO/IEC TS 27560 field names), status and event history.

    Events: ``given`` / ``withdrawn`` with ``tx_hash`` and ``block_number`` once anchored
    (``anchor`` says ``pending`` before), and ``expired`` after ``valid_until``.
    """
    with svc.db.sessions() as s:
        req = s.get(ConsentRequest, view.request_id) if view.request_id else None
        events = s.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.consent_id == view.consent_id)
            .order_by(ConsentEvent.block_number, ConsentEvent.log_index)
        ).all()
        pending = s.scalars(
            select(OutboxItem)
            .where(
                OutboxItem.dedupe_key.in_(outbox.keys_of(view.consent_id)),
                OutboxItem.state != "anchored",
            )
            .order_by(OutboxItem.seq)
        ).all()
    record: dict[str, Any] = dict(req.record) if req is not None else {}
    status = consent_status(view, svc.now())
    history: list[dict[str, Any]] = [
        {
            "event": e.event,
            "time": rfc3339(e.block_time),
            "anchor": "anchored",
            "tx_hash": e.tx_hash,
            "block_number": e.block_number,
            "signer": e.signer,
        }
        for e in events
    ]
    history += [
        {
            "event": "given" if p.kind == "grant" else "withdrawn",
            "time": rfc3339(p.created_ms // 1000),
            "anchor": p.state,
            "tx_hash": None,
            "block_number": None,
            "signer": None,
            "error_code": p.error_code,
        }
        for p in pending
    ]
    if status == "expired":
        history.append(
            {
                "event": "expired",
                "time": rfc3339(view.valid_until),
                "anchor": None,
                "tx_hash": None,
                "block_number": None,
                "signer": None,
            }
        )
    record.update(
        {
            "schema_version": SCHEMA_VERSION,
            "record_id": view.consent_id,
            "consent_id": view.consent_id,
            "pii_principal_id": view.subject,
            "signer": view.signer,
            "signed_by_guardian": view.signer is not None and view.signer != view.subject,
            "purposes": [view.purpose] if view.purpose else [],
            "pii_categories": view.pii_categories,
            "sensitive": view.sensitive,
            "valid_from": rfc3339(view.valid_from),
            "valid_until": rfc3339(view.valid_until),
            "record_hash": view.record_hash,
            "withdrawal_method": "EIP-712 Withdrawal signed by the PII principal: "
            f"GET then POST /v1/consents/{view.consent_id}/withdrawal",
            "consent_status": status,
            "status": status,
            "anchor": {
                "state": view.anchor,
                "chain_id": svc.ledger.chain_id,
                "registry": svc.ledger.address,
                "tx_hash": view.granted_tx,
                "block_number": view.granted_block,
            },
            "events": history,
        }
    )
    if "created_at" in record and isinstance(record["created_at"], int):
        record["created_at"] = rfc3339(record["created_at"])
    return record


def consents_of(svc: Services, subject: str) -> list[dict[str, Any]]:
    """Every consent of a PII principal (pending ones first, then newest anchored), as
    consent records."""
    with svc.db.sessions() as s:
        anchored = list(
            s.scalars(
                select(Consent.consent_id)
                .where(Consent.subject == subject)
                .order_by(Consent.granted_block.desc())
            )
        )
        queued = [
            cid
            for cid in s.scalars(
                select(OutboxItem.consent_id)
                .where(
                    OutboxItem.subject == subject,
                    OutboxItem.kind == "grant",
                    OutboxItem.state != "anchored",
                )
                .order_by(OutboxItem.seq.desc())
            )
            if cid not in anchored
        ]
        views = [v for v in (_view(s, cid) for cid in queued + anchored) if v is not None]
    return [consent_record(svc, v) for v in views]


def open_requests_of(svc: Services, subject: str) -> list[dict[str, Any]]:
    """Consent requests addressed to a PII principal that still await a signature (not
    granted, deadline not passed), newest first, each with its typed data."""
    now = svc.now()
    with svc.db.sessions() as s:
        rows = s.scalars(
            select(ConsentRequest)
            .where(ConsentRequest.subject == subject, ConsentRequest.deadline >= now)
            .order_by(ConsentRequest.created_at.desc())
            .limit(500)
        ).all()
        taken = set(
            s.scalars(
                select(OutboxItem.consent_id).where(
                    OutboxItem.dedupe_key.in_([outbox.grant_key(r.consent_id) for r in rows])
                )
            )
        )
        taken |= set(
            s.scalars(
                select(Consent.consent_id).where(
                    Consent.consent_id.in_([r.consent_id for r in rows])
                )
            )
        )
    return [
        {
            "request_id": r.request_id,
            "consent_id": r.consent_id,
            "record": r.record,
            "typed_data": request_typed_data(svc, r),
        }
        for r in rows
        if r.consent_id not in taken
    ]


def withdrawals_for(
    svc: Services, controller: str, after: int, limit: int = 500
) -> list[dict[str, Any]]:
    """The withdrawals of a department's consents accepted after outbox sequence
    ``after``, oldest first: a feed a department polls to learn of withdrawals at once.
    Each: ``{"seq", "consent_id", "subject", "accepted_at", "anchor"}``."""
    with svc.db.sessions() as s:
        rows = s.execute(
            select(OutboxItem, AcceptedWithdrawal.accepted_ms)
            .join(AcceptedWithdrawal, AcceptedWithdrawal.outbox_seq == OutboxItem.seq)
            .where(OutboxItem.kind == "withdrawal", OutboxItem.seq > after)
            .order_by(OutboxItem.seq)
            .limit(limit * 4)
        ).all()
        out = []
        for item, accepted_ms in rows:
            view = _view(s, item.consent_id)
            if view is None or view.controller != controller:
                continue
            out.append(
                {
                    "seq": item.seq,
                    "consent_id": item.consent_id,
                    "subject": item.subject,
                    "accepted_at": rfc3339(accepted_ms // 1000),
                    "anchor": item.state,
                }
            )
            if len(out) >= limit:
                break
    return out
