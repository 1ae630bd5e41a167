"""ConsentAnchor: batched commitments checked against a pure-Python reference of docs/anchoring.md.

The reference below is written from the document alone (keccak-256, leaf = H(0x00 || data),
node = H(0x01 || left || right), depth 32, zero[0] = 32 zero bytes, status bits most significant
first) and plays the service: it appends consent receipts signed with eth-account under the
registry's EIP-712 domain, sets withdrawal bits, appends audit events, anchors, and hands out
proofs. Every test runs on py-evm (eth-tester) and on anvil.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, keccak
from web3.contract import Contract
from web3.types import TxReceipt

from contracts import load_artifact
from fastpath import merkle
from tests.contracts.contract_support import (
    CATEGORIES,
    PURPOSES,
    SECP256K1_N,
    Chain,
    Registry,
    assert_reverts,
    h,
    hashed_grant,
)

ZERO_ADDRESS = "0x" + "00" * 20
DEPTH = 32
CAPACITY = 2**DEPTH

# checkConsentProof reasons
PROOF_OK, BAD_SIGNATURE, SEPARATE_CONSENT_REQUIRED = 0, 1, 2
UNAUTHORIZED_SIGNER, WARD_SIGNATURE_REFUSED, CONSENT_NOT_PROVEN, STATUS_NOT_PROVEN = 3, 4, 5, 6


# --- reference tree (docs/anchoring.md) ----------------------------------------------------------


def leaf(data: bytes) -> bytes:
    """``H(0x00 || data)``."""
    return keccak(b"\x00" + data)


def node(left: bytes, right: bytes) -> bytes:
    """``H(0x01 || left || right)``."""
    return keccak(b"\x01" + left + right)


ZERO = [bytes(32)]
for _k in range(DEPTH):
    ZERO.append(node(ZERO[_k], ZERO[_k]))


class ReferenceTree:
    """Depth-32 tree over leaf hashes; levels rebuilt on demand (O(n) per change)."""

    def __init__(self, leaves: list[bytes] | None = None) -> None:
        self.leaves: list[bytes] = list(leaves or [])
        self._levels: list[list[bytes]] | None = None

    def __len__(self) -> int:
        return len(self.leaves)

    def append(self, leaf_hash: bytes) -> int:
        """Append a leaf hash; return its index."""
        self.leaves.append(leaf_hash)
        self._levels = None
        return len(self.leaves) - 1

    def _built(self) -> list[list[bytes]]:
        if self._levels is None:
            levels = [list(self.leaves)]
            for k in range(DEPTH):
                below = levels[-1]
                levels.append(
                    [
                        node(below[j], below[j + 1] if j + 1 < len(below) else ZERO[k])
                        for j in range(0, len(below), 2)
                    ]
                )
            self._levels = levels
        return self._levels

    def root(self) -> bytes:
        top = self._built()[DEPTH]
        return top[0] if top else ZERO[DEPTH]

    def proof(self, index: int) -> list[bytes]:
        """The 32 siblings of leaf ``index``, leaf level first."""
        levels = self._built()
        siblings = []
        for k in range(DEPTH):
            sibling = (index >> k) ^ 1
            siblings.append(levels[k][sibling] if sibling < len(levels[k]) else ZERO[k])
        return siblings


def test_reference_tree_matches_the_document() -> None:
    assert ReferenceTree().root() == ZERO[DEPTH]
    a, b, c = leaf(b"a"), leaf(b"b"), leaf(b"c")
    expected = node(node(node(a, b), node(c, ZERO[0])), ZERO[2])
    for k in range(3, DEPTH):
        expected = node(expected, ZERO[k])
    tree = ReferenceTree([a, b, c])
    assert tree.root() == expected
    assert tree.proof(2)[:3] == [ZERO[0], node(a, b), ZERO[2]]


# --- the service side, played by the reference ---------------------------------------------------


@dataclass(frozen=True)
class ConsentReceipt:
    """A signed Grant as anchored: typed-data message, signature, sequence number."""

    message: dict[str, Any]
    signature: bytes
    index: int


@dataclass
class Service:
    """The three trees and the anchoring transactions, as docs/anchoring.md lays them out."""

    registry: Registry
    anchor: Contract
    consents: ReferenceTree = field(default_factory=ReferenceTree)
    audit: ReferenceTree = field(default_factory=ReferenceTree)
    withdrawn: set[int] = field(default_factory=set)
    batch_id: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(4))

    @property
    def chain(self) -> Chain:
        return self.registry.chain

    def add(self, message: dict[str, Any], signature: bytes) -> ConsentReceipt:
        """Append a consent receipt: leaf(grant_digest || H(signature))."""
        digest = self.registry.digest("Grant", message)
        index = self.consents.append(leaf(digest + keccak(signature)))
        return ConsentReceipt(message, signature, index)

    def grant(
        self, signer: LocalAccount, subject: str | None = None, **terms: Any
    ) -> ConsentReceipt:
        """Sign a Grant for ``subject`` (default: the signer) with eth-account and append it."""
        message = self.registry.grant_message(subject or signer.address, **terms)
        return self.add(message, self.registry.sign(signer, "Grant", message))

    def random_grant(self) -> ConsentReceipt:
        """A grant by a fresh citizen with varied terms (unicode, empty and long arrays)."""
        rng = self.rng
        third = rng.sample(["health-insurer", "bank ☂", "x" * 300], rng.randint(0, 2))
        sensitive = rng.random() < 0.3
        return self.grant(
            Account.create(),
            purpose=rng.choice(PURPOSES),
            piCategories=rng.sample(CATEGORIES, rng.randint(1, 3)),
            sensitive=sensitive,
            thirdParties=third,
            separateConsent=sensitive or bool(third) or rng.random() < 0.5,
        )

    def filler(self, count: int) -> None:
        """Append ``count`` receipts the tests never check (random leaf hashes)."""
        for _ in range(count):
            self.consents.append(self.rng.randbytes(32))

    def log(self, count: int) -> list[tuple[int, bytes]]:
        """Append ``count`` audit events; return ``(index, H(canonical JSON))`` of each."""
        appended = []
        for _ in range(count):
            event = {"kind": "access", "allowed": self.rng.random() < 0.5, "n": len(self.audit)}
            text = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            event_hash = keccak(text.encode())
            appended.append((self.audit.append(leaf(event_hash)), event_hash))
        return appended

    def word(self, w: int) -> bytes:
        """Status word ``w``: bit ``i`` (most significant first) set when ``i`` is withdrawn."""
        value = 0
        for i in self.withdrawn:
            if i // 256 == w:
                value |= 1 << (255 - i % 256)
        return value.to_bytes(32, "big")

    def status(self) -> ReferenceTree:
        words = math.ceil(len(self.consents) / 256)
        return ReferenceTree([leaf(self.word(w)) for w in range(words)])

    def post(self) -> TxReceipt:
        """Anchor the next batch with the current roots and sizes."""
        self.batch_id += 1
        return self.chain.send(self.anchor.functions.anchor(*self.batch_args()))

    def batch_args(self) -> tuple[int, bytes, int, bytes, bytes, int]:
        return (
            self.batch_id,
            self.consents.root(),
            len(self.consents),
            self.status().root(),
            self.audit.root(),
            len(self.audit),
        )

    def proof(self, receipt: ConsentReceipt) -> tuple[Any, ...]:
        """verifyConsent's arguments for ``receipt`` against the current trees."""
        w = receipt.index // 256
        return (
            hashed_grant(receipt.message),
            receipt.signature,
            receipt.index,
            self.consents.proof(receipt.index),
            self.word(w),
            self.status().proof(w),
        )

    def check(self, args: tuple[Any, ...]) -> tuple[int, bool]:
        """checkConsentProof, and that verifyConsent agrees with it."""
        reason, withdrawn = self.anchor.functions.checkConsentProof(*args).call()
        granted, withdrawn_too = self.anchor.functions.verifyConsent(*args).call()
        assert (granted, withdrawn_too) == (reason == PROOF_OK, withdrawn)
        return int(reason), bool(withdrawn)

    def check_at(self, batch_id: int, args: tuple[Any, ...]) -> tuple[int, bool]:
        """checkConsentProofAt against batch ``batch_id``."""
        reason, withdrawn = self.anchor.functions.checkConsentProofAt(batch_id, *args).call()
        return int(reason), bool(withdrawn)


