"""The service's errors: one root exception, each error with a stable ``code``.

HTTP renders every :class:`ConsentgateError` as RFC 9457 problem details
(``application/problem+json``) with ``type``, ``title``, ``status``, ``detail`` and
``code``; see :mod:`authz.api.problems`.
"""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE_PREFIX = "urn:consentgate:problem:"


class ConsentgateError(Exception):
    """Root of the service's errors.

    Attributes: ``code`` (stable, snake_case, part of the API), ``status`` (HTTP status
    code to report it with), ``title`` (short, stable per code), ``detail`` (this
    occurrence), ``extra`` (additional members of the problem document).
    """

    code = "error"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str = "", *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        self.extra = extra


class BadRequest(ConsentgateError, ValueError):
    """The request is well-formed JSON but its content breaks a rule (400)."""

    code = "bad_request"
    status = 400
    title = "Bad request"


class Unauthorized(ConsentgateError, PermissionError):
    """No valid credentials for this route (401)."""

    code = "unauthorized"
    status = 401
    title = "Authentication required"


class Forbidden(ConsentgateError, PermissionError):
    """Authenticated, but not allowed to do this (403)."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class NotFound(ConsentgateError, LookupError):
    """The named resource does not exist (404)."""

    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(ConsentgateError):
    """The request conflicts with the current state, e.g. a duplicate grant (409)."""

    code = "conflict"
    status = 409
    title = "Conflict"


class InvalidSignature(ConsentgateError, ValueError):
    """A signature fails a rule of EIP-712 / EIP-2 / the registry (400)."""

    code = "invalid_signature"
    status = 400
    title = "Invalid signature"


class ChainUnavailableError(ConsentgateError):
    """The chain node cannot be reached (503)."""

    code = "chain_unavailable"
    status = 503
    title = "Chain unavailable"
