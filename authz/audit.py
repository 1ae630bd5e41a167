"""The audit log: one event per access check and per accepted grant or withdrawal.

Events are appended in the same database transaction as the act they record, so an
acknowledged act always has its audit event. Each event is a small JSON document with no
personal information (subjects are card-key addresses); its hash is

    keccak256(canonical JSON)   canonical = UTF-8, keys sorted, no spaces

and the anchoring worker appends ``leaf(hash)`` to the append-only audit tree
(docs/anchoring.md). Fields by kind:

- ``access_check``: ``access_id``, ``department_id``, ``controller``, ``subject``,
  ``purpose``, ``pii_categories``, ``allowed``, ``reason``, ``consent_id``, ``at_ms``;
- ``grant`` / ``withdrawal``: ``consent_id``, ``subject``, ``controller``, ``signer``,
  ``at_ms``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy.orm import Session

from authz.models import AuditEvent
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
