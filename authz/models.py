"""Tables of the off-chain index (SQLAlchemy 2 declarative).

Two kinds of table live here:

- *source* tables, written by the service and not derivable from the chain: departments'
  API-key hashes and names, consent requests (the full ISO/IEC TS 27560 record whose hash
  is anchored), withdrawal intents, SIWE nonces and sessions, the access log;
- the *access log* (``access_log`` and ``access_audit_queue``), in its own database
  schema ``accesslog`` (SQLite: a second file attached to every connection; PostgreSQL: a
  schema) so that access checks, the dominant call, never wait for the write lock that
  batch acceptance and anchoring hold on the index file;
- *projection* tables, written only by :mod:`authz.indexer` from chain events:
  ``department_state``, ``guardianships``, ``consents``, ``consent_events``.
  ``consentgate reindex`` drops and rebuilds the projections from the chain.

Times are Unix seconds (int) unless a column name ends in ``_ms``.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every index table."""


class Department(Base):
    """A registered department (PII controller). Source table."""

    __tablename__ = "departments"
    department_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(42), unique=True)
    purposes: Mapped[list[str]] = mapped_column(JSON)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))


class ConsentRequest(Base):
    """A department's request for consent and the Grant it asks the citizen to sign."""

    __tablename__ = "consent_requests"
    request_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    department_id: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(42), index=True)
    record: Mapped[dict] = mapped_column(JSON)  # the consent record fields (ISO/IEC TS 27560)
    message: Mapped[dict] = mapped_column(JSON)  # the Grant message to sign
    record_hash: Mapped[str] = mapped_column(String(66), index=True)
    consent_id: Mapped[str] = mapped_column(String(66), unique=True)  # EIP-712 digest
    created_at: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)


class WithdrawalIntent(Base):
    """The Withdrawal message the service offered for a consent (nonce + deadline)."""

    __tablename__ = "withdrawal_intents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consent_id: Mapped[str] = mapped_column(String(66), index=True)
    message: Mapped[dict] = mapped_column(JSON)
    deadline: Mapped[int] = mapped_column(BigInteger)


class DepartmentState(Base):
    """Projection: a department's on-chain status and registered purposes."""

    __tablename__ = "department_state"
    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean)
    purpose_hashes: Mapped[list[str]] = mapped_column(JSON)
    block_number: Mapped[int] = mapped_column(BigInteger)


class Guardianship(Base):
    """Projection: guardian -> ward with an end date (Unix seconds)."""

    __tablename__ = "guardianships"
    ward: Mapped[str] = mapped_column(String(42), primary_key=True)
    guardian: Mapped[str] = mapped_column(String(42), index=True)
    until: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean)


class Consent(Base):
    """Projection: one granted consent, joined with its request's record."""

    __tablename__ = "consents"
    consent_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    subject: Mapped[str] = mapped_column(String(42))
    controller: Mapped[str] = mapped_column(String(42))
    signer: Mapped[str] = mapped_column(String(42))
    purpose: Mapped[str | None] = mapped_column(String(200), nullable=True)
    purpose_hash: Mapped[str] = mapped_column(String(66))
    pii_categories: Mapped[list[str]] = mapped_column(JSON)
    category_hashes: Mapped[list[str]] = mapped_column(JSON)
    sensitive: Mapped[bool] = mapped_column(Boolean)
    third_party: Mapped[bool] = mapped_column(Boolean)
    valid_from: Mapped[int] = mapped_column(BigInteger)
    valid_until: Mapped[int] = mapped_column(BigInteger)
    record_hash: Mapped[str] = mapped_column(String(66))
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)
    granted_block: Mapped[int] = mapped_column(BigInteger)
    granted_tx: Mapped[str] = mapped_column(String(66))
    leaf_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    __table_args__ = (Index("ix_consents_lookup", "subject", "controller", "purpose_hash"),)


class ConsentEvent(Base):
    """Projection: the event history of a consent (given / withdrawn), one row each."""

    __tablename__ = "consent_events"
    consent_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    event: Mapped[str] = mapped_column(String(20), primary_key=True)
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    signer: Mapped[str] = mapped_column(String(42))
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_time: Mapped[int] = mapped_column(BigInteger)


ACCESS_LOG_SCHEMA = "accesslog"


class AccessRecord(Base):
    """The access log: one row per access check, allowed or denied. Source table, in the
    ``accesslog`` schema."""

    __tablename__ = "access_log"
    __table_args__ = {"schema": ACCESS_LOG_SCHEMA}
    access_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    department_id: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(42), index=True)
    purpose: Mapped[str] = mapped_column(String(200))
    pii_categories: Mapped[list[str]] = mapped_column(JSON)
    allowed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(40))
    consent_id: Mapped[str | None] = mapped_column(String(66), nullable=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)


