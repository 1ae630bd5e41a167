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
