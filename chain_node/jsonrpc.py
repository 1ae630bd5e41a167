"""JSON-RPC backend: any EVM node over HTTP(S) (anvil in tests; Besu, Geth, … in production).

Transactions are EIP-1559 (type 2): ``maxPriorityFeePerGas`` from
``eth_maxPriorityFeePerGas``, ``maxFeePerGas = 2 x latest baseFeePerGas + tip``. They are
signed locally with the relayer key (eth-account) and sent with
``eth_sendRawTransaction``; the node never holds the key. The relayer nonce is read once
from ``eth_getTransactionCount(relayer, "pending")`` and then incremented locally under a
lock; a send failure drops the cached nonce (the next send resyncs), a nonce error is
retried with a fresh nonce (up to five sends). Receipts are polled from 10 ms, backing
off to 500 ms (ChainTimeout after ``receipt_timeout_s``, default 120 s).

Bulk (``send_many``): every phase is one HTTP request carrying a JSON-RPC 2.0 batch
(at most ``batch_limit`` calls, default 500): ``eth_estimateGas`` for all items,
``eth_sendRawTransaction`` for all items (signed with consecutive nonces under the nonce
lock), then ``eth_getTransactionReceipt`` for every hash still unmined, polled from
10 ms backing off to 500 ms. Transient failures (connection errors, HTTP 429/502/503/504,
JSON-RPC -32005 / rate-limit messages) are retried with exponential backoff and jitter
(:mod:`chain_node.retry`); raw transactions are resent byte for byte, so a retry cannot
double-spend a nonce. A transaction unmined ``stuck_after_s`` seconds after it was sent
is re-signed with the same nonce and fees bumped by >= 12.5 %
(:func:`chain_node.pipeline.bump_fees`); the receipt of whichever version is mined wins
(``TxResult.replaced`` lists the others).
A "nonce too low" answer resyncs the counter and re-signs the refused items once; an
item refused for good between accepted ones gets its nonce filled with a 0-value
self-transfer, so the later ones are not stuck behind a gap.

Measured against anvil 1.7.1 (auto-mine) on the shared 2-core dev box with
``python -m chain_node.bench --anvil``: ``send`` of ``Probe.increment()``, one at a time,
~120 tx/s (estimate, send, receipt poll: 3-4 HTTP round trips per transaction).
``python -m chain_node.bench -n 1000 --many 100 --anvil`` (load average 3.3-4.2, four
runs): ``send_many`` in calls of 100: 370-610 tx/s against 70-130 tx/s for ``send`` in
the same run (x3.1-5.5; anvil still mines one block per transaction); calls of 20:
360-400 tx/s (x4.6-5.0). pytest-benchmark (``make bench``): 1.3 ms per tx in a
``send_many`` of 50, 7.2 ms per ``send``. Client floor: eth-account signs one EIP-1559
tx in ~1.07 ms (coincurve backend), so one thread signs at most ~900 tx/s.
"""

from __future__ import annotations

from typing import Any

import requests
from web3 import HTTPProvider, Web3
from web3.exceptions import ProviderConnectionError
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from ._web3 import Web3Backend
from .errors import ChainError, ChainUnavailable
from .retry import TransientRpcError, is_transient, rpc_error_is_transient

__all__ = ["JsonRpcChain", "open_jsonrpc"]

_CONNECTION_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ProviderConnectionError,
    ConnectionError,
)


class JsonRpcChain(Web3Backend):
    """A chain reached over JSON-RPC (``kind == "jsonrpc"``). Build with :func:`open_jsonrpc`."""

    kind = "jsonrpc"

    batches: bool = True
    """Send JSON-RPC batches; False (set, or found out) for nodes without them."""

    def __init__(self, url: str, relayer_key: str, timeout_s: float = 30.0) -> None:
        if not relayer_key:
            raise ChainError("a JSON-RPC chain needs a relayer key (0x-hex private key)")
        self.url = url
        provider = HTTPProvider(url, request_kwargs={"timeout": timeout_s})
        # web3 retries reads by itself (5 tries on transport errors); raw sends are left
        # to chain_node.retry, which resends the same bytes and knows when an answer
        # was lost (Web3Backend._send_raw)
        defaults = provider.exception_retry_configuration
        provider.exception_retry_configuration = ExceptionRetryConfiguration(
            errors=defaults.errors,
            retries=defaults.retries,
            backoff_factor=defaults.backoff_factor,
            method_allowlist=[
                m for m in defaults.method_allowlist if m != "eth_sendRawTransaction"
            ],
        )
        w3 = Web3(provider)
        try:
            chain_id = int(w3.eth.chain_id)
        except _CONNECTION_ERRORS as exc:
            raise ChainUnavailable(f"cannot reach chain node at {url}: {exc}") from exc
        self._closed = False
        super().__init__(w3, relayer_key, chain_id)

    def _check_open(self) -> None:
        if self._closed:
            raise ChainUnavailable(f"JSON-RPC chain {self.url} is closed")

    def _unavailable(self, exc: BaseException) -> ChainError | None:
        if isinstance(exc, _CONNECTION_ERRORS):
            return ChainUnavailable(f"chain node at {self.url} unreachable: {exc}")
        if is_transient(exc):  # rate limited or overloaded, retries used up
            return ChainUnavailable(f"chain node at {self.url} kept refusing: {exc}")
        return None

    def _rpc_batch(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """All ``calls`` in one HTTP POST (JSON-RPC 2.0 "Batch"), responses matched to
        requests by id.

        A single error object for the whole batch means nothing ran: a rate limit raises
        TransientRpcError (retried); anything else (a node or gateway without batch
        support) switches this backend to one request per call from then on
        (:attr:`batches`). web3's own ``batch_requests`` is not used: it refuses
        ``eth_sendRawTransaction`` and turns one missing receipt into an exception for
        the whole batch.
        """
        if not calls:
            return []
        if not self.batches:
            return super()._rpc_batch(calls)
        response = self.w3.provider.make_batch_request(calls)  # type: ignore[attr-defined]
        if not isinstance(response, list):
            error = response.get("error") or {}
            if rpc_error_is_transient(error):
                raise TransientRpcError(error)
            self.batches = False
            return super()._rpc_batch(calls)
        if len(response) != len(calls):
            raise ChainError(f"{self.url} answered {len(response)} of {len(calls)} batch calls")
        return [dict(r) for r in response]

    def time_travel(self, seconds: int) -> None:
        """``evm_increaseTime`` + ``evm_mine`` (anvil, Hardhat, Ganache). Raises ChainError
        on nodes without these test methods."""
        if seconds < 0:
            raise ValueError("time_travel: seconds must be >= 0")

        def travel() -> Any:
            self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
            return self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

        response = self._guard(travel)
        if isinstance(response, dict) and response.get("error"):
            raise ChainError(f"time_travel not supported by {self.url}: {response['error']}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        provider = self.w3.provider
        session = getattr(provider, "_request_session_manager", None)
        cache = getattr(session, "session_cache", None)
        if cache is not None:
            for _, sess in list(cache.items()):
                sess.close()
            cache.clear()


def open_jsonrpc(url: str, relayer_key: str, timeout_s: float = 30.0) -> JsonRpcChain:
    """Connect to the node at ``url`` (HTTP/HTTPS) and check it answers ``eth_chainId``.

    ``relayer_key``: 0x-hex private key of a funded account. ``timeout_s``: per-request
    HTTP timeout in seconds. Raises ChainUnavailable if the node does not answer.
    """
    return JsonRpcChain(url, relayer_key, timeout_s)
