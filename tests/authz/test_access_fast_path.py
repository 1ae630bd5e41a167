"""The access-check fast path: same answers, errors, log rows and audit events as the
declared FastAPI endpoint, fresh department state across service processes, durable
before it answers."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from authz import access, audit, departments
from authz.api.app import create_app
from authz.client import Client, request_body
from authz.db import Database
from authz.group_commit import GroupCommitter
from authz.models import AccessRecord, AuditEvent, Meta, QueuedAccessAudit
from authz.services import open_services
from authz.settings import Settings
from chain_node.anvil import AnvilProcess
from tests.authz.conftest import BASE_URL, Env, open_env


def _post(env: Env, headers: dict[str, str], body: bytes) -> Any:
    return env.client.post("/v1/access-checks", content=body, headers=headers)


def _body(subject: str, categories: tuple[str, ...] = ("income",)) -> dict[str, Any]:
    return {"subject": subject, "purpose": "loan-underwriting", "pii_categories": list(categories)}


def test_fast_answer_is_the_declared_shape_logged_and_hashed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    dept, citizen = env.department(), Account.create()

    def declared_path(*_: Any) -> None:
        raise AssertionError("a well-formed check must take the fast path")

    monkeypatch.setattr(access, "check_access", declared_path)
    grant = env.grant(env.request(dept, citizen.address), citizen).json()
    headers = {"X-API-Key": dept["api_key"], "content-type": "application/json"}
    resp = _post(env, headers, orjson.dumps(_body(citizen.address.lower())))
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    out = resp.json()
    assert list(out) == ["allowed", "consent_id", "reason", "access_id", "anchor"]
    assert (out["allowed"], out["reason"], out["consent_id"]) == (
        True,
        "consent_valid",
        grant["consent_id"],
    )
    assert out["anchor"] == {
        "chain_id": env.svc.ledger.chain_id,
        "registry": env.svc.ledger.address,
        "tx_hash": grant["tx_hash"],
        "block_number": grant["block_number"],
    }
    # committed before the answer: a separate connection pool sees both rows (the event
    # waits in the access log's queue until the anchoring worker moves it)
    other = Database(env.svc.settings.db_url())
    try:
        with other.engine.connect() as conn:
            row = conn.execute(
                select(AccessRecord.__table__).where(AccessRecord.access_id == out["access_id"])
            ).one()
            ev = (
                conn.execute(
                    select(QueuedAccessAudit.__table__).where(
                        QueuedAccessAudit.ref == out["access_id"]
                    )
                ).first()
                or conn.execute(
                    select(AuditEvent.__table__).where(AuditEvent.ref == out["access_id"])
                ).one()
            )
    finally:
        other.close()
    assert row.subject == citizen.address and row.allowed and row.consent_id == out["consent_id"]
    assert row.pii_categories == ["income"] and row.department_id == dept["department_id"]
    assert ev.event == {
        "kind": "access_check",
        "access_id": out["access_id"],
        "department_id": dept["department_id"],
        "controller": dept["address"],
        "subject": citizen.address,
        "purpose": "loan-underwriting",
        "pii_categories": ["income"],
        "allowed": True,
        "reason": "consent_valid",
        "consent_id": grant["consent_id"],
        "at_ms": row.at_ms,
    }
    assert ev.event_hash == audit.event_hash(ev.event)


def test_fast_and_declared_paths_decide_alike(env: Env) -> None:
    """The sync :func:`access.check_access` (the declared endpoint's body) and the fast
    path give the same reasons, including the closest-candidate rule."""
    dept, citizen = env.department(), Account.create()
    env.grant(env.request(dept, citizen.address, pii_categories=["identity"]), citizen)
    cases = [(("income",), "category_not_granted"), (("identity",), "consent_valid")]
    department = departments.authenticate(env.svc, dept["api_key"])
    for categories, reason in cases:
        fast = env.check(dept, citizen.address, categories)
        slow = access.check_access(
            env.svc, department, citizen.address, "loan-underwriting", list(categories)
        )
        assert fast["reason"] == slow.reason == reason
        assert fast["anchor"] == slow.anchor
        assert fast["access_id"] != slow.access_id
    stranger = env.check(dept, Account.create().address)
    assert (stranger["allowed"], stranger["reason"], stranger["anchor"]) == (
        False,
        "no_consent",
        None,
    )


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, b'{"subject": ', 400, "malformed_json"),
        ({}, b'{"subject": "0x1", "purpose": "p", "pii_categories": ["a"]}', 422, None),
        ({}, b'{"purpose": "p", "pii_categories": ["a"]}', 422, "validation_error"),
        ({}, b"[]", 422, "validation_error"),
        ({"content-type": "text/plain"}, None, 422, "validation_error"),
        ({"content-type": ""}, None, 422, "validation_error"),
        ({"authorization": "Basic abc"}, None, 401, "missing_credentials"),
        ({"authorization": "Bearer cgk_nope"}, None, 401, "invalid_api_key"),
        ({"authorization": ""}, None, 401, "missing_credentials"),
    ],
)
def test_errors_are_those_of_the_declared_endpoint(
    env: Env, headers: dict[str, str], body: bytes | None, status: int, code: str | None
) -> None:
    dept = env.department()
    good = orjson.dumps(_body(Account.create().address))
    sent = {"authorization": f"Bearer {dept['api_key']}", "content-type": "application/json"}
    sent.update(headers)
    resp = _post(env, sent, body if body is not None else good)
    assert resp.status_code == status, resp.text
    problem = resp.json()
    assert resp.headers["content-type"] == "application/problem+json"
    assert problem["code"] == (code or "validation_error") and problem["status"] == status


def test_bad_subject_checksum_and_unknown_key_are_problems_not_logged(env: Env) -> None:
    dept = env.department()
    with env.svc.db.sessions() as s:
        before = len(s.scalars(select(AccessRecord.access_id)).all())
    address = Account.create().address
    wrong = "0x" + address[2:].swapcase()  # mixed case with a wrong EIP-55 checksum
    if wrong[2:] in (wrong[2:].lower(), wrong[2:].upper()):
        wrong = "0x" + "aB" * 20
    headers = {**dept["headers"], "content-type": "application/json"}
    resp = _post(env, headers, orjson.dumps(_body(wrong)))
    assert (resp.status_code, resp.json()["code"]) == (400, "invalid_address")
    stranger = {"authorization": "Bearer cgk_unknown", "content-type": "application/json"}
    resp = _post(env, stranger, orjson.dumps(_body(wrong)))
    assert (resp.status_code, resp.json()["code"]) == (401, "invalid_api_key")
    with env.svc.db.sessions() as s:
        assert len(s.scalars(select(AccessRecord.access_id)).all()) == before


def test_openapi_still_describes_the_check(env: Env) -> None:
    doc = env.client.get("/openapi.json").json()
    op = doc["paths"]["/v1/access-checks"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/AccessCheckCreate"}
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/AccessCheckResult"}
    assert op["responses"]["422"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    fields = doc["components"]["schemas"]["AccessCheckResult"]["properties"]
    assert list(fields) == ["allowed", "consent_id", "reason", "access_id", "anchor"]


def test_group_commit_async_waiters_share_a_commit_and_learn_its_error(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'gc.sqlite3'}")
    committer = GroupCommitter(db)
    try:

        async def main() -> list[Any]:
            rows = [[(Meta, {"key": f"k{i}", "value": str(i)})] for i in range(20)]
            done = await asyncio.gather(*(committer.write_async(r) for r in rows))
            dup = [(Meta, {"key": "k0", "value": "again"})]
            results = await asyncio.gather(committer.write_async(dup), return_exceptions=True)
            return [done, results]

        done, results = asyncio.run(main())
        assert done == [None] * 20
        assert "IntegrityError" in type(results[0]).__name__
        with db.engine.connect() as conn:
            values = dict(conn.execute(text("SELECT key, value FROM meta")).all())
        assert {k: values[k] for k in ("k0", "k19")} == {"k0": "0", "k19": "19"}
        # a blocking writer in a thread alongside
        t = threading.Thread(target=committer.write, args=([(Meta, {"key": "t", "value": "1"})],))
        t.start()
        t.join(10)
        assert db.get_meta("t") == "1"
    finally:
        committer.close()
        db.close()

    async def closed() -> None:
        await committer.write_async([(Meta, {"key": "late", "value": "x"})])

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(closed())


@pytest.mark.anvil
def test_two_services_on_one_database_see_suspension_rotation_and_withdrawal_at_once(
    anvil: AnvilProcess, tmp_path: Path
) -> None:
    """Two service processes share the index: what one changes, the other's checks (the
    fast path, no cache) see on the very next check."""
    common = {
        "chain_url": anvil.url,
        "relayer_key": anvil.relayer_key,
        "public_url": BASE_URL,
        "database_url": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
    }
    a = open_services(Settings(data_dir=tmp_path / "a", **common))
    b = None
    try:
        a.start_anchoring()
        b = open_services(
            Settings(
                data_dir=tmp_path / "b",
                registry_address=a.ledger.address,
                registrar_token=a.registrar_token,
                **common,
            )
        )
        api_a = Client(BASE_URL, http=TestClient(create_app(services=a)))
        api_b = Client(BASE_URL, http=TestClient(create_app(services=b)))
        dept = api_a.register_department(
            a.registrar_token, "Bank", Account.create().address, ["loans"]
        )
        citizen = Account.create()
        grant = api_a.grant(
            api_a.request_consent(dept, request_body(citizen.address, "loans", ["income"])),
            citizen,
        )

        def check(api: Client, headers: dict[str, str]) -> Any:
            body = {**_body(citizen.address), "purpose": "loans"}
            return api.http.post("/v1/access-checks", headers=headers, json=body)

        assert check(api_b, dept["headers"]).json()["allowed"] is True
        registrar = {"Authorization": f"Bearer {a.registrar_token}"}
        suspension = f"/v1/departments/{dept['department_id']}/suspension"
        assert api_a.http.post(suspension, headers=registrar).status_code == 200
        assert check(api_b, dept["headers"]).json()["reason"] == "department_suspended"
        assert api_a.http.delete(suspension, headers=registrar).status_code == 200
        assert check(api_b, dept["headers"]).json()["allowed"] is True

        rotated = api_a.http.post(
            f"/v1/departments/{dept['department_id']}/api-key", headers=registrar
        ).json()["api_key"]
        old = check(api_b, dept["headers"])
        assert (old.status_code, old.json()["code"]) == (401, "invalid_api_key")
        new_headers = {"Authorization": f"Bearer {rotated}"}
        assert check(api_b, new_headers).json()["allowed"] is True

        session = api_a.sign_in(citizen, a.ledger.chain_id)
        api_a.withdraw(grant["consent_id"], citizen, session)
        assert check(api_b, new_headers).json()["reason"] == "consent_withdrawn"
    finally:
        if b is not None:
            b.close()
        a.close()


def test_unanchored_audit_events_load_only_when_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under check load thousands of audit events wait for their clock; the worker's poll
    must not load them all each time only to find they are not due."""
    from authz import anchoring

    e = open_env(tmp_path, start_worker=False, audit_wait_ms=3_600_000)
    try:
        dept = e.department()
        worker = anchoring.AnchorWorker(e.svc)
        worker.run_once(force=True)  # the registration's own items
        for _ in range(3):
            e.check(dept, Account.create().address)
        loads: list[int] = []
        real = worker._unanchored_audit

        def counted() -> list[AuditEvent]:
            rows = real()
            loads.append(len(rows))
            return rows

        monkeypatch.setattr(worker, "_unanchored_audit", counted)
        assert worker.run_once(force=False) == 0 and loads == []
        monkeypatch.setattr(anchoring, "AUDIT_MAX", 3)  # as many waiting as a batch holds
        assert worker.run_once(force=False) == 3 and loads == [3]
        e.check(dept, Account.create().address)
        monkeypatch.setattr(anchoring, "AUDIT_MAX", 20_000)
        worker.audit_wait_ms = 0  # the oldest has waited long enough
        assert worker.run_once(force=False) == 1 and loads == [3, 1]
        with e.svc.db.sessions() as s:
            waiting = s.scalars(select(AuditEvent.seq).where(AuditEvent.leaf_index.is_(None)))
            assert waiting.all() == []
    finally:
        e.svc.close()


