"""Merkle trees of docs/anchoring.md on both implementations.

Known roots are recomputed here straight from the document's formulas with eth-utils'
keccak (not through the code under test); both implementations must give the same roots,
proofs and serialized state, and every proof must verify.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any

import pytest
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from fastpath import merkle
from fastpath.errors import StatusListError
from fastpath.merkle import MerkleError

IMPLS = merkle.implementations()
if not os.environ.get("CONSENTGATE_NO_EXTENSIONS") and "compiled" not in IMPLS:
    raise RuntimeError("fastpath._eip712 is not built: run `make install`")


@pytest.fixture(params=sorted(IMPLS))
def impl(request: pytest.FixtureRequest) -> Any:
    """A Merkle implementation (reference namespace or the compiled module)."""
    return IMPLS[request.param]


# the document's formulas, written out independently
def H(data: bytes) -> bytes:
    return keccak(data)


def leaf(data: bytes) -> bytes:
    return H(b"\x00" + data)


def node(left: bytes, right: bytes) -> bytes:
    return H(b"\x01" + left + right)


ZERO = [bytes(32)]
for _ in range(32):
    ZERO.append(node(ZERO[-1], ZERO[-1]))


def lift(subtree_root: bytes, height: int) -> bytes:
    """Root of a tree whose only non-empty subtree (the leftmost) has this height."""
    for k in range(height, 32):
        subtree_root = node(subtree_root, ZERO[k])
    return subtree_root


LEAVES = [leaf(i.to_bytes(2, "big")) for i in range(300)]


def test_hash_primitives(impl: Any) -> None:
    assert impl.leaf_hash(b"abc") == H(b"\x00abc")
    assert impl.leaf_hash(b"") == H(b"\x00")
    assert impl.node_hash(LEAVES[0], LEAVES[1]) == H(b"\x01" + LEAVES[0] + LEAVES[1])
    assert impl.leaf_hash(LEAVES[0] + LEAVES[1]) != impl.node_hash(LEAVES[0], LEAVES[1])
    assert list(merkle.ZERO_HASHES) == ZERO and len(merkle.ZERO_HASHES) == 33
    with pytest.raises(MerkleError):
        impl.node_hash(LEAVES[0], LEAVES[1][:31])


def test_known_small_roots(impl: Any) -> None:
    a, b, c, d, e = LEAVES[:5]
    tree = impl.IncrementalTree()
    assert tree.size == 0 and tree.root() == ZERO[32]
    assert tree.append(a) == 0
    assert tree.root() == lift(a, 0)
    tree.append(b)
    assert tree.root() == lift(node(a, b), 1)
    tree.append(c)
    assert tree.root() == lift(node(node(a, b), node(c, ZERO[0])), 2)
    tree.append(d)
    four = node(node(a, b), node(c, d))
    assert tree.root() == lift(four, 2)
    tree.append(e)
    right = node(node(e, ZERO[0]), ZERO[1])
    assert tree.root() == lift(node(four, right), 3)
    assert tree.size == len(tree) == 5
    # the root does not mix in the size: a zero leaf appended looks like an empty slot
    zero_leaf_tree = impl.IncrementalTree([a, bytes(32)])
    assert zero_leaf_tree.root() == impl.IncrementalTree([a]).root()


def test_proof_by_hand(impl: Any) -> None:
    a, b, c = LEAVES[:3]
    tree = impl.IncrementalTree([a, b, c])
    proof = tree.proof(2)
    assert proof[0] == ZERO[0]
    assert proof[1] == node(a, b)
    assert proof[2:] == ZERO[2:32]
    assert len(proof) == 32
    assert tree.proof(0)[:2] == [b, node(c, ZERO[0])]


SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 64, 100, 255, 256, 257, 300]


@pytest.mark.parametrize("size", SIZES)
def test_implementations_agree_and_proofs_verify(size: int) -> None:
    trees = {name: impl.IncrementalTree(LEAVES[:size]) for name, impl in IMPLS.items()}
    roots = {name: t.root() for name, t in trees.items()}
    assert len(set(roots.values())) == 1
    proofs = {name: t.proofs(range(size)) for name, t in trees.items()}
    assert len({json.dumps([[p.hex() for p in ps] for ps in v]) for v in proofs.values()}) == 1
    states = {t.to_bytes() for t in trees.values()}
    assert len(states) == 1
    root = next(iter(roots.values()))
    for impl in IMPLS.values():
        for i, proof in enumerate(next(iter(proofs.values()))):
            assert impl.verify_proof(root, LEAVES[i], i, proof)


def test_proofs_fail_when_tampered(impl: Any) -> None:
    tree = impl.IncrementalTree(LEAVES[:11])
    root, proof = tree.root(), tree.proof(6)
    assert impl.verify_proof(root, LEAVES[6], 6, proof)
    assert not impl.verify_proof(root, LEAVES[7], 6, proof)
    assert not impl.verify_proof(root, LEAVES[6], 7, proof)
    assert not impl.verify_proof(root, LEAVES[6], 6 + 2**20, proof)
    bad = list(proof)
    bad[3] = bytes(32)
    assert not impl.verify_proof(root, LEAVES[6], 6, bad)
    assert not impl.verify_proof(root, LEAVES[6], 6, proof[:31])
    assert not impl.verify_proof(root, LEAVES[6], 6, [*proof[:31], b"short"])
    assert not impl.verify_proof(root, LEAVES[6], -1, proof)
    assert not impl.verify_proof(root, LEAVES[6], 2**32, proof)
    assert not impl.verify_proof(root, LEAVES[6], True, proof)
    assert not impl.verify_proof(root[:31], LEAVES[6], 6, proof)
    # an inner node is not a leaf: the prefixes keep them apart
    inner = node(LEAVES[6], LEAVES[7])
    assert not impl.verify_proof(root, inner, 3, [*tree.proof(6)[1:], ZERO[31]])


def test_append_extend_and_state(impl: Any) -> None:
    one = impl.IncrementalTree()
    for i, x in enumerate(LEAVES[:70]):
        assert one.append(x) == i
    other = impl.IncrementalTree(LEAVES[:30])
    other.extend(LEAVES[30:70])
    assert one.root() == other.root()
    assert one.leaf(69) == LEAVES[69]
    state = one.to_bytes()
    assert state[:5] == merkle.STATE_MAGIC and state[5] == 32
    assert int.from_bytes(state[6:14], "big") == 70 and len(state) == 14 + 70 * 32
    again = impl.IncrementalTree.from_bytes(state)
    assert again.root() == one.root() and again.size == 70
    for broken in (b"", state[:-1], b"XXXX" + state[4:], state[:5] + b"\x10" + state[6:]):
        with pytest.raises(MerkleError):
            impl.IncrementalTree.from_bytes(broken)


def test_bad_leaves_and_indexes(impl: Any) -> None:
    tree = impl.IncrementalTree(LEAVES[:3])
    for bad in (b"short", LEAVES[0] + b"x", "0x" + "00" * 32, None):
        with pytest.raises(MerkleError):
            tree.append(bad)
    with pytest.raises(MerkleError):
        tree.extend([LEAVES[3], b"bad"])
    assert tree.size == 3  # extend checks every leaf before appending any
    for index in (-1, 3, True, "0"):
        with pytest.raises(MerkleError):
            tree.proof(index)
    with pytest.raises(MerkleError):
        tree.update(3, LEAVES[0])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 140), st.lists(st.tuples(st.integers(0, 139), st.integers(0, 299))))
def test_update_equals_rebuild(size: int, changes: list[tuple[int, int]]) -> None:
    leaves = list(LEAVES[:size])
    trees = [impl.IncrementalTree(leaves) for impl in IMPLS.values()]
    for index, value in changes:
        if index >= size:
            continue
        leaves[index] = LEAVES[value]
        for tree in trees:
            tree.update(index, LEAVES[value])
    expected = merkle.REFERENCE.IncrementalTree(leaves).root()
    assert {t.root() for t in trees} == {expected}


def test_consent_and_audit_leaves(impl: Any) -> None:
    digest, sig = bytes(range(32)), bytes(range(65))
    assert merkle.consent_leaf(digest, sig, impl=impl) == H(b"\x00" + digest + H(sig))
    with pytest.raises(MerkleError):
        merkle.consent_leaf(digest, sig[:64], impl=impl)
    with pytest.raises(MerkleError):
        merkle.consent_leaf(digest[:31], sig, impl=impl)
    event = {"kind": "access", "allowed": True, "purpose": "贷款", "at": 1}
    canonical = '{"allowed":true,"at":1,"kind":"access","purpose":"贷款"}'.encode()
    assert merkle.audit_leaf(event, impl=impl) == H(b"\x00" + H(canonical))
    assert merkle.status_leaf(bytes(32), impl=impl) == H(b"\x00" + bytes(32))


# ---- status list --------------------------------------------------------------------------


def test_status_bits_msb_first(impl: Any) -> None:
    status = merkle.StatusList(600, impl=impl)
    assert status.words == 3 and status.count == 600
    for i in (0, 7, 8, 255, 256, 599):
        status.set(i)
    w0, w1 = status.word(0), status.word(1)
    assert w0[0] == 0x81 and w0[1] == 0x80 and w0[31] == 0x01
    assert w1[0] == 0x80
    for i in range(600):
        word = int.from_bytes(status.word(i // 256), "big")
        assert ((word >> (255 - i % 256)) & 1) == status.get(i) == (i in (0, 7, 8, 255, 256, 599))
    assert status.set(1) and not status.set(1)  # True only when the bit was 0
    with pytest.raises(IndexError):
        status.set(600)
    with pytest.raises(IndexError):
        status.get(-1)


def test_status_set_word_only_sets(impl: Any) -> None:
    status = merkle.StatusList(512, impl=impl)
    status.set(3)
    replay = merkle.StatusList(512, impl=impl)
    replay.set_word(0, status.word(0))
    assert replay.root() == status.root() and replay.get(3)
    with pytest.raises(MerkleError, match="clear"):
        replay.set_word(0, bytes(32))
    with pytest.raises(MerkleError):
        replay.set_word(2, bytes(32))
    with pytest.raises(MerkleError):
        replay.set_word(1, bytes(31))
    replay.set_word(1, b"\x01" + bytes(31))
    assert replay.get(263) and replay.root() != status.root()


def test_status_root_and_proofs(impl: Any) -> None:
    status = merkle.StatusList(700, impl=impl)  # ceil(700 / 256) = 3 words
    assert status.words == 3
    empty = lift(node(node(leaf(bytes(32)), leaf(bytes(32))), node(leaf(bytes(32)), ZERO[0])), 2)
    assert status.root() == empty  # never-written words are leaf(0^32), not empty slots
    status.set(513)
    words = [status.word(w) for w in range(status.words)]
    assert words[2][0] == 0x40
    expected = lift(node(node(leaf(words[0]), leaf(words[1])), node(leaf(words[2]), ZERO[0])), 2)
    assert status.root() == expected
    proof = status.proof(2)
    assert impl.verify_proof(status.root(), leaf(words[2]), 2, proof)
    old_root, old_proof = status.root(), proof
    status.set(514)
    assert not impl.verify_proof(status.root(), leaf(words[2]), 2, old_proof)
    assert impl.verify_proof(old_root, leaf(words[2]), 2, old_proof)


def test_status_resize_and_encoding(impl: Any) -> None:
    status = merkle.StatusList(impl=impl)
    assert status.words == 0 and status.root() == ZERO[32]
    status.resize(1)
    assert status.words == 1
    status.resize(257)
    status.set(256)
    with pytest.raises(MerkleError):
        status.resize(10)
    encoded = status.encode()
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    raw = gzip.decompress(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert raw == status.bitstring() and len(raw) == 64 and raw[32] == 0x80
    for other in IMPLS.values():
        back = merkle.StatusList.decode(encoded, 257, impl=other)
        assert back.root() == status.root() and back.get(256) and back.count == 257
    assert merkle.StatusList.decode(encoded, impl=impl).count == 512
    with pytest.raises(MerkleError):
        merkle.StatusList.decode(encoded, 600, impl=impl)
    with pytest.raises(StatusListError):
        merkle.StatusList.decode("AAAA", impl=impl)


def test_status_lists_agree() -> None:
    lists = [merkle.StatusList(3000, impl=impl) for impl in IMPLS.values()]
    for i in range(0, 3000, 37):
        for s in lists:
            s.set(i)
    assert len({s.root() for s in lists}) == 1
    assert len({tuple(s.proof(5)) for s in lists}) == 1
    assert lists[0].proofs([5, 11]) == [lists[-1].proof(5), lists[-1].proof(11)]
    with pytest.raises(MerkleError):
        lists[0].proof(12)  # ceil(3000 / 256) = 12 words: 0..11
