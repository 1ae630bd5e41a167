"""send_many on the embedded chain: one block (one commit) per call, failing items taken
out of the block, durability across close/reopen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chain_node import ChainRevert, TxResult, open_chain
from chain_node.embedded import EmbeddedChain


def _probe(chain: Any, artifact: Any) -> Any:
    address = chain.deploy(artifact.abi, artifact.bytecode, 0).contract_address
    return chain.w3.eth.contract(address=address, abi=artifact.abi)


def test_one_block_one_commit_per_call(tmp_path: Path, probe_artifact: Any) -> None:
    chain = open_chain(tmp_path)
    assert isinstance(chain, EmbeddedChain)
    try:
        probe = _probe(chain, probe_artifact)
        commits: list[int] = []
        store = chain._store
        original = store.commit
        store.commit = lambda: (commits.append(1), original())[1]  # type: ignore[method-assign]
        head = chain.block_number()
        results = chain.send_many([probe.functions.increment() for _ in range(60)])
        assert all(isinstance(r, TxResult) for r in results)
        mined = [r for r in results if isinstance(r, TxResult)]
        assert {r.block_number for r in mined} == {head + 1}
        assert chain.block_number() == head + 1
        assert len(commits) == 1
        block = chain.w3.eth.get_block(head + 1)
        assert [bytes(h).hex() for h in block["transactions"]] == [r.tx_hash[2:] for r in mined]
        assert [r.receipt["transactionIndex"] for r in mined] == list(range(60))
        # cumulative gas grows by each tx's own gas
        cumulative = [r.receipt["cumulativeGasUsed"] for r in mined]
        assert cumulative[-1] == block["gasUsed"] == sum(r.gas_used for r in mined)
    finally:
        chain.close()


def test_failing_items_are_taken_out_of_the_block(tmp_path: Path, probe_artifact: Any) -> None:
    chain = open_chain(tmp_path)
    try:
        probe = _probe(chain, probe_artifact)
        fns = [
            probe.functions.increment(),
            probe.functions.divide(0),
            probe.functions.increment(),
            probe.functions.incrementUnless(0),
            probe.functions.incrementUnless(5),
        ]
        results = chain.send_many(fns)
        assert [isinstance(r, TxResult) for r in results] == [True, False, True, False, True]
        panic, refused = results[1], results[3]
        assert isinstance(panic, ChainRevert) and isinstance(refused, ChainRevert)
        assert (panic.name, panic.args) == ("Panic", (0x12,))
        assert (refused.name, refused.args) == ("ProbeRefused", (chain.relayer, 0))
        mined = [r for r in results if isinstance(r, TxResult)]
        block = chain.w3.eth.get_block(mined[0].block_number)
        assert len(block["transactions"]) == 3
        assert chain.call(probe.functions.count()) == 3
        nonces = [chain.w3.eth.get_transaction(r.tx_hash)["nonce"] for r in mined]  # type: ignore[arg-type]
        assert nonces == [1, 2, 3]
    finally:
        chain.close()


def test_send_many_survives_reopen(tmp_path: Path, probe_artifact: Any) -> None:
    chain = open_chain(tmp_path)
    probe = _probe(chain, probe_artifact)
    results = chain.send_many([probe.functions.increment() for _ in range(10)])
    receipts = [dict(r.receipt) for r in results if isinstance(r, TxResult)]
    head = chain.block_number()
    chain.close()
    again = open_chain(tmp_path)
    try:
        assert again.block_number() == head
        probe = again.w3.eth.contract(address=probe.address, abi=probe_artifact.abi)
        assert again.call(probe.functions.count()) == 10
        for receipt in receipts:
            stored = again.w3.eth.get_transaction_receipt(receipt["transactionHash"])
            assert dict(stored) == receipt
        more = again.send_many([probe.functions.increment()] * 2)
        nonces = [again.w3.eth.get_transaction(r.tx_hash)["nonce"] for r in more]  # type: ignore[union-attr, arg-type]
        assert nonces == [11, 12]
    finally:
        again.close()


def test_a_full_block_spills_into_the_next(tmp_path: Path, probe_artifact: Any) -> None:
    """More increments than one 30M-gas block holds: the txs that no longer fit (too
    little gas left, even below the intrinsic 21,000) go into a second block."""
    chain = open_chain(tmp_path, synchronous="NORMAL")
    try:
        probe = _probe(chain, probe_artifact)
        head = chain.block_number()
        results = chain.send_many([probe.functions.increment()] * 1100)
        assert all(isinstance(r, TxResult) for r in results)
        mined = [r for r in results if isinstance(r, TxResult)]
        blocks = [r.block_number for r in mined]
        assert blocks == sorted(blocks)
        assert set(blocks) == {head + 1, head + 2}
        first = chain.w3.eth.get_block(head + 1)
        # the first block was filled until the next tx could not fit
        assert first["gasLimit"] - first["gasUsed"] < mined[-1].gas_used
        assert chain.call(probe.functions.count()) == 1100
        nonces = [chain.w3.eth.get_transaction(r.tx_hash)["nonce"] for r in mined[985:995]]  # type: ignore[arg-type]
        assert nonces == list(range(986, 996))
    finally:
        chain.close()
