"""The ``consentgate`` command line (Typer), loaded by :func:`authz.cli.main`.

Subcommands: ``serve``, ``anchor-worker``, ``chain-node``, ``demo``, ``reindex``, ``admin token``,
``token ...`` (the QR token tools of :mod:`fastpath.cli`), and ``gate ...`` (handed to
:mod:`authz.gate_cli`, which :func:`authz.cli.main` runs without loading Typer at all).
Every command reads the
``CONSENTGATE_*`` settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any, NoReturn

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
proof_app = typer.Typer(
    help="Check consent proofs on chain, without the service.", no_args_is_help=True
)
app.add_typer(proof_app, name="proof")
audit_app = typer.Typer(
    help="Check audit-log proofs on chain, without the service.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")

ChainOption = Annotated[
    str,
    typer.Option(
        "--chain",
        help="an EVM JSON-RPC URL, or `embedded` for the chain in "
        "CONSENTGATE_DATA_DIR (stop the server first)",
    ),
]


def _fail(message: str) -> NoReturn:
    """Print ``consentgate: message`` on stderr and exit 2 (bad settings or usage)."""
    typer.echo(f"consentgate: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def _failures_in_one_line(what: str) -> Iterator[None]:
    """Report a failure of ``what`` against a service (it did not start or cannot be
    reached, a request was refused, a timeout) as ``consentgate: WHAT failed: ...`` on
    stderr with exit code 1, not as a traceback."""
    import httpx

    from authz.errors import ConsentgateError
    from chain_node.errors import ChainError

    failures = (ConsentgateError, ChainError, OSError, RuntimeError, TimeoutError, httpx.HTTPError)
    try:
        yield
    except failures as exc:
        where = ""
        if isinstance(exc, httpx.RequestError):
            with suppress(RuntimeError):  # no request attached
                where = f" ({exc.request.method} {exc.request.url})"
        typer.echo(f"consentgate: {what} failed: {exc}{where}", err=True)
        raise typer.Exit(1) from None


def _bench(name: str, run: Any, *args: Any, **kwargs: Any) -> None:
    """Print the JSON result of the benchmark ``run(*args, **kwargs)``; failures in one
    line (:func:`_failures_in_one_line`)."""
    with _failures_in_one_line(f"bench {name}"):
        out = run(*args, **kwargs)
    typer.echo(json.dumps(out))


def _log_as(process: str) -> None:
    """Log lines of a long-running child: time, level, ``process[pid]``, logger."""
    import logging

    logging.basicConfig(
        format=f"%(asctime)s %(levelname)s {process}[%(process)d] %(name)s: %(message)s",
        level=logging.INFO,
    )


def _verify(
    path: Path, chain_spec: str, check: Any, registry: str | None, anchor: str | None
) -> None:
    from authz.errors import ConsentgateError
    from authz.ledger import ANCHOR, REGISTRY, known_deployment
    from authz.settings import get_settings
    from chain_node import ChainError, open_chain

    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        typer.echo(f"consentgate: cannot read {path}: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = get_settings()
    embedded = chain_spec == "embedded"
    try:
        # embedded: the relayer key stored in DATA_DIR/chain; a URL: reading needs no key
        chain = open_chain(
            settings.data_dir,
            "" if embedded else chain_spec,
            "" if embedded else (settings.relayer_key or _READ_ONLY_KEY),
        )
    except (ChainError, OSError) as exc:
        typer.echo(f"consentgate: cannot open the chain: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        known = known_deployment(chain, settings.data_dir)
        trusted = {
            "registry": registry or known.get(REGISTRY),
            "anchor": anchor or known.get(ANCHOR),
        }
        if not trusted["anchor"] or not trusted["registry"]:
            typer.echo(
                "consentgate: no trusted contract addresses for this chain: pass "
                "--registry and --anchor (or run where DATA_DIR has deployments.json)",
                err=True,
            )
            raise typer.Exit(2)
        result = check(chain, doc, trusted)
    except ConsentgateError as exc:  # a malformed proof is a usage error, not a crash
        typer.echo(json.dumps({"valid": False, "reason": exc.code, "detail": exc.detail}))
        raise typer.Exit(2) from None
    except (KeyError, TypeError, ValueError) as exc:
        typer.echo(json.dumps({"valid": False, "reason": "proof_malformed", "detail": repr(exc)}))
        raise typer.Exit(2) from None
    except ChainError as exc:  # the node refused a read: nothing was verified
        typer.echo(f"consentgate: the chain refused a read ({exc.code}): {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        chain.close()
    typer.echo(json.dumps(result))
    raise typer.Exit(0 if result.get("valid") else 1)


# Verification only reads the chain; a JSON-RPC backend still wants a key to exist.
_READ_ONLY_KEY = "0x" + "11" * 32
RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry", help="trusted ConsentRegistry address (default: DATA_DIR/deployments.json)"
    ),
]
AnchorOption = Annotated[
    str | None,
    typer.Option(
        "--anchor", help="trusted ConsentAnchor address (default: DATA_DIR/deployments.json)"
    ),
]


@proof_app.command("verify")
def proof_verify(
    path: Path,
    chain: ChainOption = "embedded",
    registry: RegistryOption = None,
    anchor: AnchorOption = None,
) -> None:
    """Check a consent proof (GET /v1/consents/{id}/proof) on chain against the TRUSTED
    registry/anchor addresses, never the ones the file names. Prints JSON; exit 0 valid
    now (granted, not withdrawn, against the latest roots), 1 not valid (``reason``:
    withdrawn, stale_proof, ...), 2 usage error or malformed proof."""
    from authz.proofs import verify_consent

    _verify(
        path,
        chain,
        lambda c, d, t: verify_consent(c, d, registry=t["registry"], anchor=t["anchor"]),
        registry,
        anchor,
    )


@audit_app.command("verify")
def audit_verify(
    path: Path,
    chain: ChainOption = "embedded",
    registry: RegistryOption = None,
    anchor: AnchorOption = None,
) -> None:
    """Check an audit proof (GET /v1/access/{id}/proof) on chain against the TRUSTED
    ConsentAnchor. Prints JSON; exit 0 valid, 1 not valid, 2 usage error."""
    from authz.proofs import verify_audit

    _verify(path, chain, lambda c, d, t: verify_audit(c, d, anchor=t["anchor"]), registry, anchor)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def gate(ctx: typer.Context) -> None:
    """Offline gate agent: sync lists, validate codes, upload reports (`gate --help`)."""
    from authz.gate_cli import main

    raise typer.Exit(main(ctx.args))


UrlOption = Annotated[str | None, typer.Option(help="service base URL (default: from settings)")]
TokenOption = Annotated[str | None, typer.Option(help="registrar token (default: from DATA_DIR)")]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="overrides CONSENTGATE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides CONSENTGATE_PORT")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="API processes (overrides CONSENTGATE_WORKERS)",
        ),
    ] = None,
) -> None:
    """Serve the API (embedded chain unless CONSENTGATE_CHAIN_URL is set).

    On the embedded chain with more than one process (``--workers`` > 1,
    CONSENTGATE_INGEST_PORT or CONSENTGATE_ANCHORING=process), the chain runs in a
    supervised ``consentgate chain-node`` child first and every other process reaches it
    over JSON-RPC. Exit 2 on bad settings.
    """
    import uvicorn

    from authz.api.app import create_app
    from authz.settings import get_settings

    settings = get_settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    if workers is not None:
        settings.workers = workers
    anchoring = settings.serve_anchoring()
    if settings.embedded and anchoring == "off":
        _fail(
            "CONSENTGATE_ANCHORING=off needs CONSENTGATE_CHAIN_URL (on the embedded chain "
            "nothing else could anchor)"
        )
    _check_ports(settings)
    children: list[Any] = []

    def stop_children() -> None:  # the chain node (first started) stops last
        for child in reversed(children):
            child.stop()

    backend = settings.chain_url or f"embedded py-evm chain in {settings.data_dir / 'chain'}"
    if settings.embedded and settings.split:
        node = _start_chain_node(settings)
        children.append(node)
        backend += f", served by chain-node at {settings.chain_url}"
    try:
        svc = _open(settings)
        ingest = f", bulk ingest on port {settings.ingest_port}" if settings.ingest_port else ""
        typer.echo(
            f"consentgate: serving on http://{settings.host}:{settings.port} ({backend}, "
            f"anchor mode {settings.anchor_mode}, {settings.workers} worker(s), anchoring "
            f"{anchoring}{ingest}); registrar token: `consentgate admin token`",
            err=True,
        )
        children.extend(_start_children(settings, anchoring))
    except BaseException:
        stop_children()
        raise

    try:
        if settings.workers > 1:
            # the API processes read CONSENTGATE_ANCHORING: "thread" lets each compete
            # for the lease, anything else leaves anchoring to the child or elsewhere
            os.environ["CONSENTGATE_ANCHORING"] = "thread" if anchoring == "thread" else "off"
            _serve_workers(settings, svc)
            return
        if anchoring == "thread":
            svc.start_anchoring()
        app = create_app(settings, services=svc, close_on_shutdown=True, on_stopping=stop_children)
        settle_heap()
        try:
            uvicorn.run(
                app,
                host=settings.host,
                port=settings.port,
                log_level="info",
            )
        finally:
            svc.close()
    finally:
        stop_children()


def _check_ports(settings: Any) -> None:
    """Exit 2 with one line unless every port ``serve`` will listen on (``PORT``,
    ``INGEST_PORT``, ``CHAIN_NODE_PORT`` when it runs a chain node) differs from the others
    and is free now: a child that cannot bind would otherwise be restarted forever."""
    import socket

    ports = [("CONSENTGATE_PORT", settings.host, settings.port)]
    if settings.ingest_port:
        ports.append(("CONSENTGATE_INGEST_PORT", settings.host, settings.ingest_port))
    if settings.embedded and settings.split and settings.chain_node_port:
        ports.append(("CONSENTGATE_CHAIN_NODE_PORT", "127.0.0.1", settings.chain_node_port))
    seen: dict[int, str] = {}
    for name, host, port in ports:
        if port in seen:
            _fail(f"{name} must differ from {seen[port]} ({port})")
        seen[port] = name
        if port == 0:
            continue
        try:
            family, _, _, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
        except OSError as exc:
            _fail(f"{name}: cannot listen on {host}:{port} ({exc.strerror})")


def _start_chain_node(settings: Any) -> Any:
    """Start the supervised ``consentgate chain-node`` child of an embedded-chain ``serve``
    with more than one process (at ``CONSENTGATE_BULK_NICE``: it executes the anchoring
    transactions), wait until it answers, and point ``settings`` and this process's
    environment (inherited by the other children) at it: ``CONSENTGATE_CHAIN_URL`` and
    the chain's stored relayer key. Exit 2 when it does not come up within 60 s."""
    from authz.localserver import free_port
    from authz.supervisor import Supervised, consentgate
    from chain_node.rpc_server import wait_node

    port = settings.chain_node_port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = consentgate("chain-node", "--host", "127.0.0.1", "--port", str(port))
    node = Supervised("chain-node", argv, env=dict(os.environ), nice=settings.bulk_nice).start()
    try:
        wait_node(url, timeout_s=60, failed=lambda: node.restarts > 0, pid=lambda: node.pid)
    except TimeoutError as exc:
        node.stop()
        _fail(f"the chain node did not start ({exc})")
    key = (settings.data_dir / "chain" / "relayer.key").read_text().strip()
    settings.chain_url = os.environ["CONSENTGATE_CHAIN_URL"] = url
    settings.relayer_key = os.environ["CONSENTGATE_RELAYER_KEY"] = key
    return node


