"""The dedicated anchoring process that ``consentgate serve`` supervises.

With ``CONSENTGATE_ANCHORING=process`` (the default of ``serve`` on a JSON-RPC chain) the
API processes accept and answer but send nothing: one child, ``consentgate anchor-worker``,
drains the outbox. Batch acceptance and anchoring then run on two cores instead of
taking turns on one interpreter's GIL, and an access check never waits behind batch
preparation. The child is an ordinary holder of the outbox lease
(:class:`authz.outbox.Lease`), so exactly-once anchoring rests on the same rules as with
several API processes; it polls the outbox (no request thread of its own wakes it).

The child gets SIGTERM when ``serve`` dies (``PR_SET_PDEATHSIG``) and is restarted, one
second later, if it exits on its own; ``serve`` stops it with SIGTERM (a graceful stop
that releases the lease) when it shuts down.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

from authz.localserver import stop, stop_with_parent

log = logging.getLogger("consentgate.anchoring")

RESTART_DELAY_S = 1.0


class AnchorProcess:
    """Runs ``consentgate anchor-worker`` (same environment) until :meth:`stop`."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.argv = argv or [sys.executable, "-m", "authz.cli", "anchor-worker"]
        self.restarts = 0
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="anchor-process", daemon=True)

    @property
    def pid(self) -> int | None:
        """The current child's process id (None before the first start)."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def start(self) -> AnchorProcess:
        """Start the child and its supervising thread; returns self."""
        self._thread.start()
        return self

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                # the child inherits stdout/stderr: its log lines go where serve's go
                self._proc = subprocess.Popen(self.argv, preexec_fn=stop_with_parent)
            code = self._proc.wait()
            if self._stopping.is_set():
                return
            self.restarts += 1
            log.warning(
                "anchoring process exited with %s; restarting in %.0f s", code, RESTART_DELAY_S
            )
            self._stopping.wait(RESTART_DELAY_S)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop supervising and stop the child (SIGTERM, SIGKILL after ``timeout_s``)."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None:
            stop(proc, timeout_s)
        if self._thread.is_alive():
            self._thread.join(timeout_s)
