"""The ``consentgate`` command line: :func:`main` is the entry point.

``consentgate gate ...`` (the gate agent, :mod:`authz.gate_cli`) starts without loading
Typer, pydantic or the service: a gate is up in ~0.1 s of CPU instead of ~0.2 s. Every
other command is the Typer ``app`` of :mod:`authz.cli.commands`, imported on first use
(``from authz.cli import app`` still works).
"""

from __future__ import annotations

import sys
from typing import Any


def main(argv: list[str] | None = None) -> None:
    """Run ``consentgate`` with ``argv`` (default ``sys.argv[1:]``); exits the process
    with the command's exit code (``SystemExit``)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["gate"]:
        from authz.gate_cli import main as gate_main

        raise SystemExit(gate_main(args[1:]))
    from pydantic import ValidationError

    from authz.cli.commands import app

    try:
        app(args)
    except ValidationError as exc:  # a bad CONSENTGATE_* variable: one line per error
        if exc.title != "Settings":
            raise
        for error in exc.errors():
            name = "CONSENTGATE_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"consentgate: {name}: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


def __getattr__(name: str) -> Any:
    """``app``: the Typer application (loaded lazily)."""
    if name == "app":
        from authz.cli.commands import app

        return app
    raise AttributeError(f"module 'authz.cli' has no attribute {name!r}")
