"""The embedded chain's JSON-RPC front (chain_node.rpc_server, `consentgate chain-node`).

The conformance suite runs every backend method through it (``embedded-rpc``); these
tests pin the protocol itself: batches, notifications, error codes, wire encoding, and
the durability of what the node acknowledged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from chain_node import ChainError, ChainRevert, open_chain
from chain_node.embedded import CHAIN_ID, EmbeddedChain, open_embedded
from chain_node.errors import revert_from_rpc_error
from chain_node.rpc_server import ServedChain, to_wire, wait_node
from tests.chain_node.conftest import Probe

OTHER = "0x00000000000000000000000000000000DeaDBeef"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[EmbeddedChain, str]]:
    with open_embedded(tmp_path) as chain, ServedChain(chain) as served:
        yield chain, served.url


def _post(url: str, body: Any) -> httpx.Response:
    return httpx.post(url, json=body, timeout=30)


def _rpc(method: str, params: list[Any], request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def test_wire_encoding() -> None:
    assert to_wire({"number": 26, "ok": True, "none": None, "hash": "0xab"}) == {
        "number": "0x1a",
        "ok": True,
        "none": None,
        "hash": "0xab",
    }
    assert to_wire([0, b"\x01\x02"]) == ["0x0", "0x0102"]
    assert to_wire({"logsBloom": 1}) == {"logsBloom": "0x" + "00" * 255 + "01"}


def test_batch_answers_in_order_and_skips_notifications(node: tuple[EmbeddedChain, str]) -> None:
    chain, url = node
    body = [
        _rpc("eth_chainId", [], "a"),
        {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []},  # notification
        _rpc("eth_getBalance", [chain.relayer, "latest"], 7),
        _rpc("eth_getBlockByNumber", ["0x0", False], None),
    ]
    answer = _post(url, body).json()
    assert [a["id"] for a in answer] == ["a", 7, None]
    assert answer[0]["result"] == hex(CHAIN_ID)
    assert int(answer[1]["result"], 16) == 10**27
    block = answer[2]["result"]
    assert block["number"] == "0x0"
    assert len(block["logsBloom"]) == 2 + 512  # 256 bytes of data
    assert block["hash"] == "0x" + bytes(chain.w3.eth.get_block(0)["hash"]).hex()
    # only notifications: no body at all (JSON-RPC 2.0 section 6)
    only = _post(url, [{"jsonrpc": "2.0", "method": "eth_chainId", "params": []}])
    assert (only.status_code, only.content) == (204, b"")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", -32700),
        (b"[]", -32600),
        (b"42", -32600),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": {"a": 1}}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_nope", "params": []}', -32601),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction", "params": [{}]}', -32601),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "personal_unlockAccount", "params": []}', -32601),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": []}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": ["no"]}', -32602),
        # history and server-side state are not offered, even with the dev methods on
        (b'{"jsonrpc": "2.0", "id": 1, "method": "evm_snapshot", "params": []}', -32601),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "evm_revert", "params": ["0x0"]}', -32601),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_newFilter", "params": [{}]}', -32601),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_accounts", "params": []}', -32601),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "eth_chainId", "params": []}', -32600),
        (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "eth_chainId", "params": []}', -32600),
        (b"[" + b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},' * 1000 + b"1]", -32600),
        (b"[" * 100_000 + b"]" * 100_000, -32700),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [{"topics": '
            + b"[" * 20_000
            + b"]" * 20_000
            + b"}]}",
            -32700,
        ),
        # closing brackets inside a string do not hide the nesting that follows
        (
            b'{"pad": "' + b"]" * 30_000 + b'", "jsonrpc": "2.0", "id": 1, "method": '
            b'"eth_getCode", "params": [' + b"[" * 30_000 + b"]" * 30_000 + b', "latest"]}',
            -32700,
        ),
        (b'{"jsonrpc": "2.0", "id": NaN, "method": "eth_chainId", "params": []}', -32700),
        (b'{"jsonrpc": "2.0", "id": 1e400, "method": "eth_chainId", "params": []}', -32700),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "evm_increaseTime", "params": [1.5]}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "evm_increaseTime", "params": [true]}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "evm_increaseTime", "params": ["zz"]}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "evm_increaseTime", "params": [-1]}', -32602),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "evm_increaseTime", '
            b'"params": ["0x10000000000000000"]}',
            -32602,
        ),
    ],
)
def test_bad_requests_get_their_error_code(
    node: tuple[EmbeddedChain, str], raw: bytes, code: int
) -> None:
    chain, url = node
    before = (chain.block_number(), chain.w3.eth.get_block("latest")["timestamp"])
    answer = httpx.post(url, content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    error = answer.json()["error"]
    assert error["code"] == code
    assert error["message"]
    # the node is still serving, and nothing moved
    assert _post(url, _rpc("eth_chainId", [])).json()["result"] == hex(CHAIN_ID)
    assert (chain.block_number(), chain.w3.eth.get_block("latest")["timestamp"]) == before


def test_a_node_without_dev_has_no_time_methods(tmp_path: Path) -> None:
    with open_embedded(tmp_path) as chain, ServedChain(chain, dev=False) as served:
        for method, params in (("evm_increaseTime", [60]), ("evm_mine", [])):
            error = _post(served.url, _rpc(method, params)).json()["error"]
            assert error == {"code": -32601, "message": f"{method} is not offered by this node"}
        assert _post(served.url, _rpc("net_version", [])).json()["result"] == str(CHAIN_ID)
        assert chain.block_number() == 0


def test_revert_carries_its_data(node: tuple[EmbeddedChain, str]) -> None:
    chain, url = node
    deployed = chain.deploy(Probe.abi, Probe.bytecode, 5)
    assert deployed.contract_address is not None
    probe = chain.w3.eth.contract(address=deployed.contract_address, abi=Probe.abi)
    data = probe.functions.failCustom(OTHER, 7)._encode_transaction_data()
    tx = {"from": chain.relayer, "to": deployed.contract_address, "data": data}
    for method, params in (("eth_call", [tx, "latest"]), ("eth_estimateGas", [tx])):
        error = _post(url, _rpc(method, params)).json()["error"]
        assert (error["code"], error["message"]) == (3, "execution reverted")
        revert = revert_from_rpc_error(error, Probe.abi)
        assert isinstance(revert, ChainRevert)
        assert (revert.name, revert.args) == ("ProbeRefused", (OTHER, 7))


def test_a_reused_nonce_is_refused_and_nothing_is_mined(node: tuple[EmbeddedChain, str]) -> None:
    chain, url = node
    account = Account.from_key((Path(chain.path) / "relayer.key").read_text().strip())
    tx = {
        "to": OTHER,
        "value": 1,
        "gas": 21000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
        "nonce": 0,
        "chainId": CHAIN_ID,
        "type": 2,
    }
    raw = "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()
    first = _post(url, _rpc("eth_sendRawTransaction", [raw])).json()
    assert "result" in first, first
    again = dict(tx, value=2)
    raw2 = "0x" + bytes(account.sign_transaction(again).raw_transaction).hex()
    error = _post(url, _rpc("eth_sendRawTransaction", [raw2])).json()["error"]
    assert error["code"] == -32000
    assert "nonce" in error["message"].lower()
    assert chain.block_number() == 1
    assert chain.w3.eth.get_balance(OTHER) == 1


def test_liveness_probe(node: tuple[EmbeddedChain, str]) -> None:
    _, url = node
    assert httpx.get(url).json() == {"chain_id": CHAIN_ID, "block_number": 0, "pid": os.getpid()}
    assert wait_node(url, timeout_s=5, pid=os.getpid) == CHAIN_ID
    # another process's node on that URL is not taken for the one we started
    with pytest.raises(TimeoutError, match="no chain node answered"):
        wait_node(url, timeout_s=0.3, pid=lambda: os.getpid() + 1)


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CONSENTGATE_DATA_DIR": str(data_dir),
        "CONSENTGATE_CHAIN_URL": "",
        **{f"CONSENTGATE_{k.upper()}": v for k, v in extra.items()},
    }


def test_what_the_node_acknowledged_survives_sigkill(tmp_path: Path) -> None:
    """Transactions the node answered survive a SIGKILL of `consentgate chain-node`: the
    restarted node (and the embedded chain opened directly) has their receipts and state."""
    from authz.localserver import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "authz.cli", "chain-node", "--port", str(port)]
    proc = subprocess.Popen(argv, env=_env(tmp_path), stderr=subprocess.PIPE)
    try:
        assert wait_node(url, timeout_s=60, failed=lambda: proc.poll() is not None) == CHAIN_ID
        key = (tmp_path / "chain" / "relayer.key").read_text().strip()
        client = open_chain(tmp_path / "client", url=url, relayer_key=key)
        deployed = client.deploy(Probe.abi, Probe.bytecode, 5)
        assert deployed.contract_address is not None
        probe = client.w3.eth.contract(address=deployed.contract_address, abi=Probe.abi)
        sent = client.send_many([probe.functions.increment() for _ in range(3)])
        hashes = [r.tx_hash for r in sent if not isinstance(r, Exception)]
        assert len(hashes) == 3
        client.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    with open_embedded(tmp_path) as chain:  # the lock died with the process
        assert chain.block_number() == 4
        for tx_hash in [deployed.tx_hash, *hashes]:
            assert chain.w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
        probe = chain.w3.eth.contract(address=deployed.contract_address, abi=Probe.abi)
        assert chain.call(probe.functions.count()) == 8


def test_chain_node_refusals_are_one_line(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "authz.cli", "chain-node", "--port", "0"]
    out = subprocess.run(
        argv,
        env=_env(tmp_path, chain_url="http://127.0.0.1:9"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (out.returncode, out.stderr.strip()) == (
        2,
        "consentgate: chain-node serves the embedded chain; unset CONSENTGATE_CHAIN_URL",
    )
    with open_embedded(tmp_path):  # the folder is in use
        out = subprocess.run(argv, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"consentgate: cannot open {tmp_path}: chain data dir {tmp_path / 'chain'} is in use "
        "by another process"
    )


def test_a_read_from_an_unfunded_address_works(node: tuple[EmbeddedChain, str]) -> None:
    """As on geth and anvil, eth_call and eth_estimateGas do not ask the sender to afford
    the gas (an auditor verifying a proof holds no funded key); the state is unchanged."""
    chain, url = node
    deployed = chain.deploy(Probe.abi, Probe.bytecode, 5)
    assert deployed.contract_address is not None
    probe = chain.w3.eth.contract(address=deployed.contract_address, abi=Probe.abi)
    tx = {
        "from": OTHER,
        "to": deployed.contract_address,
        "data": probe.functions.count()._encode_transaction_data(),
    }
    answer = _post(url, _rpc("eth_call", [tx, "latest"])).json()
    assert int(answer["result"], 16) == 5
    funded = _post(url, _rpc("eth_estimateGas", [{**tx, "from": chain.relayer}])).json()
    unfunded = _post(url, _rpc("eth_estimateGas", [tx])).json()
    assert int(unfunded["result"], 16) == int(funded["result"], 16) > 21000
    assert chain.w3.eth.get_balance(OTHER) == 0
    assert chain.call(probe.functions.count()) == 5


def test_answers_stay_json_for_odd_input(node: tuple[EmbeddedChain, str]) -> None:
    """A lone surrogate echoed back, and a body over the limit (HTTP 413, as geth)."""
    _, url = node
    raw = b'{"jsonrpc": "2.0", "id": "\\ud800", "method": "eth_getCode", "params": ["\\ud800"]}'
    answer = httpx.post(url, content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    assert answer.json()["id"] == "\ud800"
    assert answer.json()["error"]["code"] in (-32602, -32000)
    big = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": ["'
        + b"0" * (17 * 1024 * 1024)
        + b'"]}'
    )
    answer = httpx.post(url, content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == -32700


def test_a_transfer_the_sender_cannot_afford_still_fails(node: tuple[EmbeddedChain, str]) -> None:
    """Only the gas of a call is on the house: value the sender lacks fails, as on geth."""
    chain, url = node
    tx = {"from": OTHER, "to": chain.relayer, "value": hex(10**18)}
    for method, params in (("eth_call", [tx, "latest"]), ("eth_estimateGas", [tx])):
        error = _post(url, _rpc(method, params)).json()["error"]
        assert error["code"] == -32000
        assert "afford" in error["message"] or "insufficient" in error["message"].lower()
    assert chain.w3.eth.get_balance(OTHER) == 0


def test_a_nonce_taken_again_and_again_is_retried_with_fresh_ones(
    node: tuple[EmbeddedChain, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other processes sharing the relayer may take the nonce between a resync and the
    send, more than once: the send re-signs with a fresh nonce each time (up to
    NONCE_ATTEMPTS sends) and lands once."""
    from chain_node._web3 import NONCE_ATTEMPTS

    chain, url = node
    key = (Path(chain.path) / "relayer.key").read_text().strip()
    client = open_chain(Path(chain.path).parent / "client", url=url, relayer_key=key)
    try:
        deployed = client.deploy(Probe.abi, Probe.bytecode, 5)
        assert deployed.contract_address is not None
        probe = client.w3.eth.contract(address=deployed.contract_address, abi=Probe.abi)
        real = client._send_raw
        refusals = {"left": NONCE_ATTEMPTS - 1}

        def taken_then_real(signed: Any) -> bytes:
            if refusals["left"]:
                refusals["left"] -= 1
                raise ValueError("Invalid transaction nonce: Expected 2, but got 1")
            return real(signed)

        monkeypatch.setattr(client, "_send_raw", taken_then_real)
        sent = client.send(probe.functions.increment())
        assert sent.status == 1 and refusals["left"] == 0
        assert client.call(probe.functions.count()) == 6
        refusals["left"] = NONCE_ATTEMPTS  # one more refusal than sends: the error surfaces
        with pytest.raises(ChainError, match="nonce"):
            client.send(probe.functions.increment())
        assert client.call(probe.functions.count()) == 6
    finally:
        client.close()
