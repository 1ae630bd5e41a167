"""Units of the transaction pipeline without a chain: nonce manager, backoff, fee bumps,
send-error classification."""

from __future__ import annotations

import random
import threading
from fractions import Fraction
from typing import Any

import pytest
import requests
from web3.exceptions import Web3RPCError

from chain_node import ChainRevert, ChainUnavailable
from chain_node.nonces import NonceManager
from chain_node.pipeline import SendOutcome, bump_fees, classify_send_error
from chain_node.retry import (
    Backoff,
    Retrier,
    TransientRpcError,
    is_transient,
    rpc_error_is_transient,
)

# -- NonceManager ----------------------------------------------------------------------


def test_nonces_fetch_once_then_count_locally() -> None:
    calls: list[int] = []

    def fetch() -> int:
        calls.append(1)
        return 7

    nonces = NonceManager(fetch)
    assert not nonces.known
    with nonces:
        assert nonces.peek() == 7
        assert nonces.peek() == 7
        assert nonces.advance(3) == 10
        assert nonces.peek() == 10
    assert len(calls) == 1 and nonces.resyncs == 1
    nonces.resync()
    assert not nonces.known
    assert nonces.peek() == 7  # the node's view again
    assert len(calls) == 2 and nonces.resyncs == 2


def test_nonces_errors() -> None:
    nonces = NonceManager(lambda: 0)
    with pytest.raises(ValueError, match="peek first"):
        nonces.advance(1)
    nonces.peek()
    with pytest.raises(ValueError, match=">= 0"):
        nonces.advance(-1)

    def broken() -> int:
        raise ConnectionError("node down")

    failing = NonceManager(broken)
    with pytest.raises(ConnectionError):
        failing.peek()
    assert not failing.known and failing.resyncs == 0


