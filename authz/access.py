"""Access checks and the access log.

A department asks before every access; the answer comes from the index (projected from
chain events, so it carries the consent's anchor), and the check itself — allowed or
denied — is appended to the access log, which PIPL-minded operators keep at least three
years.

Checks are the dominant call, so their path is lean: one SQLAlchemy Core query reads the
key's department, its on-chain state and the candidate consents with their withdrawals
(nothing cached: a suspension, a key rotation or a withdrawal made by any process sharing
the index counts on the next check), and the access-log row and audit event ride a group
commit (:mod:`authz.group_commit`); the answer waits for that commit.
:func:`check_access_by_key` is the HTTP path (no thread while waiting),
:func:`check_access` the blocking one for a department already authenticated.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, bindparam, select
from starlette.concurrency import run_in_threadpool

from authz import audit
from authz.consents import rfc3339
from authz.errors import BadRequest, NotFound, Unauthorized
from authz.ids import checksum, new_id, secret_hash
from authz.ledger import text_hash
from authz.models import (
    AcceptedWithdrawal,
    AccessRecord,
    Consent,
    Department,
    DepartmentState,
    QueuedAccessAudit,
)
from authz.services import Services

# The check path's queries: SQLAlchemy Core, built once, bound per call (statement
# construction and ORM entity loading cost far more than the indexed lookups).
_DEPT = Department.__table__
_STATE = DepartmentState.__table__
_CONSENT = Consent.__table__
_WITHDRAWAL = AcceptedWithdrawal.__table__

# A department by API-key digest, with its projected on-chain state, read fresh on every
# check (a suspension, or a key rotation by another process, takes effect at once).
_CALLER_COLUMNS = (_DEPT.c.department_id, _DEPT.c.address, _DEPT.c.api_key_hash, _STATE.c.active)
_CALLER = (
    select(*_CALLER_COLUMNS)
    .select_from(_DEPT.outerjoin(_STATE, _STATE.c.address == _DEPT.c.address))
    .where(_DEPT.c.api_key_hash == bindparam("digest"))
)
_ACTIVE = select(_STATE.c.active).where(_STATE.c.address == bindparam("address"))
# A candidate consent (same subject, controller and purpose) with its accepted
# withdrawal, if any.
_CANDIDATE_COLUMNS = (
    _CONSENT.c.consent_id,
    _CONSENT.c.withdrawn,
    _CONSENT.c.valid_from,
    _CONSENT.c.valid_until,
    _CONSENT.c.category_hashes,
    _CONSENT.c.granted_tx,
    _CONSENT.c.granted_block,
    _WITHDRAWAL.c.consent_id.label("withdrawal"),
)
_WITH_WITHDRAWAL = _WITHDRAWAL.c.consent_id == _CONSENT.c.consent_id
_CANDIDATES = (
    select(*_CANDIDATE_COLUMNS)
    .select_from(_CONSENT.outerjoin(_WITHDRAWAL, _WITH_WITHDRAWAL))
    .where(
        _CONSENT.c.subject == bindparam("subject"),
        _CONSENT.c.controller == bindparam("controller"),
        _CONSENT.c.purpose_hash == bindparam("purpose_hash"),
    )
)
# Both in one indexed query (the check's only read): one row per candidate, or one row
# with NULL consent columns when there is none; no row for an unknown key.
_CALLER_AND_CANDIDATES = (
    select(*_CALLER_COLUMNS, *_CANDIDATE_COLUMNS)
    .select_from(
        _DEPT.outerjoin(_STATE, _STATE.c.address == _DEPT.c.address)
        .outerjoin(
            _CONSENT,
            and_(
                _CONSENT.c.controller == _DEPT.c.address,
                _CONSENT.c.subject == bindparam("subject"),
                _CONSENT.c.purpose_hash == bindparam("purpose_hash"),
            ),
        )
        .outerjoin(_WITHDRAWAL, _WITH_WITHDRAWAL)
    )
    .where(_DEPT.c.api_key_hash == bindparam("digest"))
)

# A row of _CANDIDATES (any arity: SQLAlchemy types rows by their column tuple).
CandidateRow = Row[*tuple[Any, ...]]

# Reasons, most decisive last: when no consent allows the access, the reason reported
# is that of the candidate that came closest.
REASON_RANK = {
    "no_consent": 0,
    "consent_withdrawn": 1,
    "consent_expired": 2,
    "consent_not_yet_valid": 3,
    "category_not_granted": 4,
}


@dataclass(frozen=True)
class AccessDecision:
    """The answer to an access check.

    ``anchor`` is the allowing consent's chain proof (chain id, registry, grant tx hash
    and block) or None when denied.
    """

    allowed: bool
    reason: str
    consent_id: str | None
    access_id: str
    anchor: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        """The public answer ``{"allowed", "consent_id", "reason", "access_id", "anchor"}``
        (the keys and order of :class:`authz.api.schemas.AccessCheckResult`)."""
        return {
            "allowed": self.allowed,
            "consent_id": self.consent_id,
            "reason": self.reason,
            "access_id": self.access_id,
            "anchor": self.anchor,
        }


@dataclass(frozen=True)
class Caller:
    """The department making a check, as read at the time of the check."""

    department_id: str
    address: str
    active: bool


def _evaluate(c: CandidateRow, wanted: set[str], now: int) -> str:
    if c.withdrawn or c.withdrawal is not None:
        return "consent_withdrawn"
    if now > c.valid_until:
        return "consent_expired"
    if now < c.valid_from:
        return "consent_not_yet_valid"
    if not wanted <= set(c.category_hashes):
        return "category_not_granted"
    return "consent_valid"


def _decide(
    caller: Caller, candidates: Sequence[CandidateRow], wanted: set[str], now: int
) -> tuple[str, CandidateRow | None]:
    """The reason and the allowing consent row (None when denied)."""
    if not caller.active:
        return "department_suspended", None
    reason = "no_consent"
    for c in candidates:
        r = _evaluate(c, wanted, now)
        if r == "consent_valid":
            return r, c
        if REASON_RANK[r] >= REASON_RANK[reason]:
            reason = r
    return reason, None


def _unknown_key() -> Unauthorized:
    return Unauthorized("unknown department API key", code="invalid_api_key")


def _read_by_key(
    svc: Services, api_key: str, subject: str, purpose: str, pii_categories: list[str]
) -> tuple[Caller, str, str, CandidateRow | None]:
    """Authenticate ``api_key``, check ``subject`` and decide in one query; returns the
    caller, the checksummed subject, the reason and the allowing consent row. Errors in
    the declared endpoint's order: ``invalid_api_key`` before ``invalid_address``."""
    wanted = {text_hash(c) for c in pii_categories}
    now = svc.now()
    digest = secret_hash(api_key)
    with svc.db.engine.connect() as conn:
        try:
            subject = checksum(subject, "subject")
        except BadRequest:
            row = conn.execute(_CALLER, {"digest": digest}).first()
            if row is None or not hmac.compare_digest(row.api_key_hash, digest):
                raise _unknown_key() from None
            raise
        rows = conn.execute(
            _CALLER_AND_CANDIDATES,
            {"digest": digest, "subject": subject, "purpose_hash": text_hash(purpose)},
        ).all()
    if not rows or not hmac.compare_digest(rows[0].api_key_hash, digest):
        raise _unknown_key()
    first = rows[0]
    caller = Caller(first.department_id, first.address, bool(first.active))
    candidates = [r for r in rows if r.consent_id is not None]
    reason, chosen = _decide(caller, candidates, wanted, now)
    return caller, subject, reason, chosen


