"""Device enrollment: a citizen's phone gets an issuer-signed device certificate."""

from fastapi import APIRouter

from authz import devices
from authz.api.deps import CurrentCitizen, ServicesDep
from authz.api.gate_schemas import DeviceCertificatePublic, DeviceCreate

router = APIRouter(prefix="/v1/devices", tags=["devices"])


@router.post("", status_code=201, response_model=DeviceCertificatePublic)
def enroll(
    body: DeviceCreate, citizen: CurrentCitizen, svc: ServicesDep
) -> DeviceCertificatePublic:
    """Certify the phone's Ed25519 key for the ``SC1:`` profile (24 h, the card's status
    index). Errors: 400 ``invalid_device_key``, 403 ``card_revoked``, 409 ``no_issuer_key``."""
    e = devices.enroll_device(svc, citizen, body.device_public_key)
    return DeviceCertificatePublic(
        device_certificate_id=e.device_certificate_id,
        device_certificate=e.device_certificate,
        status_index=e.status_index,
        kid=e.kid,
        issued_at=e.issued_at,
        expires_at=e.expires_at,
    )
