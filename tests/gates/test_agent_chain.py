"""The gate agent checking lists against a JSON-RPC chain itself (anvil): a service
that lies consistently (list and digest both altered) is caught only this way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from authz.api.app import create_app
from authz.gate_agent import GateAgent, SyncRefused
from authz.services import open_services
from authz.settings import Settings
from chain_node.anvil import AnvilProcess
from fastpath.tokens import StatusList
from tests.authz.conftest import BASE_URL, Clock, Env
from tests.gates.conftest import enroll, register_gate

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def anvil_env(anvil: AnvilProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("anvil-field"),
        chain_url=anvil.url,
        relayer_key=anvil.relayer_key,
        public_url=BASE_URL,
    )
    svc = open_services(settings)
    svc.clock = Clock()
    try:
        yield Env(
            svc, TestClient(create_app(services=svc), raise_server_exceptions=False), svc.clock
        )
    finally:
        svc.close()


class LyingService:
    """Clears every revocation from the status list and restates the digest to match."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get(self, url: str) -> httpx.Response:
        doc = self.inner.get(url).json()
        clean = StatusList(doc.get("size_bits", 131072)).encode() if "status-lists" in url else None
        if clean is not None:
            doc["encodedList"] = clean
        elif "trust-list" in url:
            import hashlib

            size = doc["status_list"]["size_bits"]
            forged = hashlib.sha256(StatusList(size).encode().encode()).hexdigest()
            doc["status_list"]["digest"] = forged
        return httpx.Response(200, json=doc)


def test_agent_reads_digests_and_keys_from_the_chain(
    anvil_env: Env, anvil: AnvilProcess, tmp_path: Path
) -> None:
    env = anvil_env
    lost, other = enroll(env), enroll(env)
    gate = register_gate(env)
    resp = env.client.post(
        "/v1/revocations",
        headers=env.registrar,
        json={"subject": lost.key.address, "reason": "lost"},
    )
    assert resp.status_code == 201, resp.text

    trusting = GateAgent(
        BASE_URL, gate["gate_id"], gate["api_key"], tmp_path / "a", http=LyingService(env.client)
    )  # type: ignore[arg-type]
    assert trusting.sync()["source"] == "service"  # without a chain of its own, the lie passes
    assert trusting.validate([lost.code()])[0]["valid"] is True

    checking = GateAgent(
        BASE_URL,
        gate["gate_id"],
        gate["api_key"],
        tmp_path / "b",
        http=LyingService(env.client),
        chain_url=anvil.url,  # type: ignore[arg-type]
    )
    with pytest.raises(SyncRefused) as refused:
        checking.sync()
    assert refused.value.code == "digest_mismatch"
    assert checking.meta() is None

    honest = GateAgent(
        BASE_URL,
        gate["gate_id"],
        gate["api_key"],
        tmp_path / "c",
        http=env.client,
        chain_url=anvil.url,
    )
    meta = honest.sync()
    assert (meta["source"], meta["epoch"]) == ("chain", resp.json()["epoch"])
    refused_code, passed = honest.validate([lost.code(), other.code()])
    assert refused_code["reason"] == "revoked" and passed["valid"] is True
