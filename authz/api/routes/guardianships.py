"""Guardianships (guardian -> ward with an end date), recorded by the registrar."""

from fastapi import APIRouter

from authz import guardians
from authz.api.deps import Registrar, ServicesDep
from authz.api.schemas import GuardianshipCreate, GuardianshipResult
from authz.consents import rfc3339

router = APIRouter(prefix="/v1/guardianships", tags=["guardianships"])


@router.post("", status_code=201, response_model=GuardianshipResult, dependencies=[Registrar])
def create(body: GuardianshipCreate, svc: ServicesDep) -> GuardianshipResult:
    """Record that ``guardian`` signs for ``ward`` until ``until`` (RFC 3339).

    Errors: 400 ``invalid_guardianship``, 403 ``registrar_only``.
    """
    until = int(body.until.timestamp())
    tx = guardians.set_guardian(svc, body.ward, body.guardian, until)
    return GuardianshipResult(
        ward=body.ward, guardian=body.guardian, until=rfc3339(until), tx_hash=tx
    )


@router.delete("/{ward}", response_model=GuardianshipResult, dependencies=[Registrar])
def end(ward: str, svc: ServicesDep) -> GuardianshipResult:
    """End a ward's guardianship now."""
    tx = guardians.end_guardianship(svc, ward)
    return GuardianshipResult(ward=ward, guardian=None, until=None, tx_hash=tx)
