"""The durable outbox of accepted grants and withdrawals, and the anchoring lease.

An item is committed here (with its audit event) before the API acknowledges it; the
anchoring worker (:mod:`authz.anchoring`) drains it. Only the process that holds the
anchoring *lease* sends anchoring transactions, so two service processes sharing one
database never anchor the same item twice; the lease is a compare-and-swap on one row
of the ``meta`` table, which works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authz.db import Database
from authz.models import Meta, OutboxItem

LEASE_KEY = "anchor_lease"
STATES = ("pending", "anchored", "failed")


def now_ms() -> int:
    """Wall-clock Unix time in milliseconds."""
    return int(time.time() * 1000)


def enqueue(
    s: Session,
    kind: str,
    dedupe_key: str,
    consent_id: str,
    subject: str,
    payload: dict[str, Any],
) -> OutboxItem:
    """Add a pending item to the session (committed with the caller's transaction).

    The caller checks :func:`find` first; a concurrent duplicate fails the commit with
    an ``IntegrityError`` on ``dedupe_key``.
    """
    item = OutboxItem(**item_row(kind, dedupe_key, consent_id, subject, payload))
    s.add(item)
    return item


def item_row(
    kind: str, dedupe_key: str, consent_id: str, subject: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """The column dict of a new pending item (for :func:`enqueue` and bulk inserts)."""
    return {
        "kind": kind,
        "dedupe_key": dedupe_key,
        "consent_id": consent_id,
        "subject": subject,
        "payload": payload,
        "state": "pending",
        "attempts": 0,
        "created_ms": now_ms(),
    }


def grant_key(consent_id: str) -> str:
    """The dedupe key of a consent's grant: the consent id itself."""
    return consent_id


def withdrawal_key(consent_id: str) -> str:
    """The dedupe key of a consent's withdrawal: ``w:`` + the consent id."""
    return "w:" + consent_id


def keys_of(consent_id: str) -> list[str]:
    """Both dedupe keys of a consent (grant, withdrawal): items are found by consent
    through the unique ``dedupe_key`` index, so ``consent_id`` needs no index of its own
    (one random-key B-tree fewer to rewrite on every accepted item)."""
    return [grant_key(consent_id), withdrawal_key(consent_id)]


def find(db: Database, dedupe_key: str) -> OutboxItem | None:
    """The item with this dedupe key, if one was accepted."""
    with db.sessions() as s:
        return s.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == dedupe_key))


def get_many(db: Database, seqs: Sequence[int]) -> dict[int, Any]:
    """The items with these sequence numbers, by ``seq``: read-only rows with the
    :class:`OutboxItem` columns as attributes, in one query (``?wait=anchored`` answers a
    batch of up to 1000 items this way, not with one session per item; :meth:`Waiters.wait`
    binds the same list). Unknown numbers are left out."""
    table = OutboxItem.__table__
    with db.sessions() as s:
        return {row.seq: row for row in s.execute(select(table).where(table.c.seq.in_(seqs)))}


def pending(db: Database, limit: int) -> list[Any]:
    """The oldest ``limit`` pending items not yet in a batch, in acceptance order:
    read-only rows with the :class:`OutboxItem` columns as attributes (no ORM entities:
    the worker reads thousands per batch and changes them with bulk statements). Items
    of a batch that is prepared but not yet anchored are left out: that batch is sent
    again as it is (:meth:`authz.commitments.Commitments.recover`), and taking its items
    into a new batch would give them a second leaf."""
    with db.sessions() as s:
        return list(
            s.execute(
                select(OutboxItem.__table__)
                .where(OutboxItem.state == "pending", OutboxItem.batch_id.is_(None))
                .order_by(OutboxItem.seq)
                .limit(limit)
            ).all()
        )


def oldest_pending_ms(db: Database) -> int | None:
    """Acceptance time (ms) of the oldest pending item, or None when the outbox is empty."""
    with db.sessions() as s:
        return s.scalar(
            select(OutboxItem.created_ms)
            .where(OutboxItem.state == "pending")
            .order_by(OutboxItem.seq)
            .limit(1)
        )


_HEAD = select(func.max(OutboxItem.seq))


def head(db: Database) -> int:
    """The newest item's ``seq`` (0 for an empty outbox): one primary-key lookup, what a
    worker in another process polls to learn that items were enqueued (a Core
    connection: a quarter of the CPU of an ORM session)."""
    with db.engine.connect() as conn:
        return int(conn.scalar(_HEAD) or 0)


