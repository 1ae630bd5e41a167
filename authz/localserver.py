"""A real ``consentgate serve`` child process on a free loopback port.

Benchmarks and the load test measure the service the way it is deployed: in its own
process, so the measuring client's threads never share the server's interpreter (and
its GIL).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from authz.errors import ConsentgateError


class ServerStartError(ConsentgateError):
    """``consentgate serve`` exited or did not answer ``/healthz`` in time."""

    code = "service_start_failed"
    status = 503
    title = "Service did not start"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LocalServer:
    """A running child server: ``base_url``, the registrar's bearer token, the process."""

    base_url: str
    registrar_token: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def stop_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGTERM (a graceful stop) when the
    process that started it dies, so a killed bench leaves no service behind
    (``prctl(PR_SET_PDEATHSIG)``; tied to the starting thread, here the main one)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def wait_healthy(
    base_url: str, timeout_s: float = 120.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``base_url`` answers ``GET /healthz`` with 200 (a service starting, or a
    child that ``serve`` started); raises ``TimeoutError`` after ``timeout_s`` seconds, or
    at once when ``proc`` (the server's process, if given) has exited."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(base_url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise TimeoutError(f"{base_url} did not answer /healthz in {timeout_s} s")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM (a graceful stop that releases the anchoring lease), SIGKILL after
    ``timeout_s`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(data_dir: Path, env: dict[str, str], startup_s: float) -> LocalServer:
    port = free_port()
    env = {**env, "CONSENTGATE_PORT": str(port)}
    with (data_dir / "server.log").open("ab") as log:
        started_at = log.tell()  # this attempt's lines start here
        proc = subprocess.Popen(
            [sys.executable, "-m", "authz.cli", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=stop_with_parent,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, startup_s, proc)
    except TimeoutError:
        stop(proc)
        with (data_dir / "server.log").open("rb") as log:
            log.seek(started_at)
            tail = log.read().decode(errors="replace")[-1500:]
        raise ServerStartError(
            f"the service did not start ({data_dir / 'server.log'}):\n{tail}"
        ) from None
    token = (data_dir / "registrar_token").read_text().strip()
    return LocalServer(base, token, proc, data_dir)


@contextmanager
def serve_process(
    data_dir: Path,
    *,
    wipe: bool = True,
    startup_s: float = 120.0,
    attempts: int = 3,
    **settings: str,
) -> Iterator[LocalServer]:
    """Run ``consentgate serve`` on ``data_dir`` (wiped first unless ``wipe=False``) on a
    free loopback port; yields a :class:`LocalServer`; SIGTERM on exit.

    ``settings`` are ``CONSENTGATE_*`` variables named without the prefix, e.g.
    ``anchor_mode="batched"``; the chain is the embedded one and the index SQLite in
    ``data_dir`` unless ``chain_url`` / ``database_url`` are given (the caller's own
    ``CONSENTGATE_DATABASE_URL`` and ``REGISTRY_ADDRESS`` are not inherited). A server
    that exits at once is retried on a new port (another process may take the free port
    between choosing and binding it), up to ``attempts`` times.
    Raises :class:`ServerStartError` (``service_start_failed``, with the tail of the
    last attempt's log lines) when no attempt answers ``/healthz`` within ``startup_s`` seconds.
    """
    if wipe:
        shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CONSENTGATE_DATA_DIR": str(data_dir),
        "CONSENTGATE_HOST": "127.0.0.1",
        "CONSENTGATE_PUBLIC_URL": "",
        "CONSENTGATE_CHAIN_URL": "",
        # a throw-away service: never the operator's index or deployment
        "CONSENTGATE_DATABASE_URL": "",
        "CONSENTGATE_REGISTRY_ADDRESS": "",
        "CONSENTGATE_WORKERS": "1",
        **{f"CONSENTGATE_{k.upper()}": v for k, v in settings.items()},
    }
    for attempt in range(attempts):
        try:
            server = _start(data_dir, env, startup_s)
            break
        except ServerStartError:
            if attempt == attempts - 1:
                raise
    try:
        yield server
    finally:
        stop(server.process)