def test_nonces_concurrent_takers_get_unique_contiguous_nonces() -> None:
    nonces = NonceManager(lambda: 100)
    threads, per_thread = 16, 250
    taken: list[list[int]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def work(slot: int) -> None:
        barrier.wait()
        for k in range(per_thread):
            with nonces:
                count = 1 + (k % 3)  # mix single sends and small batches
                first = nonces.peek()
                taken[slot].extend(range(first, first + count))
                nonces.advance(count)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    everything = sorted(n for part in taken for n in part)
    assert everything == list(range(100, 100 + len(everything)))
    assert len(everything) == threads * sum(1 + (k % 3) for k in range(per_thread))
    assert nonces.resyncs == 1
    for part in taken:  # each thread saw its own nonces in increasing order
        assert part == sorted(part)


# -- Backoff and Retrier ---------------------------------------------------------------


class FakeClock:
    """A clock that only moves when the retrier sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _flaky(failures: list[BaseException], value: str = "ok") -> Any:
    calls = {"n": 0}

    def thunk() -> str:
        calls["n"] += 1
        if failures:
            raise failures.pop(0)
        return value

    thunk.calls = calls  # type: ignore[attr-defined]
    return thunk


def _retrier(backoff: Backoff, clock: FakeClock, seed: int = 1) -> Retrier:
    return Retrier(backoff, sleep=clock.sleep, clock=clock, rng=random.Random(seed))


def test_backoff_grows_exponentially_with_jitter_and_cap() -> None:
    backoff = Backoff(attempts=10, base_s=0.1, factor=2.0, cap_s=1.0, max_elapsed_s=100)
    assert [backoff.nominal_s(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    clock = FakeClock()
    retrier = _retrier(backoff, clock)
    thunk = _flaky([requests.exceptions.ConnectionError("refused")] * 6)
    assert retrier.run(thunk) == "ok"
    assert thunk.calls["n"] == 7
    assert len(clock.slept) == 6 and list(retrier.sleeps) == clock.slept
    assert retrier.retries == 6
    for n, slept in enumerate(clock.slept):
        nominal = backoff.nominal_s(n)
        assert nominal / 2 <= slept <= nominal
    # jitter: two seeds give different schedules, the same seed the same one
    other, again = FakeClock(), FakeClock()
    _retrier(backoff, other, seed=2).run(_flaky([ConnectionError()] * 6))
    _retrier(backoff, again, seed=1).run(_flaky([ConnectionError()] * 6))
    assert other.slept != clock.slept
    assert again.slept == clock.slept


def test_retrier_gives_up_after_attempts_and_reraises_last() -> None:
    clock = FakeClock()
    retrier = _retrier(Backoff(attempts=3, base_s=0.1, max_elapsed_s=100), clock)
    errors = [ConnectionError("one"), ConnectionError("two"), ConnectionError("three")]
    thunk = _flaky(list(errors))
    with pytest.raises(ConnectionError, match="three"):
        retrier.run(thunk)
    assert thunk.calls["n"] == 3
    assert len(clock.slept) == 2


def test_retrier_stops_at_max_elapsed() -> None:
    clock = FakeClock()
    backoff = Backoff(attempts=100, base_s=1.0, factor=2.0, cap_s=8.0, max_elapsed_s=5.0)
    thunk = _flaky([ConnectionError()] * 100)
    with pytest.raises(ConnectionError):
        _retrier(backoff, clock).run(thunk)
    assert sum(clock.slept) <= 5.0
    # waits nominal 1, 2: the third (nominal 4, >= 2 s) would end past 5 s
    assert len(clock.slept) == 2


def test_retrier_never_retries_reverts_or_other_errors() -> None:
    for exc in (ChainRevert("ProbeRefused"), ValueError("bad"), KeyError("x")):
        clock = FakeClock()
        thunk = _flaky([exc])
        with pytest.raises(type(exc)):
            _retrier(Backoff(), clock).run(thunk)
        assert thunk.calls["n"] == 1 and clock.slept == []


def test_per_call_predicate_replaces_the_default() -> None:
    clock = FakeClock()
    retrier = _retrier(Backoff(attempts=4, base_s=0.01), clock)
    thunk = _flaky([ValueError("busy"), ValueError("busy")])
    assert retrier.run(thunk, transient=lambda exc: isinstance(exc, ValueError)) == "ok"
    assert len(clock.slept) == 2
    with pytest.raises(ConnectionError):  # transient by default, not for this call
        retrier.run(_flaky([ConnectionError()]), transient=lambda exc: False)
    assert len(clock.slept) == 2


def _http_error(status: int, retry_after: str | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return requests.HTTPError(f"{status}", response=response)


def test_retry_after_header_raises_the_wait_within_the_cap() -> None:
    clock = FakeClock()
    backoff = Backoff(attempts=5, base_s=0.01, cap_s=3.0, max_elapsed_s=100)
    thunk = _flaky([_http_error(429, "2"), _http_error(503, "60")])
    assert _retrier(backoff, clock).run(thunk) == "ok"
    assert clock.slept == [2.0, 3.0]  # the hint, then the hint capped at cap_s


def test_transient_classification() -> None:
    assert is_transient(requests.exceptions.ConnectionError())
    assert is_transient(requests.exceptions.ReadTimeout())
    assert not is_transient(ChainUnavailable("gone"))  # final: never retried twice
    assert is_transient(TransientRpcError({"code": -32005, "message": "limit exceeded"}))
    for status in (429, 502, 503, 504):
        assert is_transient(_http_error(status))
    for status in (400, 401, 404, 500):
        assert not is_transient(_http_error(status))
    rate = Web3RPCError("x", rpc_response={"error": {"code": -32005, "message": "slow down"}})
    assert is_transient(rate)
    nonce = Web3RPCError("x", rpc_response={"error": {"code": -32000, "message": "nonce too low"}})
    assert not is_transient(nonce)
    assert not is_transient(ChainRevert("Error", ("no",)))
    assert rpc_error_is_transient({"code": -32005, "message": "request limit reached"})
    assert rpc_error_is_transient({"code": -32000, "message": "Too Many Requests"})
    assert rpc_error_is_transient({"code": 429, "message": "rate limit exceeded"})
    assert not rpc_error_is_transient({"code": 3, "message": "execution reverted"})
    assert not rpc_error_is_transient({"code": -32005, "message": "execution reverted: limit"})
    assert not rpc_error_is_transient({"code": -32000, "message": "insufficient funds"})


# -- fees and send errors ----------------------------------------------------------------


def test_bump_fees_by_an_eighth_rounded_up() -> None:
    previous = {"maxFeePerGas": 1000, "maxPriorityFeePerGas": 8, "type": 2, "nonce": 4}
    bumped = bump_fees(previous, {"maxFeePerGas": 500, "maxPriorityFeePerGas": 1})
    assert bumped == {"maxFeePerGas": 1125, "maxPriorityFeePerGas": 9}
    odd = bump_fees({"maxFeePerGas": 1001, "maxPriorityFeePerGas": 1}, {})
    assert odd == {"maxFeePerGas": 1127, "maxPriorityFeePerGas": 2}  # ceil, and >= +1 wei
    for fee in (1, 7, 8, 9, 10**9 + 1, 3 * 10**10 + 7):
        new = bump_fees({"maxFeePerGas": fee, "maxPriorityFeePerGas": fee}, {})
        assert Fraction(new["maxFeePerGas"], fee) >= Fraction(9, 8)
        assert new["maxFeePerGas"] * 8 < fee * 9 + 8 + 8  # the smallest such value


def test_bump_fees_follows_a_higher_market_and_keeps_cap_above_tip() -> None:
    market = {"maxFeePerGas": 5000, "maxPriorityFeePerGas": 3000}
    assert bump_fees({"maxFeePerGas": 1000, "maxPriorityFeePerGas": 8}, market) == market
    crossed = bump_fees(
        {"maxFeePerGas": 10, "maxPriorityFeePerGas": 8}, {"maxPriorityFeePerGas": 50}
    )
    assert crossed == {"maxFeePerGas": 50, "maxPriorityFeePerGas": 50}
    assert bump_fees({"gasPrice": 800}, {"gasPrice": 10}) == {"gasPrice": 900}


@pytest.mark.parametrize(
    ("message", "outcome"),
    [
        ("already known", SendOutcome.ACCEPTED),  # geth
        ("transaction already imported", SendOutcome.ACCEPTED),  # reth / anvil
        ("Known transaction (abc)", SendOutcome.ACCEPTED),  # besu
        ("nonce too low: next nonce 5, tx nonce 3", SendOutcome.NONCE_LOW),  # geth
        ("nonce too low", SendOutcome.NONCE_LOW),  # anvil
        ("OldNonce, Current nonce: 9, nonce of rejected tx: 3", SendOutcome.NONCE_LOW),  # nm
        ("replacement transaction underpriced", SendOutcome.UNDERPRICED),
        ("transaction underpriced", SendOutcome.UNDERPRICED),
        ("insufficient funds for gas * price + value", SendOutcome.FAILED),
        ("intrinsic gas too low", SendOutcome.FAILED),
    ],
)
def test_classify_send_error(message: str, outcome: str) -> None:
    assert classify_send_error({"code": -32000, "message": message}) == outcome
    assert classify_send_error(message) == outcome