@app.command("chain-node")
def chain_node(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on")] = 8545,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="also serve evm_increaseTime and evm_mine (tests only: a time offset on "
            "a durable chain is permanent)",
        ),
    ] = False,
) -> None:
    """Serve the embedded chain in CONSENTGATE_DATA_DIR over JSON-RPC 2.0 until SIGTERM
    or Ctrl-C (:mod:`chain_node.rpc_server`), so that several processes can share it.

    ``serve`` starts one itself when it runs more than one process on the embedded chain.
    The node holds no unlocked account: clients sign with the relayer key stored in
    ``DATA_DIR/chain/relayer.key``. Exit 2 when the chain's folder is in use or
    CONSENTGATE_CHAIN_URL is set.
    """

    import uvicorn

    from authz.settings import get_settings
    from chain_node import ChainError
    from chain_node.embedded import open_embedded
    from chain_node.rpc_server import rpc_app

    settings = get_settings()
    if not settings.embedded:
        _fail("chain-node serves the embedded chain; unset CONSENTGATE_CHAIN_URL")
    _log_as("chain-node")
    try:
        chain = open_embedded(settings.data_dir, settings.relayer_key)
    except (ChainError, OSError) as exc:
        _fail(f"cannot open {settings.data_dir}: {exc}")
    try:
        typer.echo(
            f"consentgate: chain node for {chain.path} on http://{host}:{port} "
            f"(chain id {chain.chain_id}, block {chain.block_number()})",
            err=True,
        )
        settle_heap()
        uvicorn.run(rpc_app(chain, dev), host=host, port=port, log_level="warning")
    finally:
        chain.close()


