"""Access checks and the access log.

A department asks before every access; the answer comes from the index (projected from
chain events, so it carries the consent's anchor), and the check itself — allowed or
denied — is appended to the access log, which PIPL-minded operators keep at least three
years.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

from authz import audit
from authz.consents import rfc3339
from authz.errors import NotFound
from authz.ids import checksum, new_id
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

# The check path's queries, built once (statement construction costs more than the
# SQLite lookup itself on this path).
_ACTIVE = select(DepartmentState.active).where(DepartmentState.address == bindparam("address"))
_CANDIDATES = select(Consent).where(
    Consent.subject == bindparam("subject"),
    Consent.controller == bindparam("controller"),
    Consent.purpose_hash == bindparam("purpose_hash"),
)

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


def _evaluate(c: Consent, wanted: set[str], now: int) -> str:
    if c.withdrawn:
        return "consent_withdrawn"
    if now > c.valid_until:
        return "consent_expired"
    if now < c.valid_from:
        return "consent_not_yet_valid"
    if not wanted <= set(c.category_hashes):
        return "category_not_granted"
    return "consent_valid"


def check_access(
    svc: Services, dept: Department, subject: str, purpose: str, pii_categories: list[str]
) -> AccessDecision:
    """Decide whether ``dept`` may use ``subject``'s ``pii_categories`` for ``purpose`` now.

    Allowed only with a consent that exists, is not withdrawn, is inside its validity
    window (both ends inclusive) and grants every requested category, and only while the
    department is registered and not suspended. Reasons: ``consent_valid``,
    ``no_consent``, ``consent_withdrawn``, ``consent_expired``, ``consent_not_yet_valid``,
    ``category_not_granted``, ``department_suspended``. The check is logged either way.
    """
    subject = checksum(subject, "subject")
    now = svc.now()
    wanted = {text_hash(c) for c in pii_categories}
    decision_reason = "no_consent"
    chosen: Consent | None = None
    with svc.db.sessions() as s:
        active = s.scalar(_ACTIVE, {"address": dept.address})
        candidates: Sequence[Consent] = []
        withdrawn: set[str] = set()
        if not active:
            decision_reason = "department_suspended"
        else:
            candidates = s.scalars(
                _CANDIDATES,
                {
                    "subject": subject,
                    "controller": dept.address,
                    "purpose_hash": text_hash(purpose),
                },
            ).all()
            if candidates:
                withdrawn = set(
                    s.scalars(
                        select(AcceptedWithdrawal.consent_id).where(
                            AcceptedWithdrawal.consent_id.in_([c.consent_id for c in candidates])
                        )
                    )
                )
    for c in candidates:
        reason = "consent_withdrawn" if c.consent_id in withdrawn else _evaluate(c, wanted, now)
        if reason == "consent_valid":
            chosen, decision_reason = c, reason
            break
        if REASON_RANK[reason] >= REASON_RANK[decision_reason]:
            decision_reason = reason
    allowed = chosen is not None
    access_id = new_id("acc")
    at_ms = int(time.time() * 1000)
    consent_id = chosen.consent_id if chosen else None
    record = {
        "access_id": access_id,
        "department_id": dept.department_id,
        "subject": subject,
        "purpose": purpose,
        "pii_categories": list(pii_categories),
        "allowed": allowed,
        "reason": decision_reason,
        "consent_id": consent_id,
        "at_ms": at_ms,
    }
    event = audit.event_row("access_check", access_id, {**record, "controller": dept.address})
    svc.group_commit.write([(AccessRecord, record), (QueuedAccessAudit, event)])
    anchor = None
    if chosen is not None:
        anchor = {
            "chain_id": svc.ledger.chain_id,
            "registry": svc.ledger.address,
            "tx_hash": chosen.granted_tx,
            "block_number": chosen.granted_block,
        }
    return AccessDecision(
        allowed, decision_reason, chosen.consent_id if chosen else None, access_id, anchor
    )


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
