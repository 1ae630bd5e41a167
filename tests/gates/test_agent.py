"""The offline gate agent: sync checked against the anchored digest, offline work on the
last good lists, report upload, and the ``consentgate gate run`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from authz.cli import app as cli
from authz.gate_agent import GateAgent, GateAgentError, SyncRefused
from authz.models import AuditEvent
from tests.authz.conftest import BASE_URL, Env
from tests.gates.conftest import enroll, register_gate


class Tampering:
    """An HTTP client in the middle: flips one bit of every status list it relays."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get(self, url: str) -> httpx.Response:
        resp = self.inner.get(url)
        if "/v1/status-lists/" not in url:
            return resp
        doc = resp.json()
        from fastpath.tokens import StatusList

        status = StatusList.decode(doc["encodedList"])
        status.set(5)
        doc["encodedList"] = status.encode()
        return httpx.Response(200, json=doc)


class Offline:
    """No network at all."""

    def get(self, url: str) -> httpx.Response:
        raise httpx.ConnectError("network is down")

    def post(self, url: str, **_: Any) -> httpx.Response:
        raise httpx.ConnectError("network is down")


def _agent(env: Env, state: Path, http: Any = None, clock: Any = None) -> GateAgent:
    gate = register_gate(env)
    kwargs = {"clock": clock} if clock else {}
    return GateAgent(
        BASE_URL, gate["gate_id"], gate["api_key"], state, http=http or env.client, **kwargs
    )


def test_lost_card_refused_by_an_offline_gate_after_sync(env: Env, tmp_path: Path) -> None:
    lost, other = enroll(env), enroll(env)
    agent = _agent(env, tmp_path)
    meta = agent.sync()
    assert meta["source"] == "service" and meta["keys"] >= 1
    assert [r["valid"] for r in agent.validate([lost.code(), other.code()])] == [True, True]
    resp = env.client.post(
        "/v1/revocations",
        headers=env.registrar,
        json={"subject": lost.key.address, "reason": "lost"},
    )
    assert resp.status_code == 201
    assert agent.sync()["epoch"] == resp.json()["epoch"] == meta["epoch"] + 1
    refused, passed = agent.validate([lost.code(), other.code()])
    assert (refused["stage"], refused["reason"]) == ("revocation", "revoked")
    assert passed["valid"] is True


def test_tampered_status_list_is_refused_and_the_last_good_kept(env: Env, tmp_path: Path) -> None:
    phone = enroll(env)
    agent = _agent(env, tmp_path)
    good = agent.sync()
    env.client.post(
        "/v1/revocations",
        headers=env.registrar,
        json={"subject": phone.key.address, "reason": "lost"},
    )
    agent.http = Tampering(env.client)  # type: ignore[assignment]
    with pytest.raises(SyncRefused) as refused:
        agent.sync()
    assert refused.value.code == "digest_mismatch"
    assert agent.meta() == good  # still the last good epoch
    assert agent.validate([phone.code()])[0]["valid"] is True  # revocation not yet known
    agent.http = env.client
    agent.sync()
    assert agent.validate([phone.code()])[0]["reason"] == "revoked"


def test_offline_gate_keeps_working_and_says_how_old_its_lists_are(
    env: Env, tmp_path: Path
) -> None:
    phone = enroll(env)
    now = [1_000.0]
    agent = _agent(env, tmp_path, clock=lambda: now[0])
    agent.sync()
    agent.http = Offline()  # type: ignore[assignment]
    now[0] += 3600
    with pytest.raises(GateAgentError) as down:
        agent.sync()
    assert down.value.code == "sync_unreachable"
    assert agent.age_s() == 3600
    assert "synced 3600 s ago" in agent.describe(online=False) and "OFFLINE" in agent.describe(
        False
    )
    import time

    assert agent.validate([phone.code()], at=time.time())[0]["valid"] is True
    assert agent.upload() == 0  # offline: the reports stay queued
    agent.http = env.client
    assert agent.upload() == 1
    with env.svc.db.sessions() as s:
        event = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.kind == "gate_reports")
            .order_by(AuditEvent.seq.desc())
        ).first()
    assert event is not None and event.event["gate_id"] == agent.gate_id
    assert [r["valid"] for r in event.event["scans"]] == [True]


def test_uploads_in_batches(env: Env, tmp_path: Path) -> None:
    phone = enroll(env)
    agent = _agent(env, tmp_path)
    agent.sync()
    agent.validate([phone.code() for _ in range(7)])
    assert agent.upload(batch=3) == 7
    assert agent.upload() == 0


def test_cli_run_validates_stdin_offline(env: Env, tmp_path: Path) -> None:
    phone = enroll(env)
    agent = _agent(env, tmp_path)
    agent.sync()
    codes = [phone.code(), "SC1:not-a-code", ""]
    code = codes[0]
    result = CliRunner().invoke(
        cli,
        ["gate", "run", "--offline", "--state", str(tmp_path), "--gate-id", agent.gate_id],
        input="\n".join([*codes, code]) + "\n",
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"valid')]
    assert [(r["valid"], r["stage"]) for r in lines] == [
        (True, "ok"),
        (False, "base45"),
        (False, "replay"),
    ]
    assert "synced 0 s ago" in result.stderr or "synced 1 s ago" in result.stderr


def test_local_http_port(env: Env, tmp_path: Path) -> None:
    import threading

    phone = enroll(env)
    agent = _agent(env, tmp_path)
    agent.sync()
    server = agent.serve(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/scan"
        code = phone.code()
        first = httpx.post(url, content=code).json()
        second = httpx.post(url, content=code).json()
        assert (first["valid"], second["reason"]) == (True, "replayed")
        assert httpx.post(url.replace("/scan", "/other"), content=code).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
