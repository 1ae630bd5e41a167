"""A real server process: the demo over HTTP, then SIGKILL and restart lose nothing."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from authz.client import Client, request_body
from authz.demo import run_demo
from tests.authz.serverproc import free_port, server

pytestmark = pytest.mark.slow


def test_demo_then_sigkill_and_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    purpose, categories = "fare-collection", ["travel_record"]
    citizen = Account.create()
    with server(tmp_path, port) as proc:
        token = (tmp_path / "registrar_token").read_text().strip()
        lines: list[str] = []
        assert run_demo(base, token, echo=lines.append)
        assert lines[-1] == "allowed -> withdrawn -> denied: OK"
        with Client(base) as api:
            dept = api.register_department(token, "Transit", Account.create().address, [purpose])
            req = api.request_consent(dept, request_body(citizen.address, purpose, categories))
            acknowledged = api.grant(req, citizen)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    with server(tmp_path, port), Client(base) as api:
        assert (tmp_path / "registrar_token").read_text().strip() == token
        allowed = api.check(dept, citizen.address, purpose, categories)
        assert allowed["allowed"] is True and allowed["consent_id"] == acknowledged["consent_id"]
        assert allowed["anchor"]["tx_hash"] == acknowledged["tx_hash"]
        with pytest.raises(httpx.HTTPStatusError) as again:
            api.grant(req, citizen)
        assert again.value.response.status_code == 409
        session = api.sign_in(citizen, allowed["anchor"]["chain_id"])
        out = api.withdraw(acknowledged["consent_id"], citizen, session)
        assert out["status"] == "withdrawn"
        assert api.check(dept, citizen.address, purpose, categories)["allowed"] is False
        assert [e["allowed"] for e in api.access_log(citizen.address, session)] == [False, True]


def test_graceful_stop_releases_the_anchoring_lease(tmp_path: Path) -> None:
    """uvicorn re-raises SIGTERM after shutdown; the lease must be given up before that,
    or the next start waits for it to expire."""
    import json

    from authz.db import Database
    from authz.models import Meta
    from authz.outbox import LEASE_KEY
    from authz.settings import Settings

    def lease() -> dict[str, object]:
        db = Database(Settings(data_dir=tmp_path).db_url())
        try:
            with db.sessions() as s:
                row = s.get(Meta, LEASE_KEY)
                return json.loads(row.value) if row is not None else {"owner": ""}
        finally:
            db.close()

    with server(tmp_path, free_port()):
        deadline = time.monotonic() + 30
        while lease()["owner"] == "" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lease()["owner"] != ""  # the worker holds it while serving
    assert lease()["owner"] == ""  # given up on SIGTERM