def deploy_anchor(chain: Chain, registrar: str, registry: str) -> Contract:
    artifact = load_artifact("ConsentAnchor")
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    address = chain.send(factory.constructor(registrar, registry))["contractAddress"]
    assert address is not None
    return chain.w3.eth.contract(address=address, abi=artifact.abi)


@pytest.fixture
def service(registry: Registry) -> Service:
    anchor = deploy_anchor(registry.chain, registry.chain.registrar, registry.address)
    return Service(registry=registry, anchor=anchor)


def with_signature(args: tuple[Any, ...], signature: bytes) -> tuple[Any, ...]:
    return (args[0], signature, *args[2:])


def high_s_twin(signature: bytes) -> bytes:
    """The other valid signature of the same digest: (r, n - s, v flipped)."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


# --- tests ---------------------------------------------------------------------------------------


def test_deployment(service: Service) -> None:
    functions, registrar = service.anchor.functions, service.chain.registrar
    assert functions.registry().call() == service.registry.address
    role = bytes(functions.REGISTRAR_ROLE().call())
    assert role == h("REGISTRAR_ROLE")
    assert functions.hasRole(role, registrar).call() is True
    assert functions.hasRole(bytes(32), registrar).call() is True
    assert functions.hasRole(role, service.chain.outsider).call() is False
    assert functions.latest().call() == (0, 0, 0, 0, bytes(32), bytes(32), bytes(32))
    reasons = {
        "PROOF_OK": PROOF_OK,
        "PROOF_BAD_SIGNATURE": BAD_SIGNATURE,
        "PROOF_SEPARATE_CONSENT_REQUIRED": SEPARATE_CONSENT_REQUIRED,
        "PROOF_UNAUTHORIZED_SIGNER": UNAUTHORIZED_SIGNER,
        "PROOF_WARD_SIGNATURE_REFUSED": WARD_SIGNATURE_REFUSED,
        "PROOF_CONSENT_NOT_PROVEN": CONSENT_NOT_PROVEN,
        "PROOF_STATUS_NOT_PROVEN": STATUS_NOT_PROVEN,
    }
    assert {name: functions[name]().call() for name in reasons} == reasons
    assert_reverts(lambda: functions.batch(1).call(), "AnchorBatchNotFound", batchId=1)
    assert_reverts(
        lambda: functions.verifyAudit(bytes(32), 0, [bytes(32)] * DEPTH).call(),
        "AnchorIndexNotAnchored",
        index=0,
        count=0,
    )


def test_constructor_abi() -> None:
    (constructor,) = [e for e in load_artifact("ConsentAnchor").abi if e["type"] == "constructor"]
    assert [(i["name"], i["type"]) for i in constructor["inputs"]] == [
        ("registrar", "address"),
        ("consentRegistry", "address"),
    ]


def test_zero_addresses_refused(registry: Registry) -> None:
    chain = registry.chain
    assert_reverts(
        lambda: deploy_anchor(chain, ZERO_ADDRESS, registry.address), "AnchorZeroRegistrar"
    )
    assert_reverts(
        lambda: deploy_anchor(chain, chain.registrar, ZERO_ADDRESS), "AnchorZeroRegistry"
    )


def test_anchor_then_every_consent_verifies(service: Service) -> None:
    """Real receipts spread over three status words, between filler leaves."""
    receipts = []
    for gap in (0, 0, 253, 1, 0, 210, 44, 87):
        service.filler(gap)
        receipts.append(service.random_grant())
    service.log(5)
    assert [r.index for r in receipts] == [0, 1, 255, 257, 258, 469, 514, 602]

    tx = service.post()
    (event,) = service.anchor.events.BatchAnchored().process_receipt(tx)
    _, consent_root, _, status_root, audit_root, _ = service.batch_args()
    assert dict(event["args"]) == {
        "batchId": 1,
        "consentRoot": consent_root,
        "consentCount": 603,
        "statusRoot": status_root,
        "auditRoot": audit_root,
        "auditCount": 5,
    }
    anchored_at = service.chain.w3.eth.get_block(tx["blockNumber"])["timestamp"]
    expected = (1, 603, 5, anchored_at, consent_root, status_root, audit_root)
    assert service.anchor.functions.latest().call() == expected
    assert service.anchor.functions.batch(1).call() == expected

    for receipt in receipts:
        assert service.check(service.proof(receipt)) == (PROOF_OK, False), receipt.index


def test_withdrawal_is_proven_by_the_next_batch(service: Service) -> None:
    service.filler(300)
    target, neighbour = service.random_grant(), service.random_grant()
    service.filler(10)
    service.log(3)
    service.post()
    old_target, old_neighbour = service.proof(target), service.proof(neighbour)
    assert service.check(old_target) == (PROOF_OK, False)

    assert target.index == 300
    service.withdrawn.add(target.index)  # word 1, bit 44 counted from the most significant
    assert service.word(1) == (1 << (255 - 44)).to_bytes(32, "big")
    service.log(2)
    service.post()
    old_roots = service.anchor.functions.batch(1).call()
    assert service.anchor.functions.latest().call()[4:] != old_roots[4:]
    assert old_roots[1] == 312  # the consent tree did not grow: only the status root moved

    assert service.check(old_target) == (STATUS_NOT_PROVEN, False)
    assert service.check(old_neighbour) == (STATUS_NOT_PROVEN, False)
    assert service.check(service.proof(target)) == (PROOF_OK, True)
    assert service.check(service.proof(neighbour)) == (PROOF_OK, False)
    # claiming the old word (bit clear) with the new word's proof does not pass either
    forged = service.proof(target)
    assert service.check((*forged[:4], service.word(0), forged[5])) == (STATUS_NOT_PROVEN, False)


def test_saved_proofs_verify_at_their_batch(service: Service) -> None:
    """Appending leaves makes older proofs stale against the latest roots, not against history."""
    first, second = service.random_grant(), service.random_grant()
    events = service.log(5)
    service.post()
    saved, saved_audit = service.proof(first), service.audit.proof(2)
    third = service.random_grant()  # index 2: leaf 0's level-1 sibling changes
    service.withdrawn.add(first.index)
    service.log(5)
    service.post()

    assert service.check(saved) == (CONSENT_NOT_PROVEN, False)
    assert service.check_at(1, saved) == (PROOF_OK, False)  # as of batch 1: not withdrawn
    assert service.check_at(2, saved) == (CONSENT_NOT_PROVEN, False)
    assert service.check_at(2, service.proof(first)) == (PROOF_OK, True)
    assert service.check(service.proof(first)) == (PROOF_OK, True)
    assert service.check_at(2, service.proof(second)) == (PROOF_OK, False)
    fresh_third = service.proof(third)
    assert service.check_at(2, fresh_third) == (PROOF_OK, False)
    assert_reverts(
        lambda: service.check_at(1, fresh_third), "AnchorIndexNotAnchored", index=2, count=2
    )
    for unknown in (0, 3):
        assert_reverts(
            lambda b=unknown: service.check_at(b, saved), "AnchorBatchNotFound", batchId=unknown
        )

    verify, verify_at = service.anchor.functions.verifyAudit, service.anchor.functions.verifyAuditAt
    event_hash = events[2][1]
    assert verify(event_hash, 2, saved_audit).call() is False
    assert verify_at(1, event_hash, 2, saved_audit).call() is True
    assert verify_at(2, event_hash, 2, saved_audit).call() is False
    assert verify_at(2, event_hash, 2, service.audit.proof(2)).call() is True
    assert_reverts(
        lambda: verify_at(1, event_hash, 7, saved_audit).call(),
        "AnchorIndexNotAnchored",
        index=7,
        count=5,
    )
    assert_reverts(
        lambda: verify_at(3, event_hash, 2, saved_audit).call(), "AnchorBatchNotFound", batchId=3
    )


def test_refusals_of_included_receipts(service: Service) -> None:
    """Each bad receipt is in the anchored tree, so only the rule under test refuses it."""
    registry = service.registry
    good = service.random_grant()
    other = service.random_grant()
    citizen, stranger = Account.create(), Account.create()
    by_stranger = service.grant(stranger, subject=citizen.address)
    message = registry.grant_message(citizen.address)
    signature = registry.sign(citizen, "Grant", message)
    twin = service.add(message, high_s_twin(signature))
    other_chain = registry.domain(chainId=registry.chain.w3.eth.chain_id + 1)
    foreign = service.add(message, registry.sign(citizen, "Grant", message, other_chain))
    sensitive = service.grant(citizen, sensitive=True, separateConsent=False)
    shared = service.grant(citizen, thirdParties=["bank"], separateConsent=False)
    v29 = service.add(message, signature[:64] + b"\x1d")
    service.post()

    args = service.proof(good)
    assert service.check(args) == (PROOF_OK, False)
    assert service.check((*args[:2], other.index, *args[3:])) == (CONSENT_NOT_PROVEN, False)
    bad_proof = list(args[3])
    bad_proof[5] = bytes(32)
    assert service.check((*args[:3], bad_proof, *args[4:])) == (CONSENT_NOT_PROVEN, False)
    for key, value in [("purpose", "marketing"), ("recordHash", h("x")), ("validUntil", 1)]:
        tampered = hashed_grant({**good.message, key: value})
        assert service.check((tampered, *args[1:])) == (UNAUTHORIZED_SIGNER, False), key
    assert service.check(with_signature(args, other.signature)) == (UNAUTHORIZED_SIGNER, False)

    assert service.check(service.proof(by_stranger)) == (UNAUTHORIZED_SIGNER, False)
    assert service.check(service.proof(twin)) == (BAD_SIGNATURE, False)
    assert service.check(service.proof(foreign)) == (UNAUTHORIZED_SIGNER, False)
    assert service.check(service.proof(v29)) == (BAD_SIGNATURE, False)
    assert service.check(service.proof(sensitive)) == (SEPARATE_CONSENT_REQUIRED, False)
    assert service.check(service.proof(shared)) == (SEPARATE_CONSENT_REQUIRED, False)
    for malformed in (good.signature[:64], good.signature + b"\x00", b""):
        assert service.check(with_signature(args, malformed)) == (BAD_SIGNATURE, False)
    unrecoverable = bytes(64) + b"\x1b"  # r = s = 0
    assert service.check(with_signature(args, unrecoverable)) == (BAD_SIGNATURE, False)


def test_index_not_yet_anchored_reverts(service: Service) -> None:
    receipt = service.random_grant()
    args = service.proof(receipt)
    assert_reverts(lambda: service.check(args), "AnchorIndexNotAnchored", index=0, count=0)
    service.post()
    assert service.check(args) == (PROOF_OK, False)
    late = service.random_grant()  # appended after the batch: pending
    assert_reverts(
        lambda: service.check(service.proof(late)), "AnchorIndexNotAnchored", index=1, count=1
    )
    # index + 2^32 would select the same leaf: it is refused by the count, never hashed
    wrapped = (*args[:2], receipt.index + CAPACITY, *args[3:])
    assert_reverts(
        lambda: service.check(wrapped), "AnchorIndexNotAnchored", index=CAPACITY, count=1
    )


def test_guardian_rules_are_evaluated_now(service: Service) -> None:
    registry, chain = service.registry, service.chain
    ward, guardian = Account.create(), Account.create()
    until = chain.now() + 1000
    chain.send(registry.contract.functions.setGuardian(ward.address, guardian.address, until))
    by_guardian = service.grant(guardian, subject=ward.address)
    by_ward = service.grant(ward)
    by_stranger = service.grant(Account.create(), subject=ward.address)
    service.post()
    assert service.check(service.proof(by_guardian)) == (PROOF_OK, False)
    assert service.check(service.proof(by_ward)) == (WARD_SIGNATURE_REFUSED, False)
    assert service.check(service.proof(by_stranger)) == (UNAUTHORIZED_SIGNER, False)

    chain.mine_at(until + 1)  # the guardianship has ended: the ward signs for itself again
    assert service.check(service.proof(by_guardian)) == (UNAUTHORIZED_SIGNER, False)
    assert service.check(service.proof(by_ward)) == (PROOF_OK, False)


def test_audit_proofs(service: Service) -> None:
    first = service.log(40)
    service.post()
    verify = service.anchor.functions.verifyAudit
    for index, event_hash in first[::7] + first[-1:]:
        assert verify(event_hash, index, service.audit.proof(index)).call() is True
    index, event_hash = first[9]
    proof = service.audit.proof(index)
    assert verify(first[10][1], index, proof).call() is False  # another event
    assert verify(event_hash, index + 1, proof).call() is False  # another position
    assert verify(leaf(event_hash), index, proof).call() is False  # a leaf hash, not the data
    assert verify(event_hash, index, [*proof[:3], bytes(32), *proof[4:]]).call() is False
    assert_reverts(
        lambda: verify(event_hash, 40, proof).call(), "AnchorIndexNotAnchored", index=40, count=40
    )

    service.log(30)  # indexes 40..69: leaf 9's sibling subtree 32..63 changes
    service.post()
    assert verify(event_hash, index, proof).call() is False
    assert verify(event_hash, index, service.audit.proof(index)).call() is True
    assert verify(first[-1][1], 39, service.audit.proof(39)).call() is True


def test_audit_tree_sizes_around_powers_of_two(service: Service) -> None:
    """The contract and the reference agree on the first, last and a random leaf at each size."""
    verify, verify_at = service.anchor.functions.verifyAudit, service.anchor.functions.verifyAuditAt
    hashes: list[bytes] = []
    for size in (1, 2, 3, 4, 7, 8, 9, 255, 256, 257, 1024, 1025):
        hashes += [event_hash for _, event_hash in service.log(size - len(hashes))]
        service.post()
        for index in sorted({0, size - 1, service.rng.randrange(size)}):
            proof = service.audit.proof(index)
            assert verify(hashes[index], index, proof).call() is True, (size, index)
            assert verify_at(service.batch_id, hashes[index], index, proof).call() is True
    assert service.anchor.functions.latest().call()[2] == 1025


@pytest.mark.parametrize("implementation", ["reference", "compiled"])
def test_fastpath_merkle_agrees(service: Service, implementation: str) -> None:
    """The service's trees (fastpath.merkle, both implementations) against the contract."""
    impl = merkle.implementations()[implementation]
    receipts = []
    for gap in (0, 255, 3):
        service.filler(gap)
        receipts.append(service.random_grant())
    tree = impl.IncrementalTree()
    for i, leaf_hash in enumerate(service.consents.leaves):
        receipt = next((r for r in receipts if r.index == i), None)
        if receipt is not None:
            digest = service.registry.digest("Grant", receipt.message)
            leaf_hash = merkle.consent_leaf(digest, receipt.signature, impl=impl)
        tree.append(leaf_hash)
    assert bytes(tree.root()) == service.consents.root()
    status = merkle.StatusList(count=tree.size, impl=impl)
    status.set(receipts[1].index)  # index 256: word 1, most significant bit
    events = [{"kind": "grant", "n": n, "who": "Zoë"} for n in range(6)]
    audit = impl.IncrementalTree([merkle.audit_leaf(e, impl=impl) for e in events])
    anchor = service.anchor.functions.anchor
    roots = (bytes(tree.root()), tree.size, status.root(), bytes(audit.root()), audit.size)
    service.chain.send(anchor(1, *roots))

    for receipt in receipts:
        w = receipt.index // 256
        args = (
            hashed_grant(receipt.message),
            receipt.signature,
            receipt.index,
            list(tree.proof(receipt.index)),
            status.word(w),
            status.proof(w),
        )
        assert service.check(args) == (PROOF_OK, receipt.index == 256), receipt.index
    for n, event in enumerate(events):
        text = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        proof = list(audit.proof(n))
        assert service.anchor.functions.verifyAudit(keccak(text.encode()), n, proof).call() is True