def test_concurrent_checks_each_answer_after_their_own_rows_commit(env: Env) -> None:
    """Fifty checks at once on one event loop: every answer's access-log row and queued
    audit event exist by the time it arrives, and no two checks share an id."""
    import httpx

    dept, citizen = env.department(), Account.create()
    env.grant(env.request(dept, citizen.address), citizen)
    app = create_app(services=env.svc)
    body = orjson.dumps(_body(citizen.address))
    headers = {**dept["headers"], "content-type": "application/json"}

    def committed(access_id: str) -> bool:
        with env.svc.db.engine.connect() as conn:
            log = conn.execute(
                select(AccessRecord.access_id).where(AccessRecord.access_id == access_id)
            ).first()
            event = (
                conn.execute(
                    select(QueuedAccessAudit.seq).where(QueuedAccessAudit.ref == access_id)
                ).first()
                or conn.execute(select(AuditEvent.seq).where(AuditEvent.ref == access_id)).first()
            )
        return log is not None and event is not None

    async def one(client: httpx.AsyncClient) -> tuple[int, str, bool]:
        resp = await client.post("/v1/access-checks", content=body, headers=headers)
        out = resp.json()
        return resp.status_code, out["access_id"], committed(out["access_id"])

    async def main() -> list[tuple[int, str, bool]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            return await asyncio.gather(*(one(client) for _ in range(50)))

    results = asyncio.run(main())
    assert [(status, ok) for status, _, ok in results] == [(200, True)] * 50
    assert len({access_id for _, access_id, _ in results}) == 50
