"""The bulk statements of the batched path: leaf updates by runs, the lease's read-only
renewal check, and the projection's use of the signers acceptance recorded."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import insert, select, update

from authz import outbox
from authz.anchoring import AnchorWorker
from authz.commitments import _set_leaves
from authz.db import Database
from authz.models import Consent, Meta, OutboxItem
from tests.authz.conftest import open_env
from tests.authz.test_anchoring_reliability import signed_items


def _db(tmp_path: Path, rows: int) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    with db.session() as s:
        for k in range(rows):
            outbox.enqueue(s, "grant", f"0x{k:064x}", f"0x{k:064x}", "0xsubject", {"k": k})
    return db


def test_leaves_are_set_by_runs_and_scattered_rows_alike(tmp_path: Path) -> None:
    db = _db(tmp_path, 12)
    # two consecutive runs (seqs 1-3 and 7-9, leaves 0-2 and 5-7) and two scattered rows
    leaves = [(1, 0), (2, 1), (3, 2), (5, 3), (6, 9), (7, 5), (8, 6), (9, 7), (11, 40)]
    with db.session() as s:
        _set_leaves(s, OutboxItem, leaves, 7)
    with db.sessions() as s:
        got = {
            seq: (leaf, batch)
            for seq, leaf, batch in s.execute(
                select(OutboxItem.seq, OutboxItem.leaf_index, OutboxItem.batch_id)
            )
        }
    want = {seq: (leaf, 7) for seq, leaf in leaves}
    want |= {seq: (None, None) for seq in (4, 10, 12)}
    assert got == want
    db.close()


def test_a_fresh_lease_is_renewed_without_a_write(tmp_path: Path) -> None:
    db = _db(tmp_path, 0)
    lease = outbox.Lease(db, owner="w1", ttl_ms=10_000)
    assert lease.acquire() is True
    first = json.loads(db.get_meta(outbox.LEASE_KEY) or "{}")
    assert first["owner"] == "w1"
    assert lease.acquire() is True  # more than half the TTL left: the row is unchanged
    assert json.loads(db.get_meta(outbox.LEASE_KEY) or "{}") == first
    assert outbox.Lease(db, owner="w2").acquire() is False
    soon = outbox.now_ms() + 4_000
    with db.session() as s:  # less than half the TTL left: the holder renews it
        s.merge(Meta(key=outbox.LEASE_KEY, value=json.dumps({**first, "until_ms": soon})))
    assert lease.acquire() is True
    renewed = json.loads(db.get_meta(outbox.LEASE_KEY) or "{}")
    assert renewed["owner"] == "w1" and renewed["until_ms"] >= soon + 5_000
    db.close()


def test_projection_signer_is_the_one_acceptance_verified(tmp_path: Path) -> None:
    """A grant accepted through the batch endpoint keeps its signer in the outbox payload
    and the projection of the anchored batch records the same (recovered) signer."""
    env = open_env(tmp_path, start_worker=False, anchor_mode="batched")
    try:
        dept = env.department()
        body = signed_items(env, dept, 3)
        resp = env.client.post("/v1/consent-batches", json={"items": body})
        assert resp.status_code == 200, resp.text
        with env.svc.db.sessions() as s:
            payloads = {i.consent_id: i.payload for i in s.scalars(select(OutboxItem))}
        subjects = {cid: p["message"]["subject"] for cid, p in payloads.items()}
        assert {cid: p["signer"] for cid, p in payloads.items()} == subjects
        AnchorWorker(env.svc).run_once(force=True)
        with env.svc.db.sessions() as s:
            rows = {c.consent_id: c.signer for c in s.scalars(select(Consent))}
        assert rows == subjects
    finally:
        env.svc.close()


def test_get_many_reads_every_item_with_its_own_state(tmp_path: Path) -> None:
    """``?wait=anchored`` re-reads a whole batch at once: each of 2,000 items (twice the
    largest batch) comes back with its own state, and unknown numbers are left out."""
    db = Database(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    try:
        with db.write_session() as s:
            s.execute(
                insert(OutboxItem),
                [
                    outbox.item_row("grant", f"grant:{i}", f"0x{i:064x}", "0xsubject", {})
                    for i in range(2000)
                ],
            )
            s.execute(update(OutboxItem).where(OutboxItem.seq % 7 == 0).values(state="anchored"))
        seqs = [*range(2000, 0, -1), 5000]
        found = outbox.get_many(db, seqs)
        assert sorted(found) == list(range(1, 2001))
        assert [found[q].state for q in (7, 8, 1400)] == ["anchored", "pending", "anchored"]
        assert found[1].consent_id == f"0x{0:064x}" and found[2000].dedupe_key == "grant:1999"
        assert outbox.get_many(db, []) == {}
    finally:
        db.close()
