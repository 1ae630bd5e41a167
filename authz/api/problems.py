"""RFC 9457 problem details for every error, and the request-body size limit.

Every error response is ``application/problem+json`` with ``type``
(``urn:consentgate:problem:<code>``), ``title``, ``status``, ``detail`` and the stable
``code``; validation errors add ``errors`` (location and message of each). Unexpected
exceptions give a 500 ``internal_error`` without a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authz.errors import PROBLEM_TYPE_PREFIX, ChainUnavailableError, ConsentgateError
from chain_node import ChainUnavailable

log = logging.getLogger("consentgate.api")
PROBLEM_JSON = "application/problem+json"

HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("body_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    """Build a problem-details response."""
    body = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def problem_body(exc: ConsentgateError) -> dict[str, Any]:
    """The problem-details document of a service error (for per-item batch results).

    Extension members never override the RFC 9457 members (``status`` stays the HTTP
    status; an extra ``status`` is renamed ``state``)."""
    extra = dict(exc.extra)
    if "status" in extra:
        extra["state"] = extra.pop("status")
    for reserved in ("type", "title", "detail", "code"):
        extra.pop(reserved, None)
    return {
        **extra,
        "type": PROBLEM_TYPE_PREFIX + exc.code,
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "code": exc.code,
    }


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn every error into problem details."""

    @app.exception_handler(ConsentgateError)
    async def _domain(_: Request, exc: ConsentgateError) -> JSONResponse:
        return JSONResponse(problem_body(exc), status_code=exc.status, media_type=PROBLEM_JSON)

    @app.exception_handler(ChainUnavailable)
    async def _chain_down(_: Request, exc: ChainUnavailable) -> JSONResponse:
        err = ChainUnavailableError(str(exc))
        return problem(err.status, err.code, err.title, err.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(
                400,
                "malformed_json",
                "Malformed JSON",
                "the request body is not valid JSON",
                errors=errors,
            )
        return problem(
            422,
            "validation_error",
            "Invalid request",
            "the request does not match the schema",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        return problem(exc.status_code, code, title, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "internal_error",
            "Internal error",
            "the server failed to handle this request; nothing was changed "
            "unless a response said so",
        )


ERROR_STATUSES = {
    400: "Bad request: the content breaks a rule, or the JSON is malformed",
    401: "No valid credentials",
    403: "Not allowed for this caller",
    404: "No such resource",
    409: "Conflicts with the current state (duplicate grant, already withdrawn, ...)",
    413: "Request body too large",
    422: "The request does not match the schema",
    503: "The chain node cannot be reached",
}


def install_openapi(app: FastAPI) -> None:
    """Make the OpenAPI document tell the truth about errors: every operation may answer
    the statuses of :data:`ERROR_STATUSES` with an ``application/problem+json``
    :class:`authz.api.schemas.Problem` (FastAPI's default 422 shape is replaced)."""
    from fastapi.openapi.utils import get_openapi

    from authz.api.schemas import Problem

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in problem_schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas["Problem"] = problem_schema
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        ref = {"$ref": "#/components/schemas/Problem"}
        for operations in doc.get("paths", {}).values():
            for op in operations.values():
                responses = op.setdefault("responses", {})
                for status, description in ERROR_STATUSES.items():
                    responses[str(status)] = {
                        "description": description,
                        "content": {PROBLEM_JSON: {"schema": ref}},
                    }
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 problem details.

    Checks ``Content-Length`` up front and counts streamed (chunked) bodies as they
    arrive, so an oversized body never reaches a handler.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI re-raises HTTPException from body parsing; the handler
                    # above renders it as a 413 problem.
                    raise StarletteHTTPException(
                        413, f"request bodies are limited to {self.max_bytes} bytes"
                    )
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            "body_too_large",
            "Request body too large",
            f"request bodies are limited to {self.max_bytes} bytes",
        )
        await response(scope, receive, send)
