"""The audit log: one event per access check and per accepted grant or withdrawal.

Events are appended in the same database transaction as the act they record, so an
acknowledged act always has its audit event. Each event is a small JSON document with no
personal information (subjects are card-key addresses); its hash is

    keccak256(canonical JSON)   canonical = UTF-8, keys sorted, no spaces

and the anchoring worker appends ``leaf(hash)`` to the append-only audit tree
(docs/anchoring.md). An access check's event is first committed beside its access-log
row in the ``accesslog`` schema's queue (its own write lock: see :mod:`authz.db`); the
worker moves queued events into ``audit_events`` with :func:`move_queued` before each
batch, so the tree holds them in the order they were moved. Fields by kind:

- ``access_check``: ``access_id``, ``department_id``, ``controller``, ``subject``,
  ``purpose``, ``pii_categories``, ``allowed``, ``reason``, ``consent_id``, ``at_ms``;
- ``grant`` / ``withdrawal``: ``consent_id``, ``subject``, ``controller``, ``signer``,
  ``at_ms``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from eth_utils import keccak
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from authz.db import Database
from authz.models import AuditEvent, QueuedAccessAudit


def canonical_json(event: dict[str, Any]) -> bytes:
    """The canonical UTF-8 JSON bytes of an event (sorted keys, no spaces)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: dict[str, Any]) -> str:
    """``keccak256(canonical_json(event))`` as 0x hex."""
    return "0x" + keccak(canonical_json(event)).hex()


def event_row(kind: str, ref: str, event: dict[str, Any]) -> dict[str, Any]:
    """The ``audit_events`` row (as a column dict) of an event, for bulk inserts."""
    doc = {"kind": kind, **event}
    return {
        "kind": kind,
        "ref": ref,
        "event": doc,
        "event_hash": event_hash(doc),
        "created_ms": int(time.time() * 1000),
    }


def append(s: Session, kind: str, ref: str, event: dict[str, Any]) -> AuditEvent:
    """Add an audit event to the session (committed with the caller's transaction)."""
    doc = {"kind": kind, **event}
    row = AuditEvent(
        kind=kind,
        ref=ref,
        event=doc,
        event_hash=event_hash(doc),
        created_ms=int(time.time() * 1000),
    )
    s.add(row)
    return row


_QUEUED_COLUMNS = ("kind", "ref", "event", "event_hash", "created_ms")


def move_queued(db: Database, limit: int = 20_000) -> int:
    """Move up to ``limit`` queued access-check events, oldest first, into
    ``audit_events``; returns how many were queued.

    Two transactions: insert into ``audit_events`` (skipping any event whose
    ``(kind, ref)`` is already there), then delete from the queue. A crash between them
    leaves the events queued and already moved; the next call skips them, so every
    event reaches the audit log exactly once.
    """
    with db.sessions() as s:
        queued = (
            s.execute(select(QueuedAccessAudit).order_by(QueuedAccessAudit.seq).limit(limit))
            .scalars()
            .all()
        )
    if not queued:
        return 0
    with db.session() as s:
        refs = [q.ref for q in queued]
        present = set(
            s.scalars(
                select(AuditEvent.ref).where(
                    AuditEvent.kind == "access_check", AuditEvent.ref.in_(refs)
                )
            )
        )
        rows = [
            {c: getattr(q, c) for c in _QUEUED_COLUMNS}
            for q in queued
            if not (q.kind == "access_check" and q.ref in present)
        ]
        if rows:
            s.execute(insert(AuditEvent), rows)
    with db.session() as s:
        s.execute(delete(QueuedAccessAudit).where(QueuedAccessAudit.seq <= queued[-1].seq))
    return len(queued)
