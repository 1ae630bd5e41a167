"""The anchoring worker: drains the outbox onto the chain.

One background thread per service process that anchors (``CONSENTGATE_ANCHORING``: the
API processes themselves, or one ``consentgate anchor-worker`` process beside them, see
:mod:`authz.supervisor`); only the holder of the anchoring lease
(:class:`authz.outbox.Lease`, renewed by a heartbeat thread while held, so a pass longer
than its TTL keeps it) sends transactions. Each pass first moves the access checks'
queued audit events into ``audit_events`` (:func:`authz.audit.move_queued`). A batch is taken when
``CONSENTGATE_BATCH_MAX`` items are pending or the oldest has waited
``CONSENTGATE_BATCH_WAIT_MS``.

``direct`` mode sends grants with ``ConsentRegistry.grantBatch`` and withdrawals with
``withdrawBatch`` (at most :data:`DIRECT_CHUNK` per transaction: a grant costs ~200k gas
and a block holds 30M). Exactly once: before sending, the worker catches the index up
with the chain and marks anchored every item whose event is already there (a crash after
the transaction but before the outbox update); the registry itself refuses a second
grant of the same consent. One bad item does not sink the batch: when the batch
reverts, each item is simulated (``eth_call``), the refused ones are marked ``failed``
with the decoded reason and the rest are sent again (a refusal meaning "already on
chain" marks the item anchored instead).

``batched`` mode hands grants, withdrawals and audit events to
:meth:`authz.commitments.Commitments.anchor_batch` (one ``ConsentAnchor.anchor``
transaction per batch). In both modes audit events are anchored through the audit tree,
on their own clock (``CONSENTGATE_AUDIT_WAIT_MS``) when no consent batch carries them, and
a withdrawal is anchored where its consent was (registry record or tree leaf), so a
change of mode loses nothing.

If the chain cannot be reached, items stay ``pending`` and the worker retries with
exponential backoff (capped at 5 s); acceptance and checks keep working meanwhile.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select

from authz import audit, outbox
from authz.commitments import AUDIT_MAX
from authz.errors import ConsentgateError
from authz.ledger import grant_args, withdrawal_args
from authz.models import AuditEvent, Consent, ConsentEvent, OutboxItem
from authz.services import Services
from chain_node import ChainError, ChainUnavailable, TxResult

log = logging.getLogger("consentgate.anchoring")

DIRECT_CHUNK = 64
# Refusals that mean "already on chain" (another attempt landed), not a bad item.
ALREADY_DONE = frozenset({"duplicate_grant", "already_withdrawn"})
MAX_BACKOFF_S = 5.0


def _sig(item: OutboxItem) -> bytes:
    text = item.payload["signature"]
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


class AnchorWorker:
    """Drains the outbox; :meth:`run_once` does one batch (tests call it directly)."""

    def __init__(
        self,
        svc: Services,
        waiters: outbox.Waiters | None = None,
        poll_s: float | None = None,
        owner: str | None = None,
    ) -> None:
        self.svc = svc
        # a worker in a process of its own is never woken by acceptance: while idle it
        # polls the outbox's head (one primary-key lookup) every poll_s seconds
        self.poll_s = poll_s
        self.mode = svc.settings.anchor_mode
        self.batch_max = svc.settings.batch_max
        self.batch_wait_ms = svc.settings.batch_wait_ms
        self.waiters = waiters or outbox.Waiters(svc.db)
        self.lease = outbox.Lease(svc.db, owner=owner or f"worker-{secrets.token_hex(6)}")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None
        self._holding = threading.Event()  # set while this worker holds the lease
        self.last_error: str | None = None
        self.audit_wait_ms = svc.settings.audit_wait_ms
        self._run_lock = threading.Lock()
        self.commitments = svc.commitments

    # -- thread ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="anchor-worker", daemon=True)
            self._thread.start()
            self._heartbeat = threading.Thread(
                target=self._keep_lease, name="anchor-lease", daemon=True
            )
            self._heartbeat.start()

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the thread after its current batch and release the lease."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._heartbeat is not None:
            self._heartbeat.join(timeout_s)
            self._heartbeat = None
        self.lease.release()

    def _keep_lease(self) -> None:
        """Renew the lease every quarter of its TTL while this worker holds it, so a pass
        longer than the TTL (a slow chain, a big batch on a busy machine) does not let a
        second process's worker take over in the middle of it."""
        period_s = self.lease.ttl_ms / 4000
        while not self._stop.wait(period_s):
            if not self._holding.is_set():
                continue
            try:
                if not self.lease.acquire():
                    self._holding.clear()
                    log.warning("anchoring lease lost to another process")
            except Exception:  # the next beat retries; the worker re-checks before a pass
                log.exception("anchoring lease renewal failed")

    def wake(self) -> None:
        """Tell the worker that items were enqueued."""
        self._wake.set()

    def _loop(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                if not self.lease.acquire():
                    self._holding.clear()
                    self._sleep(1.0)
                    continue
                self._holding.set()
                done = self.run_once(force=False)
                backoff = 0.0
                self.last_error = None
                if done == 0:
                    self._idle(self._idle_wait_s())
            except ChainUnavailable as exc:
                backoff = min(MAX_BACKOFF_S, max(0.1, backoff * 2))
                self.last_error = f"chain unavailable: {exc}"
                log.warning("anchoring paused, chain unavailable; retry in %.1fs", backoff)
                self._sleep(backoff)
            except Exception as exc:  # never let the worker die; the outbox keeps the work
                backoff = min(MAX_BACKOFF_S, max(0.1, backoff * 2))
                self.last_error = repr(exc)
                log.exception("anchoring batch failed; retry in %.1fs", backoff)
                self._sleep(backoff)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _idle(self, seconds: float) -> None:
        """Sleep up to ``seconds`` with nothing to do, until woken (:meth:`wake`) or, when
        polling, until the outbox has a newer item. A full pass costs half a dozen
        queries: run every 20 ms it took 14% of a core from an idle service; polling the head
        every 50 ms (``anchor-worker --poll-ms``) takes ~2%."""
        if self.poll_s is None:
            self._sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        seen = outbox.head(self.svc.db)
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._wake.wait(min(self.poll_s, left)):
                break
            if outbox.head(self.svc.db) != seen:
                break
        self._wake.clear()

    def _idle_wait_s(self) -> float:
        waits = [1.0]
        oldest = outbox.oldest_pending_ms(self.svc.db)
        if oldest is not None:
            waits.append((oldest + self.batch_wait_ms - outbox.now_ms()) / 1000)
        audit_oldest = self._oldest_audit_ms()
        if audit_oldest is not None:
            waits.append((audit_oldest + self.audit_wait_ms - outbox.now_ms()) / 1000)
        return max(0.0, min(waits))

    def _oldest_audit_ms(self) -> int | None:
        with self.svc.db.sessions() as s:
            return s.scalar(
                select(AuditEvent.created_ms)
                .where(AuditEvent.leaf_index.is_(None))
                .order_by(AuditEvent.seq)
                .limit(1)
            )

    def _audit_pending(self) -> tuple[int, int]:
        """How many audit events wait for anchoring (counted up to ``AUDIT_MAX``) and the
        oldest one's ``created_ms`` (0 when none), without loading them: a gate's scan
        batches are ~15 kB each, and loading every pending row on each pass of the loop
        (about once a second) cost ~70 ms of CPU per 600 rows."""
        oldest = self._oldest_audit_ms()
        if oldest is None:
            return 0, 0
        pending = (
            select(AuditEvent.seq)
            .where(AuditEvent.leaf_index.is_(None))
            .limit(AUDIT_MAX)
            .subquery()
        )
        with self.svc.db.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(pending)) or 0), oldest

    def _unanchored_audit(self) -> list[Any]:
        """Audit events not yet in the tree, oldest first: read-only rows with the
        :class:`AuditEvent` columns as attributes."""
        with self.svc.db.sessions() as s:
            return list(
                s.execute(
                    select(AuditEvent.__table__)
                    .where(AuditEvent.leaf_index.is_(None))
                    .order_by(AuditEvent.seq)
                    .limit(AUDIT_MAX)
                )
            )

    # -- one batch ------------------------------------------------------------------------
    def run_once(self, force: bool = True) -> int:
        """Anchor one batch; returns how many outbox items and audit events it took.

        With ``force`` False, outbox items wait while fewer than ``batch_max`` are pending
        and the oldest is younger than ``batch_wait_ms``; audit events alone wait for
        ``audit_wait_ms``. Every pass first finishes a batch left ``prepared`` (by a crash
        or a failed send).
        """
        with self._run_lock:
            return self._run_once(force)

    def _run_once(self, force: bool) -> int:
        # a batch left prepared (a crash, or a send that failed on the last pass: the
        # chain unreachable, no anchor event) goes out again as it is, before new items;
        # in direct mode such a batch holds only audit events, and registry records of
        # grants and withdrawals do not wait for it
        try:
            self.commitments.recover()
        except (ChainError, ConsentgateError):
            if self.mode == "batched":
                raise
            log.warning("prepared audit batch not sent; direct anchoring goes on", exc_info=True)
        audit.move_queued(self.svc.db)  # access checks' events, queued beside the log
        items = outbox.pending(self.svc.db, self.batch_max)
        audit_count, audit_oldest = self._audit_pending()
        now = outbox.now_ms()
        items_ready = bool(items) and (
            force or len(items) >= self.batch_max or now - items[0].created_ms >= self.batch_wait_ms
        )
        audit_ready = audit_count > 0 and (
            force
            or (items_ready and self.mode == "batched")  # same transaction, no extra cost
            or audit_count >= AUDIT_MAX
            or now - audit_oldest >= self.audit_wait_ms
        )
        if not items_ready:
            items = []
        audit_rows = self._unanchored_audit() if audit_ready else []
        if not items and not audit_rows:
            return 0
        items = self._well_formed(items)
        grants = [i for i in items if i.kind == "grant"]
        withdrawals = [i for i in items if i.kind == "withdrawal"]
        # a withdrawal goes where its consent was anchored, whatever the mode is now
        in_tree = self._anchored_in_tree(withdrawals)
        tree_ws = [w for w in withdrawals if w.seq in in_tree]
        direct_ws = [w for w in withdrawals if w.seq not in in_tree]
        if self.mode == "batched":
            self.commitments.anchor_batch(grants + tree_ws, audit_rows, with_consents=True)
            grants, audit_rows_left = [], []
        else:
            audit_rows_left = audit_rows
        for start in range(0, len(grants), DIRECT_CHUNK):
            self._direct(
                grants[start : start + DIRECT_CHUNK],
                "grantBatch",
                "grant",
                lambda i: grant_args(i.payload["message"]),
            )
        for start in range(0, len(direct_ws), DIRECT_CHUNK):
            self._direct(
                direct_ws[start : start + DIRECT_CHUNK],
                "withdrawBatch",
                "withdraw",
                lambda i: withdrawal_args(i.payload["message"]),
            )
        if self.mode == "direct" and tree_ws:
            self.commitments.anchor_batch(tree_ws, audit_rows_left, with_consents=True)
            audit_rows_left = []
        self.waiters.notify()  # grants and withdrawals are anchored: answer their waiters
        if audit_rows_left:
            self.commitments.anchor_batch([], audit_rows_left, with_consents=False)
        return len(items) + len(audit_rows)

    def _anchored_in_tree(self, withdrawals: list[OutboxItem]) -> set[int]:
        """Withdrawals (by seq) whose consent is a leaf of the consent tree (batched) —
        or will be: its grant is still pending and this worker runs in batched mode."""
        if not withdrawals:
            return set()
        ids = [w.consent_id for w in withdrawals]
        with self.svc.db.sessions() as s:
            leaves = dict(
                s.execute(
                    select(OutboxItem.dedupe_key, OutboxItem.leaf_index).where(
                        OutboxItem.dedupe_key.in_(ids), OutboxItem.kind == "grant"
                    )
                ).all()
            )
            records = set(
                s.scalars(
                    select(Consent.consent_id).where(
                        Consent.consent_id.in_(ids), Consent.leaf_index.is_(None)
                    )
                )
            )
        out = set()
        for w in withdrawals:
            if w.consent_id in records:
                continue  # a registry record: withdraw it on the registry
            if leaves.get(w.consent_id) is not None or self.mode == "batched":
                out.add(w.seq)
        return out

    def _well_formed(self, items: list[OutboxItem]) -> list[OutboxItem]:
        """Items whose payload builds a call; any other is marked failed, so one corrupt
        row can never stall the outbox."""
        good = []
        for item in items:
            try:
                build = grant_args if item.kind == "grant" else withdrawal_args
                build(item.payload["message"])
                _sig(item)
                good.append(item)
            except (KeyError, TypeError, ValueError) as exc:
                with self.svc.db.session() as s:
                    outbox.mark_failed(s, item.seq, "malformed_outbox_item", repr(exc))
        return good

    def _already_on_chain(self, items: Sequence[OutboxItem]) -> dict[int, tuple[str, int]]:
        """Items whose grant/withdrawal event is already indexed: seq -> (tx, block)."""
        self.svc.indexer.sync()
        found: dict[int, tuple[str, int]] = {}
        with self.svc.db.sessions() as s:
            for item in items:
                kind = "given" if item.kind == "grant" else "withdrawn"
                ev = s.scalar(
                    select(ConsentEvent).where(
                        ConsentEvent.consent_id == item.consent_id, ConsentEvent.event == kind
                    )
                )
                if ev is not None:
                    found[item.seq] = (ev.tx_hash, ev.block_number)
                elif item.kind == "grant" and (c := s.get(Consent, item.consent_id)):
                    found[item.seq] = (c.granted_tx, c.granted_block)
        return found

    def _direct(
        self,
        items: list[OutboxItem],
        batch_fn: str,
        single_fn: str,
        args: Callable[[OutboxItem], tuple[Any, ...]],
    ) -> None:
        on_chain = self._already_on_chain(items)
        if on_chain:
            with self.svc.db.session() as s:
                for seq, (tx, block) in on_chain.items():
                    outbox.mark_anchored(s, [seq], tx, block)
        todo = [i for i in items if i.seq not in on_chain]
        for _attempt in range(3):
            if not todo:
                return
            try:
                result = self._send_batch(batch_fn, todo, args)
            except ChainUnavailable:
                raise
            except (ConsentgateError, ChainError):
                todo = self._drop_refused(todo, single_fn, args)
                continue
            self.svc.indexer.sync(result.block_number)
            with self.svc.db.session() as s:
                outbox.mark_anchored(s, [i.seq for i in todo], result.tx_hash, result.block_number)
            return

    def _send_batch(
        self, fn: str, items: list[OutboxItem], args: Callable[[OutboxItem], tuple[Any, ...]]
    ) -> TxResult:
        with self.svc.db.session() as s:
            for item in items:
                row = s.get(OutboxItem, item.seq)
                if row is not None:
                    row.attempts += 1
        return self.svc.ledger.send(fn, [args(i) for i in items], [_sig(i) for i in items])

    def _drop_refused(
        self, items: list[OutboxItem], single_fn: str, args: Callable[[OutboxItem], tuple[Any, ...]]
    ) -> list[OutboxItem]:
        """Simulate each item alone; mark the refused ones failed (or anchored, when the
        chain refuses them because they are already there); return the rest."""
        keep = []
        for item in items:
            try:
                self.svc.ledger.call(single_fn, args(item), _sig(item))
            except ConsentgateError as exc:
                if exc.code in ALREADY_DONE:
                    continue  # picked up by _already_on_chain below
                log.warning("outbox item %s refused by the chain: %s", item.seq, exc.code)
                with self.svc.db.session() as s:
                    outbox.mark_failed(s, item.seq, exc.code, exc.detail)
                continue
            keep.append(item)
        refused_as_done = [i for i in items if i not in keep]
        on_chain = self._already_on_chain(refused_as_done)
        with self.svc.db.session() as s:
            for seq, (tx, block) in on_chain.items():
                outbox.mark_anchored(s, [seq], tx, block)
        return keep
