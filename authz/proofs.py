"""Proofs a department or an auditor can check against the chain without the service.

- consent proof (batched mode): the signed Grant (typed data + signature), its index and
  Merkle proof in the consent tree, and the status word of its index with that word's
  proof, as of one anchored batch (docs/anchoring.md). ``ConsentAnchor`` checks it:
  ``checkConsentProofAt(batch)`` for the batch the proof was built at, and
  ``checkConsentProof`` against the latest roots (a proof goes stale once a later batch
  changes a root: ask the service for a fresh one).
- direct-mode consent proof: the registry record itself (``checkConsent``).
- audit proof: the audit event JSON, its index and Merkle proof in the audit tree.

:func:`verify_consent` / :func:`verify_audit` take a :class:`chain_node.ChainBackend`;
``consentgate proof verify`` and ``consentgate audit verify`` call them.
"""

from __future__ import annotations

from typing import Any

from eth_utils import keccak, to_checksum_address
from sqlalchemy import select

from authz import typed_data
from authz.audit import canonical_json
from authz.commitments import Commitments
from authz.errors import BadRequest, Conflict, NotFound
from authz.ids import to_hex
from authz.ledger import ANCHOR, REGISTRY, grant_args
from authz.models import AuditEvent, Batch, Consent, OutboxItem, QueuedAccessAudit
from chain_node import ChainBackend, ChainRevert
from contracts import error_abis, load_artifact

PROOF_REASONS = {
    0: "ok",
    1: "bad_signature",
    2: "separate_consent_required",
    3: "unauthorized_signer",
    4: "ward_signature_refused",
    5: "consent_not_proven",
    6: "status_not_proven",
}
REGISTRY_REASONS = {
    0: "ok",
    1: "not_found",
    2: "withdrawn",
    3: "not_yet_valid",
    4: "expired",
    5: "wrong_controller",
    6: "wrong_purpose",
    7: "category_not_granted",
    8: "controller_suspended",
}


def _latest_anchored(c: Commitments) -> Batch:
    c.refresh()  # another process may be the one anchoring
    with c.svc.db.sessions() as s:
        batch = s.get(Batch, c.batch_id) if c.batch_id else None
    if batch is None or batch.state != "anchored":
        raise Conflict(
            "no anchored batch yet (or one is being anchored); retry shortly",
            code="not_yet_anchored",
        )
    return batch


def consent_proof(c: Commitments, consent_id: str) -> dict[str, Any]:
    """The proof document of a consent (see the module docstring).

    Raises :class:`NotFound` ``consent_not_found``; :class:`Conflict`
    ``not_yet_anchored`` while the consent waits in the outbox.
    """
    svc = c.svc
    with svc.db.sessions() as s:
        row = s.get(Consent, consent_id.lower())
    if row is None:
        with svc.db.sessions() as s:
            queued = s.scalar(
                select(OutboxItem.state).where(OutboxItem.dedupe_key == consent_id.lower())
            )
        if queued == "pending":
            raise Conflict(
                "the consent is not anchored yet; retry shortly", code="not_yet_anchored"
            )
        raise NotFound(f"no anchored consent {consent_id}", code="consent_not_found")
    base = {
        "kind": "consent",
        "chain_id": svc.ledger.chain_id,
        "registry": svc.ledger.address,
        "anchor": svc.ledger.anchor_address,
        "consent_id": row.consent_id,
    }
    if row.leaf_index is None:
        return {
            **base,
            "mode": "direct",
            "controller": row.controller,
            "purpose_hash": row.purpose_hash,
            "pi_category_hashes": row.category_hashes,
            "tx_hash": row.granted_tx,
            "block_number": row.granted_block,
        }
    with c.lock:
        batch = _latest_anchored(c)
        index = int(row.leaf_index)
        word = index // 256
        with svc.db.sessions() as s:
            item = s.scalar(select(OutboxItem).where(OutboxItem.dedupe_key == row.consent_id))
        assert item is not None
        message = item.payload["message"]
        return {
            **base,
            "mode": "batched",
            "batch_id": batch.batch_id,
            "anchor_tx": batch.tx_hash,
            "anchor_block": batch.block_number,
            "typed_data": typed_data.grant_typed_data(
                svc.ledger.chain_id, svc.ledger.address, message
            ),
            "signature": item.payload["signature"],
            "index": index,
            "consent_proof": [to_hex(x) for x in c.consents.proof(index)],
            "status_word": to_hex(c.status.word(word)),
            "status_proof": [to_hex(x) for x in c.status.proof(word)],
            "withdrawn_bit": c.status.get(index),
            "roots": {
                "consent": batch.consent_root,
                "status": batch.status_root,
                "audit": batch.audit_root,
            },
        }


