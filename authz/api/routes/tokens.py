"""Online-mode ``SC1:`` codes for phones that cannot sign themselves."""

from fastapi import APIRouter

from authz import devices
from authz.api.deps import CurrentCitizen, ServicesDep
from authz.api.gate_schemas import TokenPublic

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


@router.post("", status_code=201, response_model=TokenPublic)
def make_token(citizen: CurrentCitizen, svc: ServicesDep) -> TokenPublic:
    """A 60 s code and its QR image (PNG, base64). Errors: 403 ``card_revoked``."""
    qr, png, expires_at = devices.online_token(svc, citizen)
    return TokenPublic(qr=qr, png_base64=png, expires_at=expires_at)
