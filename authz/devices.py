"""Cards in the field: device enrollment, online tokens, revocations and status lists.

- Each card (a citizen's card-key address) gets one status index in the revocation list
  (W3C Bitstring Status List v1.0, section 3.1), allocated on first enrollment; every
  device certificate issued for the card carries it.
- The certificate's ``sub`` is a keyed pseudonym of the card: HMAC-SHA256 (RFC 2104) with
  a platform secret over the address bytes, so a gate's log never links to the address
  without the secret (DESIGN.md: a pseudonym is keyed, never a bare hash).
- A revocation sets bits and publishes a new *epoch*: the whole list, gzip + base64url
  (section 3.2 ``encodedList``), whose SHA-256 over the ASCII text is anchored in the
  trust registry (``anchorStatusList``) before the epoch is served.

Revoking one device certificate sets its card's current index (the list has one bit per
card), so the card's other devices' certificates stop too; the card moves to a fresh
index and its devices re-enroll (certificates are short-lived anyway). A lost card
(revoked by ``subject``) enrolls nothing more.

Times are Unix seconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from authz import audit
from authz.errors import BadRequest, Conflict, Forbidden, NotFound
from authz.ids import checksum, new_id
from authz.models import Card, DeviceCertificate, Meta, Revocation, StatusListEpoch
from authz.services import Services
from authz.trust import IssuerKeys, Trust, TrustRegistryClient
from fastpath.tokens import StatusList
from fastpath.tokens.issue import DeviceKey, issue_device_cert, sign_sc1
from fastpath.tokens.qr import qr_png
from fastpath.tokens.status import MIN_BITS

DEVICE_CERT_TTL_S = 24 * 3600
ONLINE_CERT_TTL_S = 300
CODE_LIFETIME_S = 60
_NEXT_INDEX = "gates.next_status_index"


def status_digest(encoded_list: str) -> bytes:
    """SHA-256 of an ``encodedList`` (ASCII text): what the trust registry anchors."""
    return hashlib.sha256(encoded_list.encode("ascii")).digest()


class FieldRuntime:
    """Per-process state of the field side: the trust registry, the issuer keys, the
    current revocation list and its epoch. Created on first use (:func:`runtime`), which
    deploys the trust registry, registers a first issuer key and anchors epoch 1."""

    def __init__(self, svc: Services) -> None:
        self.registry = TrustRegistryClient(svc.chain, svc.settings.data_dir)
        self.trust = Trust(self.registry, IssuerKeys(svc.settings.data_dir))
        self.lock = threading.RLock()
        self.trust.ensure_key(svc.now())
        self.status, self.epoch = self._load(svc)

    def _load(self, svc: Services) -> tuple[StatusList, int]:
        with svc.db.sessions() as s:
            row = s.scalar(select(StatusListEpoch).order_by(StatusListEpoch.epoch.desc()).limit(1))
        if row is not None:
            return StatusList.decode(row.encoded_list), row.epoch
        status = StatusList(MIN_BITS)
        return status, publish(svc, self, status)

    def reload(self, svc: Services) -> None:
        """Pick up an epoch another process published (several workers, one index)."""
        with svc.db.sessions() as s:
            latest = s.scalar(
                select(StatusListEpoch.epoch).order_by(StatusListEpoch.epoch.desc()).limit(1)
            )
        if latest is not None and latest > self.epoch:
            with self.lock:
                self.status, self.epoch = self._load(svc)


def runtime(svc: Services) -> FieldRuntime:
    """The process's :class:`FieldRuntime` (kept on ``svc``)."""
    return svc.shared("field_runtime", lambda: FieldRuntime(svc))


def publish(svc: Services, rt: FieldRuntime, status: StatusList) -> int:
    """Anchor ``status`` as the next epoch on chain, then store it; returns the epoch.

    The next epoch is the chain's latest + 1 (so an epoch anchored before a crash is
    never reused). Raises the trust registry's errors (:class:`authz.errors.Conflict`
    ``epoch_out_of_order`` when another writer anchored in between).
    """
    encoded = status.encode()
    digest = status_digest(encoded)
    epoch = rt.registry.latest_epoch() + 1
    result = rt.registry.send("anchorStatusList", epoch, digest, status.size_bits)
    with svc.db.session() as s:
        s.add(
            StatusListEpoch(
                epoch=epoch,
                encoded_list=encoded,
                digest=digest.hex(),
                size_bits=status.size_bits,
                tx_hash=result.tx_hash,
                block_number=result.block_number,
                created_at=svc.now(),
            )
        )
    return epoch


def pseudonym(svc: Services, subject: str) -> bytes:
    """The card's keyed pseudonym: HMAC-SHA256(platform secret, 20 address bytes), 32 bytes.

    The secret is ``CONSENTGATE_PSEUDONYM_SECRET`` or ``DATA_DIR/pseudonym_secret``.
    """
    key = svc.settings.pseudonym_secret or svc.settings.secret("pseudonym_secret")
    return hmac.new(key.encode(), bytes.fromhex(subject[2:]), hashlib.sha256).digest()


