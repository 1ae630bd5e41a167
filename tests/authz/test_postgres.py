"""The service on PostgreSQL (DESIGN.md: the index and outbox at scale), both modes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from eth_account import Account
from fastapi.testclient import TestClient

from authz.api.app import create_app
from authz.client import Client, request_body
from authz.services import open_services
from authz.settings import Settings
from tests.authz.conftest import BASE_URL, projection_snapshot

SERVER = os.environ.get("CONSENTGATE_TEST_POSTGRES", "postgresql+psycopg://root@127.0.0.1/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the machine's PostgreSQL, dropped afterwards."""
    schema = "cg_" + uuid.uuid4().hex[:10]
    engine = sa.create_engine(SERVER)
    with engine.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.mark.parametrize("mode", ["direct", "batched"])
def test_flow_and_reindex_on_postgres(pg_url: str, tmp_path: Path, mode: str) -> None:
    svc = open_services(
        Settings(
            data_dir=tmp_path,
            public_url=BASE_URL,
            database_url=pg_url,
            anchor_mode=mode,
            batch_wait_ms=10,
        )
    )
    svc.start_anchoring()
    try:
        assert svc.db.engine.dialect.name == "postgresql"
        api = Client(BASE_URL, http=TestClient(create_app(services=svc)))
        dept = api.register_department(
            svc.registrar_token, "Hospital", Account.create().address, ["treatment"]
        )
        citizens = [Account.create() for _ in range(3)]
        grants = [
            api.grant(
                api.request_consent(dept, request_body(c.address, "treatment", ["medical_health"])),
                c,
            )
            for c in citizens
        ]
        assert {g["anchor"] for g in grants} == {"anchored"}
        session = api.sign_in(citizens[0], svc.ledger.chain_id)
        assert api.withdraw(grants[0]["consent_id"], citizens[0], session)["status"] == "withdrawn"
        reasons = [
            api.check(dept, c.address, "treatment", ["medical_health"])["reason"] for c in citizens
        ]
        assert reasons == ["consent_withdrawn", "consent_valid", "consent_valid"]
        svc.anchor_worker.stop()
        svc.anchor_worker = None

        svc.indexer.sync()
        live = projection_snapshot(svc)
        svc.reindex()
        assert projection_snapshot(svc) == live
    finally:
        svc.close()


def test_queued_check_events_committed_out_of_order_all_move_once(pg_url: str) -> None:
    """PostgreSQL hands out seq at insert; a lower seq committed after a higher one was
    moved must still move, exactly once."""
    from authz import audit
    from authz.db import Database
    from authz.models import AuditEvent, QueuedAccessAudit

    db = Database(pg_url)

    def row(ref: str) -> dict[str, object]:
        return audit.event_row("access_check", ref, {"access_id": ref, "at_ms": 1})

    try:
        slow = db.sessions()
        slow.execute(sa.insert(QueuedAccessAudit), [row("acc_slow")])  # seq n, not committed
        with db.session() as s:
            s.execute(sa.insert(QueuedAccessAudit), [row("acc_fast")])  # seq n+1, committed
        assert audit.move_queued(db) == 1
        slow.commit()
        slow.close()
        assert audit.move_queued(db) == 1
        assert audit.move_queued(db) == 0
        with db.sessions() as s:
            refs = s.scalars(sa.select(AuditEvent.ref).order_by(AuditEvent.seq)).all()
            left = s.scalar(sa.select(sa.func.count()).select_from(QueuedAccessAudit))
            tables = sa.inspect(db.engine).get_table_names()
        assert refs == ["acc_fast", "acc_slow"] and left == 0
        assert {"access_log", "access_audit_queue"} <= set(tables)  # in the deployment's schema
    finally:
        db.close()
