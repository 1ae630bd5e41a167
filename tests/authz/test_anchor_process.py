"""``CONSENTGATE_ANCHORING``: the anchoring worker in a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import func, select

from authz.client import Client
from authz.db import Database
from authz.models import OutboxItem
from authz.settings import Settings
from chain_node.anvil import AnvilProcess
from tests.authz.serverproc import batched_on, free_port, server, signed_loan_grants


@pytest.mark.parametrize(
    ("anchoring", "chain_url", "serve", "here"),
    [
        ("auto", "", "thread", True),
        ("auto", "http://127.0.0.1:8545", "process", True),
        ("thread", "http://127.0.0.1:8545", "thread", True),
        ("process", "http://127.0.0.1:8545", "process", False),
        ("off", "", "off", False),
    ],
)
def test_where_serve_anchors(anchoring: str, chain_url: str, serve: str, here: bool) -> None:
    settings = Settings(anchoring=anchoring, chain_url=chain_url)  # type: ignore[arg-type]
    assert settings.serve_anchoring() == serve
    assert settings.anchoring_here is here


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "CONSENTGATE_DATA_DIR": str(tmp_path),
        "CONSENTGATE_CHAIN_URL": "",
        "CONSENTGATE_WORKERS": "1",
        **{f"CONSENTGATE_{k.upper()}": v for k, v in env.items()},
    }
    return subprocess.run(
        [sys.executable, "-m", "authz.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_process_anchoring_refused_on_the_embedded_chain(tmp_path: Path) -> None:
    out = _run(tmp_path, "serve", anchoring="process")
    assert out.returncode == 2
    assert "CONSENTGATE_ANCHORING=process need CONSENTGATE_CHAIN_URL" in out.stderr
    out = _run(tmp_path, "anchor-worker")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "consentgate: anchor-worker needs CONSENTGATE_CHAIN_URL (the embedded chain "
        "belongs to the serving process, which anchors in a thread)"
    )
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "chain").exists()  # refused before opening anything


def _children(pid: int) -> list[int]:
    """Child processes of ``pid`` (started by any of its threads)."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def _states(data_dir: Path) -> dict[str, int]:
    db = Database(Settings(data_dir=data_dir, database_url="").db_url())
    try:
        with db.sessions() as s:
            return dict(
                s.execute(select(OutboxItem.state, func.count()).group_by(OutboxItem.state)).all()  # type: ignore[arg-type]
            )
    finally:
        db.close()


def _wait_anchored(data_dir: Path, count: int, timeout_s: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    states = _states(data_dir)
    while states.get("anchored", 0) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        states = _states(data_dir)
    return states


@pytest.mark.anvil
@pytest.mark.slow
def test_serve_on_a_json_rpc_chain_anchors_in_a_supervised_child(
    anvil: AnvilProcess, tmp_path: Path
) -> None:
    port = free_port()
    settings = batched_on(anvil, 1)
    with server(tmp_path, port, **settings) as proc:
        token = (tmp_path / "registrar_token").read_text().strip()
        children = _children(proc.pid)
        assert len(children) == 1  # `auto` on a JSON-RPC chain: one anchoring process
        child = children[0]
        assert b"anchor-worker" in Path(f"/proc/{child}/cmdline").read_bytes()
        with Client(f"http://127.0.0.1:{port}") as api:
            dept = api.register_department(
                token, "Housing Fund", Account.create().address, ["loan"]
            )
            body = signed_loan_grants(api, dept, 20)
            # the API process polls the index: ?wait=anchored sees the child's batches
            done = api.http.post(
                "/v1/consent-batches", params={"wait": "anchored"}, json={"items": body}
            ).json()
            assert [r["anchor"] for r in done["results"]] == ["anchored"] * 20
            # a killed anchoring process is started again; nothing accepted is lost
            os.kill(child, signal.SIGKILL)
            body = signed_loan_grants(api, dept, 20)
            results = api.http.post("/v1/consent-batches", json={"items": body}).json()
            assert [r["accepted"] for r in results["results"]] == [True] * 20
        assert _wait_anchored(tmp_path, 40) == {"anchored": 40}
        (restarted,) = _children(proc.pid)
        assert restarted != child
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM  # uvicorn re-raises it after shutting down
    with pytest.raises(ProcessLookupError):
        os.kill(restarted, 0)  # stopped with serve: no orphan keeps the lease
