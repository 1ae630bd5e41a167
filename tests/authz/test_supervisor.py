"""The children ``consentgate serve`` supervises: ``CONSENTGATE_ANCHORING=process`` and
``CONSENTGATE_INGEST_PORT``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from eth_account import Account
from sqlalchemy import func, select

from authz.client import Client, request_body, sign_typed
from authz.db import Database
from authz.localserver import wait_healthy
from authz.models import Consent, OutboxItem
from authz.services import open_services
from authz.settings import Settings
from chain_node.anvil import AnvilProcess
from tests.authz.serverproc import batched_on, free_port, server, signed_loan_grants


@pytest.mark.parametrize(
    ("anchoring", "chain_url", "extra", "serve", "here", "split"),
    [
        ("auto", "", {}, "thread", True, False),
        ("auto", "", {"workers": 2}, "process", True, True),
        ("auto", "", {"ingest_port": 9001}, "process", True, True),
        ("thread", "", {"workers": 2}, "thread", True, True),
        ("process", "", {}, "process", False, True),
        ("auto", "http://127.0.0.1:8545", {}, "process", True, True),
        ("thread", "http://127.0.0.1:8545", {}, "thread", True, True),
        ("process", "http://127.0.0.1:8545", {}, "process", False, True),
        ("off", "", {}, "off", False, False),
    ],
)
def test_where_serve_anchors(
    anchoring: str, chain_url: str, extra: dict[str, int], serve: str, here: bool, split: bool
) -> None:
    settings = Settings(anchoring=anchoring, chain_url=chain_url, **extra)  # type: ignore[arg-type]
    assert settings.serve_anchoring() == serve
    assert settings.anchoring_here is here
    assert settings.split is split


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


def test_anchoring_off_refused_on_the_embedded_chain(tmp_path: Path) -> None:
    # off: nothing could ever anchor (anchor-worker refuses the embedded chain too)
    out = _run(tmp_path, "serve", anchoring="off")
    assert (out.returncode, out.stderr.strip()) == (
        2,
        "consentgate: CONSENTGATE_ANCHORING=off needs CONSENTGATE_CHAIN_URL (on the "
        "embedded chain nothing else could anchor)",
    )
    out = _run(tmp_path, "anchor-worker")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "consentgate: anchor-worker needs CONSENTGATE_CHAIN_URL (the embedded chain "
        "belongs to the serving process, which anchors in a thread)"
    )
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "chain").exists()  # refused before opening anything


def test_ports_that_clash_or_are_taken_are_refused(tmp_path: Path) -> None:
    out = _run(tmp_path, "serve", chain_url="http://127.0.0.1:9", port="18998", ingest_port="18998")
    assert (out.returncode, out.stderr.strip()) == (
        2,
        "consentgate: CONSENTGATE_INGEST_PORT must differ from CONSENTGATE_PORT (18998)",
    )
    out = _run(tmp_path, "serve", port="18997", ingest_port="18996", chain_node_port="18996")
    assert (out.returncode, out.stderr.strip()) == (
        2,
        "consentgate: CONSENTGATE_CHAIN_NODE_PORT must differ from CONSENTGATE_INGEST_PORT (18996)",
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _run(tmp_path, "serve", ingest_port=str(port))
    assert (out.returncode, out.stderr.strip()) == (
        2,
        f"consentgate: CONSENTGATE_INGEST_PORT: cannot listen on 127.0.0.1:{port} "
        "(Address already in use)",
    )
    assert not (tmp_path / "chain").exists()  # refused before starting anything


def test_port_checks_follow_the_host_address_family() -> None:
    from authz.cli.commands import _check_ports

    for host in ("::1", "127.0.0.1", "localhost"):
        _check_ports(Settings(host=host, port=free_port()))  # free: no exit
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        with pytest.raises(typer.Exit):
            _check_ports(Settings(host="::1", port=taken.getsockname()[1]))


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for command in ("serve", "anchor-worker"):
        out = _run(tmp_path, command, anchoring="proces", bulk_nice="40")
        assert out.returncode == 2, out.stderr
        assert sorted(out.stderr.splitlines()) == [
            "consentgate: CONSENTGATE_ANCHORING: Input should be 'auto', 'thread', "
            "'process' or 'off'",
            "consentgate: CONSENTGATE_BULK_NICE: Input should be less than or equal to 19",
        ]


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


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _twenty_grants_anchored(api: Client, bulk: Client, token: str) -> tuple[Any, Any]:
    """A new department and 20 citizens' grants posted to ``bulk`` (the ingest port) with
    ``?wait=anchored``, asserted anchored; returns the department and the first citizen."""
    dept = api.register_department(token, "Housing Fund", Account.create().address, ["loan"])
    citizen = Account.create()
    req = api.request_consent(dept, request_body(citizen.address, "loan", ["income"]))
    body = [{"request_id": req["request_id"], "signature": sign_typed(citizen, req["typed_data"])}]
    body += signed_loan_grants(api, dept, 19)
    done = bulk.http.post(
        "/v1/consent-batches", params={"wait": "anchored"}, json={"items": body}
    ).json()
    assert [r["anchor"] for r in done["results"]] == ["anchored"] * 20
    return dept, citizen


def _check(api: Client, dept: Any, citizen: Any) -> tuple[bool, str]:
    """(allowed, reason) of an access check for ``citizen``'s loan / income consent."""
    check = api.http.post(
        "/v1/access-checks",
        headers=dept["headers"],
        json={"subject": citizen.address, "purpose": "loan", "pii_categories": ["income"]},
    ).json()
    return check["allowed"], check["reason"]


