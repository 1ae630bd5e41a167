"""The same service on an external JSON-RPC node (anvil) instead of the embedded chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from authz.api.app import create_app
from authz.client import Client, request_body
from authz.services import open_services
from authz.settings import Settings
from chain_node.anvil import AnvilProcess
from tests.authz.conftest import BASE_URL

pytestmark = pytest.mark.anvil


def test_flow_and_reindex_on_anvil(anvil: AnvilProcess, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, chain_url=anvil.url, relayer_key=anvil.relayer_key, public_url=BASE_URL
    )
    svc = open_services(settings)
    svc.start_anchoring()
    try:
        assert svc.chain.kind == "jsonrpc"
        api = Client(BASE_URL, http=TestClient(create_app(services=svc)))
        dept = api.register_department(
            svc.registrar_token, "Hospital", Account.create().address, ["treatment"]
        )
        citizen = Account.create()
        req = api.request_consent(
            dept, request_body(citizen.address, "treatment", ["medical_health"])
        )
        assert req["typed_data"]["domain"]["chainId"] == 31337
        assert req["typed_data"]["message"]["separateConsent"] is True
        grant = api.grant(req, citizen)
        assert api.check(dept, citizen.address, "treatment", ["medical_health"])["allowed"]
        session = api.sign_in(citizen, 31337)
        assert api.withdraw(grant["consent_id"], citizen, session)["status"] == "withdrawn"
        denied = api.check(dept, citizen.address, "treatment", ["medical_health"])
        assert (denied["allowed"], denied["reason"]) == (False, "consent_withdrawn")
        before = api.consent(grant["consent_id"], session)
        svc.reindex()
        assert api.consent(grant["consent_id"], session) == before
    finally:
        svc.close()


def test_chain_node_down_writes_pending_checks_work_then_drain(
    anvil: AnvilProcess, tmp_path: Path
) -> None:
    import time
    from urllib.parse import urlsplit

    from tests.authz.tcpproxy import PausableProxy

    proxy = PausableProxy(int(urlsplit(anvil.url).port or 0))
    settings = Settings(
        data_dir=tmp_path,
        chain_url=proxy.url,
        relayer_key=anvil.relayer_key,
        public_url=BASE_URL,
        batch_wait_ms=10,
    )
    svc = open_services(settings)
    svc.start_anchoring()
    try:
        api = Client(BASE_URL, http=TestClient(create_app(services=svc)))
        dept = api.register_department(
            svc.registrar_token, "Bank", Account.create().address, ["loan"]
        )
        anchored_citizen = Account.create()
        first = api.request_consent(
            dept, request_body(anchored_citizen.address, "loan", ["income"])
        )
        api.grant(first, anchored_citizen)
        proxy.pause()
        citizens = [Account.create() for _ in range(3)]
        reqs = [
            api.request_consent(dept, request_body(c.address, "loan", ["income"])) for c in citizens
        ]
        accepted = [api.grant(r, c, wait=None) for r, c in zip(reqs, citizens, strict=True)]
        assert {a["anchor"] for a in accepted} == {"pending"}
        check = api.check(dept, anchored_citizen.address, "loan", ["income"])
        assert check["allowed"] is True  # checks keep working from the index
        time.sleep(1.0)  # the worker keeps retrying with backoff meanwhile
        still = [api.consent(r["consent_id"], dept["headers"])["anchor"]["state"] for r in reqs]
        assert still == ["pending"] * 3
        health = api.http.get("/healthz")
        assert health.status_code == 503 and health.json()["code"] == "chain_unavailable"
        proxy.resume()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [
                api.consent(r["consent_id"], dept["headers"])["anchor"]["state"] for r in reqs
            ]
            if states == ["anchored"] * 3:
                break
            time.sleep(0.3)
        assert states == ["anchored"] * 3
        for c in citizens:
            assert api.check(dept, c.address, "loan", ["income"])["allowed"] is True
    finally:
        svc.close()
        proxy.close()
