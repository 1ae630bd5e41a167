"""The access log's own database: checks commit under their own write lock, their audit
events reach the audit log exactly once, and old data folders are migrated."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import func, select

from authz import audit
from authz.db import Database, access_log_path
from authz.models import AccessRecord, AuditEvent, QueuedAccessAudit
from tests.authz.conftest import Env, open_env


@pytest.fixture(scope="module")
def lenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = open_env(tmp_path_factory.mktemp("accesslog"), start_worker=False)
    yield e
    e.svc.close()


def _count(db: Database, model: type) -> int:
    with db.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_a_check_commits_while_the_index_file_is_write_locked(lenv: Env) -> None:
    dept = lenv.department()
    citizen = Account.create()
    index_file = lenv.svc.db.engine.url.database
    assert index_file and Path(access_log_path(index_file)).exists()
    blocker = sqlite3.connect(index_file, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")  # what a long batch-acceptance transaction holds
    result: dict[str, object] = {}

    def check() -> None:
        result["answer"] = lenv.check(dept, citizen.address)

    try:
        t = threading.Thread(target=check)
        t.start()
        t.join(20)  # the index file's busy timeout is 30 s: only a separate lock answers
        assert not t.is_alive(), "the access check waited for the index file's write lock"
    finally:
        blocker.rollback()
        blocker.close()
    answer = result["answer"]
    assert isinstance(answer, dict) and answer["reason"] == "no_consent"
    with lenv.svc.db.sessions() as s:
        row = s.get(AccessRecord, answer["access_id"])
        queued = s.scalar(select(QueuedAccessAudit).where(QueuedAccessAudit.ref == row.access_id))
    assert row is not None and row.allowed is False
    assert queued is not None and queued.event["access_id"] == answer["access_id"]


def test_queued_events_move_exactly_once_even_after_a_crash_midway(lenv: Env) -> None:
    dept = lenv.department()
    subjects = [Account.create().address for _ in range(5)]
    ids = [lenv.check(dept, s)["access_id"] for s in subjects]
    db = lenv.svc.db
    audit.move_queued(db)
    assert _count(db, QueuedAccessAudit) == 0
    ids += [lenv.check(dept, s)["access_id"] for s in subjects[:3]]
    # a crash after the insert into audit_events but before the queue was emptied:
    with db.sessions() as s:
        first = s.scalars(select(QueuedAccessAudit).order_by(QueuedAccessAudit.seq)).first()
    assert first is not None
    with db.session() as s:
        s.add(
            AuditEvent(
                kind=first.kind,
                ref=first.ref,
                event=first.event,
                event_hash=first.event_hash,
                created_ms=first.created_ms,
            )
        )
    assert audit.move_queued(db) == 3
    assert audit.move_queued(db) == 0
    with db.sessions() as s:
        refs = s.scalars(
            select(AuditEvent.ref)
            .where(AuditEvent.kind == "access_check", AuditEvent.ref.in_(ids))
            .order_by(AuditEvent.seq)
        ).all()
        hashes = dict(
            s.execute(
                select(AuditEvent.ref, AuditEvent.event_hash).where(AuditEvent.ref.in_(ids))
            ).all()
        )
    assert sorted(refs) == sorted(ids)  # each once
    for ref, h in hashes.items():
        with db.sessions() as s:
            ev = s.scalar(select(AuditEvent).where(AuditEvent.ref == ref))
        assert ev is not None and audit.event_hash(ev.event) == h


def test_an_index_with_the_access_log_inside_is_migrated(tmp_path: Path) -> None:
    index = tmp_path / "index.sqlite3"
    old = sqlite3.connect(index)
    old.execute(
        "CREATE TABLE access_log (access_id VARCHAR(40) PRIMARY KEY, department_id "
        "VARCHAR(40), subject VARCHAR(42), purpose VARCHAR(200), pii_categories JSON, "
        "allowed BOOLEAN, reason VARCHAR(40), consent_id VARCHAR(66), at_ms BIGINT)"
    )
    old.execute(
        "INSERT INTO access_log VALUES ('acc_1', 'dep_1', ?, 'loan', '[\"income\"]', 1, "
        "'consent_valid', '0xab', 1700000000000)",
        (Account.create().address,),
    )
    old.commit()
    old.close()
    db = Database(f"sqlite:///{index}")
    try:
        with db.sessions() as s:
            row = s.get(AccessRecord, "acc_1")
        assert row is not None and row.pii_categories == ["income"] and row.allowed is True
        tables = sqlite3.connect(index).execute("SELECT name FROM sqlite_master").fetchall()
        assert ("access_log",) not in tables
    finally:
        db.close()
    db = Database(f"sqlite:///{index}")  # opening again changes nothing
    try:
        assert _count(db, AccessRecord) == 1
    finally:
        db.close()
