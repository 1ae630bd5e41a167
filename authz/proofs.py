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
from authz.ledger import ANCHOR, REGISTRY, grant_args
from authz.models import AuditEvent, Batch, Consent, OutboxItem
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


def _h(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def _latest_anchored(c: Commitments) -> Batch:
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
            "consent_proof": [_h(x) for x in c.consents.proof(index)],
            "status_word": _h(c.status.word(word)),
            "status_proof": [_h(x) for x in c.status.proof(word)],
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
        ev = s.scalar(
            select(AuditEvent).where(AuditEvent.ref == access_id, AuditEvent.kind == "access_check")
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
            "proof": [_h(x) for x in c.audit.proof(int(ev.leaf_index))],
            "audit_root": batch.audit_root,
        }


# -- verification against the chain ------------------------------------------------------


def _b(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _contract(chain: ChainBackend, name: str, address: str) -> Any:
    chain.register_errors(error_abis())
    return chain.w3.eth.contract(address=to_checksum_address(address), abi=load_artifact(name).abi)


def verify_consent(chain: ChainBackend, doc: dict[str, Any]) -> dict[str, Any]:
    """Check a consent proof document on ``chain``.

    Returns ``{"valid", "granted", "withdrawn", "reason", ...}``: for a batched proof,
    ``valid`` means granted and not withdrawn as of the proof's batch, and
    ``valid_latest`` the same against the latest anchored roots. Raises
    :class:`BadRequest` ``proof_malformed`` when the document does not hang together
    (the consent id is not the digest of its typed data, wrong chain).
    """
    if doc.get("kind") != "consent":
        raise BadRequest("not a consent proof", code="proof_malformed")
    if int(doc["chain_id"]) != chain.chain_id:
        raise BadRequest(
            f"proof is for chain {doc['chain_id']}, not {chain.chain_id}", code="proof_malformed"
        )
    if doc.get("mode") == "direct":
        registry = _contract(chain, REGISTRY, doc["registry"])
        valid, reason = chain.call(
            registry.functions.checkConsent(
                _b(doc["consent_id"]),
                to_checksum_address(doc["controller"]),
                _b(doc["purpose_hash"]),
                [_b(x) for x in doc["pi_category_hashes"]],
            )
        )
        return {
            "valid": bool(valid),
            "granted": reason not in (1,),
            "withdrawn": reason == 2,
            "reason": REGISTRY_REASONS.get(int(reason), str(reason)),
            "mode": "direct",
        }
    td = doc["typed_data"]
    if "0x" + typed_data.digest(td).hex() != doc["consent_id"].lower():
        raise BadRequest(
            "the consent id is not the digest of the typed data", code="proof_malformed"
        )
    anchor = _contract(chain, ANCHOR, doc["anchor"])
    args = (
        grant_args(td["message"]),
        _b(doc["signature"]),
        int(doc["index"]),
        [_b(x) for x in doc["consent_proof"]],
        _b(doc["status_word"]),
        [_b(x) for x in doc["status_proof"]],
    )
    try:
        reason, withdrawn = chain.call(
            anchor.functions.checkConsentProofAt(int(doc["batch_id"]), *args)
        )
        latest_reason, latest_withdrawn = chain.call(anchor.functions.checkConsentProof(*args))
    except ChainRevert as exc:
        return {
            "valid": False,
            "granted": False,
            "withdrawn": False,
            "reason": exc.name,
            "mode": "batched",
        }
    return {
        "valid": reason == 0 and not withdrawn,
        "granted": reason == 0,
        "withdrawn": bool(withdrawn),
        "reason": PROOF_REASONS.get(int(reason), str(reason)),
        "valid_latest": latest_reason == 0 and not latest_withdrawn,
        "reason_latest": PROOF_REASONS.get(int(latest_reason), str(latest_reason)),
        "withdrawn_latest": bool(latest_withdrawn),
        "batch_id": int(doc["batch_id"]),
        "mode": "batched",
    }


def verify_audit(chain: ChainBackend, doc: dict[str, Any]) -> dict[str, Any]:
    """Check an audit proof document on ``chain``: the event JSON hashes to
    ``event_hash`` and the proof reaches the audit root of the proof's batch.

    Returns ``{"valid", "valid_latest", "event_hash"}``.
    """
    if doc.get("kind") != "audit":
        raise BadRequest("not an audit proof", code="proof_malformed")
    event_hash = keccak(canonical_json(doc["event"]))
    if _h(event_hash) != doc["event_hash"].lower():
        return {"valid": False, "valid_latest": False, "reason": "event_hash_mismatch"}
    anchor = _contract(chain, ANCHOR, doc["anchor"])
    proof = [_b(x) for x in doc["proof"]]
    at = chain.call(
        anchor.functions.verifyAuditAt(int(doc["batch_id"]), event_hash, int(doc["index"]), proof)
    )
    latest = chain.call(anchor.functions.verifyAudit(event_hash, int(doc["index"]), proof))
    return {
        "valid": bool(at),
        "valid_latest": bool(latest),
        "event_hash": _h(event_hash),
        "reason": "ok" if at else "audit_not_proven",
    }
