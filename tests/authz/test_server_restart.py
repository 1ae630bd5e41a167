"""A real server process: the demo over HTTP, then SIGKILL and restart lose nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from authz.demo import run_demo, sign_typed, siwe_sign_in

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
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


def test_demo_then_sigkill_and_restart(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    token = None
    with server(tmp_path, port) as proc:
        token = (tmp_path / "registrar_token").read_text().strip()
        lines: list[str] = []
        assert run_demo(base, token, echo=lines.append)
        assert any("allowed -> withdrawn -> denied: OK" in line for line in lines)
        c = httpx.Client(base_url=base, timeout=60)
        dept_key, citizen = Account.create(), Account.create()
        dept = c.post(
            "/v1/departments",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "Transit", "address": dept_key.address, "purposes": ["fare-collection"]},
        ).json()
        dh = {"Authorization": f"Bearer {dept['api_key']}"}
        req = c.post(
            "/v1/consent-requests",
            headers=dh,
            json={
                "subject": citizen.address,
                "purpose": "fare-collection",
                "pii_categories": ["travel_record"],
                "notice_url": "https://metro.example/n",
                "retention_days": 30,
                "valid_until": (datetime.now(UTC) + timedelta(days=9)).isoformat(),
            },
        ).json()
        grant = c.post(
            "/v1/consents",
            json={
                "request_id": req["request_id"],
                "signature": sign_typed(citizen, req["typed_data"]),
            },
        )
        assert grant.status_code == 201
        acknowledged = grant.json()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    with server(tmp_path, port):
        c = httpx.Client(base_url=base, timeout=60)
        assert (tmp_path / "registrar_token").read_text().strip() == token
        check = {
            "subject": citizen.address,
            "purpose": "fare-collection",
            "pii_categories": ["travel_record"],
        }
        allowed = c.post("/v1/access-checks", headers=dh, json=check).json()
        assert allowed["allowed"] is True and allowed["consent_id"] == acknowledged["consent_id"]
        assert allowed["anchor"]["tx_hash"] == acknowledged["tx_hash"]
        again = c.post(
            "/v1/consents",
            json={
                "request_id": req["request_id"],
                "signature": sign_typed(citizen, req["typed_data"]),
            },
        )
        assert again.status_code == 409
        chain_id = allowed["anchor"]["chain_id"]
        session = {"Authorization": f"Bearer {siwe_sign_in(c, base, citizen, chain_id)}"}
        wtd = c.get(f"/v1/consents/{acknowledged['consent_id']}/withdrawal", headers=session)
        out = c.post(
            f"/v1/consents/{acknowledged['consent_id']}/withdrawal",
            json={"signature": sign_typed(citizen, wtd.json()["typed_data"])},
        )
        assert out.status_code == 200 and out.json()["status"] == "withdrawn"
        assert c.post("/v1/access-checks", headers=dh, json=check).json()["allowed"] is False
        log = c.get(f"/v1/subjects/{citizen.address}/access-log", headers=session).json()
        assert [e["allowed"] for e in log["entries"]] == [False, True]
