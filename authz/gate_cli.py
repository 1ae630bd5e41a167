"""``consentgate gate``: the offline gate agent (:mod:`authz.gate_agent`).

Options come from the command line or the environment: ``CONSENTGATE_GATE_URL`` (the
service), ``CONSENTGATE_GATE_ID``, ``CONSENTGATE_GATE_API_KEY``, ``CONSENTGATE_GATE_STATE``
(state folder, default ``./gate-state``), ``CONSENTGATE_GATE_CHAIN_URL`` and
``CONSENTGATE_GATE_TRUST_REGISTRY`` (check digests on a JSON-RPC chain), and
``CONSENTGATE_REDIS_URL`` (replay claims shared with other gates). A value on the
command line wins over the environment; an empty variable counts as unset.

Written with :mod:`argparse` rather than Typer (the rest of the CLI) because a gate's
start-up is part of its throughput: Typer builds a pydantic adapter per option, which
with its imports doubled the agent's start-up (~0.1 s of CPU). :func:`authz.cli.main`
dispatches ``consentgate gate ...`` here before importing Typer.

Exit codes: 0 done; 1 ``sync`` refused or service unreachable (the last good lists
stay), or ``run``'s output closed by its reader; 2 usage error, or ``run`` without any
synced lists.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "consentgate gate"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog=PROG, description="Offline gate agent: sync lists, validate codes, upload reports."
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, *, chain: bool) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text.split("\n")[0], description=text)
        sub.add_argument(
            "--url",
            default=_env("CONSENTGATE_GATE_URL", "http://127.0.0.1:8000"),
            help="service base URL [env CONSENTGATE_GATE_URL]",
        )
        for flag, env, text_ in (
            ("--gate-id", "CONSENTGATE_GATE_ID", "gate id"),
            ("--api-key", "CONSENTGATE_GATE_API_KEY", "gate API key"),
        ):
            sub.add_argument(flag, default=_env(env, ""), help=f"{text_} [env {env}]")
        sub.add_argument(
            "--state",
            type=Path,
            default=Path(_env("CONSENTGATE_GATE_STATE", "gate-state")),
            help="state folder [env CONSENTGATE_GATE_STATE]",
        )
        if chain:
            sub.add_argument(
                "--chain-url",
                default=_env("CONSENTGATE_GATE_CHAIN_URL", ""),
                help="JSON-RPC URL [env CONSENTGATE_GATE_CHAIN_URL]",
            )
            sub.add_argument(
                "--trust-registry",
                default=_env("CONSENTGATE_GATE_TRUST_REGISTRY", ""),
                help="TrustRegistry address [env CONSENTGATE_GATE_TRUST_REGISTRY]",
            )
        return sub

    command(
        "sync",
        "Fetch the trust list and status list; load them only if their digest is the "
        "chain's. Exit 1 when refused or unreachable (the last good lists stay).",
        chain=True,
    )
    run = command(
        "run",
        "Validate codes (one per line) offline; print one JSON result per line. Says on "
        "stderr which lists are in use and how old they are.",
        chain=True,
    )
    run.add_argument(
        "--redis-url",
        default=_env("CONSENTGATE_REDIS_URL", ""),
        help="shared replay Redis [env CONSENTGATE_REDIS_URL]",
    )
    run.add_argument("--file", type=Path, help="read codes from this file (default stdin)")
    run.add_argument(
        "--port", type=int, default=0, help="serve POST /scan on 127.0.0.1:PORT instead"
    )
    run.add_argument(
        "--sync",
        dest="sync_first",
        action="store_true",
        default=True,
        help="try a sync first (default)",
    )
    run.add_argument("--offline", dest="sync_first", action="store_false", help="do not sync")
    run.add_argument(
        "--upload",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="upload queued reports at the end (default: --upload)",
    )
    command(
        "upload",
        "Send the queued scan reports in batches (the rest stays queued on failure).",
        chain=False,
    )
    return root


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _agent(args: argparse.Namespace) -> Any:
    from authz.gate_agent import GateAgent

    return GateAgent(
        args.url,
        args.gate_id,
        args.api_key,
        args.state,
        chain_url=getattr(args, "chain_url", ""),
        trust_registry=getattr(args, "trust_registry", ""),
        redis_url=getattr(args, "redis_url", ""),
    )


def _try_sync(agent: Any) -> bool:
    from authz.gate_agent import GateAgentError

    try:
        agent.sync()
        return True
    except GateAgentError as exc:
        _say(f"gate: sync failed ({exc.code}): {exc}")
        return False


def _sync(args: argparse.Namespace) -> int:
    agent = _agent(args)
    ok = _try_sync(agent)
    _say(agent.describe(ok))
    return 0 if ok else 1


M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
HEAP_KEEP_BYTES = 4 << 20


def keep_freed_heap(limit: int = HEAP_KEEP_BYTES) -> bool:
    """Let glibc's malloc keep up to ``limit`` bytes of freed memory at the top of the
    heap (``mallopt(M_TRIM_THRESHOLD)``) instead of returning it to the kernel as soon as
    128 KiB are free. A gate allocates and frees ~100 kB per batch; with the default the
    heap shrank and regrew every batch, ~30,000 page faults per 20,000 codes (~8 % of the
    agent's CPU). Peak memory is unchanged. Returns False where unavailable (no glibc).
    """
    import ctypes

    try:
        return bool(ctypes.CDLL(None).mallopt(M_TRIM_THRESHOLD, limit))
    except (OSError, AttributeError):
        return False


def binary_stdout() -> Any:
    """stdout as a buffered binary stream, which writes a whole batch or raises. With
    ``PYTHONUNBUFFERED`` (or ``-u``) ``sys.stdout.buffer`` is the raw file, whose
    ``write`` may take only part of a batch (a signal during a large pipe write); the
    stream returned then shares its descriptor without owning it."""
    out = sys.stdout.buffer
    if isinstance(out, io.RawIOBase):
        return open(out.fileno(), "wb", closefd=False)
    return out


def _run(args: argparse.Namespace) -> int:
    from authz.gate_agent import GateAgentError

    agent = _agent(args)
    online = _try_sync(agent) if args.sync_first else False
    _say(agent.describe(online))
    try:
        agent.verifier()
    except GateAgentError as exc:
        _say(f"gate: {exc}")
        return 2
    if args.port:
        server = agent.serve(args.port)
        _say(f"gate: serving POST http://127.0.0.1:{server.server_port}/scan")
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return 0
    keep_freed_heap()
    sys.stdout.flush()  # anything printed as text before goes first
    out = binary_stdout()
    try:
        if args.file is None:
            count = agent.run_stream(sys.stdin.buffer, out)
        else:
            try:
                source = open(args.file, "rb")  # noqa: SIM115 (closed below)
            except OSError as exc:
                _say(f"gate: cannot read {args.file}: {exc.strerror}")
                return 2
            with source:
                count = agent.run_stream(source, out)
    except BrokenPipeError:  # the program reading our output went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        _say("gate: output closed by its reader; stopped (scans so far are queued)")
        return 1
    except OSError as exc:  # e.g. a full disk under the output file
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        _say(f"gate: cannot write results: {exc.strerror}; stopped (scans so far are queued)")
        return 1
    sent = agent.upload() if args.upload and online else 0
    _say(json.dumps({"validated": count, "reports_uploaded": sent, "lists_age_s": agent.age_s()}))
    return 0


def _upload(args: argparse.Namespace) -> int:
    print(json.dumps({"reports_uploaded": _agent(args).upload()}), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``consentgate gate`` with ``argv`` (default ``sys.argv[1:]``); returns the
    exit code. Usage errors exit 2 through ``SystemExit`` (argparse)."""
    args = _parser().parse_args(argv)
    commands = {"sync": _sync, "run": _run, "upload": _upload}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
