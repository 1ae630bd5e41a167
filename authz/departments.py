"""Departments (PII controllers): registration, suspension, API-key authentication."""

from __future__ import annotations

import hmac

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from authz.errors import Conflict, NotFound, Unauthorized
from authz.ids import checksum, new_id, new_secret, secret_hash
from authz.ledger import text_hash
from authz.models import Department, DepartmentState
from authz.services import Services
from chain_node import TxResult


def register_department(
    svc: Services, name: str, address: str, purposes: list[str]
) -> tuple[Department, str]:
    """Register a department on chain and in the index; return it and its API key.

    The API key is returned once and stored only as SHA-256. ``purposes`` are anchored
    as ``keccak256`` hashes. A department the chain already has but the index does not
    (a crash between the transaction and the index write, or an index restored from an
    older backup) is adopted: missing purposes are added on chain and a new key issued.
    Raises :class:`Conflict` ``department_exists`` when the index has the address.
    """
    address = checksum(address, "address", allow_zero=False)
    with svc.db.sessions() as s:
        if s.scalar(select(Department).where(Department.address == address)) is not None:
            raise Conflict(f"a department with address {address} exists", code="department_exists")
    unique = list(dict.fromkeys(purposes))
    result: TxResult | None
    try:
        result = svc.ledger.send("registerDepartment", address, [text_hash(p) for p in unique])
    except Conflict as exc:
        if exc.code != "department_exists":
            raise
        result = _adopt(svc, address, unique)
    api_key = new_secret("cgk")
    dept = Department(
        department_id=new_id("dep"),
        name=name,
        address=address,
        purposes=unique,
        api_key_hash=secret_hash(api_key),
        created_at=svc.now(),
        tx_hash=result.tx_hash if result is not None else "",
    )
    try:
        with svc.db.session() as s:
            s.add(dept)
    except IntegrityError:  # a concurrent registration of the same address won
        raise Conflict(
            f"a department with address {address} exists", code="department_exists"
        ) from None
    svc.indexer.sync()
    return dept, api_key


def _adopt(svc: Services, address: str, purposes: list[str]) -> TxResult | None:
    """Bring an on-chain department into the index: add the purposes it lacks."""
    missing = [
        p
        for p in purposes
        if not svc.ledger.call("isPurposeRegistered", address, bytes.fromhex(text_hash(p)[2:]))
    ]
    if not missing:
        return None
    return svc.ledger.send("addPurposes", address, [text_hash(p) for p in missing])


def rotate_api_key(svc: Services, department_id: str) -> str:
    """Issue a new API key for a department (the old one stops working); returns it."""
    api_key = new_secret("cgk")
    with svc.db.session() as s:
        dept = s.get(Department, department_id)
        if dept is None:
            raise NotFound(f"no department {department_id}", code="department_not_found")
        dept.api_key_hash = secret_hash(api_key)
    return api_key


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


_BY_KEY_HASH = select(Department).where(Department.api_key_hash == bindparam("digest"))


def authenticate(svc: Services, api_key: str) -> Department:
    """The department owning ``api_key``; raises :class:`Unauthorized` ``invalid_api_key``."""
    digest = secret_hash(api_key)
    with svc.db.sessions() as s:
        dept = s.scalar(_BY_KEY_HASH, {"digest": digest})
    if dept is None or not hmac.compare_digest(dept.api_key_hash, digest):
        raise Unauthorized("unknown department API key", code="invalid_api_key")
    return dept
