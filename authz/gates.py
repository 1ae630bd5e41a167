"""Gates registered with the service: API keys, online validation, scan reports.

``POST /v1/gate/validations`` runs the fast path (compiled when built) with the trust
list read from the chain and the latest anchored status list, one verifier per gate (so
without Redis replay protection is per gate, as offline), then the shared Redis replay
claim of :mod:`authz.fieldcheck`. Each batch is one ``gate_scans`` audit event (no
personal data: cti, kid, outcome, scan time), written by a background group-commit
writer (:class:`AuditWriter`: off the request path, at most a few ms behind); uploaded
offline reports (``gate_reports``) are committed before the upload is acknowledged.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select

from authz import audit, devices
from authz.errors import Forbidden, Unauthorized
from authz.fieldcheck import SKEW_S, RedisReplay, apply_shared_replay, result_dicts, trust_list
from authz.ids import new_id, new_secret, secret_hash
from authz.models import AuditEvent, Gate
from authz.services import Services
from fastpath.tokens import Result

REPLAY_CAPACITY = 200_000
KEY_REFRESH_S = 5.0
"""How often (seconds) a process re-reads the issuer keys from the chain and the latest
status-list epoch from the index for validation; changes made through this process
apply at once."""
log = logging.getLogger("consentgate.gates")


def register_gate(svc: Services, name: str, location: str) -> tuple[Gate, str]:
    """Register a gate; returns it and its API key (``cgg_...``, shown once, stored as
    SHA-256)."""
    api_key = new_secret("cgg")
    gate = Gate(
        gate_id=new_id("gte"),
        name=name,
        location=location,
        api_key_hash=secret_hash(api_key),
        created_at=svc.now(),
    )
    with svc.db.session() as s:
        s.add(gate)
    return gate, api_key


def known_gate(svc: Services, api_key: str) -> Gate | None:
    """The gate of an API key already authenticated in this process, else None."""
    known: dict[str, Gate] = svc.__dict__.get("_gate_keys", {})
    return known.get(secret_hash(api_key))


def authenticate(svc: Services, api_key: str) -> Gate:
    """The gate owning ``api_key``; raises :class:`Unauthorized` ``invalid_gate_key``.

    A known key is remembered per process by its SHA-256 (gates have no key rotation or
    removal yet, so an entry never goes stale); an unknown key always reaches the index.
    """
    digest = secret_hash(api_key)
    known: dict[str, Gate] = svc.__dict__.setdefault("_gate_keys", {})
    gate = known.get(digest)
    if gate is None:
        with svc.db.sessions() as s:
            gate = s.scalar(select(Gate).where(Gate.api_key_hash == digest))
        if gate is None:
            raise Unauthorized("unknown gate API key", code="invalid_gate_key")
        known[digest] = gate
    return gate


class Validators:
    """Per-process verifiers, one per gate, rebuilt when the trust list or epoch changes."""

    def __init__(self, svc: Services) -> None:
        from fastpath.tokens import Verifier

        self._verifier_cls = Verifier
        self.svc = svc
        self.lock = threading.Lock()
        self.version: tuple[Any, ...] = ()
        self.by_gate: dict[str, Any] = {}
        url = svc.settings.redis_url
        self.replay = RedisReplay(url) if url else None
        self._checked = 0.0

    def _current(self) -> tuple[Any, ...]:
        rt = devices.runtime(self.svc)
        keys = tuple((k.kid, k.revoked, k.valid_until) for k in rt.trust.chain_keys())
        return keys, rt.epoch

    def verifier(self, gate_id: str) -> Any:
        """This gate's verifier on the current lists (trust keys re-read from the chain
        every :data:`KEY_REFRESH_S`)."""
        rt = devices.runtime(self.svc)
        with self.lock:
            now = time.monotonic()
            if now - self._checked > KEY_REFRESH_S:  # changes made by other processes
                rt.trust.chain_keys(refresh=True)
                rt.reload(self.svc)
                self._checked = now
            version = self._current()  # cached keys and epoch: cheap
            if version != self.version:
                self.version, self.by_gate = version, {}
            found = self.by_gate.get(gate_id)
            if found is None:
                doc = {"trust_keys": [k.spec() for k in rt.trust.chain_keys()]}
                found = self._verifier_cls(
                    trust_list(doc),
                    profile="sc1",
                    skew=SKEW_S,
                    status=rt.status,
                    replay_capacity=REPLAY_CAPACITY,
                )
                self.by_gate[gate_id] = found
            return found


def validators(svc: Services) -> Validators:
    """The process's :class:`Validators` (kept on ``svc``)."""
    found: Validators | None = svc.__dict__.get("_gate_validators")
    if found is None:
        found = svc.__dict__.setdefault("_gate_validators", Validators(svc))
    return found