@pytest.mark.anvil
@pytest.mark.slow
def test_serve_on_a_json_rpc_chain_runs_supervised_bulk_children(
    anvil: AnvilProcess, tmp_path: Path
) -> None:
    port, ingest_port = free_port(), free_port()
    settings = {**batched_on(anvil, 1), "ingest_port": str(ingest_port), "bulk_nice": "7"}
    with server(tmp_path, port, **settings) as proc:
        token = (tmp_path / "registrar_token").read_text().strip()
        children = {
            b"anchor-worker" in Path(f"/proc/{pid}/cmdline").read_bytes(): pid
            for pid in _children(proc.pid)
        }
        assert len(children) == 2  # the anchoring worker and the bulk-ingest API
        anchorer, ingest = children[True], children[False]
        assert _nice(anchorer) == _nice(ingest) == _nice(proc.pid) + 7
        wait_healthy(f"http://127.0.0.1:{ingest_port}", timeout_s=90)
        with (
            Client(f"http://127.0.0.1:{port}") as api,
            Client(f"http://127.0.0.1:{ingest_port}") as bulk,
        ):
            # accepted by the ingest process, anchored by the anchoring process; the
            # ingest process polls the index, so ?wait=anchored sees the child's batches
            dept, citizen = _twenty_grants_anchored(api, bulk, token)
            assert _check(api, dept, citizen) == (True, "consent_valid")
            # a killed anchoring process is started again; nothing accepted is lost
            os.kill(anchorer, signal.SIGKILL)
            body = signed_loan_grants(api, dept, 20)
            results = bulk.http.post("/v1/consent-batches", json={"items": body}).json()
            assert [r["accepted"] for r in results["results"]] == [True] * 20
        assert _wait_anchored(tmp_path, 40) == {"anchored": 40}
        after = set(_children(proc.pid))
        assert ingest in after and anchorer not in after and len(after) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM  # uvicorn re-raises it after shutting down
    for pid in after:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # stopped with serve: no orphan keeps the lease or the port


@pytest.mark.slow
def test_serve_on_the_embedded_chain_splits_around_a_chain_node(tmp_path: Path) -> None:
    """With an ingest port on the embedded chain, ``serve`` runs the chain in a
    ``chain-node`` child and the anchoring worker in another. A SIGKILLed chain node:
    grants are still accepted (pending) and checks still answered; once the supervisor
    has started it again every grant is anchored exactly once."""
    port, ingest_port = free_port(), free_port()
    settings = {**batched_on(None, 1), "ingest_port": str(ingest_port), "bulk_nice": "5"}
    with server(tmp_path, port, **settings) as proc:
        token = (tmp_path / "registrar_token").read_text().strip()
        children = {
            Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[3].decode(): pid
            for pid in _children(proc.pid)
        }
        assert sorted(children) == ["anchor-worker", "chain-node", "serve"]
        node = children["chain-node"]
        assert _nice(node) == _nice(children["anchor-worker"]) == _nice(proc.pid) + 5
        wait_healthy(f"http://127.0.0.1:{ingest_port}", timeout_s=90)
        with (
            Client(f"http://127.0.0.1:{port}") as api,
            Client(f"http://127.0.0.1:{ingest_port}") as bulk,
        ):
            assert api.health()["chain"]["chain_id"] == 27560
            dept, citizen = _twenty_grants_anchored(api, bulk, token)
            os.kill(node, signal.SIGKILL)
            body = signed_loan_grants(api, dept, 20)
            results = bulk.http.post("/v1/consent-batches", json={"items": body}).json()
            assert [r["accepted"] for r in results["results"]] == [True] * 20
            assert _check(api, dept, citizen) == (True, "consent_valid")
        assert _wait_anchored(tmp_path, 40, timeout_s=90) == {"anchored": 40}
        after = set(_children(proc.pid))
        assert node not in after and len(after) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM
    for pid in after:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # every grant has one leaf, and the chain (opened directly now) counts each once
    svc = open_services(Settings(data_dir=tmp_path, database_url=""))
    try:
        with svc.db.sessions() as s:
            leaves = s.scalars(select(Consent.leaf_index).order_by(Consent.leaf_index)).all()
        assert list(leaves) == list(range(40))
        assert svc.ledger.call("latest", on="anchor")[1] == 40
    finally:
        svc.close()


def test_a_child_that_keeps_dying_at_start_is_restarted_ever_more_slowly() -> None:
    """A port already taken makes the ingest child exit at once: the supervisor backs off
    (2 s, 4 s, ... up to a minute) instead of restarting it every second."""
    from authz.supervisor import Supervised

    child = Supervised("doomed", [sys.executable, "-S", "-c", "raise SystemExit(3)"]).start()
    try:
        time.sleep(3.5)
    finally:
        child.stop()
    # at 1 s intervals it would have been restarted 3 times by now; backing off, 1-2
    assert child.restarts in (1, 2)
    assert child.pid is not None
