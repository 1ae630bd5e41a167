"""A real server process: the demo over HTTP, then SIGKILL and restart lose nothing."""

from __future__ import annotations

import signal
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