def _start_children(settings: Any, anchoring: str) -> list[Any]:
    """The supervised children of ``serve`` (:mod:`authz.supervisor`): the anchoring
    worker when ``anchoring`` is ``process``, the bulk-ingest API when
    ``CONSENTGATE_INGEST_PORT`` is set; both at ``CONSENTGATE_BULK_NICE``."""
    import secrets
    import socket

    from authz.supervisor import Supervised, consentgate

    children = []
    if (anchoring == "process" or settings.ingest_port) and not settings.pseudonym_secret:
        settings.secret("pseudonym_secret")  # before the children, so all read one
    if anchoring == "process":
        # one lease owner for every restart: the supervisor reaped the previous child
        # before starting the next, so the new one may take its lease at once instead of
        # waiting for the TTL
        # unique per serve instance (two containers may both be pid 1 on one database)
        owner = f"serve-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        argv = consentgate("anchor-worker", "--lease-owner", owner)
        children.append(
            Supervised("anchor-worker", argv, env=dict(os.environ), nice=settings.bulk_nice).start()
        )
    if settings.ingest_port:
        env = {
            **os.environ,
            "CONSENTGATE_HOST": settings.host,
            "CONSENTGATE_PORT": str(settings.ingest_port),
            "CONSENTGATE_INGEST_PORT": "0",
            "CONSENTGATE_ANCHORING": "off",
            "CONSENTGATE_WORKERS": "1",
        }
        children.append(
            Supervised("ingest", consentgate("serve"), env=env, nice=settings.bulk_nice).start()
        )
    return children