class SiweNonce(Base):
    """A nonce handed out for Sign-In with Ethereum; single use (EIP-4361)."""

    __tablename__ = "siwe_nonces"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class CitizenSession(Base):
    """A citizen's bearer session after SIWE; only the token's SHA-256 is stored."""

    __tablename__ = "citizen_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(42), index=True)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class OutboxItem(Base):
    """Durable outbox: an accepted grant or withdrawal waiting to be anchored. Source table.

    ``state`` is ``pending`` until the anchoring worker has the item on chain
    (``anchored``, with ``tx_hash``/``block_number``/``batch_id``) or the chain refused it
    (``failed``, with the decoded ``error_code``). ``dedupe_key`` makes a resubmission of
    the same signed item find the first one instead of adding another.
    """

    __tablename__ = "outbox"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(12))  # grant | withdrawal
    dedupe_key: Mapped[str] = mapped_column(String(80), unique=True)
    # found by consent through dedupe_key (authz.outbox.keys_of), so not indexed itself
    consent_id: Mapped[str] = mapped_column(String(66))
    subject: Mapped[str] = mapped_column(String(42), index=True)
    payload: Mapped[dict] = mapped_column(JSON)  # {"message": {...}, "signature": "0x.."}
    state: Mapped[str] = mapped_column(String(12), index=True, default="pending")
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    batch_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    anchored_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AcceptedWithdrawal(Base):
    """A withdrawal the service accepted: effective in checks at once, before anchoring.

    Source table (a withdrawal's signature is the citizen's act; the chain confirms it
    later), so ``reindex`` keeps it and checks stay fail-closed.
    """

    __tablename__ = "withdrawals"
    consent_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    signer: Mapped[str] = mapped_column(String(42))
    accepted_ms: Mapped[int] = mapped_column(BigInteger)
    outbox_seq: Mapped[int] = mapped_column(Integer)


class AuditEvent(Base):
    """The audit log: every access check and every accepted grant/withdrawal. Source table.

    ``event`` is the JSON document whose canonical form is hashed into ``event_hash``
    (keccak-256, see docs/anchoring.md); ``leaf_index``/``batch_id`` are set when the
    event is appended to the anchored audit tree.
    """

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(66), index=True)  # access_id or consent_id
    event: Mapped[dict] = mapped_column(JSON)
    event_hash: Mapped[str] = mapped_column(String(66))
    created_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    batch_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class QueuedAccessAudit(Base):
    """An access check's audit event waiting to move into ``audit_events``.

    Committed with the check's access-log row in the ``accesslog`` schema (one write lock
    shared only by checks); the anchoring worker moves queued events, oldest first, into
    ``audit_events`` (:func:`authz.audit.move_queued`). Same columns as
    :class:`AuditEvent` before anchoring.
    """

    __tablename__ = "access_audit_queue"
    # AUTOINCREMENT: ``seq`` never reuses a trimmed value (the move watermark relies on it)
    __table_args__ = {"schema": ACCESS_LOG_SCHEMA, "sqlite_autoincrement": True}
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(66))
    event: Mapped[dict] = mapped_column(JSON)
    event_hash: Mapped[str] = mapped_column(String(66))
    created_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class Batch(Base):
    """An anchoring batch this service prepared (source table; docs/anchoring.md).

    ``state`` is ``prepared`` from the moment leaf indices are assigned and the batch
    file is written until the ``anchor`` transaction is mined (``anchored``). A crash in
    between is recovered by re-sending the same roots or adopting the mined batch.
    """

    __tablename__ = "batches"
    batch_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    state: Mapped[str] = mapped_column(String(12))
    consent_count: Mapped[int] = mapped_column(BigInteger)
    audit_count: Mapped[int] = mapped_column(BigInteger)
    consent_root: Mapped[str] = mapped_column(String(66))
    status_root: Mapped[str] = mapped_column(String(66))
    audit_root: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class AnchoredBatch(Base):
    """Projection of ``ConsentAnchor.BatchAnchored``: the roots as the chain holds them."""

    __tablename__ = "anchored_batches"
    batch_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    consent_root: Mapped[str] = mapped_column(String(66))
    consent_count: Mapped[int] = mapped_column(BigInteger)
    status_root: Mapped[str] = mapped_column(String(66))
    audit_root: Mapped[str] = mapped_column(String(66))
    audit_count: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(BigInteger)


class Meta(Base):
    """Key/value facts about the index (deployment addresses, indexer cursor)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


PROJECTION_TABLES = (DepartmentState, Guardianship, Consent, ConsentEvent, AnchoredBatch)


# --- gates in the field (issue 5): cards, device certificates, status lists, gates ----------


class Card(Base):
    """A card's revocation status index (W3C Bitstring Status List). Source table.

    ``lost`` is set when the registrar revokes the card (``POST /v1/revocations`` with a
    ``subject``); a lost card enrolls no more devices and gets no online tokens.
    """

    __tablename__ = "cards"
    subject: Mapped[str] = mapped_column(String(42), primary_key=True)
    status_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    lost: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)


class DeviceCertificate(Base):
    """An issued device certificate (its status index is the card's at issuance)."""

    __tablename__ = "device_certificates"
    certificate_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(42), index=True)
    device_public_key: Mapped[str] = mapped_column(String(64))
    status_index: Mapped[int] = mapped_column(BigInteger, index=True)
    kid: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class StatusListEpoch(Base):
    """One published revocation list; its SHA-256 is anchored in the trust registry."""

    __tablename__ = "status_list_epochs"
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    encoded_list: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    size_bits: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Revocation(Base):
    """A registrar's revocation: what was named, why, the indexes set, the epoch."""

    __tablename__ = "revocations"
    revocation_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))  # subject | status_index | device_certificate_id
    target: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200))
    status_indexes: Mapped[list[int]] = mapped_column(JSON)
    epoch: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Gate(Base):
    """A registered gate (turnstile, entrance reader); only its API key's SHA-256 is kept."""

    __tablename__ = "gates"
    gate_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200))
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class: bulk statements on it skip the ORM's per-row
    bookkeeping (for executemany inserts and updates of thousands of rows)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