def validate(
    svc: Services, gate: Gate, gate_id: str, scans: Sequence[tuple[str, float]]
) -> tuple[list[dict[str, Any]], str]:
    """Validate ``(qr, scanned_at)`` pairs (Unix seconds) in order at ``gate``.

    Returns one result dict per scan (``valid``, ``stage``, ``reason``, ``kid``,
    ``claims``, and ``advice`` on a time failure) and the replay scope (``shared`` or
    ``gate``). Raises :class:`Forbidden` ``gate_mismatch`` when ``gate_id`` is not the
    key's gate.
    """
    if gate_id != gate.gate_id:
        raise Forbidden("gate_id is not the gate of this API key", code="gate_mismatch")
    vals = validators(svc)
    verifier = vals.verifier(gate_id)
    results: list[Result] = []
    start = 0
    while start < len(scans):  # runs of equal scan times go to verify_batch together
        at = scans[start][1]
        end = start + 1
        while end < len(scans) and scans[end][1] == at:
            end += 1
        results.extend(verifier.verify_batch([q for q, _ in scans[start:end]], at))
        start = end
    scope = apply_shared_replay(results, vals.replay, svc.clock(), SKEW_S)  # type: ignore[operator]
    out = result_dicts(results, [at for _, at in scans])
    _audit(
        svc,
        gate_id,
        "gate_scans",
        [_report(d, at) for d, (_, at) in zip(out, scans, strict=True)],
        durable=False,
    )
    return out, scope


def _report(result: dict[str, Any], at: float) -> dict[str, Any]:
    claims = result["claims"]
    return {
        "cti": claims.get("cti"),
        "kid": result["kid"],
        "valid": result["valid"],
        "stage": result["stage"],
        "reason": result["reason"],
        "scanned_at": at,
    }


class AuditWriter:
    """Appends gate scan batches to the audit log from a background thread.

    A validation answers without waiting for the audit row; the writer drains every
    batch queued meanwhile into one transaction (group commit), so the index's fsync
    and the event hashing stay off the request path. Trade-off, chosen for the gate
    throughput target: a batch is in the audit log within one commit (a few ms) after
    its answer; a crash of the service process in that window loses those scan records
    (never a decision: the gate already acted, and offline gates upload their own
    reports). ``flush()`` waits until everything queued so far is committed.
    """

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.queue: queue.SimpleQueue[dict[str, Any] | threading.Event] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="gate-audit", daemon=True)
        self.thread.start()
        atexit.register(self.flush)

    def put(self, event: dict[str, Any]) -> None:
        """Queue one audit event document (``kind`` and ``batch_id`` set)."""
        self.queue.put(event)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every event queued before this call is committed."""
        done = threading.Event()
        self.queue.put(done)
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            items = [self.queue.get()]
            while True:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            events = [i for i in items if isinstance(i, dict)]
            if events:
                # created_ms set: audit-only anchoring waits for its clock (it read 0 as
                # "due" and anchored gate batches on every pass of the worker)
                rows = [audit.event_row(ev["kind"], ev["batch_id"], ev) for ev in events]
                try:
                    with self.svc.db.engine.begin() as conn:
                        conn.execute(insert(AuditEvent), rows)
                except Exception:  # keep the writer alive; the batch is logged as lost
                    log.exception("gate audit: %d scan batches not written", len(rows))
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()


def audit_writer(svc: Services) -> AuditWriter:
    """The process's :class:`AuditWriter` (kept on ``svc``)."""
    return svc.shared("gate_audit", lambda: AuditWriter(svc))


def _audit(
    svc: Services, gate_id: str, kind: str, scans: list[dict[str, Any]], *, durable: bool
) -> str:
    """One audit event for a batch of scans: committed before returning when
    ``durable`` (uploaded reports: the gate deletes its copy on our answer), else queued
    to the :class:`AuditWriter` (online validations)."""
    batch_id = new_id("scn")
    event = {
        "kind": kind,
        "batch_id": batch_id,
        "gate_id": gate_id,
        "at_ms": int(svc.clock() * 1000),  # type: ignore[operator]
        "scans": scans,
    }
    if not durable:
        audit_writer(svc).put(event)
        return batch_id
    with svc.db.engine.begin() as conn:
        conn.execute(insert(AuditEvent), [audit.event_row(kind, batch_id, event)])
    return batch_id


def record_reports(svc: Services, gate: Gate, gate_id: str, reports: list[dict[str, Any]]) -> str:
    """Append an offline gate's uploaded scan reports to the audit log as one event;
    returns the batch id. Raises :class:`Forbidden` ``gate_mismatch``."""
    if gate_id != gate.gate_id:
        raise Forbidden("gate_id is not the gate of this API key", code="gate_mismatch")
    return _audit(svc, gate_id, "gate_reports", reports, durable=True)
