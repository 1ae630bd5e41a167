"""Citizens' sign-in with Sign-In with Ethereum (EIP-4361) and their bearer sessions.

The EIP-4361 message itself is parsed and verified by :mod:`authz.siwe`; this module
keeps the single-use nonces and the sessions (only a token's SHA-256 is stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import update

from authz import siwe
from authz.errors import BadRequest, Unauthorized
from authz.ids import new_secret, secret_hash
from authz.models import CitizenSession, SiweNonce
from authz.services import Services

NONCE_TTL_S = 600


def issue_nonce(svc: Services) -> str:
    """A fresh single-use SIWE nonce, valid for 10 minutes."""
    nonce = siwe.new_nonce()
    with svc.db.session() as s:
        s.add(SiweNonce(nonce=nonce, issued_at=svc.now(), used=False))
    return nonce


def _consume(svc: Services, nonce: str) -> bool:
    with svc.db.session() as s:
        result = s.execute(
            update(SiweNonce)
            .where(
                SiweNonce.nonce == nonce,
                SiweNonce.used.is_(False),
                SiweNonce.issued_at >= svc.now() - NONCE_TTL_S,
            )
            .values(used=True)
        )
        return bool(getattr(result, "rowcount", 0) == 1)


@dataclass(frozen=True)
class SignedIn:
    """A citizen session: bearer ``token``, the ``address`` and ``expires_at`` (Unix s)."""

    token: str
    address: str
    expires_at: int


def sign_in(svc: Services, message: str, signature: str) -> SignedIn:
    """Verify a SIWE message for this service and open a session.

    The message's ``domain`` must be this service's host[:port], its ``uri`` under the
    service's base URL, its chain id the registry's chain, its nonce one issued here and
    unused (EIP-4361 §"Verifying a message"). Raises :class:`BadRequest` /
    :class:`Unauthorized` with the :class:`authz.siwe.SiweError` code.
    """
    base = svc.settings.base_url
    domain = urlsplit(base).netloc
    try:
        msg = siwe.verify_message(
            message,
            signature,
            domain=domain,
            uri_prefix=base,
            chain_id=svc.ledger.chain_id,
            now=datetime.now(UTC),
            consume_nonce=lambda n: _consume(svc, n),
        )
    except siwe.SiweError as exc:
        cls = BadRequest if exc.code == "siwe_malformed" else Unauthorized
        raise cls(str(exc), code=exc.code) from exc
    expires = svc.now() + svc.settings.siwe_ttl_s
    if msg.expiration_time is not None:
        expires = min(expires, int(msg.expiration_time.timestamp()))
    token = new_secret("cgs")
    with svc.db.session() as s:
        s.add(
            CitizenSession(token_hash=secret_hash(token), address=msg.address, expires_at=expires)
        )
    return SignedIn(token, msg.address, expires)


def authenticate(svc: Services, token: str) -> str:
    """The citizen address of a live session token; raises :class:`Unauthorized`."""
    with svc.db.sessions() as s:
        row = s.get(CitizenSession, secret_hash(token))
    if row is None or row.expires_at < svc.now():
        raise Unauthorized("unknown or expired citizen session", code="invalid_session")
    return row.address
