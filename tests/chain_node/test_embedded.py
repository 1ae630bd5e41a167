"""Embedded backend only: durability across close/reopen and SIGKILL, files, locking."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from chain_node import ChainError, ChainUnavailable, open_chain
from chain_node.embedded import CHAIN_ID, EmbeddedChain, open_embedded


def _hashes(chain: Any) -> list[bytes]:
    return [bytes(chain.w3.eth.get_block(n)["hash"]) for n in range(chain.block_number() + 1)]


def test_reopen_keeps_state_history_and_nonce(tmp_path: Path, probe_artifact: Any) -> None:
    chain = open_chain(tmp_path)
    address = chain.deploy(probe_artifact.abi, probe_artifact.bytecode, 5).contract_address
    probe = chain.w3.eth.contract(address=address, abi=probe_artifact.abi)
    for _ in range(3):
        chain.send(probe.functions.increment())
    chain.time_travel(100)
    relayer, head, hashes = chain.relayer, chain.block_number(), _hashes(chain)
    nonce = chain.w3.eth.get_transaction_count(relayer)  # type: ignore[arg-type]
    stamp = chain.w3.eth.get_block("latest")["timestamp"]
    chain.close()

    again = open_chain(tmp_path)
    try:
        assert again.relayer == relayer
        assert again.block_number() == head
        assert _hashes(again) == hashes
        probe = again.w3.eth.contract(address=address, abi=probe_artifact.abi)
        assert again.call(probe.functions.count()) == 8
        assert again.w3.eth.get_transaction_count(relayer) == nonce  # type: ignore[arg-type]
        result = again.send(probe.functions.increment())
        assert result.block_number == head + 1
        assert again.w3.eth.get_transaction(result.tx_hash)["nonce"] == nonce  # type: ignore[arg-type]
        assert again.call(probe.functions.count()) == 9
        # the time offset from time_travel persisted with the blocks
        assert again.w3.eth.get_block("latest")["timestamp"] >= stamp
        assert again.call(probe.functions.now_()) >= stamp
    finally:
        again.close()


def test_files_and_identity(tmp_path: Path) -> None:
    chain = open_embedded(tmp_path)
    try:
        key_file = tmp_path / "chain" / "relayer.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert (tmp_path / "chain" / "chain.sqlite").is_file()
        assert chain.chain_id == CHAIN_ID == chain.w3.eth.chain_id
        assert chain.w3.eth.get_balance(chain.relayer) == 10**27
        # a second opener of the same data dir is refused while the first holds it
        with pytest.raises(ChainError, match="in use"):
            open_embedded(tmp_path)
    finally:
        chain.close()
    chain.close()  # idempotent
    with pytest.raises(ChainUnavailable):
        chain.block_number()
    with pytest.raises(ChainUnavailable):
        chain.w3.eth.get_block("latest")


def test_given_relayer_key_is_used_then_enforced(tmp_path: Path) -> None:
    key = "0x" + "11" * 32
    chain = open_chain(tmp_path, relayer_key=key)
    relayer = chain.relayer
    assert chain.w3.eth.get_balance(relayer) == 10**27  # the given key is the funded one
    chain.close()
    assert relayer == Account.from_key(key).address
    reopened = open_chain(tmp_path)  # without a key: the stored one
    assert reopened.relayer == relayer
    reopened.close()
    with pytest.raises(ChainError, match="relayer key differs"):
        open_chain(tmp_path, relayer_key="0x" + "22" * 32)


_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from chain_node.embedded import open_embedded
    art = json.loads(Path(sys.argv[2]).read_text())
    chain = open_embedded(Path(sys.argv[1]))
    deployed = chain.deploy(art["abi"], bytes.fromhex(art["bytecode"][2:]), 5)
    print("deployed", deployed.contract_address, deployed.block_number, flush=True)
    probe = chain.w3.eth.contract(address=deployed.contract_address, abi=art["abi"])
    while True:
        print("ack", chain.send(probe.functions.increment()).tx_hash, flush=True)
    """
)