def audit_proof(c: Commitments, access_id: str) -> dict[str, Any]:
    """The proof document of an access check's audit event.

    Raises :class:`NotFound` ``access_not_found``; :class:`Conflict` ``not_yet_anchored``.
    """
    svc = c.svc
    with svc.db.sessions() as s:
        # the queue first: an event leaves it only after it is in audit_events, so the
        # second read finds it whenever the first missed it, even mid-move
        queued = s.scalar(
            select(QueuedAccessAudit.seq).where(
                QueuedAccessAudit.ref == access_id, QueuedAccessAudit.kind == "access_check"
            )
        )
        ev = s.scalar(
            select(AuditEvent).where(AuditEvent.ref == access_id, AuditEvent.kind == "access_check")
        )
    if ev is None and queued is not None:
        raise Conflict(
            "the audit event is not anchored yet; retry shortly", code="not_yet_anchored"
        )
    if ev is None:
        raise NotFound(f"no access check {access_id}", code="access_not_found")
    with c.lock:
        batch = _latest_anchored(c)
        if ev.leaf_index is None or ev.leaf_index >= batch.audit_count:
            raise Conflict(
                "the audit event is not anchored yet; retry shortly", code="not_yet_anchored"
            )
        return {
            "kind": "audit",
            "chain_id": svc.ledger.chain_id,
            "anchor": svc.ledger.anchor_address,
            "batch_id": batch.batch_id,
            "anchor_tx": batch.tx_hash,
            "event": ev.event,
            "event_hash": ev.event_hash,
            "index": int(ev.leaf_index),
            "proof": [to_hex(x) for x in c.audit.proof(int(ev.leaf_index))],
            "audit_root": batch.audit_root,
        }


# -- verification against the chain ------------------------------------------------------


def _b(text: Any) -> bytes:
    if not isinstance(text, str):
        raise BadRequest("expected a 0x hex string", code="proof_malformed")
    try:
        return bytes.fromhex(text[2:] if text.startswith("0x") else text)
    except ValueError:
        raise BadRequest(f"not hex: {text[:20]!r}", code="proof_malformed") from None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{what} must be a non-negative integer", code="proof_malformed")
    return value


def _contract(chain: ChainBackend, name: str, address: str) -> Any:
    chain.register_errors(error_abis())
    return chain.w3.eth.contract(address=to_checksum_address(address), abi=load_artifact(name).abi)


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.lower() == b.lower()


