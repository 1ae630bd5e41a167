"""Batched commitments end to end: outbox -> batch -> anchor -> proofs on chain (issue 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import func, select

from authz import proofs
from authz.client import sign_typed
from authz.models import Batch, Consent, OutboxItem
from tests.authz.conftest import Env, open_env, projection_snapshot, worker_paused


@pytest.fixture(scope="module")
def benv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = open_env(
        tmp_path_factory.mktemp("batched"),
        anchor_mode="batched",
        batch_wait_ms=20,
        audit_wait_ms=20,
    )
    yield e
    e.svc.close()


def verify(env: Env, doc: dict[str, Any]) -> dict[str, Any]:
    """Check a consent proof against the deployment this service trusts."""
    return proofs.verify_consent(
        env.svc.chain, doc, registry=env.svc.ledger.address, anchor=env.svc.ledger.anchor_address
    )


def _grant_many(env: Env, dept: dict[str, Any], n: int) -> list[tuple[Any, dict[str, Any]]]:
    signed = []
    for _ in range(n):
        citizen = Account.create()
        signed.append((citizen, env.request(dept, citizen.address)))
    resp = env.client.post(
        "/v1/consent-batches?wait=anchored",
        json={
            "items": [
                {"request_id": r["request_id"], "signature": sign_typed(k, r["typed_data"])}
                for k, r in signed
            ]
        },
    )
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["accepted"] for r in results] == [True] * n
    assert {r["anchor"] for r in results} == {"anchored"}
    return signed


def test_batch_endpoint_anchor_proof_withdraw(benv: Env) -> None:
    dept = benv.department()
    signed = _grant_many(benv, dept, 12)
    citizen, req = signed[5]
    assert benv.check(dept, citizen.address)["allowed"] is True
    proof = benv.client.get(
        f"/v1/consents/{req['consent_id']}/proof", headers=dept["headers"]
    ).json()
    assert proof["mode"] == "batched" and len(proof["consent_proof"]) == 32
    first = verify(benv, proof)
    assert first == {
        **first,
        "valid": True,
        "granted": True,
        "withdrawn": False,
        "valid_at_batch": True,
        "reason": "ok",
    }
    # a document naming another contract (e.g. one that always says yes) is refused
    assert verify(benv, {**proof, "anchor": "0x" + "42" * 20})["reason"] == "untrusted_anchor"
    assert verify(benv, {**proof, "withdrawn_bit": True})["valid"] is False
    assert (
        verify(benv, {**proof, "roots": {**proof["roots"], "audit": "0x" + "00" * 32}})["reason"]
        == "roots_mismatch"
    )
    # a Grant whose terms were tampered with does not verify
    bad = {
        **proof,
        "typed_data": {
            **proof["typed_data"],
            "message": {**proof["typed_data"]["message"], "purpose": "marketing"},
        },
    }
    with pytest.raises(Exception, match="digest"):
        verify(benv, bad)

    out = benv.withdraw(req["consent_id"], citizen)
    assert out.status_code == 200 and out.json()["anchor"] == "anchored"
    assert benv.check(dept, citizen.address)["reason"] == "consent_withdrawn"
    stale = verify(benv, proof)
    assert stale["valid_at_batch"] is True  # still true as of its own batch
    assert stale["valid"] is False and stale["reason"] == "stale_proof"  # fail closed
    fresh = benv.client.get(
        f"/v1/consents/{req['consent_id']}/proof", headers=dept["headers"]
    ).json()
    now = verify(benv, fresh)
    assert now == {**now, "valid": False, "granted": True, "withdrawn": True, "reason": "withdrawn"}
    # the others are untouched
    other = benv.client.get(
        f"/v1/consents/{signed[6][1]['consent_id']}/proof", headers=dept["headers"]
    ).json()
    assert verify(benv, other)["valid"] is True


def test_access_checks_are_anchored_in_the_audit_tree(benv: Env) -> None:
    dept = benv.department()
    citizen, _req = _grant_many(benv, dept, 1)[0]
    check = benv.check(dept, citizen.address)
    benv.svc.anchor_worker.wake()
    for _ in range(100):
        resp = benv.client.get(f"/v1/access/{check['access_id']}/proof", headers=dept["headers"])
        if resp.status_code == 200:
            break
        assert resp.json()["code"] == "not_yet_anchored"
        import time

        time.sleep(0.1)
    doc = resp.json()
    assert doc["event"]["access_id"] == check["access_id"]
    assert doc["event"]["allowed"] is True
    anchor = benv.svc.ledger.anchor_address
    assert proofs.verify_audit(benv.svc.chain, doc, anchor=anchor)["valid"] is True
    forged = {**doc, "event": {**doc["event"], "allowed": False}}
    assert proofs.verify_audit(benv.svc.chain, forged, anchor=anchor)["valid"] is False
    elsewhere = {**doc, "anchor": "0x" + "42" * 20}
    assert proofs.verify_audit(benv.svc.chain, elsewhere, anchor=anchor)["valid"] is False
    other = benv.department()
    assert (
        benv.client.get(
            f"/v1/access/{check['access_id']}/proof", headers=other["headers"]
        ).status_code
        == 403
    )


def test_resubmission_is_idempotent(benv: Env) -> None:
    dept = benv.department()
    citizen, req = _grant_many(benv, dept, 1)[0]
    again = benv.client.post(
        "/v1/consent-batches",
        json={
            "items": [
                {
                    "request_id": req["request_id"],
                    "signature": sign_typed(citizen, req["typed_data"]),
                }
            ]
        },
    )
    item = again.json()["results"][0]
    assert item["accepted"] is False and item["consent_id"] == req["consent_id"]
    assert item["problem"]["code"] == "duplicate_grant"
    assert item["problem"]["anchor"] == "anchored"
    assert item["problem"]["status"] == 409 and item["problem"]["state"] == "anchored"
    single = benv.client.post(
        "/v1/consents",
        json={"request_id": req["request_id"], "signature": sign_typed(citizen, req["typed_data"])},
    )
    assert single.status_code == 409 and single.json()["status"] == 409


def test_proof_of_a_pending_consent_is_409_not_yet_anchored(tmp_path: Path) -> None:
    env = open_env(tmp_path, start_worker=False, anchor_mode="batched")
    try:
        dept, citizen = env.department(), Account.create()
        req = env.request(dept, citizen.address)
        assert env.grant(req, citizen, wait="accepted").json()["anchor"] == "pending"
        resp = env.client.get(f"/v1/consents/{req['consent_id']}/proof", headers=dept["headers"])
        assert resp.status_code == 409 and resp.json()["code"] == "not_yet_anchored"
    finally:
        env.svc.close()


def test_reindex_replays_batch_files_and_equals_live(benv: Env) -> None:
    dept = benv.department()
    signed = _grant_many(benv, dept, 3)
    benv.withdraw(signed[0][1]["consent_id"], signed[0][0])

    with worker_paused(benv):
        live = projection_snapshot(benv.svc)
        benv.svc.reindex()
        assert projection_snapshot(benv.svc) == live
    with benv.svc.db.sessions() as s:
        batched = s.scalar(
            select(func.count()).select_from(Consent).where(Consent.leaf_index.is_not(None))
        )
        batches = s.scalar(select(func.count()).select_from(Batch))
    assert batched >= 4 and batches >= 2


def test_batch_file_tampering_is_refused(benv: Env) -> None:
    """The review's attacks: edited terms, a retargeted withdrawal, a missing file. Each
    refuses the whole reindex and leaves the index as it was."""
    import json

    from authz.commitments import verify_batches
    from authz.errors import ConsentgateError

    dept = benv.department()
    signed = _grant_many(benv, dept, 2)
    benv.withdraw(signed[0][1]["consent_id"], signed[0][0])
    batch_dir = benv.svc.settings.data_dir / "batches"
    files = sorted(batch_dir.glob("*.json"), key=lambda p: int(p.stem))
    with_consents = next(p for p in files if json.loads(p.read_text())["consents"])
    with_withdrawal = next(p for p in files if json.loads(p.read_text())["withdrawals"])

    def edited(path: Path, change: Any) -> None:
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc))

    def terms(doc: dict[str, Any]) -> None:
        doc["consents"][0]["message"]["purpose"] = "marketing"

    def retarget(doc: dict[str, Any]) -> None:
        doc["withdrawals"][0]["index"] = doc["withdrawals"][0]["index"] + 1

    with worker_paused(benv):
        for path, change, code in [
            (with_consents, terms, "batch_mismatch"),
            (with_withdrawal, retarget, "batch_mismatch"),
            (files[-1], None, "batch_missing"),
        ]:
            original = path.read_text()
            try:
                if change is None:
                    path.unlink()
                else:
                    edited(path, change)
                with pytest.raises(ConsentgateError) as err:
                    benv.svc.reindex()
                assert err.value.code == code
            finally:
                path.write_text(original)
        assert len(verify_batches(benv.svc)) == len(files)


def test_every_outbox_item_anchored_once(benv: Env) -> None:
    with benv.svc.db.sessions() as s:
        pending = s.scalar(
            select(func.count()).select_from(OutboxItem).where(OutboxItem.state != "anchored")
        )
        leaves = s.scalars(select(OutboxItem.leaf_index).where(OutboxItem.kind == "grant")).all()
    assert pending == 0
    assert sorted(leaves) == list(range(len(leaves)))


def test_cli_proof_verify_against_the_embedded_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from authz.cli import app
    from authz.settings import get_settings

    env = open_env(tmp_path / "data", anchor_mode="batched", batch_wait_ms=10)
    try:
        dept = env.department()
        _citizen, req = _grant_many(env, dept, 1)[0]
        proof = env.client.get(
            f"/v1/consents/{req['consent_id']}/proof", headers=dept["headers"]
        ).json()
    finally:
        env.svc.close()
    good, forged = tmp_path / "proof.json", tmp_path / "forged.json"
    good.write_text(json.dumps(proof))
    forged.write_text(json.dumps({**proof, "anchor": "0x" + "42" * 20}))
    monkeypatch.setenv("CONSENTGATE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        ok = runner.invoke(app, ["proof", "verify", str(good), "--chain", "embedded"])
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.output)["valid"] is True
        bad = runner.invoke(app, ["proof", "verify", str(forged), "--chain", "embedded"])
        assert bad.exit_code == 1 and json.loads(bad.output)["reason"] == "untrusted_anchor"
        junk = tmp_path / "junk.json"
        junk.write_text(json.dumps({**proof, "index": "1"}))
        malformed = runner.invoke(app, ["proof", "verify", str(junk), "--chain", "embedded"])
        assert malformed.exit_code == 2 and "proof_malformed" in malformed.output
    finally:
        get_settings.cache_clear()


def test_a_prepared_batch_without_its_file_goes_back_to_the_outbox(tmp_path: Path) -> None:
    """An older version committed the prepared row before writing the batch file: a
    crash in between must not wedge anchoring, nor send roots nobody can verify."""
    env = open_env(tmp_path, start_worker=False, anchor_mode="batched", batch_wait_ms=0)
    try:
        dept = env.department()
        signed = []
        for _ in range(3):
            citizen = Account.create()
            req = env.request(dept, citizen.address)
            assert env.grant(req, citizen, wait="accepted").status_code == 201
            signed.append(req)
        from authz import outbox

        items = outbox.pending(env.svc.db, 100)
        batch_id, _doc = env.svc.commitments._prepare(items, [])
        (tmp_path / "batches" / f"{batch_id}.json").unlink()  # the crash of old
        worker = env.svc.start_anchoring()
        worker.run_once()  # recovers, then anchors the items again in a new batch
        with env.svc.db.sessions() as s:
            states = s.scalars(select(OutboxItem.state)).all()
            batches = s.execute(select(Batch.batch_id, Batch.state)).all()
            leaves = sorted(s.scalars(select(OutboxItem.leaf_index)).all())
        assert set(states) == {"anchored"} and leaves == [0, 1, 2]
        assert batches == [(batch_id, "anchored")]  # the id was reused, with its file now
        assert (tmp_path / "batches" / f"{batch_id}.json").exists()
        for req in signed:
            doc = env.client.get(
                f"/v1/consents/{req['consent_id']}/proof", headers=dept["headers"]
            ).json()
            assert verify(env, doc)["valid"] is True
        from authz.commitments import verify_batches

        assert len(verify_batches(env.svc)) == 1
    finally:
        env.svc.close()


def test_a_receipt_without_the_anchor_event_is_not_taken_as_anchored(tmp_path: Path) -> None:
    """A chain reset at the same URL leaves the anchor's address without code: a call to
    it "succeeds" and emits nothing. Nothing may be marked anchored on such a receipt."""
    from authz.anchoring import AnchorWorker
    from authz.errors import ConsentgateError

    env = open_env(tmp_path, start_worker=False, anchor_mode="batched", batch_wait_ms=0)
    try:
        dept = env.department()
        citizen = Account.create()
        req = env.request(dept, citizen.address)
        assert env.grant(req, citizen, wait="accepted").status_code == 201
        real_send = env.svc.ledger.send
        unrelated = real_send("addPurposes", dept["address"], [b"\x01" * 32])  # no anchor event

        def send(fn: str, *args: Any, **kw: Any) -> Any:
            return unrelated if fn == "anchor" else real_send(fn, *args, **kw)

        env.svc.ledger.send = send  # type: ignore[method-assign]
        worker = AnchorWorker(env.svc)
        with pytest.raises(ConsentgateError) as refused:
            worker.run_once()
        assert refused.value.code == "anchor_not_confirmed"
        with env.svc.db.sessions() as s:
            assert s.scalars(select(OutboxItem.state)).all() == ["pending"]
            assert s.execute(select(Batch.batch_id, Batch.state)).all() == [(1, "prepared")]
        env.svc.ledger.send = real_send  # type: ignore[method-assign]
        worker.run_once()  # the prepared batch is sent again, with the same roots
        with env.svc.db.sessions() as s:
            assert s.scalars(select(OutboxItem.state)).all() == ["anchored"]
            assert s.scalars(select(OutboxItem.batch_id)).all() == [1]
            assert s.scalar(select(Batch.state).where(Batch.batch_id == 1)) == "anchored"
    finally:
        env.svc.close()
