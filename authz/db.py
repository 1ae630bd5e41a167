"""Database engine and sessions of the off-chain index (SQLite by default).

SQLite runs in WAL mode with ``synchronous=FULL`` so a committed write survives a crash
or power loss before the API acknowledges it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from authz.models import Base, Meta


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` and the tables if missing."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    Base.metadata.create_all(engine)
    if url.startswith("sqlite:///") and engine.url.database:
        for suffix in ("", "-wal", "-shm"):
            path = Path(engine.url.database + suffix)
            if path.exists():
                path.chmod(0o600)
    return engine


class Database:
    """The index database: an engine and a session factory."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
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
