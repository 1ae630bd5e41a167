"""JSON-RPC backend only: reachability errors and nonce resync."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from chain_node import ChainError, ChainUnavailable, open_chain
from chain_node.anvil import ANVIL_KEY_0, AnvilProcess


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_node_is_chain_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ChainUnavailable):
        open_chain(tmp_path, url=f"http://127.0.0.1:{_closed_port()}", relayer_key=ANVIL_KEY_0)


def test_relayer_key_required(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="relayer key"):
        open_chain(tmp_path, url="http://127.0.0.1:1")


@pytest.mark.anvil
def test_nonce_resyncs_after_another_sender(
    anvil: AnvilProcess, tmp_path: Path, probe_artifact: Any
) -> None:
    one = open_chain(tmp_path, url=anvil.url, relayer_key=anvil.relayer_key)
    two = open_chain(tmp_path, url=anvil.url, relayer_key=anvil.relayer_key)
    try:
        deployed = one.deploy(probe_artifact.abi, probe_artifact.bytecode, 0)
        probe = one.w3.eth.contract(address=deployed.contract_address, abi=probe_artifact.abi)
        one.send(probe.functions.increment())  # `one` now caches its next nonce
        two.send(probe.functions.increment())  # same key elsewhere: `one`'s cache is stale
        result = one.send(probe.functions.increment())  # nonce error -> resync -> lands
        assert result.status == 1
        assert one.call(probe.functions.count()) == 3
    finally:
        one.close()
        two.close()


@pytest.mark.anvil
def test_node_gone_is_chain_unavailable(tmp_path: Path) -> None:
    from chain_node.anvil import start_anvil

    node = start_anvil()
    chain = open_chain(tmp_path, url=node.url, relayer_key=node.relayer_key)
    assert chain.block_number() == 0
    node.stop()
    with pytest.raises(ChainUnavailable):
        chain.block_number()
    chain.close()


# Init code that deploys a 10-byte runtime returning 42; only pre-Shanghai opcodes, so it
# runs on a berlin node (Probe is compiled for Prague and uses PUSH0).
_ANSWER_INIT = bytes.fromhex("600a600c600039600a6000f3" + "602a60005260206000f3")


@pytest.mark.anvil
def test_chain_without_base_fee_gets_legacy_transactions(tmp_path: Path) -> None:
    from chain_node.anvil import start_anvil

    with start_anvil(extra_args=["--hardfork", "berlin"]) as node:
        chain = open_chain(tmp_path, url=node.url, relayer_key=node.relayer_key)
        try:
            assert "baseFeePerGas" not in chain.w3.eth.get_block("latest")
            deployed = chain.deploy([], _ANSWER_INIT)
            assert deployed.status == 1 and deployed.contract_address is not None
            tx = chain.w3.eth.get_transaction(deployed.tx_hash)  # type: ignore[arg-type]
            assert tx["type"] == 0
            assert tx["gasPrice"] > 0
            code = chain.w3.eth.get_code(deployed.contract_address)  # type: ignore[arg-type]
            assert bytes(code) == bytes.fromhex("602a60005260206000f3")
        finally:
            chain.close()


@pytest.mark.anvil
def test_unmined_transaction_times_out_with_its_hash(tmp_path: Path, probe_artifact: Any) -> None:
    from chain_node import ChainTimeout
    from chain_node.anvil import start_anvil

    with start_anvil(extra_args=["--no-mining"]) as node:
        chain = open_chain(tmp_path, url=node.url, relayer_key=node.relayer_key)
        try:
            chain.receipt_timeout_s = 0.3  # type: ignore[attr-defined]
            with pytest.raises(ChainTimeout) as info:
                chain.deploy(probe_artifact.abi, probe_artifact.bytecode, 1)
            assert isinstance(info.value, TimeoutError)
            pending = chain.w3.eth.get_transaction(info.value.tx_hash)  # type: ignore[arg-type]
            assert pending["blockNumber"] is None  # sent, still waiting in the pool
        finally:
            chain.close()
