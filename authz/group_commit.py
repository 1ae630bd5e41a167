"""Group commit: many requests share one database transaction (and one fsync).

Access checks are the dominant call, and each must append its access-log row and audit
event durably before it answers. One commit (one WAL fsync) per check caps a server at a
few hundred checks per second; :class:`GroupCommitter` lets every check waiting at the
same moment ride the same commit. A caller still returns only after its rows are on disk
(:meth:`GroupCommitter.write` blocks, :meth:`GroupCommitter.write_async` awaits until
then), so nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from authz.db import Database

log = logging.getLogger(__name__)

Rows = Sequence[tuple[Any, dict[str, Any]]]


class _Ticket:
    """A blocking caller's wait: set when its batch has committed (or failed)."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


def _table(target: Any) -> Table:
    """The Core table of an ORM class (or the table itself)."""
    table = getattr(target, "__table__", target)
    assert isinstance(table, Table), target
    return table


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """Resolve the futures of one batch (runs on their event loop)."""
    for fut in futures:
        if fut.done():  # the waiting request was cancelled; its rows are committed anyway
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)


class GroupCommitter:
    """A writer thread that commits queued inserts together (SQLAlchemy Core bulk inserts,
    one transaction per batch).

    ``write([(table, row_dict), ...])`` queues the rows and blocks until the transaction
    holding them has committed; ``await write_async(...)`` does the same without holding a
    thread (the writer resolves an asyncio future on the caller's loop). Both re-raise the
    commit's error, if any. ``table`` is an ORM class or a Core :class:`Table`.

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
        self._queue: list[tuple[Rows, _Ticket | tuple[asyncio.AbstractEventLoop, Any]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def _enqueue(self, rows: Rows, waiter: _Ticket | tuple[asyncio.AbstractEventLoop, Any]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("group committer closed")
            self._queue.append((rows, waiter))
            self._cond.notify()

    def write(self, rows: Rows) -> None:
        """Insert ``rows`` (ORM class or table, column dict) durably; blocks until done."""
        ticket = _Ticket()
        self._enqueue(rows, ticket)
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error

    async def write_async(self, rows: Rows) -> None:
        """Insert ``rows`` durably; returns once their transaction has committed.

        Raises the commit's error, or :class:`RuntimeError` when the committer is closed.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._enqueue(rows, (loop, fut))
        await fut

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
            by_table: dict[Table, list[dict[str, Any]]] = {}
            for rows, _ in batch:
                for table, row in rows:
                    by_table.setdefault(_table(table), []).append(row)
            error: BaseException | None = None
            try:
                with self.db.engine.begin() as conn:
                    for table, values in by_table.items():
                        conn.execute(table.insert(), values)
            except BaseException as exc:  # every waiter of this batch learns of it
                error = exc
            self._answer(batch, error)
            self._commits += 1
            if self._housekeeping is not None and self._commits % self._housekeeping_every == 0:
                try:
                    with self.db.session() as s:
                        self._housekeeping(s)
                except Exception:
                    log.exception("group commit housekeeping failed; retried later")

    @staticmethod
    def _answer(
        batch: list[tuple[Rows, _Ticket | tuple[asyncio.AbstractEventLoop, Any]]],
        error: BaseException | None,
    ) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, waiter in batch:
            if isinstance(waiter, _Ticket):
                waiter.error = error
                waiter.done.set()
            else:
                by_loop.setdefault(waiter[0], []).append(waiter[1])
        for loop, futures in by_loop.items():
            # one wake-up per loop and batch, not one per request; a closed loop (shut
            # down) has nobody waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, futures, error)
