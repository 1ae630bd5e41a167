"""The long-lived objects of one service process, opened and closed together."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from authz.db import Database
from authz.indexer import Indexer
from authz.ledger import Ledger
from authz.settings import Settings
from chain_node import ChainBackend, open_chain

_LAZY_LOCK = threading.RLock()
T = TypeVar("T")


@dataclass
class Services:
    """Settings, index database, chain backend, registry ledger and indexer.

    ``registrar_token`` is the platform registrar's bearer token.

    ``clock`` returns the current Unix time in seconds (injectable for tests).
    """

    settings: Settings
    db: Database
    chain: ChainBackend
    ledger: Ledger
    indexer: Indexer
    registrar_token: str = ""
    clock: object = field(default=time.time)
    anchor_worker: Any = None
    _shared: dict[str, Any] = field(default_factory=dict)

    def shared(self, name: str, factory: Callable[[], T]) -> T:
        """This process's one object ``name``, made by ``factory()`` on first use
        (thread-safe; later calls take no lock: the access-check path asks every time)."""
        found = self._shared.get(name)
        if found is None:
            with _LAZY_LOCK:
                found = self._shared.get(name)
                if found is None:
                    found = self._shared[name] = factory()
        return found

    @property
    def group_commit(self) -> Any:
        """The access log's :class:`authz.group_commit.GroupCommitter`, started on first use."""
        from authz.audit import trim_moved
        from authz.group_commit import GroupCommitter

        return self.shared("group_commit", lambda: GroupCommitter(self.db, housekeeping=trim_moved))

    @property
    def commitments(self) -> Any:
        """The anchoring trees (:class:`authz.commitments.Commitments`), built on first use."""
        from authz.commitments import Commitments

        return self.shared("commitments", lambda: Commitments(self))

    def wake_anchoring(self) -> None:
        """Tell the anchoring worker (if this process runs one) that items were enqueued."""
        if self.anchor_worker is not None:
            self.anchor_worker.wake()

    def start_anchoring(self, poll_s: float | None = None, owner: str | None = None) -> Any:
        """Start this process's anchoring worker (see :mod:`authz.anchoring`); returns it.
        ``poll_s``: how often (seconds) an idle worker that no request thread of its own
        process wakes (``consentgate anchor-worker``) reads the outbox; ``owner``: its
        name in the anchoring lease (default random)."""
        if self.anchor_worker is None:
            from authz.anchoring import AnchorWorker

            self.anchor_worker = AnchorWorker(self, poll_s=poll_s, owner=owner)
            self.anchor_worker.start()
        return self.anchor_worker

    def now(self) -> int:
        """Current Unix time, whole seconds."""
        return int(self.clock())  # type: ignore[operator]

    def reindex(self) -> int:
        """Rebuild every projection: chain events, then the published batch files
        (all checked against the chain first: a bad or missing file refuses the whole
        reindex and leaves the index as it was). Returns the indexed block."""
        from authz.commitments import replay_batches, verify_batches

        verified = verify_batches(self)  # refuse bad batch files before touching anything
        cursor = self.indexer.reindex()
        replay_batches(self, verified)
        return cursor

    def close(self) -> None:
        """Stop the worker, release the database and the chain (the embedded chain
        flushes to disk)."""
        if self.anchor_worker is not None:
            self.anchor_worker.stop()
            self.anchor_worker = None
        committer = self._shared.pop("group_commit", None)
        if committer is not None:
            committer.close()
        self.db.close()
        self.chain.close()


def open_services(settings: Settings) -> Services:
    """Open everything a service process needs; deploys the registry on first start.

    Raises :class:`chain_node.ChainUnavailable` when a JSON-RPC node cannot be reached.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)  # index, keys and tokens: the operator's eyes only
    chain = open_chain(settings.data_dir, settings.chain_url, settings.relayer_key)
    try:
        db = Database(settings.db_url(), settings.access_log_path)
        ledger = Ledger(chain, settings.data_dir, settings.registry_address)
        indexer = Indexer(db, ledger)
        indexer.sync()
    except BaseException:
        chain.close()
        raise
    return Services(
        settings=settings,
        db=db,
        chain=chain,
        ledger=ledger,
        indexer=indexer,
        registrar_token=settings.effective_registrar_token(),
    )
