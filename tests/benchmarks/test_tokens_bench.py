"""pytest-benchmark: QR token verifiers against the raw library rates (``make bench``).

Each round verifies one batch of 64 fresh codes with a fresh verifier (so replay
protection does not turn round two into rejections). Compare the per-code times:
sc1 fast vs ed25519 raw, hc1 fast vs p256 raw and vs the python-cwt pipeline.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from fastpath.tokens import bench, implementations
from fastpath.tokens.trust import TrustList

IMPLS = implementations()
NOW = int(time.time())
BATCH = 64
SC1_TRUST, SC1_CODES, DEVICE = bench.sc1_fixture(BATCH, NOW)
HC1_SIGNER, HC1_CODES = bench.hc1_fixture(BATCH, NOW)
HC1_TRUST = TrustList([HC1_SIGNER.trust_key()])


def _all_valid(results: list[Any]) -> int:
    assert all(r.valid for r in results), [r.reason for r in results if not r.valid][:3]
    return len(results)


@pytest.mark.parametrize("name", sorted(IMPLS))
def test_sc1_warm_batch(benchmark: Any, name: str) -> None:
    module = IMPLS[name]

    def run() -> int:
        verifier = module.Verifier(SC1_TRUST, replay_capacity=1024)
        return _all_valid(verifier.verify_batch(SC1_CODES, NOW))

    assert benchmark(run) == BATCH


@pytest.mark.parametrize("name", sorted(IMPLS))
def test_hc1_batch(benchmark: Any, name: str) -> None:
    verifier = IMPLS[name].Verifier(HC1_TRUST, profile="dcc")
    assert benchmark(lambda: _all_valid(verifier.verify_batch(HC1_CODES, NOW))) == BATCH


def test_ed25519_raw_batch(benchmark: Any) -> None:
    items = bench.ed25519_items(SC1_CODES, DEVICE)
    assert benchmark(IMPLS["compiled"].raw_ed25519_verify, items) == BATCH


def test_hc1_cwt_pipeline_batch(benchmark: Any) -> None:
    assert benchmark(bench.cwt_pipeline, bench.cwt_key(HC1_SIGNER), HC1_CODES) == BATCH


def test_p256_raw_batch(benchmark: Any) -> None:
    items = bench.p256_items(HC1_SIGNER, HC1_CODES)
    assert benchmark(bench.p256_raw, HC1_SIGNER.private.public_key(), items) == BATCH