def test_anchor_rules(service: Service) -> None:
    functions, chain, anchor = service.anchor.functions, service.chain, service.anchor
    root = h("root")

    def post(batch_id: int, consents: int, audits: int, sender: str | None = None) -> TxReceipt:
        return chain.send(functions.anchor(batch_id, root, consents, root, root, audits), sender)

    def refused(action: Callable[[], Any], error: str, **args: Any) -> None:
        before = functions.latest().call()
        assert_reverts(action, error, **args)
        assert functions.latest().call() == before

    refused(lambda: post(0, 1, 1), "AnchorBatchIdNotNext", batchId=0, expected=1)
    refused(lambda: post(2, 1, 1), "AnchorBatchIdNotNext", batchId=2, expected=1)
    refused(
        lambda: post(1, 1, 1, chain.outsider),
        "AccessControlUnauthorizedAccount",
        account=chain.outsider,
        neededRole=h("REGISTRAR_ROLE"),
    )
    refused(lambda: post(1, CAPACITY + 1, 0), "AnchorCountTooLarge", count=CAPACITY + 1)
    refused(lambda: post(1, 0, CAPACITY + 1), "AnchorCountTooLarge", capacity=CAPACITY)
    post(1, 10, 20)
    refused(lambda: post(1, 10, 20), "AnchorBatchIdNotNext", batchId=1, expected=2)
    refused(lambda: post(2, 9, 20), "AnchorConsentCountDecreased", consentCount=9, previous=10)
    refused(lambda: post(2, 10, 19), "AnchorAuditCountDecreased", auditCount=19, previous=20)
    post(2, 10, 20)  # equal counts: a batch of withdrawals only
    post(3, CAPACITY, CAPACITY)  # a full tree
    assert functions.latest().call()[:3] == (3, CAPACITY, CAPACITY)
    assert [e["args"]["batchId"] for e in _anchored_events(anchor)] == [1, 2, 3]
    refused(lambda: functions.batch(4).call(), "AnchorBatchNotFound", batchId=4)
    refused(lambda: functions.batch(0).call(), "AnchorBatchNotFound", batchId=0)


