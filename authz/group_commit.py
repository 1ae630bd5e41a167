"""Group commit: many request threads share one database transaction (and one fsync).

Access checks are the dominant call, and each must append its access-log row and audit
event durably before it answers. One commit (one WAL fsync) per check caps a server at a
few hundred checks per second; :class:`GroupCommitter` lets every check waiting at the
same moment ride the same commit. A caller still returns only after its rows are on disk
(:meth:`GroupCommitter.write` blocks until then), so nothing acknowledged is lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from authz.db import Database

log = logging.getLogger(__name__)


class _Ticket:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class GroupCommitter:
    """A writer thread that commits queued inserts together.

    ``write([(table, row_dict), ...])`` queues the rows and blocks until the transaction
    holding them has committed; it re-raises the commit's error, if any.

    ``housekeeping(session)``, if given, runs in a transaction of its own after every
    ``housekeeping_every``-th commit, once that commit's writers have been answered: the
    access log's queued audit events are trimmed that way, by the one thread that writes
    the access log, so the trim never competes with a check for the write lock. Its
    errors are logged and retried next time.
    """

    def __init__(
        self,
        db: Database,
        housekeeping: Callable[[Session], None] | None = None,
        housekeeping_every: int = 256,
    ) -> None:
        self.db = db
        self._housekeeping = housekeeping
        self._housekeeping_every = housekeeping_every
        self._commits = 0
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
            self._commits += 1
            if self._housekeeping is not None and self._commits % self._housekeeping_every == 0:
                try:
                    with self.db.session() as s:
                        self._housekeeping(s)
                except Exception:
                    log.exception("group commit housekeeping failed; retried later")
