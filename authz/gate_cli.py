"""``consentgate gate``: the offline gate agent (:mod:`authz.gate_agent`).

Options come from the command line or the environment: ``CONSENTGATE_GATE_URL`` (the
service), ``CONSENTGATE_GATE_ID``, ``CONSENTGATE_GATE_API_KEY``, ``CONSENTGATE_GATE_STATE``
(state folder, default ``./gate-state``), ``CONSENTGATE_GATE_CHAIN_URL`` and
``CONSENTGATE_GATE_TRUST_REGISTRY`` (check digests on a JSON-RPC chain), and
``CONSENTGATE_REDIS_URL`` (replay claims shared with other gates).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Offline gate agent: sync lists, validate codes, upload reports.", no_args_is_help=True
)

Url = Annotated[str, typer.Option(envvar="CONSENTGATE_GATE_URL", help="service base URL")]
GateId = Annotated[str, typer.Option(envvar="CONSENTGATE_GATE_ID", help="gate id")]
ApiKey = Annotated[str, typer.Option(envvar="CONSENTGATE_GATE_API_KEY", help="gate API key")]
State = Annotated[Path, typer.Option(envvar="CONSENTGATE_GATE_STATE", help="state folder")]
ChainUrl = Annotated[str, typer.Option(envvar="CONSENTGATE_GATE_CHAIN_URL", help="JSON-RPC URL")]
Registry = Annotated[
    str, typer.Option(envvar="CONSENTGATE_GATE_TRUST_REGISTRY", help="TrustRegistry address")
]
RedisUrl = Annotated[str, typer.Option(envvar="CONSENTGATE_REDIS_URL", help="shared replay Redis")]


def _agent(
    url: str, gate_id: str, api_key: str, state: Path, chain_url: str, registry: str, redis_url: str
) -> Any:
    from authz.gate_agent import GateAgent

    return GateAgent(
        url,
        gate_id,
        api_key,
        state,
        chain_url=chain_url,
        trust_registry=registry,
        redis_url=redis_url,
    )


def _try_sync(agent: Any) -> bool:
    from authz.gate_agent import GateAgentError

    try:
        agent.sync()
        return True
    except GateAgentError as exc:
        typer.echo(f"gate: sync failed ({exc.code}): {exc}", err=True)
        return False


@app.command()
def sync(
    url: Url = "http://127.0.0.1:8000",
    gate_id: GateId = "",
    api_key: ApiKey = "",
    state: State = Path("gate-state"),
    chain_url: ChainUrl = "",
    trust_registry: Registry = "",
) -> None:
    """Fetch the trust list and status list; load them only if their digest is the
    chain's. Exit 1 when refused or unreachable (the last good lists stay)."""
    agent = _agent(url, gate_id, api_key, state, chain_url, trust_registry, "")
    ok = _try_sync(agent)
    typer.echo(agent.describe(ok), err=True)
    raise typer.Exit(0 if ok else 1)


@app.command()
def run(
    url: Url = "http://127.0.0.1:8000",
    gate_id: GateId = "",
    api_key: ApiKey = "",
    state: State = Path("gate-state"),
    chain_url: ChainUrl = "",
    trust_registry: Registry = "",
    redis_url: RedisUrl = "",
    file: Annotated[
        Path | None, typer.Option(help="read codes from this file (default stdin)")
    ] = None,
    port: Annotated[int, typer.Option(help="serve POST /scan on 127.0.0.1:PORT instead")] = 0,
    sync_first: Annotated[bool, typer.Option("--sync/--offline", help="try a sync first")] = True,
    upload: Annotated[bool, typer.Option(help="upload queued reports at the end")] = True,
) -> None:
    """Validate codes (one per line) offline; print one JSON result per line. Says on
    stderr which lists are in use and how old they are."""
    from authz.gate_agent import GateAgentError

    agent = _agent(url, gate_id, api_key, state, chain_url, trust_registry, redis_url)
    online = _try_sync(agent) if sync_first else False
    typer.echo(agent.describe(online), err=True)
    try:
        agent.verifier()
    except GateAgentError as exc:
        typer.echo(f"gate: {exc}", err=True)
        raise typer.Exit(2) from None
    if port:
        server = agent.serve(port)
        typer.echo(f"gate: serving POST http://127.0.0.1:{server.server_port}/scan", err=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return
    out = sys.stdout.buffer
    if file is None:
        count = agent.run_lines(sys.stdin, out)
    else:
        with open(file, encoding="utf-8") as lines:
            count = agent.run_lines(lines, out)
    sent = agent.upload() if upload and online else 0
    typer.echo(
        json.dumps({"validated": count, "reports_uploaded": sent, "lists_age_s": agent.age_s()}),
        err=True,
    )


@app.command("upload")
def upload_reports(
    url: Url = "http://127.0.0.1:8000",
    gate_id: GateId = "",
    api_key: ApiKey = "",
    state: State = Path("gate-state"),
) -> None:
    """Send the queued scan reports in batches (the rest stays queued on failure)."""
    agent = _agent(url, gate_id, api_key, state, "", "", "")
    typer.echo(json.dumps({"reports_uploaded": agent.upload()}))