@app.command("anchor-worker")
def anchor_worker(
    poll_ms: Annotated[
        int,
        typer.Option(min=1, max=10_000, help="how often an idle worker reads the outbox (ms)"),
    ] = 50,
    lease_owner: Annotated[
        str,
        typer.Option(
            help="name in the anchoring lease (default: random); give one only to a worker "
            "that replaces a dead one of that name (serve's supervisor does)"
        ),
    ] = "",
) -> None:
    """Run only the anchoring worker (no API) until SIGTERM or Ctrl-C.

    For a JSON-RPC chain (the embedded chain belongs to one process: ``serve`` runs it in
    a ``chain-node`` child when it needs more than one process): ``serve`` starts one
    itself with CONSENTGATE_ANCHORING=process; run it by hand beside API processes
    started with CONSENTGATE_ANCHORING=off. Several may run: the outbox lease
    lets one at a time send (the others stand by). Exit 2 when the services cannot be
    opened.
    """
    import signal
    import threading

    from authz.settings import get_settings

    settings = get_settings()
    if settings.embedded:
        _fail(
            "anchor-worker needs CONSENTGATE_CHAIN_URL (the embedded chain "
            "belongs to the serving process, which anchors in a thread)"
        )
    _log_as("anchor-worker")
    svc = _open(settings)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    try:
        svc.start_anchoring(poll_s=poll_ms / 1000, owner=lease_owner or None)
        settle_heap()
        typer.echo(f"consentgate: anchoring worker on {settings.chain_url}", err=True)
        done.wait()
    finally:
        svc.close()


def _serve_workers(settings: Any, svc: Any) -> None:
    """Run ``settings.workers`` uvicorn worker processes (:func:`authz.api.app.worker_app`).

    This process has opened the services once (contracts deployed and remembered, index
    schema created and synced, registrar token stored) and closes them before the
    workers start, so they only read what exists; the pseudonym secret is created here
    for the same reason (workers creating it at once could each keep another one).
    """
    import uvicorn

    if not settings.pseudonym_secret:
        settings.secret("pseudonym_secret")
    svc.close()
    os.environ["CONSENTGATE_HOST"] = settings.host
    os.environ["CONSENTGATE_PORT"] = str(settings.port)
    uvicorn.run(
        "authz.api.app:worker_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level="info",
    )


def settle_heap() -> None:
    """Tune the garbage collector for a long-running server, once started.

    Start-up leaves ~200,000 long-lived objects (py-evm, web3, SQLAlchemy, FastAPI) that
    every full collection walks again while holding the GIL: under batch load such
    collections paused the server for 100-190 ms each (most of the access checks' p99)
    and took ~30% of the CPU of batch acceptance and anchoring. ``gc.freeze`` moves what
    exists now out of the collector's sight (full collections then 12-19 ms) and a larger
    first-generation threshold makes collections rarer; cycles are still collected.

    Also bounds the recursion limit at :data:`SERVER_RECURSION_LIMIT`: py_ecc (imported
    by py-evm) raises it to 100,000 on import, and at that depth a body of nested JSON
    arrays a few hundred KB long overflows the C stack of ``json.loads`` (a segfault that
    takes the whole process down) before any ``RecursionError``; 30,000 still leaves
    py-evm room for deep EVM call stacks.
    """
    import gc
    import sys

    import py_ecc  # noqa: F401 - its import-time setrecursionlimit must come first

    sys.setrecursionlimit(SERVER_RECURSION_LIMIT)
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


