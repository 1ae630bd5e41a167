"""``consentgate token``: verify scanned QR codes and benchmark the verifiers.

Mounted by :mod:`authz.cli` as ``consentgate token``. Exit codes of ``verify``: 0 when
every code is valid, 1 when any is invalid, 2 on usage errors (bad options, unreadable
trust file or input line).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from fastpath.errors import FastpathError
from fastpath.tokens import Verifier
from fastpath.tokens.trust import TrustList, parse_time

app = typer.Typer(help="QR token tools (SC1 card codes, HC1 EU DCC).", no_args_is_help=True)

PROFILE_NAMES = ("sc1", "dcc")


def _usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _emit(result: Any) -> None:
    sys.stdout.write(orjson.dumps(result.as_dict()).decode() + "\n")


def _line_request(number: int, line: str) -> tuple[str, Any, TrustList, float | None]:
    """Parse one JSONL input line into (profile, qr, trust, at)."""
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _usage(f"line {number}: not JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("qr"), str):
        raise _usage(f"line {number}: needs an object with a string 'qr'")
    profile = doc.get("profile", "sc1")
    if profile not in PROFILE_NAMES:
        raise _usage(f"line {number}: profile must be one of {PROFILE_NAMES}")
    try:
        trust = TrustList.from_json(doc)
        at = None if doc.get("at") is None else parse_time(str(doc["at"]))
    except FastpathError as exc:
        raise _usage(f"line {number}: {exc}") from None
    return profile, doc["qr"], trust, at


@app.command()
def verify(
    qr: Annotated[
        list[str] | None, typer.Argument(help="Scanned texts (SC1:... or HC1:...).")
    ] = None,
    profile: Annotated[str, typer.Option(help="sc1 (card codes) or dcc (HC1 EU DCC).")] = "sc1",
    trust: Annotated[
        Path | None,
        typer.Option(help='JSON file {"trust_certs": \\[base64 DER], "trust_keys": \\[...]}.'),
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Clock as RFC 3339 (absent: no time check).")
    ] = None,
    skew: Annotated[float, typer.Option(help="Clock tolerance in seconds.")] = 0.0,
    jsonl: Annotated[
        Path | None,
        typer.Option(help="Read one request per line: qr, profile, trust_certs, trust_keys, at."),
    ] = None,
) -> None:
    """Verify codes; print one JSON line per code: valid, stage, reason, kid, claims."""
    if jsonl is not None:
        if qr:
            raise _usage("give QR texts or --jsonl, not both")
        raise typer.Exit(_verify_jsonl(jsonl, skew))
    if not qr:
        raise _usage("give at least one QR text, or --jsonl FILE")
    if profile not in PROFILE_NAMES:
        raise _usage(f"--profile must be one of {PROFILE_NAMES}")
    try:
        doc = json.loads(trust.read_text(encoding="utf-8")) if trust is not None else {}
        trust_list = TrustList.from_json(doc)
        clock = None if at is None else parse_time(at)
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise _usage(f"cannot read the trust file: {exc}") from None
    except FastpathError as exc:
        raise _usage(str(exc)) from None
    verifier = Verifier(trust_list, profile=profile, skew=skew)
    results = verifier.verify_batch(qr, clock)
    for result in results:
        _emit(result)
    raise typer.Exit(0 if all(r.valid for r in results) else 1)


def _verify_jsonl(path: Path, skew: float) -> int:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise _usage(f"cannot read {path}: {exc}") from None
    all_valid = True
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        profile, qr, trust, at = _line_request(number, line)
        result = Verifier(trust, profile=profile, skew=skew).verify(qr, at)
        all_valid = all_valid and result.valid
        _emit(result)
    return 0 if all_valid else 1


@app.command()
def bench(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    count: Annotated[int, typer.Option(min=50, help="Codes per measurement.")] = 1000,
    repeat: Annotated[int, typer.Option(min=1, help="Rounds per figure (best kept).")] = 5,
) -> None:
    """Throughput of the SC1/HC1 verifiers against raw libsodium/OpenSSL and python-cwt."""
    from fastpath.tokens import bench as measure

    figures = measure.run(count, repeat)
    if as_json:
        typer.echo(json.dumps(figures))
        return
    for key, value in figures.items():
        typer.echo(f"{key:28} {value}")
