"""A durable key-value store for py-evm: SQLite (WAL) under an in-memory write buffer.

py-evm keeps everything (trie nodes, headers, bodies, receipts, canonical-chain index)
in one ``bytes -> bytes`` database (``eth.abc.DatabaseAPI``). :class:`SqliteKV` is that
database: reads see buffered writes first, then SQLite; :meth:`SqliteKV.commit` writes
the buffer in ONE SQLite transaction. The embedded backend calls it after each mined
block, so a block (and its state) is either entirely on disk or not at all — the atomic
unit that survives SIGKILL — and a transaction is acknowledged only after its commit.

Durability: ``PRAGMA journal_mode=WAL`` with ``synchronous=FULL`` — the WAL is fsynced on
every commit, so a committed block also survives power loss (SQLite docs, "WAL mode",
"PRAGMA synchronous"). ``synchronous="NORMAL"`` is enough for process crashes (SIGKILL)
and is faster; pass it for tests or benchmarks.

Not thread-safe on its own: the embedded backend serializes every access with one lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from eth.db.backends.base import BaseDB

__all__ = ["SqliteKV"]

_DELETED = None


class SqliteKV(BaseDB):
    """``bytes -> bytes`` store in ``path`` (SQLite), writes buffered until :meth:`commit`.

    ``meta`` is a small side table (str -> bytes) written in the same transaction as the
    buffered writes (used for the chain's time offset and identity).
    """

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
        )
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
        )
        self._pending: dict[bytes, bytes | None] = {}
        self._pending_meta: dict[str, bytes] = {}

    # -- DatabaseAPI -----------------------------------------------------------------

    def __getitem__(self, key: bytes) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[bytes(key)] = bytes(value)

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[bytes(key)] = _DELETED

    def _exists(self, key: bytes) -> bool:
        if key in self._pending:
            return self._pending[key] is not _DELETED
        row = self._conn.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone()
        return row is not None

    def __iter__(self) -> Iterator[bytes]:
        raise NotImplementedError("SqliteKV cannot be iterated")

    # -- durability ------------------------------------------------------------------

    @property
    def dirty(self) -> int:
        """Number of buffered key writes not yet committed."""
        return len(self._pending) + len(self._pending_meta)

    def get_meta(self, key: str) -> bytes | None:
        """Value of a meta key (buffered value first), or None."""
        if key in self._pending_meta:
            return self._pending_meta[key]
        row = self._conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        """Buffer a meta write; it is written by the next :meth:`commit`."""
        self._pending_meta[key] = bytes(value)

    def commit(self) -> None:
        """Write every buffered change in one SQLite transaction (fsync per ``synchronous``).

        On failure nothing is written and the buffer is kept; raises ``sqlite3.Error``.
        """
        if not self._pending and not self._pending_meta:
            return
        upserts = [(k, v) for k, v in self._pending.items() if v is not _DELETED]
        deletes = [(k,) for k, v in self._pending.items() if v is _DELETED]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", upserts)
            if deletes:
                conn.executemany("DELETE FROM kv WHERE k = ?", deletes)
            if self._pending_meta:
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
                    list(self._pending_meta.items()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._pending.clear()
        self._pending_meta.clear()

    def discard(self) -> None:
        """Drop every buffered write (used when a block could not be completed)."""
        self._pending.clear()
        self._pending_meta.clear()

    def close(self) -> None:
        """Close the SQLite connection; buffered writes are dropped (commit first)."""
        self._pending.clear()
        self._pending_meta.clear()
        self._conn.close()
