"""The relayer's nonce counter, safe under concurrent senders.

web3's own nonce filling reads ``eth_getTransactionCount(addr, "pending")`` for every
transaction without a lock, so two threads that send at once read the same count and one
transaction is refused ("nonce too low") or, worse, replaces the other. Here one
:class:`NonceManager` per relayer account hands out nonces under a lock, reading the
node only when its local count is unknown (first use, or after :meth:`resync`).

Usage (the lock is held from reading the nonce until the node accepted or refused the
transaction, so nonces are handed out in the order they reach the node)::

    with nonces:                        # the manager's re-entrant lock
        first = nonces.peek()           # next free nonce (reads the node if unknown)
        ...sign first, first + 1, ...; send them...
        nonces.advance(sent)            # on success
        # or nonces.resync() on any failure: the next peek() asks the node again

Transactions of one sender are executed strictly in nonce order (yellow paper, section
6.2: a transaction's nonce must equal its sender's current nonce): a skipped nonce leaves
every later transaction of the account waiting in the pool, which is why a failed send
drops the local count instead of guessing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["NonceManager"]


class NonceManager:
    """Hands out consecutive nonces of one account.

    ``fetch``: returns the account's next nonce as the node sees it (pending transactions
    included), e.g. ``eth_getTransactionCount(addr, "pending")``; it is called under the
    lock, only when the local count is unknown. ``lock``: the re-entrant lock to use
    (default: a new one); pass an existing lock to serialize nonce use with other work.

    ``peek``/``advance``/``resync`` must be called while holding the manager (``with
    manager:``); every method is re-entrant from the holding thread.
    """

    def __init__(self, fetch: Callable[[], int], lock: threading.RLock | None = None) -> None:
        self._fetch = fetch
        self.lock = lock if lock is not None else threading.RLock()
        self._next: int | None = None
        self.resyncs = 0
        """How many times the count was read from the node (first read included)."""

    def __enter__(self) -> NonceManager:
        self.lock.acquire()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.lock.release()

    @property
    def known(self) -> bool:
        """True when the next nonce is cached locally (no node read on the next peek)."""
        return self._next is not None

    def peek(self) -> int:
        """The next free nonce (>= 0). Reads the node through ``fetch`` if the local count
        is unknown; ``fetch``'s exceptions propagate and leave the count unknown."""
        with self.lock:
            if self._next is None:
                value = int(self._fetch())
                if value < 0:
                    raise ValueError(f"nonce fetch returned {value}")
                self._next = value
                self.resyncs += 1
            return self._next

    def advance(self, count: int = 1) -> int:
        """Mark ``count`` (>= 0) nonces from :meth:`peek` as used; return the next free one.
        Raises ValueError for a negative count or when the count is unknown."""
        if count < 0:
            raise ValueError("advance: count must be >= 0")
        with self.lock:
            if self._next is None:
                raise ValueError("advance: nonce unknown (peek first)")
            self._next += count
            return self._next

    def resync(self) -> None:
        """Forget the local count: the next :meth:`peek` reads the node again. Call after
        any send whose outcome is not known to be "accepted"."""
        with self.lock:
            self._next = None