def _allocate_index(s: Session) -> int:
    """Next free status index: the counter, or past the highest index a card holds when
    the counter is behind (another worker's allocation). The caller commits ``s``."""
    row = s.get(Meta, _NEXT_INDEX)
    highest = s.scalar(select(func.max(Card.status_index)))
    index = max(int(row.value) if row else 0, -1 if highest is None else highest + 1)
    s.merge(Meta(key=_NEXT_INDEX, value=str(index + 1)))
    return index


def card(svc: Services, subject: str) -> Card:
    """The card of ``subject`` (checksum address), allocating its status index on first use.

    Allocation is serialized in the process by the runtime lock; two worker processes
    that read the same counter collide on the unique ``status_index`` (or ``subject``)
    and the loser re-reads and retries.
    """
    rt = runtime(svc)
    with rt.lock:
        for _attempt in range(8):
            with svc.db.sessions() as s:
                found = s.get(Card, subject)
            if found is not None:
                return found
            try:
                with svc.db.session() as s:
                    row = Card(
                        subject=subject,
                        status_index=_allocate_index(s),
                        lost=False,
                        created_at=svc.now(),
                    )
                    s.add(row)
                return row
            except IntegrityError:
                continue
        raise Conflict("could not allocate a status index; retry", code="status_index_busy")


def parse_device_key(text: str) -> bytes:
    """A 32-byte Ed25519 public key from 64 hex digits or base64/base64url (padding
    optional). Raises :class:`BadRequest` ``invalid_device_key``."""
    raw: bytes | None = None
    try:
        if len(text) == 64:
            raw = bytes.fromhex(text)
    except ValueError:
        raw = None
    if raw is None:
        try:
            raw = base64.urlsafe_b64decode(
                text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4)
            )
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != 32:
        raise BadRequest(
            "device_public_key must be a 32-byte Ed25519 key (hex or base64)",
            code="invalid_device_key",
        )
    return raw


@dataclass(frozen=True)
class Enrollment:
    """A device certificate as ``POST /v1/devices`` returns it."""

    device_certificate_id: str
    device_certificate: str  # base64url (no padding) of the COSE_Sign1 bytes
    status_index: int
    kid: str
    issued_at: int
    expires_at: int


def _usable_card(svc: Services, subject: str) -> Card:
    found = card(svc, subject)
    if found.lost:
        raise Forbidden("this card was reported lost and revoked", code="card_revoked")
    return found


def _certificate(
    svc: Services, subject: str, device_public: bytes, ttl: int
) -> tuple[bytes, Card, str, int, int]:
    rt = runtime(svc)
    found = _usable_card(svc, subject)
    now = svc.now()
    issuer, key = rt.trust.signing_key(now)
    exp = min(now + ttl, key.valid_until)
    cert = issue_device_cert(
        issuer, device_public, pseudonym(svc, subject), found.status_index, iat=now, exp=exp
    )
    return cert, found, issuer.kid.hex(), now, exp


def enroll_device(svc: Services, subject: str, device_public_key: str) -> Enrollment:
    """Issue a device certificate binding ``device_public_key`` to ``subject``'s card.

    Validity: 24 h, never past the issuer key's ``validUntil``. Raises
    :class:`BadRequest` ``invalid_device_key``, :class:`Forbidden` ``card_revoked``,
    :class:`authz.errors.Conflict` ``no_issuer_key``.
    """
    subject = checksum(subject, "subject")
    device_public = parse_device_key(device_public_key)
    cert, found, kid, now, exp = _certificate(svc, subject, device_public, DEVICE_CERT_TTL_S)
    row = DeviceCertificate(
        certificate_id=new_id("dvc"),
        subject=subject,
        device_public_key=device_public.hex(),
        status_index=found.status_index,
        kid=kid,
        issued_at=now,
        expires_at=exp,
        revoked=False,
    )
    with svc.db.session() as s:
        s.add(row)
    text = base64.urlsafe_b64encode(cert).rstrip(b"=").decode("ascii")
    return Enrollment(row.certificate_id, text, found.status_index, kid, now, exp)


def online_token(svc: Services, subject: str) -> tuple[str, str, int]:
    """An online-mode ``SC1:`` code for a phone that cannot sign: the service makes a
    one-off device key, certifies it for 300 s and signs a 60 s code with it.

    Returns ``(qr text, PNG as base64, expires_at)``. Raises :class:`Forbidden`
    ``card_revoked``.
    """
    subject = checksum(subject, "subject")
    device = DeviceKey.generate()
    cert, _card, _kid, now, _exp = _certificate(svc, subject, device.public, ONLINE_CERT_TTL_S)
    code = sign_sc1(device, cert, iat=now, lifetime=CODE_LIFETIME_S)
    png = base64.b64encode(qr_png(code)).decode("ascii")
    return code, png, now + CODE_LIFETIME_S


