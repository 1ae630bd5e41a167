"""The audit log: one event per access check and per accepted grant or withdrawal.

Events are appended in the same database transaction as the act they record, so an
acknowledged act always has its audit event. Each event is a small JSON document with no
personal information (subjects are card-key addresses); its hash is

    keccak256(canonical JSON)   canonical = UTF-8, keys sorted, no spaces

and the anchoring worker appends ``leaf(hash)`` to the append-only audit tree
(docs/anchoring.md). An access check's event is first committed beside its access-log
row in the access log's queue (on SQLite under its own write lock: see :mod:`authz.db`); the
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

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from authz.db import Database
from authz.models import AuditEvent, Meta, QueuedAccessAudit
from fastpath.eip712 import keccak256


def canonical_json(event: dict[str, Any]) -> bytes:
    """The canonical UTF-8 JSON bytes of an event (sorted keys, no spaces)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: dict[str, Any]) -> str:
    """``keccak256(canonical_json(event))`` as 0x hex."""
    return "0x" + keccak256(canonical_json(event)).hex()


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
MOVED_KEY = "access_audit_moved_seq"


def moved_watermark(s: Session) -> int:
    """The highest queue ``seq`` already moved into ``audit_events`` (0 if none)."""
    value = s.scalar(select(Meta.value).where(Meta.key == MOVED_KEY))
    return int(value) if value else 0


def move_queued(db: Database, limit: int = 20_000) -> int:
    """Move up to ``limit`` queued access-check events, oldest first, into
    ``audit_events``; returns how many moved. Every queued event enters the audit log
    exactly once, crash or not.

    SQLite: the insert and the new watermark (the last moved ``seq``, in ``meta``) commit
    in one index transaction, and this never writes to the access log's file, whose
    write lock belongs to the checks; moved rows are deleted later by the access log's
    own writer (:func:`trim_moved`). The watermark is sound there because one writer at
    a time appends to the queue, so ``seq`` order is commit order.

    PostgreSQL: a sequence hands out ``seq`` at insert and transactions commit in any
    order, so a lower ``seq`` can appear after a higher one moved; the moved rows leave
    the queue in the same transaction instead (row locks, no file lock to avoid), taken
    ``FOR UPDATE SKIP LOCKED`` so two movers never take the same row.
    """
    columns = select(*(getattr(QueuedAccessAudit, c) for c in ("seq", *_QUEUED_COLUMNS)))
    with db.sessions() as s:  # a read first: most passes find nothing to move
        newest = s.scalar(select(func.max(QueuedAccessAudit.seq)))
        if newest is None or (db.is_sqlite and newest <= moved_watermark(s)):
            return 0
    with db.write_session() as s:
        if db.is_sqlite:
            # a write first, so this transaction holds the index's write lock before it
            # reads the watermark: pysqlite runs SELECTs outside a transaction, and two
            # processes' movers could otherwise both read the same watermark
            s.execute(
                text("INSERT OR IGNORE INTO meta (key, value) VALUES (:k, '0')"), {"k": MOVED_KEY}
            )
            query = columns.where(QueuedAccessAudit.seq > moved_watermark(s))
        else:
            query = columns.with_for_update(skip_locked=True)
        queued = s.execute(query.order_by(QueuedAccessAudit.seq).limit(limit)).all()
        if not queued:
            return 0
        s.execute(
            insert(AuditEvent), [dict(zip(_QUEUED_COLUMNS, q[1:], strict=True)) for q in queued]
        )
        if db.is_sqlite:
            s.merge(Meta(key=MOVED_KEY, value=str(queued[-1][0])))
        else:
            s.execute(
                delete(QueuedAccessAudit).where(QueuedAccessAudit.seq.in_([q[0] for q in queued]))
            )
    return len(queued)


def trim_moved(s: Session) -> None:
    """Delete queued events already moved into ``audit_events`` (in the caller's
    transaction: the access log's writer calls it now and then)."""
    s.execute(delete(QueuedAccessAudit).where(QueuedAccessAudit.seq <= moved_watermark(s)))
