"""Citizen sign-in with Sign-In with Ethereum (EIP-4361)."""

from fastapi import APIRouter

from authz import citizens
from authz.api.deps import ServicesDep
from authz.api.schemas import Nonce, SiweCreate, SiweSession

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/siwe/nonce", response_model=Nonce)
def nonce(svc: ServicesDep) -> Nonce:
    """A single-use nonce for the SIWE message (valid 10 minutes)."""
    return Nonce(nonce=citizens.issue_nonce(svc))


@router.post("/siwe", response_model=SiweSession)
def sign_in(body: SiweCreate, svc: ServicesDep) -> SiweSession:
    """Exchange a signed EIP-4361 message for a bearer session token.

    The message must name this service's host as ``domain``, a URI under its base URL,
    the registry's chain id and an unused nonce from ``/v1/auth/siwe/nonce``. Errors:
    400 ``siwe_malformed``; 401 ``siwe_*`` (domain, uri, chain, time, signature, nonce).
    """
    s = citizens.sign_in(svc, body.message, body.signature)
    return SiweSession(token=s.token, address=s.address, expires_at=s.expires_at)
