"""API v1 routers, one module per resource, collected in :data:`routers`."""

from authz.api.routes import (
    access_checks,
    auth,
    consent_requests,
    consents,
    department_feed,
    departments,
    guardianships,
    health,
    proofs,
    subjects,
)

routers = [
    health.router,
    departments.router,
    department_feed.router,
    guardianships.router,
    consent_requests.router,
    consents.router,
    consents.batch_router,
    access_checks.router,
    auth.router,
    subjects.router,
    proofs.router,
]
