"""Fixtures for the service tests: one embedded-chain service per module, fresh keys per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from authz.api.app import create_app
from authz.client import Client, sign_typed
from authz.services import Services, open_services
from authz.settings import Settings

BASE_URL = "http://testserver"


class Clock:
    """An adjustable clock: real time plus ``offset`` seconds."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> float:
        return datetime.now(UTC).timestamp() + self.offset


@dataclass
class Env:
    svc: Services
    client: TestClient
    clock: Clock

    @property
    def registrar(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.svc.registrar_token}"}

    def department(self, purposes: tuple[str, ...] = ("loan-underwriting",)) -> dict[str, Any]:
        key = Account.create()
        resp = self.client.post(
            "/v1/departments",
            headers=self.registrar,
            json={"name": "Test Bank", "address": key.address, "purposes": list(purposes)},
        )
        assert resp.status_code == 201, resp.text
        body = resp.json()
        body["headers"] = {"Authorization": f"Bearer {body['api_key']}"}
        return body

    def request(self, dept: dict[str, Any], subject: str, **overrides: Any) -> dict[str, Any]:
        body = {
            "subject": subject,
            "purpose": "loan-underwriting",
            "pii_categories": ["identity", "income"],
            "sensitive": False,
            "third_parties": [],
            "legal_basis": "consent",
            "jurisdiction": "CN",
            "notice_url": "https://bank.example/privacy",
            "retention_days": 1095,
            "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        }
        body.update(overrides)
        resp = self.client.post("/v1/consent-requests", headers=dept["headers"], json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def grant(self, req: dict[str, Any], key: Any, wait: str = "anchored") -> Any:
        return self.client.post(
            f"/v1/consents?wait={wait}",
            json={"request_id": req["request_id"], "signature": sign_typed(key, req["typed_data"])},
        )

    def check(
        self,
        dept: dict[str, Any],
        subject: str,
        categories: tuple[str, ...] = ("income",),
        purpose: str = "loan-underwriting",
    ) -> dict[str, Any]:
        resp = self.client.post(
            "/v1/access-checks",
            headers=dept["headers"],
            json={"subject": subject, "purpose": purpose, "pii_categories": list(categories)},
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def sign_in(self, key: Any) -> dict[str, str]:
        return Client(BASE_URL, http=self.client).sign_in(key, self.svc.ledger.chain_id)

    def withdraw(self, consent_id: str, key: Any, signer: Any = None) -> Any:
        headers = self.sign_in(key)
        wtd = self.client.get(f"/v1/consents/{consent_id}/withdrawal", headers=headers)
        assert wtd.status_code == 200, wtd.text
        return self.client.post(
            f"/v1/consents/{consent_id}/withdrawal?wait=anchored",
            json={"signature": sign_typed(signer or key, wtd.json()["typed_data"])},
        )


def open_env(data_dir: Path, start_worker: bool = True, **settings: Any) -> Env:
    clock = Clock()
    svc = open_services(Settings(data_dir=data_dir, public_url=BASE_URL, **settings))
    svc.clock = clock
    if start_worker:
        svc.start_anchoring()
    client = TestClient(create_app(services=svc), raise_server_exceptions=False)
    return Env(svc, client, clock)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = open_env(tmp_path_factory.mktemp("svc"))
    yield e
    e.svc.close()


@pytest.fixture(autouse=True)
def _reset_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "env" in request.fixturenames:
        request.getfixturevalue("env").clock.offset = 0


@contextmanager
def worker_paused(env: Env) -> Iterator[None]:
    """Stop the anchoring worker (and catch the index up) so a snapshot stays still."""
    if env.svc.anchor_worker is not None:
        env.svc.anchor_worker.stop()
        env.svc.anchor_worker = None
    env.svc.indexer.sync()
    try:
        yield
    finally:
        env.svc.start_anchoring()


def projection_snapshot(svc: Services) -> dict[str, list[tuple[str, ...]]]:
    """Every projection table's rows (as sorted text tuples): what ``reindex`` rebuilds."""
    from sqlalchemy import select

    from authz.models import PROJECTION_TABLES

    with svc.db.sessions() as s:
        return {
            t.__tablename__: sorted(
                tuple(map(str, r))
                for r in s.execute(select(*[getattr(t, c.name) for c in t.__table__.columns]))
            )
            for t in PROJECTION_TABLES
        }
