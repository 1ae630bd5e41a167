"""One conformance suite, run against every backend (embedded py-evm, the embedded chain
behind its JSON-RPC front, and anvil)."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from eth_utils import keccak
from web3.exceptions import TransactionNotFound

from chain_node import ChainBackend, ChainRevert, ChainUnavailable, TxResult
from chain_node.embedded import CHAIN_ID as EMBEDDED_CHAIN_ID

EXPECTED_CHAIN_ID = {"embedded": EMBEDDED_CHAIN_ID, "jsonrpc": 31337}
PROBE_REFUSED = "0x" + keccak(text="ProbeRefused(address,uint256)")[:4].hex()
OTHER = "0x00000000000000000000000000000000DeaDBeef"


def _in_threads(count: int, work: Any) -> None:
    """Run ``work(slot)`` for slot 0..count-1, one thread each; wait for all."""
    pool = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def _assert_tx(result: TxResult) -> None:
    assert re.fullmatch(r"0x[0-9a-f]{64}", result.tx_hash)
    assert result.status == 1
    assert result.gas_used > 21000
    assert result.receipt["blockNumber"] == result.block_number


class TestConformance:
    def test_identity(self, chain: ChainBackend, request: pytest.FixtureRequest) -> None:
        assert chain.kind in EXPECTED_CHAIN_ID
        served = request.node.callspec.params["chain"] == "embedded-rpc"
        assert chain.chain_id == (EMBEDDED_CHAIN_ID if served else EXPECTED_CHAIN_ID[chain.kind])
        assert chain.chain_id == chain.w3.eth.chain_id
        assert re.fullmatch(r"0x[0-9a-fA-F]{40}", chain.relayer)
        assert chain.w3.to_checksum_address(chain.relayer) == chain.relayer
        assert chain.w3.eth.get_balance(chain.relayer) > 10**18

    def test_deploy_send_call(self, chain: ChainBackend, probe_artifact: Any) -> None:
        deployed = chain.deploy(probe_artifact.abi, probe_artifact.bytecode, 41)
        _assert_tx(deployed)
        assert deployed.contract_address is not None
        assert chain.w3.eth.get_code(deployed.contract_address) != b""
        probe = chain.w3.eth.contract(address=deployed.contract_address, abi=probe_artifact.abi)
        assert chain.call(probe.functions.count()) == 41

        sent = chain.send(probe.functions.increment())
        _assert_tx(sent)
        assert sent.contract_address is None
        assert sent.block_number > deployed.block_number
        assert chain.call(probe.functions.count()) == 42
        assert chain.call(probe.functions.lastCaller()) == chain.relayer
        # reading at an older block sees the older state
        assert chain.call(probe.functions.count(), block=deployed.block_number) == 41

    def test_event_through_receipt(self, chain: ChainBackend, probe: Any) -> None:
        result = chain.send(probe.functions.increment())
        events = probe.events.Incremented().process_receipt(result.receipt)
        assert len(events) == 1
        assert events[0]["args"]["caller"] == chain.relayer
        assert events[0]["args"]["newCount"] == 6
        assert events[0]["blockNumber"] == result.block_number

    def test_block_number_increases(self, chain: ChainBackend, probe: Any) -> None:
        before = chain.block_number()
        result = chain.send(probe.functions.increment())
        assert result.block_number == before + 1
        assert chain.block_number() == before + 1

    def test_custom_error_decoded_on_call(self, chain: ChainBackend, probe: Any) -> None:
        with pytest.raises(ChainRevert) as info:
            chain.call(probe.functions.failCustom(OTHER, 7))
        err = info.value
        assert err.name == "ProbeRefused"
        assert err.args == (OTHER, 7)
        assert err.selector == PROBE_REFUSED
        assert err.data[:4].hex() == PROBE_REFUSED[2:]
        assert str(err) == f"ProbeRefused({OTHER}, 7)"
        assert err.tx_hash is None

    def test_custom_error_on_send_preflight(self, chain: ChainBackend, probe: Any) -> None:
        block = chain.block_number()
        nonce = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        with pytest.raises(ChainRevert) as info:
            chain.send(probe.functions.failCustom(OTHER, 2**255))
        assert (info.value.name, info.value.args) == ("ProbeRefused", (OTHER, 2**255))
        assert info.value.tx_hash is None  # refused before sending: nothing mined
        assert chain.block_number() == block
        assert chain.w3.eth.get_transaction_count(chain.relayer) == nonce  # type: ignore[arg-type]
        assert chain.call(probe.functions.count()) == 5
        # the refused send left nothing behind: the next one takes the same nonce
        sent = chain.send(probe.functions.increment())
        assert chain.w3.eth.get_transaction(sent.tx_hash)["nonce"] == nonce  # type: ignore[arg-type]
        assert sent.block_number == block + 1

    def test_panic_decoded(self, chain: ChainBackend, probe: Any) -> None:
        for gas in (None, 200_000):
            with pytest.raises(ChainRevert) as info:
                chain.send(probe.functions.divide(0), gas=gas)
            assert (info.value.name, info.value.args) == ("Panic", (0x12,))
            assert info.value.selector == "0x4e487b71"
        assert chain.send(probe.functions.divide(4)).status == 1
        assert chain.call(probe.functions.count()) == 25

    def test_custom_error_on_mined_tx(self, chain: ChainBackend, probe: Any) -> None:
        # explicit gas skips the estimate: the tx is mined with status 0, then decoded
        with pytest.raises(ChainRevert) as info:
            chain.send(probe.functions.failCustom(chain.relayer, 9), gas=200_000)
        err = info.value
        assert (err.name, err.args, err.selector) == (
            "ProbeRefused",
            (chain.relayer, 9),
            PROBE_REFUSED,
        )
        assert err.tx_hash is not None
        receipt = chain.w3.eth.get_transaction_receipt(err.tx_hash)  # type: ignore[arg-type]
        assert receipt["status"] == 0
        assert chain.call(probe.functions.count()) == 5  # the revert undid the increment
        # the nonce was consumed; the next send still lands
        assert chain.send(probe.functions.increment()).status == 1

    def test_string_revert(self, chain: ChainBackend, probe: Any) -> None:
        for gas in (None, 200_000):
            with pytest.raises(ChainRevert) as info:
                chain.send(probe.functions.failString("consent withdrawn"), gas=gas)
            assert info.value.name == "Error"
            assert info.value.args == ("consent withdrawn",)
            assert info.value.selector == "0x08c379a0"
            assert str(info.value) == "Error('consent withdrawn')"
        with pytest.raises(ChainRevert) as info:
            chain.call(probe.functions.failString(""))
        assert (info.value.name, info.value.args) == ("Error", ("",))

    def test_conditional_revert_and_success(self, chain: ChainBackend, probe: Any) -> None:
        assert chain.send(probe.functions.incrementUnless(1)).status == 1
        with pytest.raises(ChainRevert) as info:
            chain.send(probe.functions.incrementUnless(0))
        assert info.value.args == (chain.relayer, 0)
        assert chain.call(probe.functions.count()) == 6

    def test_block_timestamp_follows_wall_clock(self, chain: ChainBackend, probe: Any) -> None:
        time.sleep(1.1)  # an idle second: the next block must not carry a stale timestamp
        before = int(time.time())
        result = chain.send(probe.functions.increment())
        stamp = chain.w3.eth.get_block(result.block_number)["timestamp"]
        assert before <= stamp <= int(time.time()) + 1

    def test_time_travel(self, chain: ChainBackend, probe: Any) -> None:
        start = chain.call(probe.functions.now_())
        block = chain.block_number()
        chain.time_travel(3600)
        assert chain.block_number() == block + 1
        later = chain.call(probe.functions.now_())
        assert start + 3600 <= later <= start + 3600 + 30
        # the offset holds for the following blocks
        result = chain.send(probe.functions.increment())
        assert chain.w3.eth.get_block(result.block_number)["timestamp"] >= later

    def test_concurrent_sends(self, chain: ChainBackend, probe: Any) -> None:
        threads, per_thread = 8, 4
        results: list[TxResult] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        start_nonce = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        barrier = threading.Barrier(threads)

        def work() -> None:
            barrier.wait()
            for _ in range(per_thread):
                try:
                    r = chain.send(probe.functions.increment())
                except BaseException as exc:
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    results.append(r)

        _in_threads(threads, lambda _slot: work())
        assert errors == []
        total = threads * per_thread
        assert len(results) == total
        assert all(r.status == 1 for r in results)
        assert len({r.tx_hash for r in results}) == total
        nonces = sorted(
            chain.w3.eth.get_transaction(r.tx_hash)["nonce"]  # type: ignore[arg-type]
            for r in results
        )
        assert nonces == list(range(start_nonce, start_nonce + total))
        assert chain.call(probe.functions.count()) == 5 + total


class TestConformanceLifecycle:
    def test_closed_backend_is_unavailable(self, chain: ChainBackend, probe: Any) -> None:
        chain.close()
        chain.close()  # idempotent
        with pytest.raises(ChainUnavailable):
            chain.block_number()
        with pytest.raises(ChainUnavailable):
            chain.call(probe.functions.count())
        with pytest.raises(ChainUnavailable):
            chain.send(probe.functions.increment())


class TestConformanceReads:
    def test_get_logs_over_a_block_range(self, chain: ChainBackend, probe: Any) -> None:
        first = chain.send(probe.functions.increment()).block_number
        chain.send(probe.functions.incrementUnless(3))  # no event
        last = chain.send(probe.functions.increment()).block_number
        logs = chain.w3.eth.get_logs(
            {"address": probe.address, "fromBlock": first, "toBlock": last}
        )
        events = [probe.events.Incremented().process_log(log) for log in logs]
        assert [e["args"]["newCount"] for e in events] == [6, 8]
        assert [e["blockNumber"] for e in events] == [first, last]

    def test_chain_head_block_is_mined(self, chain: ChainBackend, probe: Any) -> None:
        result = chain.send(probe.functions.increment())
        block = chain.w3.eth.get_block(result.block_number)
        assert bytes(block["hash"]) == bytes(result.receipt["blockHash"])
        assert [bytes(h) for h in block["transactions"]] == [bytes.fromhex(result.tx_hash[2:])]

    def test_transaction_lookup_old_and_unknown(self, chain: ChainBackend, probe: Any) -> None:
        first = chain.send(probe.functions.increment())
        for _ in range(3):
            chain.send(probe.functions.increment())
        receipt = chain.w3.eth.get_transaction_receipt(first.tx_hash)  # type: ignore[arg-type]
        assert receipt["blockNumber"] == first.block_number
        assert bytes(receipt["transactionHash"]) == bytes.fromhex(first.tx_hash[2:])
        tx = chain.w3.eth.get_transaction(first.tx_hash)  # type: ignore[arg-type]
        assert tx["blockNumber"] == first.block_number
        assert tx["from"] == chain.relayer
        with pytest.raises(TransactionNotFound):
            chain.w3.eth.get_transaction_receipt("0x" + "ab" * 32)  # type: ignore[arg-type]


def _nonce_of(chain: ChainBackend, tx_hash: str) -> int:
    return int(chain.w3.eth.get_transaction(tx_hash)["nonce"])  # type: ignore[arg-type]


class TestConformanceBulk:
    """``send_many``: the bulk pipeline, the same outcomes on every backend."""

    def test_send_many_lands_all_with_consecutive_nonces(
        self, chain: ChainBackend, probe: Any
    ) -> None:
        start_nonce = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        results = chain.send_many([probe.functions.increment() for _ in range(25)])
        assert len(results) == 25
        assert all(isinstance(r, TxResult) and r.status == 1 for r in results)
        tx_results = [r for r in results if isinstance(r, TxResult)]
        assert [_nonce_of(chain, r.tx_hash) for r in tx_results] == list(
            range(start_nonce, start_nonce + 25)
        )
        assert chain.call(probe.functions.count()) == 30
        # events in order, one per tx, and receipts as w3 returns them
        counts = [
            probe.events.Incremented().process_receipt(r.receipt)[0]["args"]["newCount"]
            for r in tx_results
        ]
        assert counts == list(range(6, 31))
        last = tx_results[-1]
        assert dict(last.receipt) == dict(
            chain.w3.eth.get_transaction_receipt(last.tx_hash)  # type: ignore[arg-type]
        )
        assert all(r.replaced == () for r in tx_results)
        assert chain.send_many([]) == []

    def test_one_bad_item_does_not_sink_the_others(self, chain: ChainBackend, probe: Any) -> None:
        start_nonce = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        fns = [
            probe.functions.increment(),
            probe.functions.failCustom(OTHER, 7),
            probe.functions.increment(),
            probe.functions.failString("withdrawn"),
            probe.functions.increment(),
        ]
        results = chain.send_many(fns)
        assert [type(r).__name__ for r in results] == [
            "TxResult",
            "ChainRevert",
            "TxResult",
            "ChainRevert",
            "TxResult",
        ]
        custom, string = results[1], results[3]
        assert isinstance(custom, ChainRevert) and isinstance(string, ChainRevert)
        assert (custom.name, custom.args, custom.tx_hash) == ("ProbeRefused", (OTHER, 7), None)
        assert (string.name, string.args, string.tx_hash) == ("Error", ("withdrawn",), None)
        # refused before sending: no nonce used, no gap
        mined = [r for r in results if isinstance(r, TxResult)]
        assert [_nonce_of(chain, r.tx_hash) for r in mined] == [
            start_nonce,
            start_nonce + 1,
            start_nonce + 2,
        ]
        assert chain.call(probe.functions.count()) == 8
        assert chain.send(probe.functions.increment()).status == 1  # the next nonce follows

    def test_explicit_gas_mines_failing_items_with_status_0(
        self, chain: ChainBackend, probe: Any
    ) -> None:
        start_nonce = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        fns = [
            probe.functions.increment(),
            probe.functions.failCustom(chain.relayer, 9),
            probe.functions.increment(),
        ]
        results = chain.send_many(fns, gas=200_000)
        failed = results[1]
        assert isinstance(failed, ChainRevert)
        assert (failed.name, failed.args) == ("ProbeRefused", (chain.relayer, 9))
        assert failed.tx_hash is not None
        receipt = chain.w3.eth.get_transaction_receipt(failed.tx_hash)  # type: ignore[arg-type]
        assert receipt["status"] == 0
        hashes = [r.tx_hash for r in results if isinstance(r, TxResult | ChainRevert)]
        assert [_nonce_of(chain, h) for h in hashes if h] == [
            start_nonce,
            start_nonce + 1,
            start_nonce + 2,
        ]
        assert chain.call(probe.functions.count()) == 7

    def test_concurrent_senders_single_and_bulk(self, chain: ChainBackend, probe: Any) -> None:
        """16 threads, each 3 single sends and one send_many of 4: every tx lands, nonces
        unique and contiguous."""
        threads, singles, bulk = 16, 3, 4
        results: list[TxResult] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        start_nonce = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        barrier = threading.Barrier(threads)

        def work(slot: int) -> None:
            barrier.wait()
            try:
                got: list[Any] = []
                for k in range(singles + 1):
                    if k == slot % (singles + 1):
                        got.extend(chain.send_many([probe.functions.increment()] * bulk))
                    else:
                        got.append(chain.send(probe.functions.increment()))
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                return
            with lock:
                results.extend(got)

        _in_threads(threads, work)
        assert errors == []
        total = threads * (singles + bulk)
        assert len(results) == total
        assert all(isinstance(r, TxResult) and r.status == 1 for r in results)
        assert len({r.tx_hash for r in results}) == total
        nonces = sorted(_nonce_of(chain, r.tx_hash) for r in results)
        assert nonces == list(range(start_nonce, start_nonce + total))
        assert chain.call(probe.functions.count()) == 5 + total
