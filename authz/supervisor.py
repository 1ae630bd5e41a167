"""Child processes that ``consentgate serve`` supervises: the anchoring worker, the
bulk-ingest API and the embedded chain's node.

``serve`` can split the service into processes, so that bulk work never competes with
access checks for one interpreter's GIL, and yields the CPU to them when the machine is
saturated:

- On the embedded chain, as soon as ``serve`` runs more than one process
  (:attr:`authz.settings.Settings.split`), the chain itself runs first in a
  ``consentgate chain-node`` child (:mod:`chain_node.rpc_server`) and every other process
  reaches it over JSON-RPC, as it would reach an external node; it executes the
  anchoring transactions, so it runs at the bulk niceness too. It is stopped last.

- ``CONSENTGATE_ANCHORING=process`` (the default of ``serve`` there): the API processes
  accept and answer but send nothing; one child, ``consentgate anchor-worker``, drains the
  outbox. It is an ordinary holder of the outbox lease (:class:`authz.outbox.Lease`), so
  exactly-once anchoring rests on the same rules as with several API processes, and it
  polls the outbox (no request thread of its own wakes it).
- ``CONSENTGATE_INGEST_PORT=P``: a second API process (``consentgate serve`` on port P,
  the same API, anchoring off) for channels that relay batches of grants
  (``POST /v1/consent-batches``); departments' checks go to the main port.

All children run at ``CONSENTGATE_BULK_NICE`` (default 10): when both cores are busy the
scheduler serves the access checks first and the bulk work with what is left, and a
batch waits a little longer. Measured with ``consentgate bench checks --chain URL``:
docs/anchoring.md.

A child gets SIGTERM when ``serve`` dies (``PR_SET_PDEATHSIG``) and is restarted if it
exits on its own: one second later, or after a doubling delay (up to a minute) while it
keeps dying within ten seconds of its start; ``serve`` stops it with SIGTERM (a graceful stop
that releases the lease) when it shuts down.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

from authz.localserver import stop, stop_with_parent

log = logging.getLogger("consentgate.supervisor")

RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 60.0
QUICK_EXIT_S = 10.0  # a child that dies sooner than this after its start backs off


def consentgate(*args: str) -> list[str]:
    """The command line of ``consentgate ARGS`` with this interpreter."""
    return [sys.executable, "-m", "authz.cli", *args]


class Supervised:
    """Runs ``argv`` (environment ``env``, default this process's; ``nice`` added to its
    niceness) again whenever it exits, until :meth:`stop`."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, nice: int = 0
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.nice = nice
        self.restarts = 0
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._supervise, name=f"supervise-{name}", daemon=True
        )

    @property
    def pid(self) -> int | None:
        """The current child's process id (None before the first start)."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def start(self) -> Supervised:
        """Start the child and its supervising thread; returns self."""
        self._thread.start()
        return self

    def _preexec(self) -> None:
        stop_with_parent()
        if self.nice:
            os.nice(self.nice)

    def _supervise(self) -> None:
        delay = RESTART_DELAY_S
        while not self._stopping.is_set():
            started = time.monotonic()
            with self._lock:
                if self._stopping.is_set():
                    return
                # the child inherits stdout/stderr: its log lines go where serve's go; its
                # own session keeps a terminal's Ctrl-C for serve, which stops it in order
                self._proc = subprocess.Popen(
                    self.argv, env=self.env, preexec_fn=self._preexec, start_new_session=True
                )
            code = self._proc.wait()
            if self._stopping.is_set():
                return
            self.restarts += 1
            # a child that cannot start (its port taken, say) is retried ever more slowly
            quick = time.monotonic() - started < QUICK_EXIT_S
            delay = min(MAX_RESTART_DELAY_S, delay * 2) if quick else RESTART_DELAY_S
            log.warning("%s process exited with %s; restarting in %.0f s", self.name, code, delay)
            self._stopping.wait(delay)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop supervising and stop the child (SIGTERM, SIGKILL after ``timeout_s``);
        idempotent."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None:
            stop(proc, timeout_s)
        if self._thread.is_alive():
            self._thread.join(timeout_s)