def _anchored_events(anchor: Contract) -> list[Any]:
    return list(anchor.events.BatchAnchored().get_logs(from_block=0))


def test_supports_interfaces(service: Service) -> None:
    anchor = service.anchor
    names = [
        "anchor",
        "latest",
        "batch",
        "verifyConsent",
        "checkConsentProof",
        "checkConsentProofAt",
        "verifyAudit",
        "verifyAuditAt",
        "registry",
    ]
    interface_id = 0
    for name in names:
        signature = anchor.get_function_by_name(name).signature
        interface_id ^= int.from_bytes(function_signature_to_4byte_selector(signature), "big")
    supports = anchor.functions.supportsInterface
    assert supports(interface_id.to_bytes(4, "big")).call() is True
    assert supports(bytes.fromhex("01ffc9a7")).call() is True  # ERC-165
    assert supports(bytes.fromhex("7965db0b")).call() is True  # IAccessControl
    assert supports(bytes.fromhex("ffffffff")).call() is False


def _intrinsic_gas(data: bytes) -> tuple[int, int]:
    """A call's intrinsic gas (EIP-2028) and its calldata floor (EIP-7623, Prague)."""
    zeros = data.count(0)
    nonzeros = len(data) - zeros
    return 21000 + 4 * zeros + 16 * nonzeros, 21000 + 10 * (zeros + 4 * nonzeros)


def test_gas(service: Service) -> None:
    """Gas of the anchoring transaction and of the proof views (figures in the lead's report).

    A verifyConsent call carries about 3 KB of calldata (two 32-sibling proofs and the Grant),
    so as a transaction it costs the EIP-7623 calldata floor; the execution itself is bounded
    here (estimate minus intrinsic gas, when the estimate is above the floor).
    """
    service.filler(1000)
    receipt = service.grant(Account.create())
    service.log(10)
    first = service.post()["gasUsed"]
    service.withdrawn.add(receipt.index)
    service.log(10)
    second = service.post()["gasUsed"]
    assert 120_000 < second < first < 145_000  # four new storage slots per batch, plus the event

    anchor = service.anchor
    for name, args, execution in [
        ("verifyConsent", service.proof(receipt), 50_000),
        ("verifyAudit", (bytes(32), 3, service.audit.proof(3)), 20_000),
    ]:
        estimate = anchor.functions[name](*args).estimate_gas()
        standard, floor = _intrinsic_gas(bytes.fromhex(anchor.encode_abi(name, args=args)[2:]))
        assert estimate <= max(floor, standard + execution), (name, estimate, standard, floor)