def verify_consent(
    chain: ChainBackend, doc: dict[str, Any], *, registry: str, anchor: str
) -> dict[str, Any]:
    """Check a consent proof document on ``chain`` against the TRUSTED ``registry`` and
    ``anchor`` addresses (never the ones the document names: a forged document could
    name a contract that says yes to anything).

    Returns ``{"valid", ...}``. Batched: ``valid`` is true only when the proof holds
    against the latest anchored roots and the consent is not withdrawn (fail closed: a
    proof built at an older batch reports ``reason`` ``stale_proof`` and
    ``valid_at_batch``); direct: the registry's ``checkConsent``. Raises
    :class:`BadRequest` ``proof_malformed`` when the document does not hang together.
    """
    if doc.get("kind") != "consent":
        raise BadRequest("not a consent proof", code="proof_malformed")
    if doc.get("chain_id") != chain.chain_id:
        raise BadRequest(
            f"the proof is for chain {doc.get('chain_id')}, not {chain.chain_id}",
            code="proof_malformed",
        )
    for field, trusted in (("registry", registry), ("anchor", anchor)):
        if not _same(doc.get(field), trusted):
            return {
                "valid": False,
                "reason": f"untrusted_{field}",
                "detail": f"the proof names {doc.get(field)}, not the trusted {trusted}",
            }
    if doc.get("mode") == "direct":
        contract = _contract(chain, REGISTRY, registry)
        valid, reason = chain.call(
            contract.functions.checkConsent(
                _b(doc["consent_id"]),
                to_checksum_address(doc["controller"]),
                _b(doc["purpose_hash"]),
                [_b(x) for x in doc["pi_category_hashes"]],
            )
        )
        return {
            "valid": bool(valid),
            "granted": reason != 1,
            "withdrawn": reason == 2,
            "reason": REGISTRY_REASONS.get(int(reason), str(reason)),
            "mode": "direct",
        }
    td = doc.get("typed_data")
    if not isinstance(td, dict) or not isinstance(td.get("message"), dict):
        raise BadRequest("the proof has no typed data", code="proof_malformed")
    domain = td.get("domain", {})
    if (
        domain.get("chainId") != chain.chain_id
        or not _same(domain.get("verifyingContract"), registry)
        or domain.get("name") != typed_data.DOMAIN_NAME
    ):
        return {
            "valid": False,
            "reason": "foreign_domain",
            "detail": "the typed data is not under the trusted registry's EIP-712 domain",
        }
    try:
        digest = typed_data.digest(td)
    except Exception as exc:  # eth-account rejects malformed typed data in many ways
        raise BadRequest(f"the typed data does not encode: {exc}", code="proof_malformed") from exc
    if "0x" + digest.hex() != str(doc.get("consent_id", "")).lower():
        raise BadRequest(
            "the consent id is not the digest of the typed data", code="proof_malformed"
        )
    index = _int(doc.get("index"), "index")
    batch_id = _int(doc.get("batch_id"), "batch_id")
    word = _b(doc.get("status_word"))
    if "withdrawn_bit" in doc:
        bit = (int.from_bytes(word, "big") >> (255 - index % 256)) & 1
        if bool(doc["withdrawn_bit"]) != bool(bit):
            return {"valid": False, "reason": "withdrawn_bit_mismatch"}
    contract = _contract(chain, ANCHOR, anchor)
    args = (
        grant_args(td["message"]),
        _b(doc.get("signature")),
        index,
        [_b(x) for x in doc.get("consent_proof", [])],
        word,
        [_b(x) for x in doc.get("status_proof", [])],
    )
    if len(args[3]) != 32 or len(args[5]) != 32:
        raise BadRequest("a proof has 32 siblings", code="proof_malformed")
    try:
        onchain = chain.call(contract.functions.batch(batch_id))
        reason, withdrawn = chain.call(contract.functions.checkConsentProofAt(batch_id, *args))
        latest_reason, latest_withdrawn = chain.call(contract.functions.checkConsentProof(*args))
    except ChainRevert as exc:
        return {"valid": False, "reason": exc.name, "mode": "batched"}
    roots = doc.get("roots") or {}
    chain_roots = {
        "consent": to_hex(onchain[4]),
        "status": to_hex(onchain[5]),
        "audit": to_hex(onchain[6]),
    }
    if roots and {k: str(v).lower() for k, v in roots.items()} != chain_roots:
        return {"valid": False, "reason": "roots_mismatch", "chain_roots": chain_roots}
    at_batch = reason == 0 and not withdrawn
    latest = latest_reason == 0 and not latest_withdrawn
    if latest:
        why = "ok"
    elif latest_reason == 0 and latest_withdrawn:
        why = "withdrawn"
    elif at_batch and latest_reason in (5, 6):
        why = "stale_proof"
    else:
        why = PROOF_REASONS.get(int(latest_reason), str(latest_reason))
    return {
        "valid": latest,
        "reason": why,
        "mode": "batched",
        "batch_id": batch_id,
        "valid_at_batch": at_batch,
        "granted": reason == 0,
        "withdrawn": bool(withdrawn),
        "reason_at_batch": PROOF_REASONS.get(int(reason), str(reason)),
        "withdrawn_latest": bool(latest_withdrawn) if latest_reason == 0 else None,
    }


def verify_audit(chain: ChainBackend, doc: dict[str, Any], *, anchor: str) -> dict[str, Any]:
    """Check an audit proof document on ``chain`` against the TRUSTED ``anchor``: the
    event JSON hashes to ``event_hash`` and the proof reaches the audit root of the
    proof's batch (audit events are never retracted, so that is the verdict).

    Returns ``{"valid", "valid_latest", "event_hash", "reason"}``.
    """
    if doc.get("kind") != "audit":
        raise BadRequest("not an audit proof", code="proof_malformed")
    if doc.get("chain_id") != chain.chain_id:
        raise BadRequest(
            f"the proof is for chain {doc.get('chain_id')}, not {chain.chain_id}",
            code="proof_malformed",
        )
    if not _same(doc.get("anchor"), anchor):
        return {"valid": False, "reason": "untrusted_anchor"}
    if not isinstance(doc.get("event"), dict):
        raise BadRequest("the proof has no event", code="proof_malformed")
    event_hash = keccak(canonical_json(doc["event"]))
    if to_hex(event_hash) != str(doc.get("event_hash", "")).lower():
        return {"valid": False, "valid_latest": False, "reason": "event_hash_mismatch"}
    index = _int(doc.get("index"), "index")
    batch_id = _int(doc.get("batch_id"), "batch_id")
    proof = [_b(x) for x in doc.get("proof", [])]
    if len(proof) != 32:
        raise BadRequest("a proof has 32 siblings", code="proof_malformed")
    contract = _contract(chain, ANCHOR, anchor)
    try:
        at = chain.call(contract.functions.verifyAuditAt(batch_id, event_hash, index, proof))
        latest = chain.call(contract.functions.verifyAudit(event_hash, index, proof))
    except ChainRevert as exc:
        return {"valid": False, "reason": exc.name}
    return {
        "valid": bool(at),
        "valid_latest": bool(latest),
        "event_hash": to_hex(event_hash),
        "reason": "ok" if at else "audit_not_proven",
    }
