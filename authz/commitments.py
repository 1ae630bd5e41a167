"""Batched commitments: the consent, status and audit trees and their anchoring batches.

The normative layout is docs/anchoring.md. :class:`Commitments` keeps the three trees of
the latest batch in memory (rebuilt from the database at start), and
:meth:`Commitments.anchor_batch` turns outbox items and audit events into the next batch:

1. assign leaf indices (consents in acceptance order; a withdrawal sets its consent's
   status bit; audit events in commit order) and compute the three roots;
2. in one database transaction, record the batch as ``prepared`` with those indices;
3. write the batch file ``DATA_DIR/batches/<id>.json`` (what an auditor replays);
4. send ``ConsentAnchor.anchor(id, roots, counts)``;
5. in one database transaction, mark the batch and its items ``anchored`` and project
   the batch's consents into the index (:func:`project_batch`, the same code
   ``reindex`` replays batch files with).

A crash after 2 leaves a ``prepared`` batch: the next worker start re-sends the same
roots, or adopts the batch if the chain already has it (``batchId`` must be the previous
one + 1, so a batch can never be anchored twice).

In ``direct`` mode the consent and status trees stay empty and only the audit tree
grows, anchored through the same contract.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from eth_utils import keccak
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from authz import outbox, typed_data
from authz.errors import Conflict, ConsentgateError, NotFound
from authz.ids import from_hex, to_hex
from authz.ledger import grant_args
from authz.models import (
    AnchoredBatch,
    AuditEvent,
    Batch,
    Consent,
    ConsentEvent,
    OutboxItem,
    table_of,
)
from authz.services import Services
from fastpath import eip712, merkle

log = logging.getLogger(__name__)

AUDIT_MAX = 20_000
NO_THIRD_PARTIES = keccak(b"")  # thirdPartiesHash of a Grant with no third parties


class Commitments:
    """The three trees as of the latest prepared batch, guarded by ``lock``."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.lock = threading.RLock()
        self.batch_dir = svc.settings.data_dir / "batches"
        self.load()

    # -- state ------------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild the trees from the database (every batch, prepared or anchored).

        The trees hold the leaves of batches up to the latest one read first, so a batch
        another process prepares meanwhile is not half in them (:meth:`refresh`)."""
        with self.lock, self.svc.db.sessions() as s:
            last = s.scalar(select(func.max(Batch.batch_id)))
            bound = int(last) if last is not None else 0
            self.consents = merkle.IncrementalTree()
            grants = s.execute(
                select(OutboxItem.consent_id, OutboxItem.payload)
                .where(
                    OutboxItem.kind == "grant",
                    OutboxItem.leaf_index.is_not(None),
                    OutboxItem.batch_id <= bound,
                )
                .order_by(OutboxItem.leaf_index)
            ).all()
            self.consents.extend(
                [merkle.consent_leaf(from_hex(cid), from_hex(p["signature"])) for cid, p in grants]
            )
            self.status = merkle.StatusList(self.consents.size)
            for index in s.scalars(
                select(OutboxItem.leaf_index).where(
                    OutboxItem.kind == "withdrawal",
                    OutboxItem.leaf_index.is_not(None),
                    OutboxItem.batch_id <= bound,
                )
            ):
                if index is not None:
                    self.status.set(int(index))
            self.audit = merkle.IncrementalTree()
            self.audit.extend(
                [
                    merkle.leaf_hash(from_hex(h))
                    for (h,) in s.execute(
                        select(AuditEvent.event_hash)
                        .where(AuditEvent.leaf_index.is_not(None), AuditEvent.batch_id <= bound)
                        .order_by(AuditEvent.leaf_index)
                    )
                ]
            )
            self.batch_id = bound

    def refresh(self) -> None:
        """Reload the trees when another process sharing the index (``serve --workers``,
        or the anchoring lease changing hands) has prepared batches since they were
        built; a no-op (one indexed query) in the process that prepares them."""
        with self.lock, self.svc.db.sessions() as s:
            last = s.scalar(select(func.max(Batch.batch_id)))
            if (int(last) if last is not None else 0) != self.batch_id:
                self.load()

    def roots(self) -> tuple[bytes, bytes, bytes]:
        """(consent root, status root, audit root) of the current trees."""
        return self.consents.root(), self.status.root(), self.audit.root()

    # -- anchoring ----------------------------------------------------------------------
    def recover(self) -> None:
        """Finish a batch left ``prepared`` by a crash: adopt it if the chain has it,
        else send it again with the same roots.

        A prepared batch without its batch file (left by a version that committed the
        row before writing the file) is never sent: roots on chain without the file
        could not be verified by anyone. When the chain does not have it, its items go
        back to the outbox (leaf indices cleared, row deleted, trees rebuilt) and are
        anchored in the next batch; when the chain has it, this raises
        ``ConsentgateError`` ``batch_file_lost`` (an operator must restore the file).
        """
        with self.lock:
            with self.svc.db.sessions() as s:
                batch = s.scalar(
                    select(Batch).where(Batch.state == "prepared").order_by(Batch.batch_id).limit(1)
                )
            if batch is None:
                return
            if not (self.batch_dir / f"{batch.batch_id}.json").exists():
                self._abandon(batch.batch_id)
                return
            self._send_and_finalize(batch.batch_id)

    def _abandon(self, batch_id: int) -> None:
        """Return the items of prepared batch ``batch_id``, whose file is missing, to the
        outbox (see :meth:`recover`)."""
        self.svc.indexer.sync()
        with self.svc.db.sessions() as s:
            on_chain = s.get(AnchoredBatch, batch_id)
        if on_chain is not None:
            raise ConsentgateError(
                f"batch {batch_id} is on chain but its batch file is missing; restore "
                f"{self.batch_dir / f'{batch_id}.json'}",
                code="batch_file_lost",
            )
        log.warning(
            "prepared batch %s has no batch file: its items go back to the outbox", batch_id
        )
        with self.svc.db.write_session() as s:
            for model in (OutboxItem, AuditEvent):
                s.execute(
                    update(table_of(model))
                    .where(table_of(model).c.batch_id == batch_id)
                    .values(leaf_index=None, batch_id=None)
                )
            s.execute(delete(Batch).where(Batch.batch_id == batch_id))
        self.load()

    def anchor_batch(
        self, items: Sequence[OutboxItem], audit_rows: Sequence[AuditEvent], with_consents: bool
    ) -> int | None:
        """Prepare, persist, publish and anchor the next batch; returns its id (None when
        there was nothing to anchor). ``with_consents`` False (direct mode) anchors only
        the audit events. Raises :class:`chain_node.ChainUnavailable` (the batch stays
        ``prepared`` and is re-sent later)."""
        with self.lock:
            self.refresh()
            self.recover()
            if not items and not audit_rows:
                return None
            try:
                batch_id, doc = self._prepare(items if with_consents else [], audit_rows)
            except BaseException:
                self.load()  # the trees may hold leaves the database did not take
                raise
            grants = [g for g in items if g.kind == "grant"]
            request_ids = {g.consent_id: g.payload.get("request_id") for g in grants}
            signers = {g.consent_id: g.payload.get("signer") for g in grants}
            self._send_and_finalize(batch_id, doc, request_ids, signers)
            return batch_id

    def _prepare(
        self, items: Sequence[OutboxItem], audit_rows: Sequence[AuditEvent]
    ) -> tuple[int, dict[str, Any]]:
        batch_id = self.batch_id + 1
        consent_start, audit_start = self.consents.size, self.audit.size
        grants = [i for i in items if i.kind == "grant"]
        withdrawals = [i for i in items if i.kind == "withdrawal"]
        index_of = {g.consent_id: consent_start + k for k, g in enumerate(grants)}
        self.consents.extend(
            [
                merkle.consent_leaf(from_hex(g.consent_id), from_hex(g.payload["signature"]))
                for g in grants
            ]
        )
        self.status.resize(self.consents.size)
        failed: list[OutboxItem] = []
        w_index: dict[int, int] = {}
        with self.svc.db.sessions() as s:
            for w in withdrawals:
                idx = index_of.get(w.consent_id)
                if idx is None:
                    idx = s.scalar(
                        select(OutboxItem.leaf_index).where(OutboxItem.dedupe_key == w.consent_id)
                    )
                if idx is None:
                    failed.append(w)
                    continue
                w_index[w.seq] = int(idx)
                self.status.set(int(idx))
        self.audit.extend([merkle.leaf_hash(from_hex(e.event_hash)) for e in audit_rows])
        consent_root, status_root, audit_root = self.roots()
        doc = {
            "batch_id": batch_id,
            "layout": "docs/anchoring.md",
            "chain_id": self.svc.ledger.chain_id,
            "anchor": self.svc.ledger.anchor_address,
            "registry": self.svc.ledger.address,
            "consent_start": consent_start,
            "consents": [
                {
                    "index": index_of[g.consent_id],
                    "consent_id": g.consent_id,
                    "message": g.payload["message"],
                    "signature": g.payload["signature"],
                }
                for g in grants
            ],
            "withdrawals": [
                {
                    "index": w_index[w.seq],
                    "consent_id": w.consent_id,
                    "message": w.payload["message"],
                    "signature": w.payload["signature"],
                }
                for w in withdrawals
                if w.seq in w_index
            ],
            "status_words": {
                str(wd): to_hex(self.status.word(wd))
                for wd in sorted({i // 256 for i in w_index.values()})
            },
            "audit_start": audit_start,
            "audit": [
                {"index": audit_start + k, "event": e.event} for k, e in enumerate(audit_rows)
            ],
            "consent_count": self.consents.size,
            "audit_count": self.audit.size,
            "roots": {
                "consent": to_hex(consent_root),
                "status": to_hex(status_root),
                "audit": to_hex(audit_root),
            },
        }
        # the file first (fsync'd): a crash before the commit below leaves only a file
        # that the next prepare of this id overwrites; never a prepared row without its
        # file, whose roots could be sent but never verified
        self._write_file(batch_id, doc)
        with self.svc.db.write_session() as s:
            s.add(
                Batch(
                    batch_id=batch_id,
                    state="prepared",
                    consent_count=self.consents.size,
                    audit_count=self.audit.size,
                    consent_root=to_hex(consent_root),
                    status_root=to_hex(status_root),
                    audit_root=to_hex(audit_root),
                    created_ms=outbox.now_ms(),
                )
            )
            leaves = [(g.seq, index_of[g.consent_id]) for g in grants]
            leaves += [(w.seq, w_index[w.seq]) for w in withdrawals if w.seq in w_index]
            _set_leaves(s, OutboxItem, leaves, batch_id)
            for w in failed:
                outbox.mark_failed(
                    s,
                    w.seq,
                    "consent_not_in_tree",
                    "the withdrawn consent has no leaf in the consent tree",
                )
            _set_leaves(
                s,
                AuditEvent,
                [(e.seq, audit_start + k) for k, e in enumerate(audit_rows)],
                batch_id,
            )
        self.batch_id = batch_id
        return batch_id, doc

    def _write_file(self, batch_id: int, doc: dict[str, Any]) -> None:
        self.batch_dir.mkdir(parents=True, exist_ok=True)
        path = self.batch_dir / f"{batch_id}.json"
        tmp = path.with_suffix(".tmp")
        # json.dumps (the C encoder) writes the same bytes as json.dump, which encodes in
        # pure Python: a 2000-consent batch file costs ~15 ms instead of ~150 ms
        data = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        with open(tmp, "wb") as fh:
            fh.write(data.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    def batch_file(self, batch_id: int) -> dict[str, Any]:
        """The published batch document; raises :class:`NotFound` ``batch_not_found``."""
        path = self.batch_dir / f"{batch_id}.json"
        if not path.exists():
            raise NotFound(f"no batch {batch_id}", code="batch_not_found")
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def _send_and_finalize(
        self,
        batch_id: int,
        doc: dict[str, Any] | None = None,
        request_ids: dict[str, str | None] | None = None,
        signers: dict[str, str | None] | None = None,
    ) -> None:
        """Anchor prepared batch ``batch_id`` and project it, once the index holds the
        chain's ``BatchAnchored`` event for it with the same roots (else
        ``ConsentgateError`` ``anchor_not_confirmed``: the batch stays prepared and is sent
        again by the next pass). ``doc`` is its batch file
        when the caller has it in memory (else it is read back), ``request_ids`` and
        ``signers`` what acceptance recorded for each consent id (see
        :func:`project_batch`)."""
        with self.svc.db.sessions() as s:
            b = s.get(Batch, batch_id)
        assert b is not None
        args = (
            batch_id,
            from_hex(b.consent_root),
            b.consent_count,
            from_hex(b.status_root),
            from_hex(b.audit_root),
            b.audit_count,
        )
        try:
            result = self.svc.ledger.send("anchor", *args, on="anchor")
            tx_hash, block = result.tx_hash, result.block_number
        except Conflict as exc:  # batch_id_not_next: a previous attempt may have landed
            self.svc.indexer.sync()
            with self.svc.db.sessions() as s:
                row = s.get(AnchoredBatch, batch_id)
            if row is None or row.consent_root != b.consent_root or row.audit_root != b.audit_root:
                raise ConsentgateError(
                    f"batch {batch_id} cannot be anchored: {exc.detail}", code="batch_conflict"
                ) from exc
            tx_hash, block = row.tx_hash, row.block_number
        self.svc.indexer.sync(block)
        with self.svc.db.sessions() as s:
            row = s.get(AnchoredBatch, batch_id)
        if row is None or (row.consent_root, row.audit_root) != (b.consent_root, b.audit_root):
            # a receipt without the anchor's BatchAnchored event: e.g. a chain reset at
            # the same URL, where the anchor address has no code and any call "succeeds"
            raise ConsentgateError(
                f"batch {batch_id}: transaction {tx_hash} did not anchor it (no matching "
                f"BatchAnchored event at {self.svc.ledger.anchor_address})",
                code="anchor_not_confirmed",
            )
        if doc is None:
            doc = self.batch_file(batch_id)
        block_time = self.svc.ledger.block_time(block)
        with self.svc.db.write_session() as s:
            s.execute(
                update(Batch)
                .where(Batch.batch_id == batch_id)
                .values(state="anchored", tx_hash=tx_hash, block_number=block)
            )
            outbox.mark_batch_anchored(s, batch_id, tx_hash, block)
            project_batch(s, doc, tx_hash, block, block_time, request_ids, signers)


def _set_leaves(
    s: Session,
    model: type[OutboxItem] | type[AuditEvent],
    leaves: list[tuple[int, int]],
    batch: int,
) -> None:
    """Set ``leaf_index`` and ``batch_id`` of rows by ``seq``.

    Rows whose seqs and leaves both run consecutively (the usual case: a batch takes the
    oldest rows in seq order) get one range UPDATE per run (``leaf_index = seq +
    offset``); scattered ones one executemany of a Core UPDATE by ``seq`` (the ORM's bulk
    UPDATE by primary key also walks the session's identity map, which costs more than
    the statement at thousands of rows).
    """
    if not leaves:
        return
    table = table_of(model)
    runs: list[list[tuple[int, int]]] = [[leaves[0]]]
    for seq, leaf in leaves[1:]:
        last_seq, last_leaf = runs[-1][-1]
        if seq == last_seq + 1 and leaf == last_leaf + 1:
            runs[-1].append((seq, leaf))
        else:
            runs.append([(seq, leaf)])
    single = [run[0] for run in runs if len(run) == 1]
    for run in runs:
        if len(run) > 1:
            (first_seq, first_leaf), (last_seq, _) = run[0], run[-1]
            s.execute(
                update(table)
                .where(table.c.seq >= first_seq, table.c.seq <= last_seq)
                .values(leaf_index=table.c.seq + (first_leaf - first_seq), batch_id=batch)
            )
    if single:
        s.execute(
            update(table)
            .where(table.c.seq == bindparam("k_seq"))
            .values(leaf_index=bindparam("k_leaf"), batch_id=batch),
            [{"k_seq": seq, "k_leaf": leaf} for seq, leaf in single],
        )


def project_batch(
    s: Session,
    doc: dict[str, Any],
    tx_hash: str,
    block: int,
    block_time: int,
    request_ids: dict[str, str | None] | None = None,
    signers: dict[str, str | None] | None = None,
) -> None:
    """Project one anchored batch document into the index (consents, events, status).

    Idempotent (rows of the batch are replaced); used live after anchoring and by
    ``reindex`` when replaying batch files. Bulk statements: a batch of thousands of
    consents costs a few queries, and signers are recovered in one compiled batch.
    ``request_ids`` (consent id -> request id) saves reading them from the outbox, and
    ``signers`` (consent id -> the signer acceptance verified) the second recovery, when
    the caller has them for every consent of the batch.
    """
    cs = doc["consents"]
    if cs:
        ids = [c["consent_id"] for c in cs]
        if request_ids is None:
            request_ids = {
                key: (payload or {}).get("request_id")
                for key, payload in s.execute(
                    select(OutboxItem.dedupe_key, OutboxItem.payload).where(
                        OutboxItem.dedupe_key.in_(ids)
                    )
                )
            }
        known = [(signers or {}).get(cid) for cid in ids]
        recovered = (
            known
            if all(known)
            else eip712.recover_signers(
                [from_hex(c["consent_id"]) for c in cs], [from_hex(c["signature"]) for c in cs]
            )
        )
        s.execute(delete(ConsentEvent).where(ConsentEvent.consent_id.in_(ids)))
        s.execute(delete(Consent).where(Consent.consent_id.in_(ids)))
        consents, events = [], []
        for c, signer in zip(cs, recovered, strict=True):
            m = c["message"]
            args = grant_args(m)
            cid = c["consent_id"]
            consents.append(
                {
                    "consent_id": cid,
                    "request_id": request_ids.get(cid),
                    "subject": m["subject"],
                    "controller": m["controller"],
                    "signer": signer,
                    "purpose": m["purpose"],
                    "purpose_hash": to_hex(args[2]),
                    "pii_categories": list(m["piCategories"]),
                    "category_hashes": [to_hex(x) for x in args[3]],
                    "sensitive": bool(m["sensitive"]),
                    "third_party": args[5] != NO_THIRD_PARTIES,
                    "valid_from": int(m["validFrom"]),
                    "valid_until": int(m["validUntil"]),
                    "record_hash": m["recordHash"],
                    "withdrawn": False,
                    "granted_block": block,
                    "granted_tx": tx_hash,
                    "leaf_index": int(c["index"]),
                }
            )
            events.append(
                {
                    "consent_id": cid,
                    "event": "given",
                    "tx_hash": tx_hash,
                    "log_index": 0,
                    "signer": signer,
                    "block_number": block,
                    "block_time": block_time,
                }
            )
        s.execute(insert(table_of(Consent)), consents)  # Core: no ORM bulk bookkeeping
        s.execute(insert(table_of(ConsentEvent)), events)
    for w in doc["withdrawals"]:
        s.execute(
            update(Consent).where(Consent.consent_id == w["consent_id"]).values(withdrawn=True)
        )
        s.merge(
            ConsentEvent(
                consent_id=w["consent_id"],
                event="withdrawn",
                tx_hash=tx_hash,
                log_index=0,
                signer=_withdrawal_signer(doc, w),
                block_number=block,
                block_time=block_time,
            )
        )


def _withdrawal_signer(doc: dict[str, Any], w: dict[str, Any]) -> str:
    """Who signed a Withdrawal, under the batch's registry domain."""
    td = typed_data.withdrawal_typed_data(doc["chain_id"], doc["registry"], w["message"])
    return typed_data.recover_signer(typed_data.digest(td), w["signature"])


