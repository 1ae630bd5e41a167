"""Departments (PII controllers): registered and suspended by the registrar."""

from fastapi import APIRouter

from authz import departments
from authz.api.deps import Registrar, ServicesDep
from authz.api.schemas import (
    ApiKey,
    DepartmentCreate,
    DepartmentCreated,
    DepartmentPublic,
    SuspensionResult,
)

router = APIRouter(prefix="/v1/departments", tags=["departments"])


@router.post("", status_code=201, response_model=DepartmentCreated, dependencies=[Registrar])
def register(body: DepartmentCreate, svc: ServicesDep) -> DepartmentCreated:
    """Register a department on chain; the response carries its API key, shown once.

    Errors: 403 ``registrar_only``, 409 ``department_exists``, 422 ``validation_error``.
    """
    dept, api_key = departments.register_department(svc, body.name, body.address, body.purposes)
    return DepartmentCreated(
        department_id=dept.department_id,
        address=dept.address,
        api_key=api_key,
        purposes=dept.purposes,
        tx_hash=dept.tx_hash,
    )


@router.get("/{department_id}", response_model=DepartmentPublic, dependencies=[Registrar])
def get(department_id: str, svc: ServicesDep) -> DepartmentPublic:
    """A department and whether it is active on chain. Errors: 404 ``department_not_found``."""
    dept = departments.get_department(svc, department_id)
    return DepartmentPublic(
        department_id=dept.department_id,
        name=dept.name,
        address=dept.address,
        purposes=dept.purposes,
        active=departments.is_active(svc, dept.address),
    )


@router.post(
    "/{department_id}/suspension", response_model=SuspensionResult, dependencies=[Registrar]
)
def suspend(department_id: str, svc: ServicesDep) -> SuspensionResult:
    """Suspend a department: from now on every access check of it is denied."""
    tx = departments.set_suspended(svc, department_id, True)
    return SuspensionResult(department_id=department_id, active=False, tx_hash=tx)


@router.delete(
    "/{department_id}/suspension", response_model=SuspensionResult, dependencies=[Registrar]
)
def reinstate(department_id: str, svc: ServicesDep) -> SuspensionResult:
    """Lift a department's suspension."""
    tx = departments.set_suspended(svc, department_id, False)
    return SuspensionResult(department_id=department_id, active=True, tx_hash=tx)


@router.post("/{department_id}/api-key", response_model=ApiKey, dependencies=[Registrar])
def rotate_key(department_id: str, svc: ServicesDep) -> ApiKey:
    """Issue a new API key for a department (lost key, suspected leak); the old key stops
    working at once. Errors: 404 ``department_not_found``."""
    return ApiKey(
        department_id=department_id, api_key=departments.rotate_api_key(svc, department_id)
    )
