"""Reliability of the outbox and the anchoring worker (issue 4)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from sqlalchemy import func, select

from authz.client import sign_typed
from authz.models import Consent, OutboxItem
from authz.outbox import Lease
from tests.authz.conftest import Env, open_env


def signed_items(env: Env, dept: dict[str, Any], n: int) -> list[dict[str, str]]:
    """``n`` consent requests of fresh citizens, signed: batch-endpoint items."""
    items = []
    for _ in range(n):
        citizen = Account.create()
        req = env.request(dept, citizen.address)
        items.append(
            {"request_id": req["request_id"], "signature": sign_typed(citizen, req["typed_data"])}
        )
    return items


def test_one_bad_item_does_not_sink_the_batch(tmp_path: Path) -> None:
    env = open_env(tmp_path, start_worker=False)
    try:
        good, doomed = env.department(), env.department()
        items = []
        for dept in (good, doomed, good):
            citizen = Account.create()
            req = env.request(dept, citizen.address)
            items.append((req, sign_typed(citizen, req["typed_data"])))
        resp = env.client.post(
            "/v1/consent-batches",
            json={"items": [{"request_id": r["request_id"], "signature": sig} for r, sig in items]},
        )
        assert [r["anchor"] for r in resp.json()["results"]] == ["pending"] * 3
        # the department is suspended on chain after its citizen's grant was accepted
        env.svc.ledger.send("suspendDepartment", doomed["address"])
        from authz.anchoring import AnchorWorker

        AnchorWorker(env.svc).run_once(force=True)
        states = {}
        with env.svc.db.sessions() as s:
            for row in s.scalars(select(OutboxItem)):
                states[row.consent_id] = (row.state, row.error_code)
        assert states[items[0][0]["consent_id"]] == ("anchored", None)
        assert states[items[2][0]["consent_id"]] == ("anchored", None)
        assert states[items[1][0]["consent_id"]] == ("failed", "department_suspended")
        record = env.client.get(
            f"/v1/consents/{items[1][0]['consent_id']}", headers=doomed["headers"]
        ).json()
        assert record["status"] == "failed"
    finally:
        env.svc.close()


def test_two_workers_on_one_database_never_anchor_twice(tmp_path: Path) -> None:
    """Two anchoring workers share one database: the lease lets one anchor at a time,
    and every accepted grant ends anchored exactly once."""
    env = open_env(tmp_path, start_worker=False)
    try:
        dept = env.department()
        body = signed_items(env, dept, 30)
        env.client.post("/v1/consent-batches", json={"items": body})
        from authz.anchoring import AnchorWorker

        workers = [AnchorWorker(env.svc), AnchorWorker(env.svc)]
        holders = [w.lease.acquire() for w in workers]
        assert holders == [True, False]  # the second cannot take a live lease
        errors: list[BaseException] = []

        def drain(w: AnchorWorker) -> None:
            try:
                for _ in range(10):
                    if w.lease.acquire():
                        w.run_once(force=True)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        with env.svc.db.sessions() as s:
            states = s.execute(
                select(OutboxItem.state, func.count()).group_by(OutboxItem.state)
            ).all()
            consents = s.scalar(select(func.count()).select_from(Consent))
        assert dict(states) == {"anchored": 30}
        assert consents == 30
        logs = env.svc.ledger.registry.events.ConsentGranted().get_logs(from_block=0)
        assert len(logs) == 30 and len({log["args"]["consentId"] for log in logs}) == 30
        workers[0].lease.release()
        assert Lease(env.svc.db, "another").acquire() is True
    finally:
        env.svc.close()


def test_a_stalled_worker_racing_the_lease_holder_anchors_nothing_twice(tmp_path: Path) -> None:
    """Fencing: even two workers sending at once (a lease that expired under a stalled
    process) end with every item anchored once and none marked failed."""
    from authz.anchoring import AnchorWorker

    env = open_env(tmp_path, start_worker=False)
    try:
        dept = env.department()
        body = signed_items(env, dept, 20)
        env.client.post("/v1/consent-batches", json={"items": body})
        workers = [AnchorWorker(env.svc), AnchorWorker(env.svc)]
        threads = [threading.Thread(target=w.run_once, kwargs={"force": True}) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        with env.svc.db.sessions() as s:
            states = dict(
                s.execute(select(OutboxItem.state, func.count()).group_by(OutboxItem.state)).all()
            )
        assert states == {"anchored": 20}
        logs = env.svc.ledger.registry.events.ConsentGranted().get_logs(from_block=0)
        assert len(logs) == 20
    finally:
        env.svc.close()


def test_concurrent_batches_sharing_items_each_item_once(tmp_path: Path) -> None:
    """Two channels relay overlapping batches at the same moment: no 500, every item
    accepted exactly once, the others answered duplicate_grant."""
    env = open_env(tmp_path, start_worker=False)
    try:
        dept = env.department()
        body = signed_items(env, dept, 40)
        batches = [body[:30], body[10:], body[5:35]]
        answers: list = [None] * 3

        def post(i: int) -> None:
            answers[i] = env.client.post("/v1/consent-batches", json={"items": batches[i]})

        threads = [threading.Thread(target=post, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [a.status_code for a in answers] == [200, 200, 200]
        accepted = [r["consent_id"] for a in answers for r in a.json()["results"] if r["accepted"]]
        assert len(accepted) == len(set(accepted)) == 40
        refused = [
            r["problem"]["code"] for a in answers for r in a.json()["results"] if not r["accepted"]
        ]
        assert set(refused) <= {"duplicate_grant"} and len(refused) == 30 + 30 + 30 - 40
        with env.svc.db.sessions() as s:
            assert s.scalar(select(func.count()).select_from(OutboxItem)) == 40
    finally:
        env.svc.close()


def test_switching_anchor_mode_keeps_withdrawals_anchorable(tmp_path: Path) -> None:
    """A withdrawal is anchored where its consent was: registry records stay registry
    records after a switch to batched mode, tree leaves stay leaves after a switch back."""

    def states(env: object) -> dict[str, tuple[str, str | None]]:
        with env.svc.db.sessions() as s:  # type: ignore[attr-defined]
            return {
                f"{r.kind}:{r.consent_id}": (r.state, r.error_code)
                for r in s.scalars(select(OutboxItem))
            }

    env = open_env(tmp_path, anchor_mode="direct")
    dept = env.department()
    a_key = Account.create()
    a = env.request(dept, a_key.address)
    assert env.grant(a, a_key).json()["anchor"] == "anchored"
    env.svc.close()

    env = open_env(tmp_path, anchor_mode="batched", batch_wait_ms=10)
    try:
        out = env.withdraw(a["consent_id"], a_key)
        assert out.status_code == 200 and out.json()["anchor"] == "anchored", out.text
        b_key = Account.create()
        b = env.request(dept, b_key.address)
        assert env.grant(b, b_key).json()["anchor"] == "anchored"
    finally:
        env.svc.close()

    env = open_env(tmp_path, anchor_mode="direct")
    try:
        out = env.withdraw(b["consent_id"], b_key)
        assert out.status_code == 200 and out.json()["anchor"] == "anchored", out.text
        assert env.check(dept, a_key.address)["reason"] == "consent_withdrawn"
        assert env.check(dept, b_key.address)["reason"] == "consent_withdrawn"
        assert {v for v in states(env).values()} == {("anchored", None)}
        registry = env.svc.ledger.registry.functions
        assert env.svc.chain.call(registry.getConsent(bytes.fromhex(a["consent_id"][2:])))[4]
    finally:
        env.svc.close()


def test_the_lease_is_renewed_during_a_pass_longer_than_its_ttl(tmp_path: Path) -> None:
    """A slow pass (a chain with long block times) must not let a second process's
    worker take the lease halfway through it."""
    from authz import outbox
    from authz.anchoring import AnchorWorker

    env = open_env(tmp_path, start_worker=False)
    worker = AnchorWorker(env.svc)
    worker.lease = outbox.Lease(env.svc.db, owner="slow", ttl_ms=400)
    in_pass, release = threading.Event(), threading.Event()

    def slow_pass(force: bool = True) -> int:
        in_pass.set()
        release.wait(10)
        return 0

    worker.run_once = slow_pass  # type: ignore[method-assign]
    try:
        worker.start()
        assert in_pass.wait(10)
        other = outbox.Lease(env.svc.db, owner="other", ttl_ms=400)
        for _ in range(8):  # 1.6 s, four TTLs
            assert other.acquire() is False
            time.sleep(0.2)
        release.set()
        worker.stop()
        assert other.acquire() is True  # released on stop
    finally:
        release.set()
        env.svc.close()


def test_a_polling_worker_wakes_when_another_process_enqueues(tmp_path: Path) -> None:
    """``consentgate anchor-worker`` is never woken by acceptance (another process): its
    idle wait ends when the outbox's head moves, not when the wait runs out."""
    from authz import outbox
    from authz.anchoring import AnchorWorker

    env = open_env(tmp_path, start_worker=False)
    try:
        worker = AnchorWorker(env.svc, poll_s=0.02)
        before = outbox.head(env.svc.db)
        ended: list[float] = []

        def idle() -> None:
            t0 = time.monotonic()
            worker._idle(30.0)
            ended.append(time.monotonic() - t0)

        waiting = threading.Thread(target=idle)
        waiting.start()
        time.sleep(0.3)
        assert not ended  # nothing enqueued: still waiting
        with env.svc.db.session() as s:  # as acceptance in another process would
            outbox.enqueue(s, "grant", "0x" + "ab" * 32, "0x" + "ab" * 32, "0x" + "1" * 40, {})
        waiting.join(5)
        assert ended and 0.3 <= ended[0] < 5
        assert outbox.head(env.svc.db) == before + 1
    finally:
        env.svc.close()