def test_sigkill_keeps_every_acknowledged_tx(tmp_path: Path) -> None:
    artifact = Path(__file__).parent / "fixtures" / "Probe.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path), str(artifact)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: list[str] = []
    watchdog = threading.Timer(120, proc.kill)  # a hung child fails the test, never hangs it
    watchdog.start()
    try:
        assert proc.stdout is not None
        _, address, deploy_block = proc.stdout.readline().split()
        while len(acked) < 40:
            line = proc.stdout.readline()
            assert line.startswith("ack "), line
            acked.append(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the child is still sending
        proc.wait()
        watchdog.cancel()
    assert proc.returncode == -signal.SIGKILL

    chain = open_embedded(tmp_path)
    try:
        abi = json.loads(artifact.read_text())["abi"]
        probe = chain.w3.eth.contract(address=address, abi=abi)
        for tx_hash in acked:
            assert chain.w3.eth.get_transaction_receipt(tx_hash)["status"] == 1  # type: ignore[arg-type]
        # one increment per block after the deployment, and nothing else: state matches
        mined = chain.block_number() - int(deploy_block)
        assert mined >= len(acked)
        assert chain.call(probe.functions.count()) == 5 + mined
        nonce = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        assert nonce == 1 + mined
        assert chain.send(probe.functions.increment()).block_number == chain.block_number()
        assert chain.call(probe.functions.count()) == 6 + mined
    finally:
        chain.close()


def test_is_embedded_kind(tmp_path: Path) -> None:
    chain = open_chain(tmp_path)
    try:
        assert isinstance(chain, EmbeddedChain)
        assert chain.kind == "embedded"
    finally:
        chain.close()


def test_failed_commit_stops_the_chain_and_reopen_resumes(
    tmp_path: Path, probe_artifact: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = open_embedded(tmp_path)
    address = chain.deploy(probe_artifact.abi, probe_artifact.bytecode, 5).contract_address
    probe = chain.w3.eth.contract(address=address, abi=probe_artifact.abi)
    head = chain.block_number()

    def disk_full() -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(chain._store, "commit", disk_full)
    with pytest.raises(ChainError):
        chain.send(probe.functions.increment())
    with pytest.raises(ChainUnavailable, match="failed commit"):
        chain.block_number()
    with pytest.raises(ChainUnavailable):
        chain.send(probe.functions.increment())
    monkeypatch.undo()
    chain.close()

    again = open_embedded(tmp_path)
    try:
        assert again.block_number() == head  # the uncommitted block is gone
        probe = again.w3.eth.contract(address=address, abi=probe_artifact.abi)
        assert again.call(probe.functions.count()) == 5
        assert again.send(probe.functions.increment()).block_number == head + 1
    finally:
        again.close()


def test_bad_relayer_key_is_a_chain_error_and_releases_the_dir(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="bad relayer key"):
        open_embedded(tmp_path, relayer_key="0x1234")
    assert not (tmp_path / "chain" / "relayer.key").exists()  # nothing stored
    chain = open_embedded(tmp_path)  # the failed open released the lock
    assert chain.block_number() == 0
    chain.close()


def test_fast_get_logs_equals_eth_testers(tmp_path: Path, probe_artifact: Any) -> None:
    from eth_tester import EthereumTester

    chain = open_embedded(tmp_path)
    try:
        deploy = chain.deploy(probe_artifact.abi, probe_artifact.bytecode, 0)
        probe = chain.w3.eth.contract(address=deploy.contract_address, abi=probe_artifact.abi)
        other = chain.deploy(probe_artifact.abi, probe_artifact.bytecode, 100).contract_address
        other_probe = chain.w3.eth.contract(address=other, abi=probe_artifact.abi)
        for i in range(6):
            chain.send((probe if i % 3 else other_probe).functions.increment())
        chain.send(probe.functions.incrementUnless(1))  # a block without logs
        topic = "0x" + keccak(text="Incremented(address,uint256)").hex()
        relayer_topic = "0x" + "00" * 12 + chain.relayer[2:].lower()
        head = chain.block_number()
        filters: list[dict[str, Any]] = [
            {"from_block": 0, "to_block": head},
            {"from_block": 0, "to_block": head, "address": probe.address},
            {"from_block": 0, "to_block": head, "address": [probe.address, other]},
            {"from_block": 3, "to_block": 5, "address": other},
            {"from_block": 0, "to_block": "latest", "topics": [topic, relayer_topic]},
            {"from_block": 0, "to_block": head, "topics": [["0x" + "11" * 32]]},
            {"from_block": 2, "to_block": "latest", "address": probe.address},
        ]
        counts = []
        for params in filters:
            fast = chain.tester.get_logs(**params)
            slow = EthereumTester.get_logs(chain.tester, **params)
            assert fast == slow, params
            counts.append(len(fast))
        assert counts == [6, 4, 6, 1, 6, 0, 4]
    finally:
        chain.close()