def _read(
    svc: Services, dept: Department, subject: str, purpose: str, pii_categories: list[str]
) -> tuple[Caller, str, CandidateRow | None]:
    """Read ``dept``'s state and the candidates, and decide; returns the caller, the
    reason and the allowing consent row (``subject`` is checksummed already)."""
    wanted = {text_hash(c) for c in pii_categories}
    now = svc.now()
    with svc.db.engine.connect() as conn:
        active = conn.execute(_ACTIVE, {"address": dept.address}).scalar()
        caller = Caller(dept.department_id, dept.address, bool(active))
        candidates: Sequence[CandidateRow] = []
        if caller.active:
            candidates = conn.execute(
                _CANDIDATES,
                {
                    "subject": subject,
                    "controller": dept.address,
                    "purpose_hash": text_hash(purpose),
                },
            ).all()
    reason, chosen = _decide(caller, candidates, wanted, now)
    return caller, reason, chosen


def _log(
    svc: Services,
    caller: Caller,
    subject: str,
    purpose: str,
    pii_categories: list[str],
    reason: str,
    chosen: CandidateRow | None,
) -> tuple[AccessDecision, list[tuple[Any, dict[str, Any]]]]:
    """The decision and the rows that log it (access-log row and audit event)."""
    access_id = new_id("acc")
    consent_id = chosen.consent_id if chosen is not None else None
    record = {
        "access_id": access_id,
        "department_id": caller.department_id,
        "subject": subject,
        "purpose": purpose,
        "pii_categories": list(pii_categories),
        "allowed": chosen is not None,
        "reason": reason,
        "consent_id": consent_id,
        "at_ms": int(time.time() * 1000),
    }
    event = audit.event_row("access_check", access_id, {**record, "controller": caller.address})
    anchor = None
    if chosen is not None:
        anchor = {
            "chain_id": svc.ledger.chain_id,
            "registry": svc.ledger.address,
            "tx_hash": chosen.granted_tx,
            "block_number": chosen.granted_block,
        }
    decision = AccessDecision(chosen is not None, reason, consent_id, access_id, anchor)
    return decision, [(AccessRecord, record), (QueuedAccessAudit, event)]