def test_a_worker_restarted_under_the_same_lease_owner_takes_over_at_once(
    tmp_path: Path,
) -> None:
    """serve's supervisor restarts a dead anchoring child under the same lease owner:
    the new one must not wait out the dead one's TTL; any other owner still must."""
    env = open_env(tmp_path, start_worker=False)
    try:
        assert Lease(env.svc.db, owner="serve-1-anchor").acquire()
        assert not Lease(env.svc.db, owner="serve-2-anchor").acquire()
        from authz.anchoring import AnchorWorker

        again = AnchorWorker(env.svc, owner="serve-1-anchor")
        assert again.lease.owner == "serve-1-anchor" and again.lease.acquire()
        assert AnchorWorker(env.svc).lease.owner.startswith("worker-")
    finally:
        env.svc.close()


def test_direct_grants_do_not_wait_for_a_stuck_audit_batch(tmp_path: Path) -> None:
    """In direct mode a prepared batch holds only audit events: while it cannot be sent,
    grants still go to the registry (their records do not depend on it)."""
    import pytest

    from authz.anchoring import AnchorWorker
    from chain_node import ChainUnavailable

    env = open_env(
        tmp_path, start_worker=False, anchor_mode="direct", batch_wait_ms=0, audit_wait_ms=0
    )
    try:
        dept = env.department()
        real_send = env.svc.ledger.send

        def send(fn: str, *args: Any, **kw: Any) -> Any:
            if fn == "anchor":
                raise ChainUnavailable("the anchor's node is away")
            return real_send(fn, *args, **kw)

        env.svc.ledger.send = send  # type: ignore[method-assign]
        worker = AnchorWorker(env.svc)
        for _ in range(2):
            citizen = Account.create()
            req = env.request(dept, citizen.address)
            assert env.grant(req, citizen, wait="accepted").status_code == 201
            with pytest.raises(ChainUnavailable):
                worker.run_once()  # the grant goes out; the audit batch cannot
        with env.svc.db.sessions() as s:
            assert s.scalars(select(OutboxItem.state)).all() == ["anchored", "anchored"]
            assert s.scalar(select(func.count()).select_from(Consent)) == 2
        env.svc.ledger.send = real_send  # type: ignore[method-assign]
        worker.run_once()  # and the audit batch follows once the anchor answers
        from authz.models import Batch

        with env.svc.db.sessions() as s:
            assert set(s.scalars(select(Batch.state))) == {"anchored"}
    finally:
        env.svc.close()
