"""``consentgate serve --workers N``: several API processes on one chain (anvil, or the
embedded chain behind its ``chain-node`` child)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import func, select

from authz.client import Client
from authz.db import Database
from authz.ledger import text_hash
from authz.models import Batch, Consent, DepartmentState, OutboxItem
from authz.services import open_services
from authz.settings import Settings
from chain_node.anvil import AnvilProcess
from tests.authz.serverproc import batched_on, free_port, server, signed_loan_grants


@pytest.mark.slow
@pytest.mark.parametrize("on", [pytest.param("anvil", marks=pytest.mark.anvil), "embedded"])
def test_two_workers_anchor_every_grant_once(
    on: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two API processes, on anvil or on the embedded chain (which ``serve`` then runs in
    a ``chain-node`` child that the workers and the anchoring child share)."""
    anvil: AnvilProcess | None = request.getfixturevalue("anvil") if on == "anvil" else None
    port = free_port()
    settings = batched_on(anvil, 2)
    granted: list[str] = []
    with server(tmp_path, port, **settings):
        token = (tmp_path / "registrar_token").read_text().strip()
        for _ in range(3):  # each connection is handed to one of the workers
            with Client(f"http://127.0.0.1:{port}") as api:
                assert api.health()["chain"]["backend"] == "jsonrpc"
                dept = api.register_department(
                    token, "Housing Fund", Account.create().address, ["loan"]
                )
                for _ in range(4):
                    body = signed_loan_grants(api, dept, 10)
                    results = api.http.post("/v1/consent-batches", json={"items": body}).json()
                    granted += [r["consent_id"] for r in results["results"] if r["accepted"]]
        assert len(granted) == 120
        with Client(f"http://127.0.0.1:{port}") as api:
            # a grant accepted by either process is anchored by the lease holder
            last = api.http.get(f"/v1/consents/{granted[-1]}/proof", headers=dept["headers"])
            deadline = time.monotonic() + 60
            while last.status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
                last = api.http.get(f"/v1/consents/{granted[-1]}/proof", headers=dept["headers"])
            assert last.status_code == 200, last.text
        deadline = time.monotonic() + 60
        while _unanchored(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.2)
        proofs = set()
        for _ in range(6):  # new connections: both processes serve proofs of the same batch
            with Client(f"http://127.0.0.1:{port}") as api:
                proof = api.http.get(f"/v1/consents/{granted[-1]}/proof", headers=dept["headers"])
                assert proof.status_code == 200, proof.text
                proofs.add(json.dumps(proof.json(), sort_keys=True))
        assert len(proofs) == 1  # the same Merkle paths and roots from either process
        pids = {
            line.split("[")[1].split("]")[0]
            for line in _log_lines(tmp_path, "Started server process")
        }
        assert len(pids) == 2  # two worker processes served
        if anvil is None:  # the chain node is the only holder of the embedded chain
            assert len(_log_lines(tmp_path, "consentgate: chain node for")) == 1
            assert len(_log_lines(tmp_path, "served by chain-node at http://127.0.0.1:")) == 1
    if anvil is None:  # serve stopped its children: the chain's folder is free again
        settings_after = Settings(data_dir=tmp_path)
    else:
        settings_after = Settings(
            data_dir=tmp_path, chain_url=anvil.url, relayer_key=anvil.relayer_key
        )
    svc = open_services(settings_after)
    try:
        with svc.db.sessions() as s:
            leaves = s.scalars(select(Consent.leaf_index).order_by(Consent.leaf_index)).all()
            pending = s.scalar(
                select(func.count()).select_from(OutboxItem).where(OutboxItem.state != "anchored")
            )
            batches = s.scalars(select(Batch).where(Batch.state == "anchored")).all()
        assert pending == 0
        assert list(leaves) == list(range(120))  # every grant has one leaf: none twice
        latest = svc.ledger.call("latest", on="anchor")
        assert latest[1] == 120  # consentCount on chain: each grant anchored exactly once
        assert latest[0] == max(b.batch_id for b in batches)
    finally:
        svc.close()


def _log_lines(data_dir: Path, word: str) -> list[str]:
    return [
        line
        for log in data_dir.glob("server-*.log")
        for line in log.read_text(errors="replace").splitlines()
        if word in line
    ]


def _unanchored(data_dir: Path) -> int:
    db = Database(Settings(data_dir=data_dir, database_url="").db_url())
    try:
        with db.sessions() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(OutboxItem)
                    .where(OutboxItem.state != "anchored")
                )
                or 0
            )
    finally:
        db.close()


@pytest.mark.anvil
def test_two_processes_sync_the_same_blocks_without_conflict(
    anvil: AnvilProcess, tmp_path: Path
) -> None:
    """Two services sharing one index (as ``serve --workers 2`` runs them) sync the same
    new blocks at once: each is applied once, neither fails on the other's rows."""
    settings = Settings(
        data_dir=tmp_path,
        chain_url=anvil.url,
        relayer_key=anvil.relayer_key,
        database_url="",
        registry_address="",
    )
    first = open_services(settings)
    second = open_services(settings)
    try:
        for _ in range(5):
            address = Account.create().address
            first.ledger.send("registerDepartment", address, [text_hash("loan")])
            barrier = threading.Barrier(2)

            def sync(svc: Any, barrier: threading.Barrier = barrier) -> int:
                barrier.wait()  # both read the same cursor and the same new block
                return int(svc.indexer.sync())

            with ThreadPoolExecutor(2) as pool:  # an error in either is raised here
                heads = list(pool.map(sync, (first, second), timeout=60))
            assert heads[0] == heads[1] == first.chain.block_number()
            with first.db.sessions() as s:
                assert s.get(DepartmentState, address) is not None
        assert first.indexer.cursor() == second.indexer.cursor() == first.chain.block_number()
    finally:
        second.close()
        first.close()