def check_access(
    svc: Services, dept: Department, subject: str, purpose: str, pii_categories: list[str]
) -> AccessDecision:
    """Decide whether ``dept`` may use ``subject``'s ``pii_categories`` for ``purpose`` now.

    Allowed only with a consent that exists, is not withdrawn, is inside its validity
    window (both ends inclusive) and grants every requested category, and only while the
    department is registered and not suspended. Reasons: ``consent_valid``,
    ``no_consent``, ``consent_withdrawn``, ``consent_expired``, ``consent_not_yet_valid``,
    ``category_not_granted``, ``department_suspended``. The check is logged either way
    (durably, before this returns). Raises :class:`authz.errors.BadRequest`
    ``invalid_address`` for a malformed ``subject``.
    """
    subject = checksum(subject, "subject")
    caller, reason, chosen = _read(svc, dept, subject, purpose, pii_categories)
    decision, rows = _log(svc, caller, subject, purpose, pii_categories, reason, chosen)
    svc.group_commit.write(rows)
    return decision


async def check_access_by_key(
    svc: Services, api_key: str, subject: str, purpose: str, pii_categories: list[str]
) -> AccessDecision:
    """:func:`check_access` for the department owning ``api_key``, without a thread.

    The department (and whether it is active) is read in the same connection as the
    consents. On SQLite the indexed reads run inline on the event loop (tens of
    microseconds, never blocked by the writer in WAL mode); on other databases in the
    thread pool. The answer comes once the group commit holding the check's access-log
    row and audit event has committed. Raises :class:`authz.errors.Unauthorized`
    ``invalid_api_key`` for an unknown key, :class:`authz.errors.BadRequest`
    ``invalid_address`` for a malformed ``subject``.
    """
    if svc.db.is_sqlite:
        read = _read_by_key(svc, api_key, subject, purpose, pii_categories)
    else:
        read = await run_in_threadpool(_read_by_key, svc, api_key, subject, purpose, pii_categories)
    caller, subject, reason, chosen = read
    decision, rows = _log(svc, caller, subject, purpose, pii_categories, reason, chosen)
    await svc.group_commit.write_async(rows)
    return decision


def access_log_of(svc: Services, subject: str, limit: int = 500) -> list[dict[str, Any]]:
    """A PII principal's access log, newest first: who checked what, when, and the answer."""
    with svc.db.sessions() as s:
        rows = s.execute(
            select(AccessRecord, Department.name, Department.address)
            .join(Department, Department.department_id == AccessRecord.department_id)
            .where(AccessRecord.subject == subject)
            .order_by(AccessRecord.at_ms.desc())
            .limit(limit)
        ).all()
    return [
        {
            "access_id": r.access_id,
            "department_id": r.department_id,
            "department_name": name,
            "department_address": address,
            "purpose": r.purpose,
            "pii_categories": r.pii_categories,
            "allowed": r.allowed,
            "reason": r.reason,
            "consent_id": r.consent_id,
            "at": rfc3339(r.at_ms // 1000),
            "at_ms": r.at_ms,
        }
        for r, name, address in rows
    ]


def get_access(svc: Services, access_id: str) -> AccessRecord:
    """One access-log row; raises :class:`NotFound` ``access_not_found``."""
    with svc.db.sessions() as s:
        row = s.get(AccessRecord, access_id)
    if row is None:
        raise NotFound(f"no access check {access_id}", code="access_not_found")
    return row
