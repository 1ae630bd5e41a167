"""Departments (PII controllers): registration, suspension, API-key authentication."""

from __future__ import annotations

import hmac

from sqlalchemy import select

from authz.errors import Conflict, NotFound, Unauthorized
from authz.ids import checksum, new_id, new_secret, secret_hash
from authz.ledger import text_hash
from authz.models import Department, DepartmentState
from authz.services import Services


def register_department(
    svc: Services, name: str, address: str, purposes: list[str]
) -> tuple[Department, str]:
    """Register a department on chain and in the index; return it and its API key.

    The API key is returned once and stored only as SHA-256. ``purposes`` are anchored
    as ``keccak256`` hashes. Raises :class:`Conflict` ``department_exists`` when the
    address is already registered.
    """
    address = checksum(address)
    with svc.db.sessions() as s:
        if s.scalar(select(Department).where(Department.address == address)) is not None:
            raise Conflict(f"a department with address {address} exists", code="department_exists")
    unique = list(dict.fromkeys(purposes))
    result = svc.ledger.send("registerDepartment", address, [text_hash(p) for p in unique])
    api_key = new_secret("cgk")
    dept = Department(
        department_id=new_id("dep"),
        name=name,
        address=address,
        purposes=unique,
        api_key_hash=secret_hash(api_key),
        created_at=svc.now(),
        tx_hash=result.tx_hash,
    )
    with svc.db.session() as s:
        s.add(dept)
    svc.indexer.sync(result.block_number)
    return dept, api_key


def get_department(svc: Services, department_id: str) -> Department:
    """Load a department by id; raises :class:`NotFound` ``department_not_found``."""
    with svc.db.sessions() as s:
        dept = s.get(Department, department_id)
    if dept is None:
        raise NotFound(f"no department {department_id}", code="department_not_found")
    return dept


def is_active(svc: Services, address: str) -> bool:
    """Whether the chain (as projected) has the department registered and not suspended."""
    with svc.db.sessions() as s:
        state = s.get(DepartmentState, address)
    return bool(state and state.active)


def set_suspended(svc: Services, department_id: str, suspended: bool) -> str:
    """Suspend (or reinstate) a department on chain; returns the transaction hash."""
    dept = get_department(svc, department_id)
    fn = "suspendDepartment" if suspended else "reinstateDepartment"
    result = svc.ledger.send(fn, dept.address)
    svc.indexer.sync(result.block_number)
    return result.tx_hash


def authenticate(svc: Services, api_key: str) -> Department:
    """The department owning ``api_key``; raises :class:`Unauthorized` ``invalid_api_key``."""
    digest = secret_hash(api_key)
    with svc.db.sessions() as s:
        dept = s.scalar(select(Department).where(Department.api_key_hash == digest))
    if dept is None or not hmac.compare_digest(dept.api_key_hash, digest):
        raise Unauthorized("unknown department API key", code="invalid_api_key")
    return dept
