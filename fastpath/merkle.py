"""The Merkle trees of docs/anchoring.md: consent receipts, withdrawal status, audit log.

``H`` is keccak-256; leaves and inner nodes are hashed under different one-byte prefixes
(second-preimage protection, as RFC 6962 §2.1 does with 0x00/0x01)::

    leaf(data)        = H(0x00 || data)
    node(left, right) = H(0x01 || left || right)

Every tree is an append-only binary tree of fixed depth 32 (the eth2 deposit contract's
shape): ``zero[0]`` is 32 zero bytes, ``zero[k+1] = node(zero[k], zero[k])``, the root is
the node at depth 32 over leaves ``0..n-1`` with empty slots filled by ``zero[k]``. A
proof for index ``i`` is the 32 sibling hashes from the leaf level up; bit ``k`` of ``i``
says whether the running hash is the right child (1) or the left (0) at level ``k``.
Roots do not mix in the size.

One API, two implementations: the compiled ``fastpath._eip712`` (its keccak is
pycryptodome's C code, the same one the EIP-712 fast path uses) when it was built, else
the pure-Python reference here (eth-hash). ``CONSENTGATE_PUREPYTHON=1`` forces the
reference. :class:`StatusList` is one class over the selected tree.

Use::

    from fastpath import merkle

    tree = merkle.IncrementalTree()
    i = tree.append(merkle.consent_leaf(grant_digest, signature))
    root, proof = tree.root(), tree.proof(i)
    assert merkle.verify_proof(root, merkle.consent_leaf(grant_digest, signature), i, proof)

    status = merkle.StatusList(count=tree.size)        # one bit per consent
    status.set(i)                                      # consent i withdrawn
    word, wproof = status.word(i // 256), status.proof(i // 256)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from eth_utils import keccak as _eth_keccak

from fastpath import eip712
from fastpath.errors import FastpathError
from fastpath.tokens.status import StatusList as _Bitstring

DEPTH = 32
CAPACITY = 1 << DEPTH
WORD_BITS = 256
STATE_MAGIC = b"CGMT\x01"
"""Prefix of :meth:`IncrementalTree.to_bytes`: magic, version 1, then depth (1 byte),
size (8 bytes, big-endian) and the leaves (32 bytes each, in index order)."""

__all__ = [
    "CAPACITY",
    "DEPTH",
    "IMPLEMENTATION",
    "ZERO_HASHES",
    "IncrementalTree",
    "MerkleError",
    "StatusList",
    "audit_leaf",
    "consent_leaf",
    "implementations",
    "leaf_hash",
    "node_hash",
    "status_leaf",
    "verify_proof",
]


class MerkleError(FastpathError, ValueError):
    """A leaf, index, proof or serialized tree is not of the accepted form."""

    code = "merkle_invalid"


# ---- reference implementation ---------------------------------------------------------


def _leaf_hash(data: bytes) -> bytes:
    """``H(0x00 || data)`` for any bytes-like ``data`` (docs/anchoring.md)."""
    return _eth_keccak(b"\x00" + memoryview(data).tobytes())


def _hash32(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise MerkleError(f"{what} must be 32 bytes")
    return value


def _node_hash(left: bytes, right: bytes) -> bytes:
    """``H(0x01 || left || right)``; both must be 32 bytes (else :class:`MerkleError`)."""
    return _eth_keccak(b"\x01" + _hash32(left, "left") + _hash32(right, "right"))


def _zero_hashes() -> tuple[bytes, ...]:
    zeros = [bytes(32)]
    for _ in range(DEPTH):
        zeros.append(_node_hash(zeros[-1], zeros[-1]))
    return tuple(zeros)


ZERO_HASHES: tuple[bytes, ...] = _zero_hashes()
"""``zero[0..32]``: the root of an empty subtree of height k (33 entries)."""


def _check_index(index: Any, size: int) -> int:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise MerkleError(f"index {index!r} out of range (size {size})")
    return index


class _ReferenceTree:
    """Append-only depth-32 tree; ``levels[k]`` holds its complete nodes at height k."""

    IMPLEMENTATION = "reference"

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[] for _ in range(DEPTH + 1)]
        self.extend(leaves)

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def append(self, leaf: bytes) -> int:
        """Append a 32-byte leaf hash; return its index. :class:`MerkleError` when full."""
        leaf = _hash32(leaf, "a leaf")
        index = self.size
        if index >= CAPACITY:
            raise MerkleError("the tree is full (2^32 leaves)")
        self._levels[0].append(leaf)
        j, k = index, 0
        while j & 1:
            level = self._levels[k]
            self._levels[k + 1].append(_node_hash(level[j - 1], level[j]))
            j >>= 1
            k += 1
        return index

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append each leaf in order (all checked before any is appended)."""
        checked = [_hash32(leaf, "a leaf") for leaf in leaves]
        if self.size + len(checked) > CAPACITY:
            raise MerkleError("the tree is full (2^32 leaves)")
        for leaf in checked:
            self.append(leaf)

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        return self._levels[0][_check_index(index, self.size)]

    def update(self, index: int, leaf: bytes) -> None:
        """Replace leaf ``index`` (the status tree's words change; the others never do)."""
        _check_index(index, self.size)
        self._levels[0][index] = _hash32(leaf, "a leaf")
        j, k = index, 0
        while (j | 1) < len(self._levels[k]):
            level = self._levels[k]
            self._levels[k + 1][j >> 1] = _node_hash(level[j & ~1], level[j | 1])
            j >>= 1
            k += 1

    def _edges(self) -> list[bytes | None]:
        """The incomplete node at each height (index ``size >> k``), or None if none."""
        edges: list[bytes | None] = [None] * (DEPTH + 1)
        n = self.size
        for k in range(DEPTH):
            j = n >> k
            edge = edges[k]
            if j & 1:
                right = edge if edge is not None else ZERO_HASHES[k]
                edges[k + 1] = _node_hash(self._levels[k][j - 1], right)
            elif edge is not None:
                edges[k + 1] = _node_hash(edge, ZERO_HASHES[k])
        return edges

    def root(self) -> bytes:
        """The root over all 2^32 slots (32 bytes)."""
        if self.size == CAPACITY:
            return self._levels[DEPTH][0]
        top = self._edges()[DEPTH]
        return top if top is not None else ZERO_HASHES[DEPTH]

    def proof(self, index: int) -> list[bytes]:
        """The 32 sibling hashes of leaf ``index``, leaf level first."""
        return self.proofs([index])[0]

    def proofs(self, indexes: Sequence[int]) -> list[list[bytes]]:
        """:meth:`proof` of each index (the tree's right edge is computed once)."""
        n = self.size
        for index in indexes:
            _check_index(index, n)
        edges = self._edges()
        out = []
        for index in indexes:
            path = []
            for k in range(DEPTH):
                sibling = (index >> k) ^ 1
                level = self._levels[k]
                if sibling < len(level):
                    path.append(level[sibling])
                else:
                    edge = edges[k] if sibling == n >> k else None
                    path.append(edge if edge is not None else ZERO_HASHES[k])
            out.append(path)
        return out

    def to_bytes(self) -> bytes:
        """The persistable state: :data:`STATE_MAGIC`, depth, size, leaves."""
        n = self.size
        return STATE_MAGIC + bytes([DEPTH]) + n.to_bytes(8, "big") + b"".join(self._levels[0])

    @classmethod
    def from_bytes(cls, state: bytes) -> _ReferenceTree:
        """Rebuild a tree from :meth:`to_bytes`; :class:`MerkleError` when malformed."""
        return cls(_state_leaves(state))


