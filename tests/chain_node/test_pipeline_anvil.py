"""send_many against real anvil nodes: HTTP batching, stuck-tx replacement, rate limits,
a node that stops answering or dies mid-batch, nonce collisions with another sender."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chain_node import ChainBackend, ChainError, ChainUnavailable, TxResult, open_chain
from chain_node.anvil import AnvilProcess, start_anvil
from chain_node.jsonrpc import JsonRpcChain, open_jsonrpc
from chain_node.retry import Backoff, Retrier

pytestmark = pytest.mark.anvil


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    """One raw JSON-RPC call (outside the backend under test)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response).get("result")


def _wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def _background(thunk: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``thunk`` in a thread; its value lands in ``out["value"]``, or the exception
    it raised in ``out["error"]``."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = thunk()
        except BaseException as exc:
            out["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    return worker, out


def _deploy_probe(chain: ChainBackend, artifact: Any) -> Any:
    deployed = chain.deploy(artifact.abi, artifact.bytecode, 0)
    return chain.w3.eth.contract(address=deployed.contract_address, abi=artifact.abi)


def _nonces(chain: ChainBackend, results: list[Any]) -> list[int]:
    return [
        int(chain.w3.eth.get_transaction(r.tx_hash)["nonce"])  # type: ignore[arg-type]
        for r in results
    ]


class Proxy:
    """An HTTP proxy in front of a node that records every request body and can answer
    429 (``throttle`` requests), forward and then never answer (``swallow``: the node
    processes the request, the client hears nothing until its timeout), or refuse single
    calls itself (``refuse(call)`` returns an error message: the call is not forwarded
    and gets that JSON-RPC error), or refuse every batch (``no_batches``)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.bodies: list[Any] = []
        self.throttle = 0
        self.throttled: Callable[[Any], bool] = lambda body: True
        self.swallow: Callable[[Any], bool] = lambda body: False
        self.refuse: Callable[[dict[str, Any]], str | None] = lambda call: None
        self.no_batches = False
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                proxy.bodies.append(body)
                if proxy.throttle > 0 and proxy.throttled(body):
                    proxy.throttle -= 1
                    self.send_response(429)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = proxy.forward(body)
                if proxy.swallow(body):
                    proxy.release.wait(10)  # the client times out meanwhile
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def forward(self, body: Any) -> bytes:
        """The upstream's answer to ``body``, minus the calls that ``refuse`` takes."""
        refused: list[dict[str, Any]] = []
        if isinstance(body, list) and self.no_batches:
            error = {"code": -32600, "message": "batch requests are not supported"}
            return json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
        if isinstance(body, dict):
            message = self.refuse(body)
            if message is not None:
                error = {"code": -32005, "message": message}
                return json.dumps({"jsonrpc": "2.0", "id": body["id"], "error": error}).encode()
        if isinstance(body, list):
            kept = []
            for call in body:
                message = self.refuse(call)
                if message is None:
                    kept.append(call)
                else:
                    error = {"code": -32000, "message": message}
                    refused.append({"jsonrpc": "2.0", "id": call["id"], "error": error})
            body = kept
        answers: Any = []
        if body:
            request = urllib.request.Request(
                self.upstream,
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                answers = json.load(response)
        if refused:
            answers = sorted([*answers, *refused], key=lambda r: r["id"])
        return json.dumps(answers).encode()

    def batches(self, method: str) -> list[list[Any]]:
        """Recorded batch bodies whose calls are all ``method``."""
        return [
            b for b in self.bodies if isinstance(b, list) and all(c["method"] == method for c in b)
        ]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(anvil: AnvilProcess) -> Iterator[Proxy]:
    p = Proxy(anvil.url)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def quiet_node() -> Iterator[AnvilProcess]:
    """A second anvil with auto-mining off: transactions wait in the pool until
    ``evm_mine``."""
    node = start_anvil(extra_args=["--no-mining"])
    try:
        yield node
    finally:
        node.stop()


def _mine(url: str) -> None:
    _rpc(url, "evm_mine", [])


def _deploy_on_quiet(chain: JsonRpcChain, url: str, artifact: Any) -> Any:
    """Deploy Probe on a node that mines only on request."""
    worker, out = _background(lambda: _deploy_probe(chain, artifact))
    _wait_until(lambda: _rpc(url, "txpool_status", [])["pending"] != "0x0")
    _mine(url)
    worker.join()
    return out["value"]


def test_one_http_batch_per_phase(proxy: Proxy, tmp_path: Path, probe_artifact: Any) -> None:
    chain = open_chain(tmp_path, url=proxy.url, relayer_key=ANVIL_KEY)
    try:
        probe = _deploy_probe(chain, probe_artifact)
        before = len(proxy.bodies)
        results = chain.send_many([probe.functions.increment() for _ in range(40)])
        assert all(isinstance(r, TxResult) and r.status == 1 for r in results)
        requests_made = proxy.bodies[before:]
        estimates = [b for b in proxy.batches("eth_estimateGas") if b in requests_made]
        sends = [b for b in proxy.batches("eth_sendRawTransaction") if b in requests_made]
        polls = [b for b in proxy.batches("eth_getTransactionReceipt") if b in requests_made]
        assert [len(b) for b in estimates] == [40]
        assert [len(b) for b in sends] == [40]
        assert polls and all(len(b) <= 40 for b in polls)
        # fees and the nonce are read once each at most: a handful of requests in all,
        # where send() one at a time makes 3-4 per transaction
        assert len(requests_made) <= len(polls) + 6
        assert chain.call(probe.functions.count()) == 40
    finally:
        chain.close()


ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def test_rate_limited_node_is_retried_with_backoff(
    proxy: Proxy, tmp_path: Path, probe_artifact: Any
) -> None:
    chain = open_chain(tmp_path, url=proxy.url, relayer_key=ANVIL_KEY)
    try:
        probe = _deploy_probe(chain, probe_artifact)
        clock_sleeps: list[float] = []
        chain.retrier = Retrier(  # type: ignore[attr-defined]
            Backoff(attempts=6, base_s=0.01, cap_s=0.05), sleep=clock_sleeps.append
        )
        proxy.throttle = 3  # the next three HTTP requests get 429
        results = chain.send_many([probe.functions.increment() for _ in range(5)], gas=100_000)
        assert all(isinstance(r, TxResult) and r.status == 1 for r in results)
        assert len(clock_sleeps) == 3
        assert all(0.005 <= s <= 0.05 for s in clock_sleeps)
        assert chain.call(probe.functions.count()) == 5
    finally:
        chain.close()


def test_rate_limit_that_persists_is_chain_unavailable(
    proxy: Proxy, tmp_path: Path, probe_artifact: Any
) -> None:
    chain = open_chain(tmp_path, url=proxy.url, relayer_key=ANVIL_KEY)
    try:
        probe = _deploy_probe(chain, probe_artifact)
        nonce = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        chain.retrier = Retrier(Backoff(attempts=3, base_s=0.01), sleep=lambda s: None)  # type: ignore[attr-defined]
        proxy.throttle = 10**6
        with pytest.raises(ChainUnavailable):
            chain.send_many([probe.functions.increment()] * 3, gas=100_000)
        proxy.throttle = 0
        results = chain.send_many([probe.functions.increment()] * 3, gas=100_000)
        assert _nonces(chain, results) == [nonce, nonce + 1, nonce + 2]
    finally:
        chain.close()


def test_stuck_transactions_replaced_with_higher_fees(
    quiet_node: AnvilProcess, tmp_path: Path, probe_artifact: Any
) -> None:
    chain = open_jsonrpc(quiet_node.url, quiet_node.relayer_key)
    try:
        probe = _deploy_on_quiet(chain, quiet_node.url, probe_artifact)
        fns = [probe.functions.increment() for _ in range(4)]
        worker, out = _background(lambda: chain.send_many(fns, stuck_after_s=0.2, timeout_s=30))
        relayer = chain.relayer.lower()

        def pooled() -> dict[str, Any]:
            content = _rpc(quiet_node.url, "txpool_content", [])["pending"]
            return {int(k): v for k, v in content.get(relayer, {}).items()}

        _wait_until(lambda: len(pooled()) == 4)
        first = pooled()  # the originals
        _wait_until(lambda: all(tx["hash"] != first[n]["hash"] for n, tx in pooled().items()))
        _mine(quiet_node.url)
        worker.join()
        results = out["value"]
        assert all(isinstance(r, TxResult) and r.status == 1 for r in results)
        assert chain.call(probe.functions.count()) == 4
        for r in results:
            tx = chain.w3.eth.get_transaction(r.tx_hash)  # type: ignore[arg-type]
            original = first[int(tx["nonce"])]
            assert r.replaced[0] == original["hash"]
            assert r.tx_hash not in r.replaced
            # the replacement paid >= 12.5 % more on both fee fields
            assert tx["maxFeePerGas"] * 8 >= int(original["maxFeePerGas"], 16) * 9
            assert tx["maxPriorityFeePerGas"] * 8 >= int(original["maxPriorityFeePerGas"], 16) * 9
            for old in r.replaced:  # none of the replaced ones is mined, or even known
                assert _rpc(quiet_node.url, "eth_getTransactionReceipt", [old]) is None
                assert _rpc(quiet_node.url, "eth_getTransactionByHash", [old]) is None
        assert sorted(_nonces(chain, results)) == [1, 2, 3, 4]
        assert chain.block_number() == 2  # the deployment's block and this one
    finally:
        chain.close()


def test_unmined_items_time_out_with_their_hashes(
    quiet_node: AnvilProcess, tmp_path: Path, probe_artifact: Any
) -> None:
    chain = open_jsonrpc(quiet_node.url, quiet_node.relayer_key)
    try:
        probe = _deploy_on_quiet(chain, quiet_node.url, probe_artifact)
        results = chain.send_many(
            [probe.functions.increment()] * 2, stuck_after_s=60, timeout_s=0.3
        )
        assert [type(r).__name__ for r in results] == ["ChainTimeout", "ChainTimeout"]
        for r in results:
            pending = _rpc(quiet_node.url, "eth_getTransactionByHash", [r.tx_hash])  # type: ignore[union-attr]
            assert pending["blockNumber"] is None
    finally:
        chain.close()


def test_node_dying_mid_batch_then_restart_resyncs_without_gap(
    tmp_path: Path, probe_artifact: Any
) -> None:
    node = start_anvil(extra_args=["--no-mining"])
    port = node.port
    chain = open_jsonrpc(node.url, node.relayer_key, timeout_s=2.0)
    chain.retrier = Retrier(Backoff(attempts=3, base_s=0.05, max_elapsed_s=1.0))  # type: ignore[attr-defined]
    try:
        probe = _deploy_on_quiet(chain, node.url, probe_artifact)
        fns = [probe.functions.increment()] * 6
        worker, out = _background(lambda: chain.send_many(fns, stuck_after_s=60))
        _wait_until(lambda: _rpc(node.url, "txpool_status", [])["pending"] == "0x6")
        node.proc.kill()  # SIGKILL while send_many polls for receipts
        node.proc.wait()
        worker.join()
        error = out["error"]
        assert isinstance(error, ChainUnavailable)
        assert len(error.tx_hashes) == 6
        # the node comes back on the same port with a fresh chain (its pool is gone)
        node = start_anvil(port=port)
        probe = _deploy_probe(chain, probe_artifact)
        results = chain.send_many([probe.functions.increment()] * 5)
        assert all(isinstance(r, TxResult) for r in results)
        # resynced from the node: nonces 1..5 right after the deployment's 0, no gap
        assert _nonces(chain, results) == [1, 2, 3, 4, 5]
        assert chain.call(probe.functions.count()) == 5
    finally:
        chain.close()
        node.stop()


def test_unanswered_batch_leaves_no_gap_and_no_duplicate(
    proxy: Proxy, tmp_path: Path, probe_artifact: Any
) -> None:
    """The node takes the batch but the answer never comes (timeout): the outcome is
    unknown, so the next call reads the pending count and neither reuses nor skips."""
    chain = open_jsonrpc(proxy.url, ANVIL_KEY, timeout_s=0.5)
    chain.retrier = Retrier(Backoff(attempts=2, base_s=0.01, max_elapsed_s=1.0))  # type: ignore[attr-defined]
    try:
        probe = _deploy_probe(chain, probe_artifact)
        start = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        proxy.swallow = lambda body: (
            isinstance(body, list) and body[0]["method"] == "eth_sendRawTransaction"
        )
        with pytest.raises(ChainUnavailable) as info:
            chain.send_many([probe.functions.increment()] * 4, gas=100_000)
        assert len(info.value.tx_hashes) == 4
        proxy.swallow = lambda body: False
        proxy.release.set()
        # the node did take them (sent twice: the retry resent the same bytes)
        for tx_hash in info.value.tx_hashes:
            receipt = _rpc(proxy.url, "eth_getTransactionReceipt", [tx_hash])
            assert receipt is not None and receipt["status"] == "0x1"
        results = chain.send_many([probe.functions.increment()] * 3, gas=100_000)
        assert _nonces(chain, results) == [start + 4, start + 5, start + 6]
        assert chain.call(probe.functions.count()) == 7
    finally:
        chain.close()


def test_nonce_taken_by_another_sender_is_resynced_in_bulk(
    anvil: AnvilProcess, tmp_path: Path, probe_artifact: Any
) -> None:
    one = open_jsonrpc(anvil.url, anvil.relayer_key)
    two = open_jsonrpc(anvil.url, anvil.relayer_key)
    try:
        probe = _deploy_probe(one, probe_artifact)
        one.send(probe.functions.increment())  # `one` caches its next nonce
        for _ in range(3):
            two.send(probe.functions.increment())  # same key elsewhere: `one` is stale
        start = one.w3.eth.get_transaction_count(one.relayer)  # type: ignore[arg-type]
        results = one.send_many([probe.functions.increment()] * 5, gas=100_000)
        assert all(isinstance(r, TxResult) and r.status == 1 for r in results)
        assert sorted(_nonces(one, results)) == list(range(start, start + 5))
        assert one.call(probe.functions.count()) == 9
    finally:
        one.close()
        two.close()


def test_refused_item_mid_batch_gap_is_filled(
    proxy: Proxy, tmp_path: Path, probe_artifact: Any
) -> None:
    """The node refuses one transaction of a batch for good while accepting the later
    ones: its nonce is filled with a 0-value self-transfer so the later ones can be
    mined; a refusal at the tail just gives the nonce back."""
    chain = open_jsonrpc(proxy.url, ANVIL_KEY)
    try:
        probe = _deploy_probe(chain, probe_artifact)
        start = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        batch_calls = iter(range(10**6))

        def refuse_third(call: dict[str, Any]) -> str | None:
            if call["method"] != "eth_sendRawTransaction" or next(batch_calls) != 2:
                return None
            return "insufficient funds for gas * price + value"

        proxy.refuse = refuse_third
        results = chain.send_many([probe.functions.increment()] * 5, gas=100_000)
        proxy.refuse = lambda call: None
        refused = results[2]
        assert type(refused) is ChainError
        assert "insufficient funds" in str(refused)
        mined = [r for r in results if isinstance(r, TxResult)]
        assert _nonces(chain, mined) == [start, start + 1, start + 3, start + 4]
        assert chain.call(probe.functions.count()) == 4
        filler = _find_tx(chain, start + 2)
        assert (filler["to"], filler["value"], filler["input"]) == (chain.relayer, 0, b"")

        tail = iter(range(10**6))
        proxy.refuse = lambda call: (
            "intrinsic gas too low"
            if call["method"] == "eth_sendRawTransaction" and next(tail) == 2
            else None
        )
        results = chain.send_many([probe.functions.increment()] * 3, gas=100_000)
        proxy.refuse = lambda call: None
        assert type(results[2]) is ChainError
        assert _nonces(chain, results[:2]) == [start + 5, start + 6]
        again = chain.send_many([probe.functions.increment()], gas=100_000)
        assert _nonces(chain, again) == [start + 7]  # the refused tail nonce is reused
        assert chain.w3.eth.get_transaction_count(chain.relayer) == start + 8  # type: ignore[arg-type]
    finally:
        chain.close()


def _find_tx(chain: ChainBackend, nonce: int) -> Any:
    """The relayer's mined transaction with ``nonce`` (scans blocks from the head)."""
    for number in range(chain.block_number(), -1, -1):
        for tx in chain.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] == chain.relayer and tx["nonce"] == nonce:  # type: ignore[index]
                return tx
    raise AssertionError(f"no mined tx with nonce {nonce}")


def _sends_raw(body: Any) -> bool:
    calls = body if isinstance(body, list) else [body]
    return any(c["method"] == "eth_sendRawTransaction" for c in calls)


def _first_only(predicate: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """``predicate``, true for the first matching body only."""
    seen = {"done": False}

    def once(body: Any) -> bool:
        if seen["done"] or not predicate(body):
            return False
        seen["done"] = True
        return True

    return once


def test_single_send_retries_a_rate_limited_raw_send(
    proxy: Proxy, tmp_path: Path, probe_artifact: Any
) -> None:
    chain = open_jsonrpc(proxy.url, ANVIL_KEY)
    try:
        probe = _deploy_probe(chain, probe_artifact)
        sleeps: list[float] = []
        chain.retrier = Retrier(Backoff(base_s=0.01), sleep=sleeps.append)  # type: ignore[attr-defined]
        limited = iter([True, True])
        proxy.refuse = lambda call: (
            "rate limit exceeded"
            if call["method"] == "eth_sendRawTransaction" and next(limited, False)
            else None
        )
        result = chain.send(probe.functions.increment())
        assert result.status == 1
        assert len(sleeps) == 2
        assert chain.call(probe.functions.count()) == 1
    finally:
        chain.close()


@pytest.mark.parametrize("bulk", [False, True])
def test_lost_answer_to_a_send_is_not_sent_twice(
    proxy: Proxy, tmp_path: Path, probe_artifact: Any, bulk: bool
) -> None:
    """The node takes the transaction(s) but the answer is lost once; the retry resends
    the same bytes, the node says "nonce too low" (already mined) and the pipeline
    recognizes its own hashes instead of re-signing with new nonces."""
    chain = open_jsonrpc(proxy.url, ANVIL_KEY, timeout_s=0.5)
    try:
        probe = _deploy_probe(chain, probe_artifact)
        start = chain.w3.eth.get_transaction_count(chain.relayer)  # type: ignore[arg-type]
        chain.retrier = Retrier(Backoff(base_s=0.01))  # type: ignore[attr-defined]
        before = len(proxy.bodies)
        proxy.swallow = _first_only(_sends_raw)
        if bulk:
            results = chain.send_many([probe.functions.increment()] * 3, gas=100_000)
        else:
            results = [chain.send(probe.functions.increment(), gas=100_000)]
        proxy.release.set()
        assert all(isinstance(r, TxResult) and r.status == 1 for r in results)
        count = len(results)
        assert _nonces(chain, results) == list(range(start, start + count))
        assert chain.call(probe.functions.count()) == count  # once each, not twice
        assert chain.w3.eth.get_transaction_count(chain.relayer) == start + count  # type: ignore[arg-type]
        sends = sum(_sends_raw(b) for b in proxy.bodies[before:])
        assert sends == 2  # the lost one and the resend
    finally:
        chain.close()


def test_node_without_batches_gets_one_request_per_call(
    proxy: Proxy, tmp_path: Path, probe_artifact: Any
) -> None:
    chain = open_jsonrpc(proxy.url, ANVIL_KEY)
    try:
        probe = _deploy_probe(chain, probe_artifact)
        proxy.no_batches = True
        before = len(proxy.bodies)
        results = chain.send_many([probe.functions.increment()] * 4)
        assert all(isinstance(r, TxResult) and r.status == 1 for r in results)
        assert chain.batches is False
        batches = [b for b in proxy.bodies[before:] if isinstance(b, list)]
        assert len(batches) == 1  # the refused one; every later call went alone
        singles = [b["method"] for b in proxy.bodies[before:] if isinstance(b, dict)]
        assert singles.count("eth_estimateGas") == 4
        assert singles.count("eth_sendRawTransaction") == 4
        assert chain.call(probe.functions.count()) == 4
    finally:
        chain.close()