SERVER_RECURSION_LIMIT = 30_000


def _open(settings: Any) -> Any:
    """Open the services or exit 2 with a one-line reason (data folder in use, chain
    or index database unreachable, bad settings) instead of a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from authz.services import open_services
    from chain_node import ChainError

    try:
        return open_services(settings)
    except (ChainError, OSError) as exc:
        _fail(f"cannot open {settings.data_dir}: {exc}")
    except SQLAlchemyError as exc:  # a bad or unreachable CONSENTGATE_DATABASE_URL
        _fail(f"cannot open the index database: {str(exc).splitlines()[0]}")


@app.command()
def demo(
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Walk through the whole flow against a running server over real HTTP."""
    from authz.demo import run_demo
    from authz.settings import get_settings

    settings = get_settings()
    with _failures_in_one_line("demo"):
        ok = run_demo(
            url or settings.base_url, token or settings.effective_registrar_token(), echo=typer.echo
        )
    raise typer.Exit(0 if ok else 1)


@app.command()
def reindex() -> None:
    """Rebuild the index's projections from the chain (stop the server first when it
    runs the embedded chain on the same data folder)."""
    from authz.errors import ConsentgateError
    from authz.settings import get_settings

    svc = _open(get_settings())
    try:
        try:
            cursor = svc.reindex()
        except ConsentgateError as exc:
            typer.echo(
                f"consentgate: reindex refused ({exc.code}): {exc.detail}; the index "
                "was left as it was",
                err=True,
            )
            raise typer.Exit(2) from None
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
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Grants per second through the API, one at a time, against a running server."""
    from authz.bench import grants_sequential
    from authz.settings import get_settings

    settings = get_settings()
    _bench(
        "grants",
        grants_sequential,
        url or settings.base_url,
        token or settings.effective_registrar_token(),
        count,
    )


@bench_app.command("anchoring")
def bench_anchoring(
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = True,
    grants: Annotated[int, typer.Option(help="grants through the batched path", min=1)] = 2000,
    chain: Annotated[str, typer.Option(help="`embedded` or a JSON-RPC URL")] = "embedded",
    workers: Annotated[
        int, typer.Option(min=1, max=8, help="API processes (more than 1: JSON-RPC chain)")
    ] = 1,
) -> None:
    """Grants anchored end to end, batched path vs one transaction per grant (issue 4)."""
    from authz.bench import anchoring

    _bench("anchoring", anchoring, grants, chain, workers=workers)


@bench_app.command("checks")
def bench_checks(
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = True,
    grants: Annotated[int, typer.Option(help="grants anchored meanwhile", min=1)] = 10_000,
    checks: Annotated[
        int, typer.Option(help="timed idle access checks, half before and half after", min=10)
    ] = 3000,
    database_url: Annotated[
        str, typer.Option(help="the service's index (default SQLite); an empty database")
    ] = "",
    chain: Annotated[str, typer.Option(help="`embedded` or a JSON-RPC URL")] = "embedded",
    ingest: Annotated[
        bool,
        typer.Option(help="grants go to the bulk-ingest process (CONSENTGATE_INGEST_PORT)"),
    ] = False,
    anchoring: Annotated[
        str,
        typer.Option(
            help="the service's CONSENTGATE_ANCHORING (auto|thread|process); on the embedded "
            "chain `process` or --ingest run the chain in a chain-node child"
        ),
    ] = "auto",
) -> None:
    """Access-check p50/p99 idle vs while grants are being anchored (issue 4)."""
    from authz.bench import checks_under_anchoring

    if anchoring not in ("auto", "thread", "process"):
        _fail("--anchoring must be auto, thread or process")
    _bench("checks", checks_under_anchoring, grants, checks, database_url, chain, ingest, anchoring)


@bench_app.command("signatures")
def bench_signatures(
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = True,
    count: Annotated[int, typer.Option(help="signed grants per round", min=10)] = 2000,
) -> None:
    """EIP-712 digest + secp256k1 recovery: compiled batch vs eth-account vs raw
    libsecp256k1 (``fast_per_s``, ``eth_account_per_s``, ``raw_recover_per_s`` and ratios)."""
    from fastpath import eip712

    typer.echo(json.dumps(eip712.bench(count)))


@admin_app.command("token")
def admin_token() -> None:
    """Print the registrar bearer token (generated and stored on first use)."""
    from authz.settings import get_settings

    typer.echo(get_settings().effective_registrar_token())
