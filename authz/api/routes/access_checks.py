"""Access checks: a department asks before every access; every check is logged.

The dominant call of the service, so its route has a fast path (:class:`FastCheckRoute`):
a well-formed request — JSON body valid for :class:`AccessCheckCreate`, a bearer token
or ``X-API-Key`` — is answered without FastAPI's dependency solving, thread-pool hop and
response-model round trip, by :func:`authz.access.check_access_by_key`. Everything
else (malformed JSON, schema errors, missing credentials, another content type) goes
through the declared FastAPI endpoint below, so errors, their problem details and the
OpenAPI document are exactly those of the declared endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError

from authz import access
from authz.api.deps import CurrentDepartment, ServicesDep
from authz.api.schemas import AccessCheckCreate, AccessCheckResult
from authz.services import Services

JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})


def _fast_token(request: Request) -> str | None:
    """The department token as the declared dependencies would find it (HTTPBearer
    without auto-error, then ``X-API-Key``), or None when they would not find one."""
    headers = request.headers
    authorization = headers.get("authorization")
    if authorization:
        scheme, credentials = get_authorization_scheme_param(authorization)
        if scheme and credentials and scheme.lower() == "bearer":
            return credentials
    return headers.get("x-api-key") or None


def _json_body(request: Request) -> bool:
    """Whether the request declares a plain JSON body (the only kind the fast path takes)."""
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            return value.lower() in JSON_TYPES
    return False


class FastCheckRoute(APIRoute):
    """An :class:`APIRoute` that answers well-formed access checks directly and hands
    every other request to the standard FastAPI handler of the same endpoint."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()

        async def handler(request: Request) -> Response:
            token = _fast_token(request)
            if token is None or not _json_body(request):
                return await standard(request)
            raw = await request.body()  # cached on the request for the standard handler
            try:
                body = AccessCheckCreate.model_validate_json(raw)
            except ValidationError:
                return await standard(request)  # same 400/422 problem as ever
            svc: Services = request.app.state.services
            decision = await access.check_access_by_key(
                svc, token, body.subject, body.purpose, body.pii_categories
            )
            return Response(orjson.dumps(decision.as_json()), media_type="application/json")

        return handler


router = APIRouter(prefix="/v1/access-checks", tags=["access"], route_class=FastCheckRoute)


@router.post("", response_model=AccessCheckResult)
def check(body: AccessCheckCreate, dept: CurrentDepartment, svc: ServicesDep) -> AccessCheckResult:
    """``{"allowed", "consent_id", "reason", "access_id", "anchor"}``; reasons:
    ``consent_valid``, ``no_consent``, ``consent_withdrawn``, ``consent_expired``,
    ``consent_not_yet_valid``, ``category_not_granted``, ``department_suspended``.
    """
    d = access.check_access(svc, dept, body.subject, body.purpose, body.pii_categories)
    return AccessCheckResult(**d.as_json())
