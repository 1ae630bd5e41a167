"""The FastAPI application: routers, problem details, body limit, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from authz.api import problems
from authz.api.routes import routers
from authz.services import Services, open_services
from authz.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    close_on_shutdown: bool = False,
    on_started: Callable[[], None] | None = None,
    on_stopping: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the app. With ``services`` given the caller owns their lifetime unless
    ``close_on_shutdown`` (``consentgate serve``: closing in the lifespan runs before
    uvicorn re-raises SIGTERM, so the anchoring lease is released on a graceful stop);
    without, they are opened at startup from ``settings`` and closed at shutdown, and
    ``on_started`` (if given) runs once they are open and anchoring has started (when
    ``settings.anchoring_here``). ``on_stopping`` (if given) runs first at shutdown, before
    any services close (uvicorn re-raises SIGTERM after the lifespan, so later code of
    the caller would not run)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            try:
                yield
            finally:
                if on_stopping is not None:
                    on_stopping()
                if close_on_shutdown:
                    services.close()
            return
        svc = open_services(settings or get_settings())
        if svc.settings.anchoring_here:
            svc.start_anchoring()
        app.state.services = svc
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            if on_stopping is not None:
                on_stopping()
            svc.close()

    app = FastAPI(
        title="consentgate",
        version="1",
        summary="Consent and authorization for the electronic social-security card, "
        "anchored on an EVM chain.",
        lifespan=lifespan,
    )
    if services is not None:
        app.state.services = services
    problems.install(app)
    problems.install_openapi(app)
    max_body = (settings or (services.settings if services else get_settings())).max_body_bytes
    app.add_middleware(problems.BodyLimit, max_bytes=max_body)
    for router in routers:
        app.include_router(router)
    return app


def worker_app() -> FastAPI:
    """The app of one ``consentgate serve --workers N`` process (a uvicorn factory).

    Each worker opens its own services from the ``CONSENTGATE_*`` environment, starts the
    anchoring worker unless ``CONSENTGATE_ANCHORING`` says it runs elsewhere (the outbox
    lease lets one process at a time anchor) and settles
    its heap like a single ``serve``; services are closed at shutdown; it gets SIGTERM
    when ``serve`` dies. Always on a JSON-RPC chain: on the embedded chain ``serve``
    has started a ``chain-node`` child and set ``CONSENTGATE_CHAIN_URL`` first.
    """
    import os

    from authz.cli.commands import settle_heap
    from authz.localserver import stop_with_parent

    # a SIGKILLed serve must not leave its API processes serving (and, with anchoring in
    # a child that died with it, accepting grants nobody anchors): SIGTERM with it
    stop_with_parent()
    if os.getppid() == 1:  # serve died before the line above
        raise SystemExit(1)
    return create_app(get_settings(), on_started=settle_heap)
