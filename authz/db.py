"""Database engine and sessions of the off-chain index (SQLite by default).

SQLite runs in WAL mode with ``synchronous=FULL`` so a committed write survives a crash
or power loss before the API acknowledges it.

The access log lives in the schema ``accesslog``: on SQLite a second file beside the
index (``<index>-accesslog.sqlite3``) attached to every connection, so access checks
commit under their own write lock and never queue behind the long transactions of batch
acceptance and anchoring (SQLite has one writer per file); on PostgreSQL in the default
schema like every other table (``schema_translate_map``): there is no file lock to dodge.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from authz.models import ACCESS_LOG_SCHEMA, Base, Meta


def access_log_path(index_path: str) -> str:
    """The SQLite file of the access log beside the index file ``index_path``."""
    if index_path in ("", ":memory:"):
        return ":memory:"
    p = Path(index_path)
    return str(p.with_name(p.stem + "-accesslog.sqlite3"))


# Indexes earlier versions created that nothing reads any more: each was one more
# random-key B-tree rewritten on every insert (ix_outbox_consent_id: 17% of the WAL that
# accepting a grant writes; items are found by consent through dedupe_key).
DROPPED_INDEXES = ("ix_outbox_consent_id",)


def make_engine(url: str, access_log: str = "") -> Engine:
    """Create the engine for ``url`` and the tables if missing.

    ``access_log`` (SQLite only): the access log's file, default beside the index
    (:func:`access_log_path`); give one on a device of its own so that the checks'
    commits (one fdatasync each) never queue behind the bulk writers' flushes. Raises
    FileNotFoundError when the file is missing there while one beside the index exists
    (moved by the setting but not on disk: stop the service and move the file, with its
    ``-wal``, first).
    """
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    if not url.startswith("sqlite"):
        # one database, no file lock to dodge: the access log shares the default schema
        # (the search path), so several deployments can share a server by schema
        kwargs["execution_options"] = {"schema_translate_map": {ACCESS_LOG_SCHEMA: None}}
    engine = create_engine(url, **kwargs)
    files: list[str] = []
    if url.startswith("sqlite"):
        log_path = access_log or access_log_path(engine.url.database or "")
        try:
            recorded = _check_access_log_place(engine.url.database or "", log_path)
        except OSError:
            engine.dispose()
            raise
        files = [engine.url.database or "", log_path]

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"ATTACH DATABASE ? AS {ACCESS_LOG_SCHEMA}", (log_path,))
            for schema in ("main", ACCESS_LOG_SCHEMA):
                cur.execute(f"PRAGMA {schema}.journal_mode=WAL")
                cur.execute(f"PRAGMA {schema}.synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    Base.metadata.create_all(engine)
    present = {ix["name"] for ix in inspect(engine).get_indexes("outbox")}
    for name in DROPPED_INDEXES:
        if name in present:  # created by an earlier version; nothing reads it
            with engine.begin() as conn:
                conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    if url.startswith("sqlite"):
        _move_access_log_out_of_index(engine)
        _record_access_log_place(engine, files[1], recorded)
    for name in files:
        for suffix in ("", "-wal", "-shm"):
            path = Path(name + suffix)
            if name not in ("", ":memory:") and path.exists():
                path.chmod(0o600)
    return engine


ACCESS_LOG_PLACE_KEY = "access_log_path"  # "" = beside the index, else an absolute path


def _place(index: str, log_path: str) -> str:
    """How ``meta`` records the access log's place: "" beside the index (survives a copy
    of the whole data folder), else the absolute path."""
    resolved = Path(log_path).resolve()
    return "" if resolved == Path(access_log_path(index)).resolve() else str(resolved)


def _check_access_log_place(index: str, log_path: str) -> str | None:
    """Raise an OSError (one line for the CLI) before SQLite would create an empty access
    log in the wrong place: the folder is missing or not writable, or the index records
    that its access log lives elsewhere and that file (or its ``-wal``) is still there
    (moved by the setting only, or the setting dropped after a move). Returns the place
    the index records (:func:`_recorded_place`)."""
    if index in ("", ":memory:") or log_path == ":memory:":
        return None
    folder = Path(log_path).parent
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder} for the access log {log_path}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write the access log's folder {folder}")
    recorded = _recorded_place(index)
    if recorded is None or recorded == _place(index, log_path):
        return recorded
    where = recorded or access_log_path(index)
    left = [p for p in (where, where + "-wal") if Path(p).exists()]
    if left:
        raise FileNotFoundError(
            f"the access log is at {where}, not at {log_path} "
            f"(CONSENTGATE_ACCESS_LOG_PATH): move {' and '.join(left)} there first"
        )
    return recorded


def _recorded_place(index: str) -> str | None:
    """The place ``meta`` of the index file records (None: no index yet, or none
    recorded: then it is beside the index)."""
    if not Path(index).exists():
        return None
    with closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as raw:
        try:
            row = raw.execute(
                "SELECT value FROM meta WHERE key = ?", (ACCESS_LOG_PLACE_KEY,)
            ).fetchone()
        except sqlite3.OperationalError:  # an index from before the meta table
            return ""
    return str(row[0]) if row else ""


def _record_access_log_place(engine: Engine, log_path: str, recorded: str | None) -> None:
    """Remember in the index where its access log lives (see
    :func:`_check_access_log_place`, which read ``recorded``); writes only when that
    changed (no record means beside the index)."""
    index = engine.url.database or ""
    if index in ("", ":memory:") or log_path == ":memory:":
        return
    place = _place(index, log_path)
    if (recorded or "") != place:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT OR REPLACE INTO meta (key, value) VALUES (:k, :v)"),
                {"k": ACCESS_LOG_PLACE_KEY, "v": place},
            )


def _move_access_log_out_of_index(engine: Engine) -> None:
    """Data folders from before the access log had its own file keep it in the index
    file: copy those rows over (idempotent, so a crash midway only repeats it), then drop
    the old table."""
    if "access_log" not in inspect(engine).get_table_names():
        return
    with engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT OR IGNORE INTO {ACCESS_LOG_SCHEMA}.access_log "
                "SELECT * FROM main.access_log"
            )
        )
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE main.access_log"))


class Database:
    """The index database: an engine and a session factory."""

    def __init__(self, url: str, access_log: str = "") -> None:
        # Indexed SQLite reads take microseconds and do not wait for writers (WAL mode), so
        # hot paths may run them on the event loop; other databases go over the network.
        self.is_sqlite = url.startswith("sqlite")
        self.engine = make_engine(url, access_log)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writer: AbstractContextManager[Any] = (
            threading.Lock() if url.startswith("sqlite") else nullcontext()
        )

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """:meth:`session` for the bulk writers of this process (batch acceptance, the
        anchoring worker), taken one at a time on SQLite.

        SQLite has one writer; a second one waits in its busy handler, which sleeps in
        steps of up to 100 ms, so two bulk writers in one process lose tens of ms per
        collision. A lock queues them without sleeping. Code inside must not wait on
        another thread's database work. PostgreSQL: no lock.
        """
        with self._writer, self.session() as s:
            yield s

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any exception."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def get_meta(self, key: str) -> str | None:
        """Read a value of the ``meta`` table (None if absent)."""
        with self.sessions() as s:
            return s.scalar(select(Meta.value).where(Meta.key == key))

    def set_meta(self, key: str, value: str) -> None:
        """Write a value of the ``meta`` table."""
        with self.session() as s:
            s.merge(Meta(key=key, value=value))

    def close(self) -> None:
        """Dispose of the engine's connections."""
        self.engine.dispose()
