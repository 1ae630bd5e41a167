"""FastAPI dependencies as ``Annotated`` aliases: services and the three kinds of caller.

- registrar: ``Authorization: Bearer <registrar token>``;
- department: ``Authorization: Bearer cgk_...`` (or ``X-API-Key: cgk_...``);
- citizen: ``Authorization: Bearer cgs_...`` from ``POST /v1/auth/siwe``.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from authz import citizens, departments
from authz.errors import Forbidden, Unauthorized
from authz.models import Department
from authz.services import Services

bearer = HTTPBearer(
    auto_error=False,
    description="registrar token, department API key (cgk_...) or citizen session (cgs_...)",
)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _token(creds: HTTPAuthorizationCredentials | None, api_key: str | None = None) -> str:
    if creds is not None and creds.credentials:
        return creds.credentials
    if api_key:
        return api_key
    raise Unauthorized("send Authorization: Bearer <token>", code="missing_credentials")


def require_registrar(svc: ServicesDep, creds: Credentials) -> None:
    token = _token(creds)
    if not hmac.compare_digest(token.encode(), svc.registrar_token.encode()):
        raise Forbidden("registrar token required", code="registrar_only")


def current_department(
    svc: ServicesDep, creds: Credentials, x_api_key: Annotated[str | None, Header()] = None
) -> Department:
    return departments.authenticate(svc, _token(creds, x_api_key))


def current_citizen(svc: ServicesDep, creds: Credentials) -> str:
    return citizens.authenticate(svc, _token(creds))


def optional_caller(
    svc: ServicesDep, creds: Credentials, x_api_key: Annotated[str | None, Header()] = None
) -> Department | str:
    """A department or a citizen, by the token's prefix."""
    token = _token(creds, x_api_key)
    if token.startswith("cgs_"):
        return citizens.authenticate(svc, token)
    return departments.authenticate(svc, token)


CurrentDepartment = Annotated[Department, Depends(current_department)]
CurrentCitizen = Annotated[str, Depends(current_citizen)]
Caller = Annotated[Department | str, Depends(optional_caller)]
Registrar = Depends(require_registrar)
