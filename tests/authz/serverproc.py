"""A real ``consentgate serve`` process for tests that kill and restart it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(data_dir: Path, port: int, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    """``consentgate serve`` in a child process on ``port``; SIGTERM at exit if still alive.

    ``settings``: extra ``CONSENTGATE_*`` variables, named without the prefix."""
    env = {
        **os.environ,
        **{f"CONSENTGATE_{k.upper()}": v for k, v in settings.items()},
        "CONSENTGATE_DATA_DIR": str(data_dir),
        "CONSENTGATE_PORT": str(port),
        "CONSENTGATE_HOST": "127.0.0.1",
    }
    log = open(data_dir / f"server-{time.time_ns()}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "authz.cli", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {log.name}")
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def signed_loan_grants(api: Any, dept: dict[str, Any], count: int) -> list[dict[str, str]]:
    """``count`` new citizens' signed grants of a ``loan`` / ``income`` request of
    ``dept``: the ``items`` of a ``POST /v1/consent-batches`` body."""
    from eth_account import Account

    from authz.client import request_body, sign_typed

    body = []
    for _ in range(count):
        citizen = Account.create()
        req = api.request_consent(dept, request_body(citizen.address, "loan", ["income"]))
        body.append(
            {"request_id": req["request_id"], "signature": sign_typed(citizen, req["typed_data"])}
        )
    return body


def batched_on(anvil: Any, workers: int) -> dict[str, str]:
    """``server`` settings of a batched service with ``workers`` API processes on
    ``anvil`` (a fresh SQLite index in the data folder, a registry of its own), or on the
    embedded chain when ``anvil`` is None (``serve`` then runs it in a chain-node child
    as soon as it runs more than one process)."""
    return {
        "chain_url": anvil.url if anvil is not None else "",
        "relayer_key": anvil.relayer_key if anvil is not None else "",
        "anchor_mode": "batched",
        "batch_max": "64",
        "batch_wait_ms": "20",
        "workers": str(workers),
        "database_url": "",
        "registry_address": "",
    }
