"""The ``consentgate`` command line (Typer).

Subcommands: ``serve``, ``demo``, ``reindex``, ``admin token``, and ``token ...`` (the QR
token tools of :mod:`fastpath.cli`). Every command reads the ``CONSENTGATE_*`` settings.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from fastpath.cli import app as token_app

app = typer.Typer(
    help="consentgate: consent and authorization for the e-social-security card.",
    no_args_is_help=True,
)
admin_app = typer.Typer(help="Platform operator commands.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
bench_app = typer.Typer(help="Throughput measurements, printed as JSON.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(token_app, name="token")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="overrides CONSENTGATE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides CONSENTGATE_PORT")] = None,
) -> None:
    """Serve the API (embedded chain unless CONSENTGATE_CHAIN_URL is set)."""
    import uvicorn

    from authz.api.app import create_app
    from authz.settings import get_settings

    settings = get_settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    svc = _open(settings)
    backend = settings.chain_url or f"embedded py-evm chain in {settings.data_dir / 'chain'}"
    typer.echo(
        f"consentgate: serving on http://{settings.host}:{settings.port} ({backend}, "
        f"anchor mode {settings.anchor_mode}); registrar token: "
        "`consentgate admin token`",
        err=True,
    )
    svc.start_anchoring()
    try:
        uvicorn.run(
            create_app(settings, services=svc),
            host=settings.host,
            port=settings.port,
            log_level="info",
        )
    finally:
        svc.close()


def _open(settings: Any) -> Any:
    """Open the services or exit 2 with a one-line reason (data folder in use, chain
    unreachable, bad settings) instead of a traceback."""
    from authz.services import open_services
    from chain_node import ChainError

    try:
        return open_services(settings)
    except (ChainError, OSError) as exc:
        typer.echo(f"consentgate: cannot open {settings.data_dir}: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def demo(
    url: Annotated[
        str | None, typer.Option(help="service base URL (default: from settings)")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="registrar token (default: from DATA_DIR)")
    ] = None,
) -> None:
    """Walk through the whole flow against a running server over real HTTP."""
    from authz.demo import run_demo
    from authz.settings import get_settings

    settings = get_settings()
    ok = run_demo(
        url or settings.base_url, token or settings.effective_registrar_token(), echo=typer.echo
    )
    raise typer.Exit(0 if ok else 1)


@app.command()
def reindex() -> None:
    """Rebuild the index's projections from the chain (stop the server first when it
    runs the embedded chain on the same data folder)."""
    from authz.settings import get_settings

    svc = _open(get_settings())
    try:
        cursor = svc.indexer.reindex()
        typer.echo(
            json.dumps(
                {
                    "indexed_block": cursor,
                    "registry": svc.ledger.address,
                    "chain_id": svc.ledger.chain_id,
                }
            )
        )
    finally:
        svc.close()


@bench_app.command("grants")
def bench_grants(
    count: Annotated[int, typer.Option(help="number of grants", min=1)] = 200,
    url: Annotated[
        str | None, typer.Option(help="service base URL (default: from settings)")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="registrar token (default: from DATA_DIR)")
    ] = None,
) -> None:
    """Grants per second through the API, one at a time, against a running server."""
    from authz.bench import grants_sequential
    from authz.settings import get_settings

    settings = get_settings()
    result = grants_sequential(
        url or settings.base_url, token or settings.effective_registrar_token(), count
    )
    typer.echo(json.dumps(result))


@admin_app.command("token")
def admin_token() -> None:
    """Print the registrar bearer token (generated and stored on first use)."""
    from authz.settings import get_settings

    typer.echo(get_settings().effective_registrar_token())


if __name__ == "__main__":
    app()
