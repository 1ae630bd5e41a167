"""The ``consentgate`` command line (Typer).

Subcommands: ``serve``, ``demo``, ``reindex``, ``admin token``, and ``token ...`` (the QR
token tools of :mod:`fastpath.cli`).
"""

from __future__ import annotations

import typer

from fastpath.cli import app as token_app

app = typer.Typer(help="consentgate: consent and authorization for the e-social-security card.",
                  no_args_is_help=True)
admin_app = typer.Typer(help="Platform operator commands.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(token_app, name="token")


@admin_app.command("token")
def admin_token() -> None:
    """Print the registrar bearer token (generated and stored on first use)."""
    from authz.settings import get_settings

    typer.echo(get_settings().effective_registrar_token())


if __name__ == "__main__":
    app()
