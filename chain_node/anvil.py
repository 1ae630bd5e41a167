"""Start and stop an anvil node (npm ``@foundry-rs/anvil``) for tests and load tests.

>>> node = start_anvil()        # free loopback port, waits for eth_chainId
>>> node.url, node.chain_id     # ("http://127.0.0.1:PORT", 31337)
>>> node.stop()

The binary comes from ``contracts/node_modules`` (``make npm``; the platform package's
executable, see ``_binary``); override with ``CONSENTGATE_ANVIL``. Anvil's first default
dev account key is :data:`ANVIL_KEY_0` (public test mnemonic "test test ... junk"; never
use it outside a local node).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["ANVIL_BINARY", "ANVIL_KEY_0", "AnvilProcess", "anvil_available", "start_anvil"]

ANVIL_BINARY = Path(__file__).resolve().parents[1] / "contracts" / "node_modules" / ".bin" / "anvil"
ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_CHAIN_ID = 31337


def _binary() -> Path:
    """The anvil executable: ``CONSENTGATE_ANVIL``, else the platform binary that the npm
    package installed (``@foundry-rs/anvil-<os>-<arch>/bin/anvil``), else the npm shim.

    The shim (``.bin/anvil``) is a Node script that spawns the platform binary as its
    child; killing the shim with SIGKILL would orphan the real node, so it is the last
    resort."""
    override = os.environ.get("CONSENTGATE_ANVIL")
    if override:
        return Path(override)
    scope = ANVIL_BINARY.parents[1] / "@foundry-rs"
    for candidate in sorted(scope.glob("anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    return ANVIL_BINARY


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL anvil when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``), so a killed test run leaves no node behind. Linux ties
    this to the *thread* that started anvil: start it from a long-lived thread (the main
    thread in pytest and Locust)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def anvil_available() -> bool:
    """True when the anvil binary exists and is executable."""
    path = _binary()
    return path.is_file() and os.access(path, os.X_OK)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chain_id(url: str, timeout_s: float) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return int(json.load(response)["result"], 16)


class AnvilProcess:
    """A running anvil child process. ``url``: its HTTP endpoint; ``stop()`` kills it."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.chain_id = ANVIL_CHAIN_ID
        self.relayer_key = ANVIL_KEY_0
        self._log: IO[bytes] | None = None

    def stop(self) -> None:
        """Terminate anvil (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> AnvilProcess:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_anvil(
    port: int | None = None, *, timeout_s: float = 20.0, extra_args: list[str] | None = None
) -> AnvilProcess:
    """Start anvil on 127.0.0.1 (``port`` or a free one) and wait until it answers
    ``eth_chainId`` (auto-mining, chain id 31337, default accounts).

    Raises FileNotFoundError if the binary is missing, RuntimeError if it exits or does not
    answer within ``timeout_s`` seconds (the process is killed first).
    """
    binary = _binary()
    if not binary.exists():
        raise FileNotFoundError(f"anvil not found at {binary}; run `make npm`")
    for _attempt in range(3):
        chosen = port or _free_port()
        # stderr goes to a file, not a pipe: a pipe nobody reads can fill up and stall anvil
        log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as anvil does
        proc = subprocess.Popen(
            [
                str(binary),
                *("--host", "127.0.0.1", "--port", str(chosen), "--silent"),
                *(extra_args or []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=_die_with_parent,
        )
        node = AnvilProcess(proc, chosen)
        node._log = log
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                node.chain_id = _chain_id(node.url, 1.0)
                return node
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                time.sleep(0.05)
        node._log = None  # keep the log open past stop() to read why anvil failed
        node.stop()
        log.seek(0)
        stderr = log.read().decode(errors="replace")
        log.close()
        if port is not None or "in use" not in stderr.lower():
            raise RuntimeError(f"anvil did not start on port {chosen}: {stderr.strip()[:500]}")
    raise RuntimeError("anvil did not start: no free port after 3 attempts")
