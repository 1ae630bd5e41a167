"""pytest-benchmark: the EIP-712 fast path and Merkle trees (``make bench``).

Compare per-item times within one run: recovery compiled vs reference vs eth-account vs
coincurve alone (the raw library as Python reaches it) vs the C loop (the library's own
limit); digests compiled vs reference; Merkle appends and proofs compiled vs reference.
``fastpath.eip712.bench()`` prints the same comparisons as ratios.
"""

from __future__ import annotations

from typing import Any

import pytest
from coincurve import PublicKey
from eth_account import Account
from eth_account.messages import encode_typed_data

from authz import typed_data
from fastpath import eip712, merkle

IMPLS = eip712.implementations()
MERKLE_IMPLS = merkle.implementations()
BATCH = 256
DS, MESSAGES, DIGESTS, SIGS = eip712.bench_fixture(BATCH)
SIGNERS = IMPLS["reference"].recover_signers(DIGESTS, SIGS)
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
LEAVES = [merkle.leaf_hash(d) for d in DIGESTS] * 4


@pytest.mark.parametrize("name", sorted(IMPLS))
def test_recover_batch(benchmark: Any, name: str) -> None:
    impl = IMPLS[name]
    assert benchmark(impl.recover_signers, DIGESTS, SIGS) == SIGNERS


@pytest.mark.parametrize("name", sorted(IMPLS))
def test_digest_and_recover_batch(benchmark: Any, name: str) -> None:
    impl = IMPLS[name]

    def run() -> list[str | None]:
        return impl.recover_signers(impl.grant_digests(DS, MESSAGES), SIGS)

    assert benchmark(run) == SIGNERS


def test_eth_account_digest_and_recover_batch(benchmark: Any) -> None:
    def run() -> list[str]:
        return [
            Account.recover_message(
                encode_typed_data(full_message=typed_data.grant_typed_data(31337, REGISTRY, m)),
                signature=s,
            )
            for m, s in zip(MESSAGES, SIGS, strict=True)
        ]

    assert benchmark(run) == SIGNERS


def test_eth_account_recover_batch(benchmark: Any) -> None:
    def run() -> list[str]:
        return [Account._recover_hash(d, signature=s) for d, s in zip(DIGESTS, SIGS, strict=True)]

    assert benchmark(run) == SIGNERS


def test_coincurve_raw_recover_batch(benchmark: Any) -> None:
    recid = [s[:64] + bytes([s[64] - 27]) for s in SIGS]

    def run() -> int:
        for sig, digest in zip(recid, DIGESTS, strict=True):
            PublicKey.from_signature_and_message(sig, digest, hasher=None)
        return len(recid)

    assert benchmark(run) == BATCH


def test_c_loop_raw_recover_batch(benchmark: Any) -> None:
    assert benchmark(IMPLS["compiled"].raw_recover, DIGESTS, SIGS) == BATCH


@pytest.mark.parametrize("name", sorted(IMPLS))
def test_grant_digests_batch(benchmark: Any, name: str) -> None:
    assert benchmark(IMPLS[name].grant_digests, DS, MESSAGES) == DIGESTS


@pytest.mark.parametrize("name", sorted(MERKLE_IMPLS))
def test_merkle_build(benchmark: Any, name: str) -> None:
    tree_type = MERKLE_IMPLS[name].IncrementalTree
    expected = MERKLE_IMPLS["reference"].IncrementalTree(LEAVES).root()
    assert benchmark(lambda: tree_type(LEAVES).root()) == expected


@pytest.mark.parametrize("name", sorted(MERKLE_IMPLS))
def test_merkle_proofs(benchmark: Any, name: str) -> None:
    tree = MERKLE_IMPLS[name].IncrementalTree(LEAVES)
    proofs = benchmark(tree.proofs, range(BATCH))
    assert len(proofs) == BATCH
    assert merkle.verify_proof(tree.root(), LEAVES[BATCH - 1], BATCH - 1, proofs[-1])