def _onchain_batches(svc: Services) -> dict[int, dict[str, Any]]:
    """Every ``BatchAnchored`` event of the trusted anchor, read from the chain itself."""
    logs = svc.ledger.anchor.events.BatchAnchored().get_logs(from_block=svc.ledger.deploy_block)
    return {
        int(ev["args"]["batchId"]): {
            "roots": (
                to_hex(ev["args"]["consentRoot"]),
                to_hex(ev["args"]["statusRoot"]),
                to_hex(ev["args"]["auditRoot"]),
            ),
            "tx_hash": to_hex(ev["transactionHash"]),
            "block_number": int(ev["blockNumber"]),
        }
        for ev in logs
    }


def _refuse(batch_id: int, why: str) -> ConsentgateError:
    return ConsentgateError(f"batch file {batch_id}: {why}", code="batch_mismatch")


def verify_batches(svc: Services) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Check every published batch file against the chain before anything is rebuilt.

    Per batch, in order: every batch the chain anchored has its file; the file is for
    this chain and registry; each consent's id is the EIP-712 digest of its own terms
    (so terms cannot be edited) and its index is the next leaf; each withdrawal names a
    consent already in the tree, at that consent's index, for its subject, signed by the
    subject or by whoever signed the grant (its guardian); and the three recomputed
    roots equal those of the ``BatchAnchored`` event. Returns ``(document, on-chain
    batch)`` pairs of the anchored batches; raises ``ConsentgateError``
    ``batch_mismatch`` / ``batch_missing`` naming the first bad file.
    """
    onchain = _onchain_batches(svc)
    batch_dir = svc.settings.data_dir / "batches"
    files = {int(p.stem) for p in batch_dir.glob("*.json")} if batch_dir.exists() else set()
    missing = sorted(set(onchain) - files)
    if missing:
        raise ConsentgateError(
            f"batch files missing for anchored batches {missing[:10]}", code="batch_missing"
        )
    ds = eip712.domain_separator(svc.ledger.chain_id, svc.ledger.address)
    consents, status, audit = (
        merkle.IncrementalTree(),
        merkle.StatusList(0),
        merkle.IncrementalTree(),
    )
    leaf_of: dict[str, tuple[int, str, str]] = {}  # consent id -> (index, subject, signer)
    out = []
    for batch_id in sorted(onchain):
        try:
            doc = json.loads((batch_dir / f"{batch_id}.json").read_text(encoding="utf-8"))
        except ValueError as exc:
            raise _refuse(batch_id, f"not JSON ({exc})") from None
        if (
            doc.get("batch_id") != batch_id
            or doc.get("chain_id") != svc.ledger.chain_id
            or str(doc.get("registry", "")).lower() != svc.ledger.address.lower()
        ):
            raise _refuse(batch_id, "not a batch of this chain and registry")
        cs = doc["consents"]
        digests = eip712.grant_digests(ds, [c["message"] for c in cs]) if cs else []
        signers = (
            eip712.recover_signers(
                [from_hex(c["consent_id"]) for c in cs], [from_hex(c["signature"]) for c in cs]
            )
            if cs
            else []
        )
        for c, digest, signer in zip(cs, digests, signers, strict=True):
            if to_hex(digest) != str(c["consent_id"]).lower():
                raise _refuse(batch_id, f"consent {c['consent_id']} does not match its terms")
            if int(c["index"]) != consents.size or signer is None:
                raise _refuse(batch_id, f"consent {c['consent_id']} is out of place")
            leaf_of[c["consent_id"]] = (consents.size, c["message"]["subject"], signer)
            consents.append(merkle.consent_leaf(digest, from_hex(c["signature"])))
        status.resize(consents.size)
        for w in doc["withdrawals"]:
            known = leaf_of.get(w["consent_id"])
            m = w["message"]
            if (
                known is None
                or int(w["index"]) != known[0]
                or str(m.get("consentId", "")).lower() != w["consent_id"].lower()
                or m.get("subject") != known[1]
                or _withdrawal_signer(doc, w) not in (known[1], known[2])
            ):
                raise _refuse(batch_id, f"withdrawal of {w['consent_id']} does not hold")
            status.set(known[0])
        audit.extend([merkle.audit_leaf(a["event"]) for a in doc["audit"]])
        if (to_hex(consents.root()), to_hex(status.root()), to_hex(audit.root())) != onchain[
            batch_id
        ]["roots"]:
            raise _refuse(
                batch_id, f"roots differ from those anchored in tx {onchain[batch_id]['tx_hash']}"
            )
        out.append((doc, onchain[batch_id]))
    return out


def replay_batches(
    svc: Services, verified: list[tuple[dict[str, Any], dict[str, Any]]] | None = None
) -> int:
    """Project the verified batch files (see :func:`verify_batches`) into the index, in
    one transaction. Returns the number of batches projected."""
    batches = verify_batches(svc) if verified is None else verified
    with svc.db.session() as s:
        for doc, onchain in batches:
            project_batch(
                s,
                doc,
                onchain["tx_hash"],
                onchain["block_number"],
                svc.ledger.block_time(onchain["block_number"]),
            )
    return len(batches)