def mark_anchored(
    s: Session, seqs: Iterable[int], tx_hash: str, block_number: int, batch_id: int | None = None
) -> None:
    """Mark items anchored by ``tx_hash`` (only those still pending: exactly once)."""
    ids = list(seqs)
    if ids:
        s.execute(
            update(OutboxItem)
            .where(OutboxItem.seq.in_(ids), OutboxItem.state == "pending")
            .values(
                state="anchored",
                tx_hash=tx_hash,
                block_number=block_number,
                batch_id=batch_id,
                anchored_ms=now_ms(),
            )
        )


def mark_batch_anchored(s: Session, batch_id: int, tx_hash: str, block_number: int) -> None:
    """Mark anchored by ``tx_hash`` every still pending item prepared for ``batch_id``
    (one statement; it reads the pending items through the ``state`` index)."""
    s.execute(
        update(OutboxItem)
        .where(OutboxItem.state == "pending", OutboxItem.batch_id == batch_id)
        .values(state="anchored", tx_hash=tx_hash, block_number=block_number, anchored_ms=now_ms())
    )


def mark_failed(s: Session, seq: int, code: str, detail: str) -> None:
    """Mark one item failed with the chain's decoded reason."""
    s.execute(
        update(OutboxItem)
        .where(OutboxItem.seq == seq, OutboxItem.state == "pending")
        .values(state="failed", error_code=code, error_detail=detail[:2000], anchored_ms=now_ms())
    )


def _owned_for(held: dict[str, Any], owner: str, ms: float) -> bool:
    """Whether the lease ``held`` is ``owner``'s for at least ``ms`` more."""
    return bool(held["owner"] == owner and held["until_ms"] - now_ms() > ms)


class Lease:
    """The anchoring lease of one process: ``owner`` holds it until ``ttl_ms`` after the
    last successful :meth:`acquire` (which also renews)."""

    def __init__(self, db: Database, owner: str, ttl_ms: int = 10_000) -> None:
        self.db = db
        self.owner = owner
        self.ttl_ms = ttl_ms

    def acquire(self) -> bool:
        """Take or renew the lease; False when another live process holds it.

        While this owner holds it with more than half the TTL left, answers True from one
        read: the worker asks before every batch, and a write per ask would queue behind
        the acceptance transactions for the database's write lock.
        """
        current = self.db.get_meta(LEASE_KEY)
        if current is None:
            with self.db.write_session() as s:
                try:
                    with s.begin_nested():
                        s.execute(
                            insert(Meta).values(
                                key=LEASE_KEY, value=json.dumps({"owner": "", "until_ms": 0})
                            )
                        )
                except IntegrityError:
                    pass
        elif _owned_for(json.loads(current), self.owner, self.ttl_ms / 2):
            return True
        with self.db.write_session() as s:
            current = s.scalar(select(Meta.value).where(Meta.key == LEASE_KEY))
            held: dict[str, Any] = json.loads(current) if current else {"owner": "", "until_ms": 0}
            now = now_ms()
            if held["owner"] not in ("", self.owner) and held["until_ms"] > now:
                return False
            new = json.dumps({"owner": self.owner, "until_ms": now + self.ttl_ms})
            result = s.execute(
                update(Meta).where(Meta.key == LEASE_KEY, Meta.value == current).values(value=new)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def release(self) -> None:
        """Give the lease up (if held) so another process can take over at once."""
        with self.db.session() as s:
            current = s.scalar(select(Meta.value).where(Meta.key == LEASE_KEY))
            if current and json.loads(current)["owner"] == self.owner:
                s.execute(
                    update(Meta)
                    .where(Meta.key == LEASE_KEY, Meta.value == current)
                    .values(value=json.dumps({"owner": "", "until_ms": 0}))
                )


class Waiters:
    """Lets request threads wait until outbox items leave ``pending`` (``?wait=anchored``).

    The worker calls :meth:`notify` after each batch; waiters re-read the database, so a
    batch anchored by another process is seen too (at the poll interval).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cond = threading.Condition()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait(self, seqs: Sequence[int], timeout_s: float, poll_s: float = 0.05) -> bool:
        """Block until none of ``seqs`` is pending or ``timeout_s`` passes; True if done."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.db.sessions() as s:
                left = s.scalar(
                    select(OutboxItem.seq)
                    .where(OutboxItem.seq.in_(list(seqs)), OutboxItem.state == "pending")
                    .limit(1)
                )
            if left is None:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._cond:
                self._cond.wait(min(poll_s, remaining))
