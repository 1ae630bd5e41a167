"""pytest-benchmark: ``send`` on each backend against the raw py-evm floor (``make bench``).

Compare per-transaction times: ``test_send_increment[embedded]`` / ``test_raw_pyevm_floor``
is the cost of the embedded pipeline (web3, two-run gas estimate, local signing, durable
commit with one fsync) over py-evm's own apply+mine; ``[jsonrpc]`` is anvil over HTTP.
Without ``--benchmark-enable`` each runs once, as a plain test.
"""

from __future__ import annotations

from typing import Any

from chain_node import ChainBackend
from chain_node.bench import raw_pyevm_sender

ROUNDS = 30


def test_send_increment(benchmark: Any, chain: ChainBackend, probe: Any) -> None:
    fn = probe.functions.increment()
    before = chain.call(probe.functions.count())
    benchmark.pedantic(chain.send, args=(fn,), rounds=ROUNDS, warmup_rounds=2)
    sent = chain.call(probe.functions.count()) - before
    assert sent in (1, ROUNDS + 2)  # one call when disabled, rounds + warm-up when enabled


def test_raw_pyevm_floor(benchmark: Any) -> None:
    step = raw_pyevm_sender(ROUNDS + 2)
    benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=2)


BULK = 50


def test_send_many_increment(benchmark: Any, chain: ChainBackend, probe: Any) -> None:
    """One ``send_many`` of BULK increments per round: per-transaction time is the round
    time / BULK, to compare with ``test_send_increment``."""
    fns = [probe.functions.increment()] * BULK
    before = chain.call(probe.functions.count())
    results = benchmark.pedantic(chain.send_many, args=(fns,), rounds=5, warmup_rounds=1)
    assert len(results) == BULK and all(getattr(r, "status", 0) == 1 for r in results)
    sent = chain.call(probe.functions.count()) - before
    assert sent in (BULK, 6 * BULK)  # one call when disabled, rounds + warm-up when enabled