def _state_leaves(state: bytes) -> list[bytes]:
    head = len(STATE_MAGIC) + 9
    if not isinstance(state, bytes) or state[: len(STATE_MAGIC)] != STATE_MAGIC:
        raise MerkleError("not a serialized consentgate Merkle tree")
    if len(state) < head or state[len(STATE_MAGIC)] != DEPTH:
        raise MerkleError("serialized tree: bad header")
    n = int.from_bytes(state[len(STATE_MAGIC) + 1 : head], "big")
    if n > CAPACITY or len(state) != head + 32 * n:
        raise MerkleError("serialized tree: size does not match the leaves")
    return [state[head + 32 * i : head + 32 * i + 32] for i in range(n)]


def _verify_proof(root: bytes, leaf: bytes, index: int, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` (32 siblings) places ``leaf`` at ``index`` under ``root``.

    False for a proof of the wrong shape or an index outside ``0 .. 2^32 - 1``.
    """
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < CAPACITY:
        return False
    if not isinstance(root, bytes) or not isinstance(leaf, bytes) or len(proof) != DEPTH:
        return False
    if len(root) != 32 or len(leaf) != 32:
        return False
    running = leaf
    for k, sibling in enumerate(proof):
        if not isinstance(sibling, bytes) or len(sibling) != 32:
            return False
        left, right = (sibling, running) if (index >> k) & 1 else (running, sibling)
        running = _node_hash(left, right)
    return running == root


REFERENCE = SimpleNamespace(
    IMPLEMENTATION="reference",
    keccak256=eip712.REFERENCE.keccak256,
    leaf_hash=_leaf_hash,
    node_hash=_node_hash,
    verify_proof=_verify_proof,
    IncrementalTree=_ReferenceTree,
)
"""The pure-Python implementation, with the Merkle attributes of ``fastpath._eip712``."""


def implementations() -> dict[str, Any]:
    """Every available implementation by name ("reference", "compiled")."""
    return eip712.implementations(REFERENCE)


_impl = eip712.selected(REFERENCE)

IMPLEMENTATION: str = _impl.IMPLEMENTATION
leaf_hash: Callable[[bytes], bytes] = _impl.leaf_hash
node_hash: Callable[[bytes, bytes], bytes] = _impl.node_hash
verify_proof: Callable[[bytes, bytes, int, Sequence[bytes]], bool] = _impl.verify_proof
IncrementalTree: Any = _impl.IncrementalTree
"""The depth-32 append-only tree of the selected implementation. ``IncrementalTree(
leaves=())``; ``append(leaf) -> index``; ``extend(leaves)``; ``size``; ``leaf(i)``;
``update(i, leaf)``; ``root()``; ``proof(i)`` / ``proofs(indexes)`` (32 siblings each);
``to_bytes()`` / ``from_bytes(state)``. Leaves are 32-byte hashes (``leaf_hash(...)``);
errors are :class:`MerkleError`."""


# ---- leaves of the three trees (docs/anchoring.md) ------------------------------------


def consent_leaf(grant_digest: bytes, signature: bytes, *, impl: Any = None) -> bytes:
    """``leaf(grant_digest || H(signature))``: a consent receipt's leaf (32 bytes).

    ``grant_digest``: the 32-byte EIP-712 Grant digest (the consent id); ``signature``:
    the citizen's 65-byte ``r || s || v``. Raises :class:`MerkleError` on other lengths.
    """
    lib = impl or _impl
    if not isinstance(signature, bytes) or len(signature) != 65:
        raise MerkleError("a consent signature must be 65 bytes (r || s || v)")
    digest = _hash32(grant_digest, "grant_digest")
    return bytes(lib.leaf_hash(digest + lib.keccak256(signature)))


def status_leaf(word: bytes, *, impl: Any = None) -> bytes:
    """``leaf(word)`` of a 32-byte status word."""
    return bytes((impl or _impl).leaf_hash(_hash32(word, "a status word")))


def audit_leaf(event: Mapping[str, Any], *, impl: Any = None) -> bytes:
    """``leaf(H(canonical JSON of event))``: UTF-8, sorted keys, no spaces."""
    text = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    lib = impl or _impl
    return bytes(lib.leaf_hash(lib.keccak256(text.encode("utf-8"))))


# ---- status list ----------------------------------------------------------------------


class StatusList:
    """The withdrawal bitstring and its Merkle tree over 32-byte words.

    Bit ``i`` is 1 when consent ``i`` is withdrawn; word ``w`` holds bits ``256*w ..
    256*w + 255``, most significant bit first (W3C Bitstring Status List order). The tree
    has ``ceil(count / 256)`` leaves ``leaf(word_w)``, never-written words included.
    ``count`` is the number of consents covered; it only grows (:meth:`resize`).
    ``impl``: an implementation from :func:`implementations` (default: the selected one).
    """

    def __init__(self, count: int = 0, *, impl: Any = None) -> None:
        self._impl = impl or _impl
        self._bits = bytearray()
        self._count = 0
        self._tree = self._impl.IncrementalTree()
        self._dirty: set[int] = set()
        self.resize(count)

    @property
    def count(self) -> int:
        """Number of consents (bits) covered."""
        return self._count

    @property
    def words(self) -> int:
        """Number of 32-byte words, which is the status tree's size."""
        return len(self._bits) // 32

    def resize(self, count: int) -> None:
        """Cover ``count`` consents (new bits 0). :class:`MerkleError` when it shrinks."""
        if not isinstance(count, int) or count < self._count or count > CAPACITY * WORD_BITS:
            raise MerkleError(f"the status list cannot go from {self._count} to {count}")
        new_words = -(-count // WORD_BITS) - self.words
        if new_words:
            self._bits.extend(bytes(32 * new_words))
            zero_leaf = self._impl.leaf_hash(bytes(32))
            self._tree.extend([zero_leaf] * new_words)
        self._count = count

    def set(self, index: int) -> bool:
        """Mark consent ``index`` withdrawn; return whether the bit was 0 before.

        A withdrawal is final: bits only go from 0 to 1 (an auditor refuses a batch that
        clears one, docs/anchoring.md), so there is no way to clear a bit. IndexError
        outside ``0 .. count - 1``.
        """
        if not 0 <= index < self._count:
            raise IndexError(index)
        mask = 0x80 >> (index % 8)
        if self._bits[index // 8] & mask:
            return False
        self._bits[index // 8] |= mask
        self._dirty.add(index // WORD_BITS)
        return True

    def set_word(self, w: int, word: bytes) -> None:
        """Replace word ``w`` by a published one (replaying a batch file's changed words).

        Raises :class:`MerkleError` when ``word`` is not 32 bytes, ``w`` is outside the
        list, or ``word`` would clear a bit that is set (a withdrawal cannot be undone).
        """
        _check_index(w, self.words)
        new = int.from_bytes(_hash32(word, "a status word"), "big")
        old = int.from_bytes(self.word(w), "big")
        if new & old != old:
            raise MerkleError(f"status word {w} would clear a withdrawal bit")
        if new != old:
            self._bits[32 * w : 32 * w + 32] = word
            self._dirty.add(w)

    def get(self, index: int) -> bool:
        """Bit ``index``: whether consent ``index`` is withdrawn. IndexError outside."""
        if not 0 <= index < self._count:
            raise IndexError(index)
        return bool(self._bits[index // 8] & (0x80 >> (index % 8)))

    def word(self, w: int) -> bytes:
        """Word ``w`` (32 bytes; bit ``i`` is ``(uint256(word) >> (255 - i % 256)) & 1``)."""
        _check_index(w, self.words)
        return bytes(self._bits[32 * w : 32 * w + 32])

    def _flush(self) -> None:
        for w in sorted(self._dirty):
            self._tree.update(w, self._impl.leaf_hash(self.word(w)))
        self._dirty.clear()

    def root(self) -> bytes:
        """The status tree's root (32 bytes)."""
        self._flush()
        return bytes(self._tree.root())

    def proof(self, w: int) -> list[bytes]:
        """The 32 siblings of word ``w``'s leaf. :class:`MerkleError` outside the list."""
        return self.proofs([w])[0]

    def proofs(self, words: Sequence[int]) -> list[list[bytes]]:
        """:meth:`proof` of each word (the tree's right edge is computed once)."""
        self._flush()
        return [list(p) for p in self._tree.proofs(words)]

    def bitstring(self) -> bytes:
        """The raw words, concatenated (``words * 32`` bytes)."""
        return bytes(self._bits)

    def encode(self) -> str:
        """W3C ``encodedList`` of the words: GZIP (RFC 1952) then base64url, no padding.

        Unlike a gate's revocation list it is not padded to the W3C 16 KiB minimum: the
        length is the committed tree's size.
        """
        return _Bitstring(bits=bytes(self._bits)).encode()

    @classmethod
    def decode(cls, encoded: str, count: int | None = None, *, impl: Any = None) -> StatusList:
        """Parse :meth:`encode` output. ``count`` defaults to every bit of the words.

        Raises :class:`fastpath.errors.StatusListError` on a bad ``encodedList`` and
        :class:`MerkleError` when ``count`` does not fit the decoded words.
        """
        bits = _Bitstring.decode(encoded).bytes()
        if len(bits) % 32:
            raise MerkleError("a status bitstring must be whole 32-byte words")
        full = len(bits) * 8
        count = full if count is None else count
        if not full - WORD_BITS < count <= full and not (count == full == 0):
            raise MerkleError(f"count {count} does not fit {len(bits) // 32} words")
        status = cls(impl=impl)
        lib = status._impl
        status._bits[:] = bits
        status._count = count
        status._tree = lib.IncrementalTree(
            [lib.leaf_hash(bits[i : i + 32]) for i in range(0, len(bits), 32)]
        )
        return status
