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

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
        beside = access_log_path(engine.url.database or "")
        log_path = access_log or beside
        if log_path != beside and Path(beside).exists() and not Path(log_path).exists():
            engine.dispose()
            raise FileNotFoundError(
                f"the access log is at {beside}, not at {log_path} "
                "(CONSENTGATE_ACCESS_LOG_PATH): move the file and its -wal there first"
            )
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
    if url.startswith("sqlite"):
        _move_access_log_out_of_index(engine)
    for name in files:
        for suffix in ("", "-wal", "-shm"):
            path = Path(name + suffix)
            if name not in ("", ":memory:") and path.exists():
                path.chmod(0o600)
    return engine


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
