"""The access log's own database: checks commit under their own write lock, their audit
events reach the audit log exactly once, and old data folders are migrated."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import func, insert, select, text

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


def test_queued_events_move_exactly_once_and_are_trimmed_by_the_log_writer(lenv: Env) -> None:
    dept = lenv.department()
    subjects = [Account.create().address for _ in range(5)]
    db = lenv.svc.db
    audit.move_queued(db)  # whatever earlier tests queued
    ids = [lenv.check(dept, s)["access_id"] for s in subjects]
    assert audit.move_queued(db) == 5
    assert audit.move_queued(db) == 0  # the watermark moved with the insert
    ids += [lenv.check(dept, s)["access_id"] for s in subjects[:3]]
    assert audit.move_queued(db, limit=2) == 2
    assert audit.move_queued(db) == 1
    with db.sessions() as s:
        refs = s.scalars(
            select(AuditEvent.ref).where(AuditEvent.kind == "access_check", AuditEvent.ref.in_(ids))
        ).all()
        moved = s.scalars(select(AuditEvent).where(AuditEvent.ref.in_(ids))).all()
        watermark = audit.moved_watermark(s)
    assert sorted(refs) == sorted(ids)  # each exactly once
    assert all(audit.event_hash(ev.event) == ev.event_hash for ev in moved)
    assert _count(db, QueuedAccessAudit) >= 8  # moved rows stay until the log writer trims
    with db.session() as s:
        audit.trim_moved(s)
    with db.sessions() as s:
        assert s.scalar(select(func.min(QueuedAccessAudit.seq))) is None
    last = lenv.check(dept, subjects[0])["access_id"]  # not moved yet: never trimmed
    with db.session() as s:
        audit.trim_moved(s)
    with db.sessions() as s:
        left = s.scalars(select(QueuedAccessAudit.ref)).all()
    assert left == [last] and watermark > 0


def test_the_group_committer_runs_its_housekeeping(tmp_path: Path) -> None:
    from authz.group_commit import GroupCommitter
    from authz.models import Meta

    db = Database(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    seen: list[int] = []
    committer = GroupCommitter(db, housekeeping=lambda s: seen.append(1), housekeeping_every=2)
    try:
        for i in range(4):
            committer.write([(Meta, {"key": f"k{i}", "value": "v"})])
    finally:
        committer.close()
        db.close()
    assert seen == [1, 1]


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


def test_two_processes_moving_at_once_move_each_event_once(tmp_path: Path) -> None:
    """Two Database objects stand for two service processes on one data folder (each has
    its own in-process writer lock): their movers race, and no event moves twice."""
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    first, second = Database(url), Database(url)
    try:
        rows = [
            audit.event_row("access_check", f"acc_{i}", {"access_id": f"acc_{i}", "at_ms": i})
            for i in range(1500)
        ]
        with first.session() as s:
            s.execute(insert(QueuedAccessAudit), rows)
        errors: list[BaseException] = []

        def mover(db: Database) -> None:
            idle = 0
            while idle < 3:
                try:
                    idle = idle + 1 if audit.move_queued(db, limit=50) == 0 else 0
                except Exception as exc:  # a lost race is an error the worker retries
                    errors.append(exc)

        threads = [threading.Thread(target=mover, args=(db,)) for db in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        with first.sessions() as s:
            refs = s.scalars(select(AuditEvent.ref)).all()
        assert len(refs) == 1500 and len(set(refs)) == 1500
        assert all("locked" in str(e) for e in errors), errors[:3]
    finally:
        first.close()
        second.close()


def test_the_access_log_can_live_elsewhere(tmp_path: Path) -> None:
    """CONSENTGATE_ACCESS_LOG_PATH puts the access log's file (and its WAL) on another
    path, e.g. a device of its own; moving it by the setting alone is refused."""
    index = tmp_path / "index" / "index.sqlite3"
    elsewhere = tmp_path / "fast" / "access.sqlite3"
    index.parent.mkdir()
    elsewhere.parent.mkdir()
    db = Database(f"sqlite:///{index}", str(elsewhere))
    try:
        with db.session() as s:
            s.execute(
                insert(AccessRecord),
                [
                    {
                        "access_id": "a1",
                        "department_id": "d1",
                        "subject": "0x" + "11" * 20,
                        "purpose": "loan",
                        "pii_categories": ["income"],
                        "allowed": False,
                        "reason": "no_consent",
                        "consent_id": None,
                        "at_ms": 1,
                    }
                ],
            )
        assert _count(db, AccessRecord) == 1
    finally:
        db.close()
    assert elsewhere.exists() and not Path(access_log_path(str(index))).exists()
    with closing(sqlite3.connect(elsewhere)) as raw:
        assert raw.execute("SELECT access_id FROM access_log").fetchall() == [("a1",)]
    # the setting dropped while the file stays where it was: refused, nothing created
    with pytest.raises(FileNotFoundError, match=f"the access log is at {elsewhere}"):
        Database(f"sqlite:///{index}")
    assert not Path(access_log_path(str(index))).exists()
    # moved back beside the index, with its -wal if there is one
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{elsewhere}{suffix}").exists():
            Path(f"{elsewhere}{suffix}").rename(access_log_path(str(index)) + suffix)
    beside = Database(f"sqlite:///{index}")
    try:
        assert _count(beside, AccessRecord) == 1
    finally:
        beside.close()
    # moved by the setting alone, or to a folder that does not exist: refused
    with pytest.raises(FileNotFoundError, match=r"move .*-accesslog\.sqlite3 there first"):
        Database(f"sqlite:///{index}", str(tmp_path / "fast" / "missing.sqlite3"))
    with pytest.raises(FileNotFoundError, match="no folder"):
        Database(f"sqlite:///{index}", str(tmp_path / "nowhere" / "access.sqlite3"))


def test_an_index_from_an_earlier_version_loses_the_unread_outbox_index(tmp_path: Path) -> None:
    """ix_outbox_consent_id (items are found by consent through dedupe_key) is dropped
    from an existing index on open; a new index never has it."""
    from sqlalchemy import inspect

    from authz.db import DROPPED_INDEXES

    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    db = Database(url)
    with db.session() as s:
        s.execute(text("CREATE INDEX ix_outbox_consent_id ON outbox (consent_id)"))
    db.close()
    db = Database(url)
    try:
        names = {ix["name"] for ix in inspect(db.engine).get_indexes("outbox")}
        assert DROPPED_INDEXES == ("ix_outbox_consent_id",)
        assert "ix_outbox_consent_id" not in names
        assert {"ix_outbox_subject", "ix_outbox_state"} <= names
    finally:
        db.close()


def test_the_default_place_spelt_another_way_is_still_the_default(tmp_path: Path) -> None:
    index = tmp_path / "index.sqlite3"
    spelt = tmp_path / "." / "index-accesslog.sqlite3"
    Database(f"sqlite:///{index}", str(spelt)).close()
    Database(f"sqlite:///{index}").close()  # not refused: the same file
    with sqlite3.connect(index) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'access_log_path'").fetchall() in (
            [],
            [("",)],
        )
