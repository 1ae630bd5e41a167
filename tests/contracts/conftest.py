"""Fixtures: every contract test runs on an in-memory py-evm chain and on anvil."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract_support import PURPOSES, Chain, Registry, h
from web3 import EthereumTesterProvider, Web3

ANVIL = Path(__file__).resolve().parents[2] / "contracts" / "node_modules" / ".bin" / "anvil"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def anvil_chain() -> Iterator[Chain]:
    """anvil from the pinned npm package on a free loopback port; stopped at teardown."""
    assert ANVIL.exists(), f"{ANVIL} missing: run `make npm`"
    port = _free_port()
    process = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 30}))
        deadline = time.monotonic() + 30
        while not w3.is_connected():
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"anvil exited with {process.returncode}: {stderr}")
            if time.monotonic() > deadline:
                pytest.fail("anvil did not answer within 30 s")
            time.sleep(0.05)
        yield Chain(kind="anvil", w3=w3, registrar=w3.eth.accounts[0], process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
