"""Fixtures: every contract test runs on an in-memory py-evm chain and on anvil."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import EthereumTesterProvider, Web3

from chain_node.anvil import anvil_available, start_anvil
from tests.contracts.contract_support import PURPOSES, Chain, Registry, h


@pytest.fixture(scope="session")
def anvil_chain() -> Iterator[Chain]:
    """An anvil node of its own (these tests move its clock, which would disturb the shared
    ``anvil`` fixture's users); registrar = its first dev account. Stopped at the end."""
    if not anvil_available():
        pytest.fail("anvil binary missing: run `make npm` (contracts/node_modules/.bin/anvil)")
    with start_anvil() as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
        yield Chain(kind="anvil", w3=w3, registrar=w3.eth.accounts[0])


@pytest.fixture(scope="session")
def pyevm_chain() -> Chain:
    """An in-memory eth-tester / py-evm chain."""
    w3 = Web3(EthereumTesterProvider())
    return Chain(kind="pyevm", w3=w3, registrar=w3.eth.accounts[0])


@pytest.fixture(scope="session", params=["pyevm", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request: pytest.FixtureRequest) -> Chain:
    """Each backend in turn (anvil is started only when an anvil test runs)."""
    result: Chain = request.getfixturevalue(f"{request.param}_chain")
    return result


@pytest.fixture
def registry(chain: Chain) -> Registry:
    """A fresh ConsentRegistry with one registered department holding PURPOSES."""
    contract = chain.deploy_registry()
    department = Web3.to_checksum_address(h("department")[:20])
    chain.send(contract.functions.registerDepartment(department, [h(p) for p in PURPOSES]))
    return Registry(chain=chain, contract=contract, department=department)
