"""Group commit: many request threads share one database transaction (and one fsync).

Access checks are the dominant call, and each must append its access-log row and audit
event durably before it answers. One commit (one WAL fsync) per check caps a server at a
few hundred checks per second; :class:`GroupCommitter` lets every check waiting at the
same moment ride the same commit. A caller still returns only after its rows are on disk
(:meth:`GroupCommitter.write` blocks until then), so nothing acknowledged is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert

from authz.db import Database


class _Ticket:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class GroupCommitter:
    """A writer thread that commits queued inserts together.

    ``write([(table, row_dict), ...])`` queues the rows and blocks until the transaction
    holding them has committed; it re-raises the commit's error, if any.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[tuple[Sequence[tuple[Any, dict[str, Any]]], _Ticket]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def write(self, rows: Sequence[tuple[Any, dict[str, Any]]]) -> None:
        """Insert ``rows`` (ORM class or table, column dict) durably; blocks until done."""
        ticket = _Ticket()
        with self._cond:
            if self._closed:
                raise RuntimeError("group committer closed")
            self._queue.append((rows, ticket))
            self._cond.notify()
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                batch, self._queue = self._queue, []
                if not batch and self._closed:
                    return
            by_table: dict[Any, list[dict[str, Any]]] = {}
            for rows, _ in batch:
                for table, row in rows:
                    by_table.setdefault(table, []).append(row)
            error: BaseException | None = None
            try:
                with self.db.session() as s:
                    for table, values in by_table.items():
                        s.execute(insert(table), values)
            except BaseException as exc:  # every waiter of this batch learns of it
                error = exc
            for _, ticket in batch:
                ticket.error = error
                ticket.done.set()