def _grow(status: StatusList, index: int) -> StatusList:
    size = status.size_bits
    while index >= size:
        size *= 2
    if size == status.size_bits:
        return status
    return StatusList(bits=status.bytes() + bytes((size - status.size_bits) // 8))


def revoke(
    svc: Services,
    *,
    subject: str | None = None,
    status_index: int | None = None,
    device_certificate_id: str | None = None,
    reason: str,
) -> tuple[Revocation, StatusListEpoch]:
    """Revoke a card (``subject``), a status index, or one device certificate, then
    publish and anchor the new epoch. Exactly one target must be given.

    Returns the revocation row and the new epoch row. Raises :class:`BadRequest`
    ``revocation_target`` (not exactly one target, or an index past the allocated
    ones), :class:`NotFound` ``device_certificate_not_found``.
    """
    targets = [t for t in (subject, status_index, device_certificate_id) if t is not None]
    if len(targets) != 1:
        raise BadRequest(
            "name exactly one of subject, status_index, device_certificate_id",
            code="revocation_target",
        )
    rt = runtime(svc)
    with rt.lock:
        if subject is not None:
            kind, target = "subject", checksum(subject, "subject")
            found = card(svc, target)
            indexes = [found.status_index]
            with svc.db.session() as s:
                s.execute(update(Card).where(Card.subject == target).values(lost=True))
        elif status_index is not None:
            kind, target = "status_index", str(status_index)
            allocated = int(svc.db.get_meta(_NEXT_INDEX) or 0)
            if not 0 <= status_index < allocated:
                raise BadRequest(
                    f"status index {status_index} was never allocated", code="revocation_target"
                )
            indexes = [status_index]
        else:
            kind, target = "device_certificate_id", str(device_certificate_id)
            with svc.db.sessions() as s:
                cert = s.get(DeviceCertificate, target)
            if cert is None:
                raise NotFound(
                    f"no device certificate {target}", code="device_certificate_not_found"
                )
            indexes = [cert.status_index]
        with svc.db.session() as s:
            s.execute(
                update(DeviceCertificate)
                .where(DeviceCertificate.status_index.in_(indexes))
                .values(revoked=True)
            )
            # a card still in use moves to a fresh index; its devices re-enroll
            for moved in s.scalars(
                select(Card).where(Card.status_index.in_(indexes), Card.lost.is_(False))
            ):
                moved.status_index = _allocate_index(s)
        status = StatusList(bits=rt.status.bytes())
        for index in indexes:
            status = _grow(status, index)
            status.set(index)
        epoch = publish(svc, rt, status)
        rt.status, rt.epoch = status, epoch
        row = Revocation(
            revocation_id=new_id("rvk"),
            kind=kind,
            target=target,
            reason=reason,
            status_indexes=indexes,
            epoch=epoch,
            created_at=svc.now(),
        )
        with svc.db.session() as s:
            s.add(row)
            audit.append(
                s,
                "revocation",
                row.revocation_id,
                {
                    "revocation_id": row.revocation_id,
                    "kind": kind,
                    "status_indexes": indexes,
                    "epoch": epoch,
                },
            )
            published = s.get(StatusListEpoch, epoch)
    assert published is not None
    return row, published


def status_list(svc: Services, epoch: int | None = None) -> StatusListEpoch:
    """The published list of ``epoch`` (None: the latest). Raises :class:`NotFound`
    ``epoch_not_found``."""
    runtime(svc)
    with svc.db.sessions() as s:
        if epoch is None:
            row = s.scalar(select(StatusListEpoch).order_by(StatusListEpoch.epoch.desc()).limit(1))
        else:
            row = s.get(StatusListEpoch, epoch)
    if row is None:
        raise NotFound(f"no status list for epoch {epoch}", code="epoch_not_found")
    return row


def status_document(svc: Services, row: StatusListEpoch) -> dict[str, Any]:
    """``GET /v1/status-lists/{epoch}``: the list and where its digest is anchored."""
    rt = runtime(svc)
    return {
        "epoch": row.epoch,
        "statusPurpose": "revocation",
        "encodedList": row.encoded_list,
        "size_bits": row.size_bits,
        "digest": row.digest,
        "digest_alg": "sha-256",
        "issued_at": row.created_at,
        "anchor": {
            "chain_id": rt.registry.chain_id,
            "contract": rt.registry.address,
            "tx_hash": row.tx_hash,
            "block_number": row.block_number,
        },
    }


def trust_document(svc: Services) -> dict[str, Any]:
    """``GET /v1/trust-list``: the issuer keys as the chain holds them, the latest
    anchored epoch with its digest (read from the chain), and the registry's address."""
    rt = runtime(svc)
    keys = rt.trust.chain_keys(refresh=True)
    epoch = rt.registry.latest_epoch()
    digest, size, at = rt.registry.digest(epoch)
    return {
        "chain_id": rt.registry.chain_id,
        "contract": rt.registry.address,
        "block_number": svc.chain.block_number(),
        "trust_keys": [k.spec() for k in keys],
        "status_list": {
            "epoch": epoch,
            "digest": digest.hex(),
            "size_bits": size,
            "anchored_at": at,
        },
    }
