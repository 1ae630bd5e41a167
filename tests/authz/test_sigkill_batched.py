"""SIGKILL of the service in the middle of batched anchoring loses nothing (issue 4)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from sqlalchemy import func, select

from authz.client import Client
from authz.db import Database
from authz.models import Consent, OutboxItem
from authz.services import open_services
from authz.settings import Settings
from tests.authz.conftest import projection_snapshot
from tests.authz.serverproc import free_port, server, signed_loan_grants

pytestmark = pytest.mark.slow


def test_sigkill_mid_batch_every_acknowledged_item_anchored_once(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    mode = {"anchor_mode": "batched", "batch_max": "16", "batch_wait_ms": "5"}
    acknowledged: list[str] = []
    with server(tmp_path, port, **mode) as proc:
        token = (tmp_path / "registrar_token").read_text().strip()
        with Client(base) as api:
            dept = api.register_department(
                token, "Housing Fund", Account.create().address, ["loan"]
            )
            batches = []
            for _ in range(8):
                body = signed_loan_grants(api, dept, 10)
                batches.append(body)
            # post batches while the worker anchors; kill the server part-way
            killer = threading.Timer(1.0, lambda: proc.send_signal(signal.SIGKILL))
            killer.start()
            for body in batches:
                try:
                    resp = api.http.post("/v1/consent-batches", json={"items": body})
                except httpx.HTTPError:
                    break
                acknowledged += [r["consent_id"] for r in resp.json()["results"] if r["accepted"]]
            killer.join()
        proc.wait(10)
    assert acknowledged, "nothing was acknowledged before the kill"

    with server(tmp_path, port, **mode):
        deadline = time.monotonic() + 120
        while True:
            db = Database(Settings(data_dir=tmp_path).db_url())
            with db.sessions() as s:
                pending = s.scalar(
                    select(func.count())
                    .select_from(OutboxItem)
                    .where(OutboxItem.state == "pending")
                )
            db.close()
            if pending == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert pending == 0

    svc = open_services(Settings(data_dir=tmp_path))
    try:
        with svc.db.sessions() as s:
            rows = s.execute(select(Consent.consent_id, Consent.leaf_index)).all()
            failed = s.scalar(
                select(func.count()).select_from(OutboxItem).where(OutboxItem.state == "failed")
            )
        by_id = dict(rows)
        assert failed == 0
        assert set(acknowledged) <= set(by_id)  # none missing
        indexes = sorted(by_id.values())
        assert indexes == list(range(len(indexes)))  # none twice, no gap

        live = projection_snapshot(svc)
        svc.reindex()
        assert projection_snapshot(svc) == live
    finally:
        svc.close()
