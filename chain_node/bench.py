"""Measure the chain backends: ``python -m chain_node.bench [--anvil] [--blocks N]``.

Prints, for each backend: transactions per second through ``ChainBackend.send`` (a
``Probe.increment()``, one at a time, after a warm-up), the mean cost of one block commit
to SQLite (embedded), and the embedded start time (open) with a data dir of ``--blocks``
blocks. Uses the test-only Probe contract (tests/chain_node/fixtures/Probe.json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .abc import ChainBackend
from .embedded import open_embedded
from .store import SqliteKV

PROBE = Path(__file__).resolve().parents[1] / "tests" / "chain_node" / "fixtures" / "Probe.json"


def _probe(chain: ChainBackend) -> Any:
    art = json.loads(PROBE.read_text())
    deployed = chain.deploy(art["abi"], bytes.fromhex(art["bytecode"][2:]), 0)
    assert deployed.contract_address is not None
    return chain.w3.eth.contract(address=deployed.contract_address, abi=art["abi"])  # type: ignore[call-overload]


def send_many_per_second(chain: ChainBackend, n: int, batch: int) -> float:
    """Transactions per second through ``send_many`` (Probe.increment, ``n`` in calls
    of ``batch``), after a warm-up call. Every item must land (else AssertionError)."""
    fn = _probe(chain).functions.increment()
    chain.send_many([fn] * 5)
    start = time.perf_counter()
    for done in range(0, n, batch):
        results = chain.send_many([fn] * min(batch, n - done))
        assert all(getattr(r, "status", 0) == 1 for r in results), results
    return n / (time.perf_counter() - start)


def sends_per_second(chain: ChainBackend, n: int) -> float:
    """Transactions per second through ``send`` (Probe.increment, one at a time)."""
    fn = _probe(chain).functions.increment()
    for _ in range(5):
        chain.send(fn)
    start = time.perf_counter()
    for _ in range(n):
        chain.send(fn)
    return n / (time.perf_counter() - start)


class _TimedKV(SqliteKV):
    commits = 0
    commit_s = 0.0

    def commit(self) -> None:
        start = time.perf_counter()
        super().commit()
        _TimedKV.commits += 1
        _TimedKV.commit_s += time.perf_counter() - start


def embedded(n: int, blocks: int, synchronous: str) -> dict[str, float]:
    """Run the embedded measurements in a fresh temporary data dir."""
    import chain_node.embedded as emb

    with tempfile.TemporaryDirectory() as tmp:
        original = emb.SqliteKV
        emb.SqliteKV = _TimedKV  # type: ignore[misc]
        _TimedKV.commits, _TimedKV.commit_s = 0, 0.0
        try:
            chain = open_embedded(Path(tmp), synchronous=synchronous)
            tps = sends_per_second(chain, n)
            commit_ms = 1000 * _TimedKV.commit_s / max(_TimedKV.commits, 1)
            fn = _probe(chain).functions.increment()
            while chain.block_number() < blocks:
                chain.send(fn)
            head = chain.block_number()
            chain.close()
        finally:
            emb.SqliteKV = original  # type: ignore[misc]
        start = time.perf_counter()
        chain = open_embedded(Path(tmp), synchronous=synchronous)
        first = chain.block_number()
        open_s = time.perf_counter() - start
        start = time.perf_counter()
        chain.send(fn)
        first_send_s = time.perf_counter() - start
        chain.close()
        size_mb = sum(p.stat().st_size for p in (Path(tmp) / "chain").iterdir()) / 1e6
    assert first == head
    return {
        "tx_per_s": tps,
        "commit_ms": commit_ms,
        "blocks": head,
        "open_s": open_s,
        "first_send_after_open_s": first_send_s,
        "data_mb": size_mb,
    }


def raw_pyevm_sender(n: int) -> Callable[[], None]:
    """The floor under the embedded backend: py-evm alone (in memory, no web3, no
    estimate, no disk). Returns a function that applies and mines the next of ``n``
    pre-signed ``Probe.increment()`` transactions, one per block."""
    from eth_account import Account
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import EthereumTesterProvider, Web3

    backend = PyEVMBackend()
    w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
    art = json.loads(PROBE.read_text())
    sender = w3.eth.accounts[0]
    tx_hash = (
        w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        .constructor(0)
        .transact({"from": sender})
    )
    address = w3.eth.get_transaction_receipt(tx_hash)["contractAddress"]
    probe = w3.eth.contract(address=address, abi=art["abi"])
    data = probe.functions.increment()._encode_transaction_data()
    key = Account.from_key(backend.account_keys[0].to_bytes())
    nonce = w3.eth.get_transaction_count(sender)
    chain = backend.chain
    builder = chain.get_vm().get_transaction_builder()
    pending = iter(
        [
            builder.decode(
                bytes(
                    key.sign_transaction(
                        {
                            "to": address,
                            "data": data,
                            "gas": 100_000,
                            "maxFeePerGas": 10**10,
                            "maxPriorityFeePerGas": 10**9,
                            "nonce": nonce + i,
                            "chainId": chain.chain_id,
                            "type": 2,
                        }
                    ).raw_transaction
                )
            )
            for i in range(n)
        ]
    )

    def apply_and_mine() -> None:
        chain.apply_transaction(next(pending))
        chain.mine_block()

    return apply_and_mine


def raw_pyevm_per_second(n: int) -> float:
    """Transactions per second of :func:`raw_pyevm_sender`."""
    step = raw_pyevm_sender(n)
    start = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - start)


def compare_bulk(n: int, batch: int, anvil: bool) -> None:
    """Print tx/s of ``send`` one at a time and of ``send_many`` on the embedded chain
    (synchronous=FULL) and, with ``anvil``, on a fresh anvil node."""

    def report(name: str, chain: ChainBackend) -> None:
        one, many = sends_per_second(chain, n), send_many_per_second(chain, n, batch)
        chain.close()
        print(f"{name}: send={one:.3g} tx/s send_many({batch})={many:.3g} tx/s x{many / one:.3g}")

    with tempfile.TemporaryDirectory() as tmp:
        report("embedded FULL", open_embedded(Path(tmp)))
    if anvil:
        from .anvil import start_anvil
        from .jsonrpc import open_jsonrpc

        with start_anvil() as node:
            report("jsonrpc (anvil)", open_jsonrpc(node.url, node.relayer_key))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200, help="sends to time per backend")
    parser.add_argument("--blocks", type=int, default=1000, help="blocks for the start test")
    parser.add_argument("--anvil", action="store_true", help="also measure against anvil")
    parser.add_argument(
        "--many",
        type=int,
        default=0,
        metavar="BATCH",
        help="only compare send vs send_many (calls of BATCH txs) on each backend",
    )
    args = parser.parse_args()
    if args.many:
        compare_bulk(args.n, args.many, args.anvil)
        return
    raw = raw_pyevm_per_second(args.n)
    print(f"raw py-evm (in memory, pre-signed, no estimate): tx_per_s={raw:.3g}")
    for sync in ("FULL", "NORMAL"):
        result = embedded(args.n, args.blocks, sync)
        result["ratio_to_raw"] = result["tx_per_s"] / raw
        print(
            f"embedded synchronous={sync}: " + ", ".join(f"{k}={v:.3g}" for k, v in result.items())
        )
    if args.anvil:
        from .anvil import start_anvil
        from .jsonrpc import open_jsonrpc

        with start_anvil() as node:
            chain = open_jsonrpc(node.url, node.relayer_key)
            print(f"jsonrpc (anvil): tx_per_s={sends_per_second(chain, args.n):.3g}")
            chain.close()


if __name__ == "__main__":
    main()
