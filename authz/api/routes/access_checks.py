"""Access checks: a department asks before every access; every check is logged."""

from fastapi import APIRouter

from authz import access
from authz.api.deps import CurrentDepartment, ServicesDep
from authz.api.schemas import AccessCheckCreate, AccessCheckResult

router = APIRouter(prefix="/v1/access-checks", tags=["access"])


@router.post("", response_model=AccessCheckResult)
def check(body: AccessCheckCreate, dept: CurrentDepartment, svc: ServicesDep) -> AccessCheckResult:
    """``{"allowed", "consent_id", "reason", "access_id", "anchor"}``; reasons:
    ``consent_valid``, ``no_consent``, ``consent_withdrawn``, ``consent_expired``,
    ``consent_not_yet_valid``, ``category_not_granted``, ``department_suspended``.
    """
    d = access.check_access(svc, dept, body.subject, body.purpose, body.pii_categories)
    return AccessCheckResult(
        allowed=d.allowed,
        consent_id=d.consent_id,
        reason=d.reason,
        access_id=d.access_id,
        anchor=d.anchor,
    )
