"""API v1 routers, one module per resource, collected in :data:`routers`."""

from authz.api.routes import (
    access_checks,
    auth,
    consent_requests,
    consents,
    department_feed,
    departments,
    devices,
    gates,
    guardianships,
    health,
    proofs,
    revocations,
    subjects,
    tokens,
    trust_list,
)

# Routes are matched in this order: access checks, the dominant call, come right after
# the liveness probe (matching past a dozen routers cost ~25 us a check).
routers = [
    health.router,
    access_checks.router,
    departments.router,
    department_feed.router,
    guardianships.router,
    consent_requests.router,
    consents.router,
    consents.batch_router,
    auth.router,
    subjects.router,
    proofs.router,
    devices.router,
    tokens.router,
    revocations.router,
    revocations.status_router,
    trust_list.router,
    gates.router,
    gates.gate_router,
]
