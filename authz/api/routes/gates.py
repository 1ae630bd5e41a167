"""Gates: registration (registrar), online validation and scan reports (gate key)."""

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from authz import gates
from authz.api.deps import Credentials, Registrar, ServicesDep, _token
from authz.api.gate_schemas import (
    GateCreate,
    GateCreated,
    ReportBatch,
    ReportsAccepted,
    ValidationBatch,
)
from authz.models import Gate
from authz.services import Services

router = APIRouter(prefix="/v1/gates", tags=["gates"])
gate_router = APIRouter(prefix="/v1/gate", tags=["gates"])


async def current_gate(
    request: Request, creds: Credentials, x_api_key: Annotated[str | None, Header()] = None
) -> Gate:
    """The calling gate (``Authorization: Bearer cgg_...`` or ``X-API-Key``); a key seen
    before is answered from memory, a new one from the index in the thread pool."""
    svc: Services = request.app.state.services  # not ServicesDep: no thread-pool hop
    token = _token(creds, x_api_key)
    known = gates.known_gate(svc, token)
    if known is not None:
        return known
    return await run_in_threadpool(gates.authenticate, svc, token)


CurrentGate = Annotated[Gate, Depends(current_gate)]


@router.post("", status_code=201, response_model=GateCreated, dependencies=[Registrar])
def register(body: GateCreate, svc: ServicesDep) -> GateCreated:
    """Register a gate; its API key (``cgg_...``) is shown once."""
    gate, api_key = gates.register_gate(svc, body.name, body.location)
    return GateCreated(gate_id=gate.gate_id, api_key=api_key)


@gate_router.post("/validations")
async def validate(body: ValidationBatch, gate: CurrentGate, request: Request) -> Response:
    """Validate scans in order: ``{"gate_id", "replay_scope": "shared"|"gate", "results":
    [{"valid", "stage", "reason", "kid", "claims", "advice"?}]}``. Errors: 401
    ``invalid_gate_key``, 403 ``gate_mismatch``.

    Async with one hop to the thread pool for the whole batch (verification, replay
    claims, audit insert), rather than a hop per dependency and another for the handler.
    """
    svc: Services = request.app.state.services
    scans = [(s.qr, float(s.scanned_at)) for s in body.scans]
    results, scope = await run_in_threadpool(gates.validate, svc, gate, body.gate_id, scans)
    payload = {"gate_id": body.gate_id, "replay_scope": scope, "results": results}
    return Response(orjson.dumps(payload), media_type="application/json")


@gate_router.post("/reports", status_code=201, response_model=ReportsAccepted)
def reports(body: ReportBatch, gate: CurrentGate, svc: ServicesDep) -> ReportsAccepted:
    """An offline gate's scan reports, appended to the audit log as one event."""
    docs = [r.model_dump() for r in body.reports]
    return ReportsAccepted(
        batch_id=gates.record_reports(svc, gate, body.gate_id, docs), accepted=len(docs)
    )
