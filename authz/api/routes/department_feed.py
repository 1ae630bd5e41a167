"""A department's own feed: withdrawals of its consents, to learn of them at once."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from authz import consents
from authz.api.deps import CurrentDepartment, ServicesDep

router = APIRouter(prefix="/v1/department", tags=["departments"])


@router.get("/withdrawals")
def withdrawals(
    dept: CurrentDepartment,
    svc: ServicesDep,
    after: Annotated[int, Query(ge=0, description="last `seq` already seen")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
) -> dict[str, Any]:
    """``{"withdrawals": [{seq, consent_id, subject, accepted_at, anchor}, ...], "next"}``:
    withdrawals of this department's consents accepted after ``after``, oldest first.
    Poll with ``after=next``. A withdrawal is in effect (checks denied) from acceptance."""
    items = consents.withdrawals_for(svc, dept.address, after, limit)
    return {"withdrawals": items, "next": items[-1]["seq"] if items else after}
