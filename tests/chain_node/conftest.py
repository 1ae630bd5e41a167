"""Fixtures of the chain_node suite: the Probe contract and a backend per kind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain_node import ChainBackend, open_chain
from chain_node.anvil import AnvilProcess
from chain_node.embedded import open_embedded
from chain_node.rpc_server import ServedChain

FIXTURES = Path(__file__).parent / "fixtures"


class Probe:
    """The compiled test contract (tests/chain_node/fixtures/Probe.sol)."""

    artifact: dict[str, Any] = json.loads((FIXTURES / "Probe.json").read_text())
    abi: list[dict[str, Any]] = artifact["abi"]
    bytecode: bytes = bytes.fromhex(artifact["bytecode"][2:])


@pytest.fixture
def probe_artifact() -> type[Probe]:
    return Probe


@pytest.fixture(
    params=["embedded", "embedded-rpc", pytest.param("jsonrpc", marks=pytest.mark.anvil)]
)
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChainBackend]:
    """A fresh backend of each kind: embedded in tmp_path, jsonrpc on the session anvil,
    and jsonrpc on an embedded chain served by :mod:`chain_node.rpc_server`
    (``embedded-rpc``, the ``consentgate chain-node`` deployment)."""
    if request.param == "embedded":
        backend = open_chain(tmp_path)
    elif request.param == "embedded-rpc":
        with open_embedded(tmp_path / "node") as owned, ServedChain(owned) as node:
            key = (tmp_path / "node" / "chain" / "relayer.key").read_text().strip()
            backend = open_chain(tmp_path, url=node.url, relayer_key=key)
            try:
                yield backend
            finally:
                backend.close()
        return
    else:
        node: AnvilProcess = request.getfixturevalue("anvil")
        backend = open_chain(tmp_path, url=node.url, relayer_key=node.relayer_key)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def probe(chain: ChainBackend) -> Any:
    """A Probe deployed with start value 5 on ``chain`` (web3 contract object)."""
    result = chain.deploy(Probe.abi, Probe.bytecode, 5)
    assert result.contract_address is not None
    return chain.w3.eth.contract(address=result.contract_address, abi=Probe.abi)
