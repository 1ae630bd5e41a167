"""Throughput measurements of the running service, printed as JSON (``consentgate bench``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from eth_account import Account

from authz.client import Client, request_body, sign_typed


def grants_sequential(base_url: str, registrar_token: str, count: int) -> dict[str, Any]:
    """Post ``count`` signed grants one at a time over HTTP and time them.

    Requests are created and signed before the clock starts, so the figure is the cost
    of ``POST /v1/consents?wait=anchored`` alone: verify, commit to the outbox, anchor
    (a registry transaction in direct mode) and project into the index, one at a time.
    Returns ``{"grants", "seconds", "grants_per_s", "p50_ms", "p99_ms"}``.
    """
    with Client(base_url, timeout=120) as api:
        dept = api.register_department(
            registrar_token, "Bench Dept", Account.create().address, ["bench"]
        )
        signed = []
        for _ in range(count):
            citizen = Account.create()
            req = api.request_consent(dept, request_body(citizen.address, "bench", ["identity"]))
            signed.append(
                {
                    "request_id": req["request_id"],
                    "signature": sign_typed(citizen, req["typed_data"]),
                }
            )
        latencies = []
        start = time.perf_counter()
        for body in signed:
            t0 = time.perf_counter()
            api.http.post("/v1/consents", params={"wait": "anchored"}, json=body).raise_for_status()
            latencies.append((time.perf_counter() - t0) * 1000)
        seconds = time.perf_counter() - start
    latencies.sort()
    return {
        "grants": count,
        "seconds": round(seconds, 3),
        "grants_per_s": round(count / seconds, 1),
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
    }


def _serve_in_thread(settings: Any) -> tuple[Any, Any, Any]:
    """Start the service with ``settings`` on a free port in this process; returns
    (services, uvicorn server, thread)."""
    import socket
    import threading

    import uvicorn

    from authz.api.app import create_app
    from authz.services import open_services

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        settings.port = int(sock.getsockname()[1])
    svc = open_services(settings)
    svc.start_anchoring()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, services=svc),
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return svc, server, thread


def _percentile(values: list[float], q: float, digits: int) -> float:
    """The ``q`` quantile of ``values`` (nearest rank below), rounded to ``digits``."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], digits)


def _signed_bodies(
    api: Client, dept: dict[str, Any], grants: int, per_body: int
) -> list[list[dict[str, str]]]:
    """``grants`` consent requests of ``dept`` for new citizens, each signed by its
    citizen: ``POST /v1/consent-batches`` item lists of ``per_body`` items."""
    bodies: list[list[dict[str, str]]] = [[]]
    for _ in range(grants):
        citizen = Account.create()
        req = api.request_consent(dept, request_body(citizen.address, "bench", ["identity"]))
        if len(bodies[-1]) >= per_body:
            bodies.append([])
        bodies[-1].append(
            {"request_id": req["request_id"], "signature": sign_typed(citizen, req["typed_data"])}
        )
    return bodies


def _batched_service(
    data_dir: Path,
    chain: str,
    workers: int = 1,
    database_url: str = "",
    ingest_port: int = 0,
    anchoring: str = "auto",
) -> Any:
    """:func:`authz.localserver.serve_process` of the benches' batched service (batches of
    up to 2000, 100 ms wait) on the embedded chain or ``chain`` (a JSON-RPC URL paid by
    ``CONSENTGATE_RELAYER_KEY``), with ``workers`` API processes, the index at
    ``database_url`` (default SQLite in ``data_dir``), a bulk-ingest port if given and
    ``CONSENTGATE_ANCHORING=anchoring``."""
    import os

    from authz.localserver import serve_process

    return serve_process(
        data_dir,
        anchor_mode="batched",
        batch_max="2000",
        batch_wait_ms="100",
        chain_url="" if chain == "embedded" else chain,
        relayer_key=os.environ.get("CONSENTGATE_RELAYER_KEY", ""),
        workers=str(workers),
        database_url=database_url,
        ingest_port=str(ingest_port),
        anchoring=anchoring,
    )


def anchoring(
    grants: int,
    chain: str,
    baseline_sample: int = 20,
    concurrency: int = 4,
    batch: int = 250,
    workers: int = 1,
) -> dict[str, Any]:
    """Grants anchored end to end: the batched path against one transaction per grant.

    ``chain``: ``embedded`` (fresh embedded chains in a temporary folder) or a JSON-RPC
    URL (``CONSENTGATE_RELAYER_KEY`` pays). (a) baseline: ``baseline_sample`` direct
    grants, each its own registry ``grant`` transaction (web3 contract ``transact``)
    sent one at a time, from a service in this process; (b) the service in batched mode
    as it is deployed, ``consentgate serve`` in its own process (so this client's
    threads do not share its interpreter): ``grants`` requests created and signed
    beforehand, posted to ``POST /v1/consent-batches`` by ``concurrency`` threads in
    batches of ``batch``, timed until every one is anchored (read from the service's
    index database). ``workers``: API processes (``serve --workers``; more than one needs
    a JSON-RPC chain); on a JSON-RPC chain the service anchors in a process of its own
    (``CONSENTGATE_ANCHORING=auto``). Rates are grants per second; ``accept_*_ms`` are
    the batch POST latencies. Raises :class:`authz.localserver.ServerStartError` when the service
    process does not start.
    """
    import os
    import tempfile
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import closing
    from pathlib import Path

    from sqlalchemy import func, select

    from authz.db import Database
    from authz.ledger import grant_args
    from authz.models import OutboxItem
    from authz.settings import Settings

    url = "" if chain == "embedded" else chain
    key = os.environ.get("CONSENTGATE_RELAYER_KEY", "")  # the baseline's payer
    out: dict[str, Any] = {"grants": grants, "chain": chain, "workers": workers}
    with tempfile.TemporaryDirectory() as tmp:
        # (a) baseline: one registry transaction per grant, through the relayer
        settings = Settings(
            data_dir=Path(tmp) / "baseline",
            database_url="",  # never the operator's index
            registry_address="",
            chain_url=url,
            relayer_key=key,
            anchor_mode="batched",
            batch_max=2000,
            batch_wait_ms=100,
        )
        svc, server, thread = _serve_in_thread(settings)
        try:
            with Client(f"http://127.0.0.1:{settings.port}", timeout=300) as api:
                dept = api.register_department(
                    svc.registrar_token, "Bench Dept", Account.create().address, ["bench"]
                )
                sample = []
                for _ in range(baseline_sample):
                    citizen = Account.create()
                    req = api.request_consent(
                        dept, request_body(citizen.address, "bench", ["identity"])
                    )
                    sample.append((req, sign_typed(citizen, req["typed_data"])))
                start = time.perf_counter()
                for req, sig in sample:
                    svc.ledger.send(
                        "grant", grant_args(req["typed_data"]["message"]), bytes.fromhex(sig[2:])
                    )
                out["baseline_grants_per_s"] = round(
                    baseline_sample / (time.perf_counter() - start), 1
                )
        finally:
            server.should_exit = True
            thread.join(30)
            svc.close()
        # (b) batched: the service in its own process; requests signed before the clock
        with (
            _batched_service(Path(tmp) / "batched", chain, workers=workers) as server,
            closing(
                Database(Settings(data_dir=Path(tmp) / "batched", database_url="").db_url())
            ) as index,
            Client(server.base_url, timeout=300) as api,
        ):
            dept = api.register_department(
                server.registrar_token,
                "Bench Dept",
                Account.create().address,
                ["bench"],
            )
            bodies = _signed_bodies(api, dept, grants, batch)
            latencies: list[float] = []

            def post(body: list[dict[str, str]]) -> int:
                t0 = time.perf_counter()
                resp = api.http.post("/v1/consent-batches", json={"items": body})
                latencies.append((time.perf_counter() - t0) * 1000)
                return sum(1 for r in resp.raise_for_status().json()["results"] if r["accepted"])

            start = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                accepted = sum(pool.map(post, bodies))
            while True:
                # one indexed row at most per poll: counting 10k rows every 5 ms would
                # take a good part of a core from the service being measured
                with index.sessions() as s:
                    left = s.scalar(
                        select(OutboxItem.seq).where(OutboxItem.state == "pending").limit(1)
                    )
                if left is None or time.perf_counter() - start > 600:
                    break
                time.sleep(0.005)  # the end is read to within 5 ms
            seconds = time.perf_counter() - start
            with index.sessions() as s:
                anchored = int(
                    s.scalar(
                        select(func.count())
                        .select_from(OutboxItem)
                        .where(OutboxItem.state == "anchored")
                    )
                    or 0
                )
    out.update(
        {
            "accepted": accepted,
            "anchored": anchored,
            "seconds": round(seconds, 3),
            "grants_per_s": round(anchored / seconds, 1),
            "accept_p50_ms": _percentile(latencies, 0.5, 1),
            "accept_p99_ms": _percentile(latencies, 0.99, 1),
        }
    )
    out["ratio"] = round(out["grants_per_s"] / out["baseline_grants_per_s"], 1)
    return out


def _post_batches(
    base_url: str, bodies: list[list[dict[str, str]]], threads: int, posting: Any
) -> None:
    """The loader of :func:`checks_under_anchoring` (runs in its own process): post every
    batch with ``?wait=anchored`` from ``threads`` threads, setting the
    ``multiprocessing`` event ``posting`` just before the first post (the process's own
    start-up is not load). Exits non-zero (``RuntimeError``) if an item is refused or
    not anchored when its answer comes (``CONSENTGATE_WAIT_TIMEOUT_S`` ran out)."""
    from concurrent.futures import ThreadPoolExecutor

    with Client(base_url, timeout=600) as api:

        def post(body: list[dict[str, str]]) -> None:
            posting.set()
            resp = api.http.post(
                "/v1/consent-batches", params={"wait": "anchored"}, json={"items": body}
            )
            resp.raise_for_status()
            states = [
                r.get("anchor") if r["accepted"] else "refused" for r in resp.json()["results"]
            ]
            if states != ["anchored"] * len(body):
                raise RuntimeError(f"batch answered {sorted(set(states))}, not all anchored")

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(post, bodies))


def _wait_audit_anchored(data_dir: Path, database_url: str, timeout_s: float = 120) -> None:
    """Wait until the service in ``data_dir`` has anchored every audit event written so
    far (read from its index): access checks' queued events moved, every event in a
    batch, and no batch still being sent; raises ``TimeoutError`` after ``timeout_s``
    seconds."""
    from contextlib import closing

    from sqlalchemy import func, select

    from authz.audit import moved_watermark
    from authz.db import Database
    from authz.models import AuditEvent, Batch, QueuedAccessAudit
    from authz.settings import Settings

    url = Settings(data_dir=data_dir, database_url=database_url).db_url()
    deadline = time.monotonic() + timeout_s
    with closing(Database(url)) as index:
        while True:
            with index.sessions() as s:
                # the queue first: an event moved in between is then seen in audit_events
                newest = s.scalar(select(func.max(QueuedAccessAudit.seq)))
                # SQLite keeps moved rows until the access log's writer trims them (the
                # watermark says how far the move got); PostgreSQL deletes them on move
                queued = newest is not None and (not index.is_sqlite or newest > moved_watermark(s))
                left = s.scalar(
                    select(AuditEvent.seq).where(AuditEvent.leaf_index.is_(None)).limit(1)
                )
                # leaf indices are set when a batch is prepared, before its transaction
                sending = s.scalar(select(Batch.batch_id).where(Batch.state == "prepared").limit(1))
            if left is None and not queued and sending is None:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"audit events of {data_dir} not anchored in {timeout_s} s")
            time.sleep(0.2)


class _CheckTimer:
    """Times ``POST /v1/access-checks`` on one keep-alive HTTP/1.1 connection
    (``http.client``, the body encoded once): the timing process shares this machine's
    two cores with the service, so it should spend as little CPU per check as it can.
    Each call returns the round trip in ms and raises ``RuntimeError`` on a non-200;
    after :meth:`close` the next call connects again."""

    def __init__(self, base_url: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        import http.client
        import json
        from urllib.parse import urlsplit

        url = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
        self._body = json.dumps(body).encode()
        self._headers = {**headers, "Content-Type": "application/json"}

    def __call__(self) -> float:
        t0 = time.perf_counter()
        self._conn.request("POST", "/v1/access-checks", self._body, self._headers)
        resp = self._conn.getresponse()
        answer = resp.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if resp.status != 200:
            raise RuntimeError(f"access check answered {resp.status}: {answer[:200]!r}")
        return elapsed

    def close(self) -> None:
        self._conn.close()


def checks_under_anchoring(
    grants: int = 10_000,
    checks: int = 3000,
    database_url: str = "",
    chain: str = "embedded",
    ingest: bool = False,
    anchoring: str = "auto",
) -> dict[str, Any]:
    """Access-check latency idle vs while ``grants`` grants are accepted and anchored.

    ``consentgate serve`` runs in its own process in batched mode, as deployed, on a
    fresh embedded chain or on ``chain`` (a JSON-RPC URL; ``CONSENTGATE_RELAYER_KEY``
    pays, and the service anchors in a process of its own). ``grants`` requests are
    created and signed first, and the service is left to anchor their audit events.

    Three phases, one check at a time (:class:`_CheckTimer`; one untimed warm-up check
    opens the connection before each idle phase), every other check timed:

    1. idle, before: ``checks // 2`` checks;
    2. busy: a loader process posts the signed grants (``POST
       /v1/consent-batches?wait=anchored``, batches of 250, 2 threads); from its first
       post on, checks run back to back until the loader is done, i.e. until every
       grant is anchored (an item refused or still pending in its answer fails the run);
    3. idle, after: once every audit event (the busy checks' included) is anchored, the
       other ``checks - checks // 2`` checks.

    The idle p99 is taken over both idle phases (3000 checks by default): this machine is
    shared, and its own jitter moved a p99 taken over one short window by 2x between
    runs; bracketing the busy phase puts that drift on both sides of the ratio. Returns
    the p50/p99 latencies in ms (``idle_*`` over both idle phases, ``idle_before_p99_ms``
    and ``idle_after_p99_ms`` apart), the number of checks timed while busy and the
    ratio of the p99s, busy over idle (issue 4 target: <= 2). ``database_url``: the
    service's index (default: SQLite in its temporary data folder; a PostgreSQL URL must
    name an empty database). ``ingest``: the service runs its bulk-ingest API process
    (``CONSENTGATE_INGEST_PORT``) and the loader posts there, as channels would in that
    deployment; checks go to the main port. ``anchoring``: ``CONSENTGATE_ANCHORING``
    (``process`` on the embedded chain: the chain in a ``chain-node`` child, anchoring in
    another, the API alone in its process). Raises ``RuntimeError`` if a check is
    refused or the loader fails, and ``TimeoutError`` if audit events are not anchored
    within two minutes. ``loader_ok`` is always true in what it returns (kept for
    readers of earlier output).
    """
    import multiprocessing
    import tempfile
    from pathlib import Path

    from authz.localserver import free_port, wait_healthy

    ingest_port = free_port() if ingest else 0

    def percentile(values: list[float], q: float) -> float:
        return _percentile(values, q, 2)

    with (
        tempfile.TemporaryDirectory() as tmp,
        _batched_service(
            Path(tmp) / "service",
            chain,
            database_url=database_url,
            ingest_port=ingest_port,
            anchoring=anchoring,
        ) as server,
        Client(server.base_url, timeout=300) as api,
    ):
        dept = api.register_department(
            server.registrar_token, "Bench Dept", Account.create().address, ["bench"]
        )
        citizen = Account.create()
        api.grant(
            api.request_consent(dept, request_body(citizen.address, "bench", ["identity"])),
            citizen,
        )
        body = {"subject": citizen.address, "purpose": "bench", "pii_categories": ["identity"]}
        bodies = _signed_bodies(api, dept, grants, 250)
        # idle means idle: the 10k requests' audit events are anchored first (on the
        # audit clock, CONSENTGATE_AUDIT_WAIT_MS), not in the middle of the idle checks
        _wait_audit_anchored(Path(tmp) / "service", database_url)
        loader_url = f"http://127.0.0.1:{ingest_port}" if ingest else server.base_url
        wait_healthy(loader_url)
        timed_check = _CheckTimer(server.base_url, dept["headers"], body)
        try:
            timed_check()  # warm-up, untimed: the connection is opened here
            before = [timed_check() for _ in range(checks // 2)]
            spawn = multiprocessing.get_context("spawn")
            posting = spawn.Event()
            loader = spawn.Process(target=_post_batches, args=(loader_url, bodies, 2, posting))
            loader.start()
            # busy from the first post on: the loader's own start-up (about 2 s) is not
            # load, and its checks would be idle ones counted as busy
            while not posting.wait(0.05):
                if not loader.is_alive():
                    break
            started = time.perf_counter()
            busy: list[float] = []
            while loader.is_alive():
                busy.append(timed_check())
            loader.join()
            busy_s = time.perf_counter() - started
            if loader.exitcode != 0:
                raise RuntimeError(
                    f"the loader failed (exit code {loader.exitcode}): not every grant was "
                    "accepted and anchored; its error is above"
                )
            if not busy:
                raise RuntimeError("no check ran while the grants were anchored")
            _wait_audit_anchored(Path(tmp) / "service", database_url)
            timed_check.close()  # the server has dropped the idle keep-alive by now
            timed_check()  # warm-up again on the new connection
            after = [timed_check() for _ in range(checks - checks // 2)]
        finally:
            timed_check.close()
    idle = before + after
    return {
        "grants": grants,
        "chain": chain,
        "ingest_process": ingest,
        "anchoring": anchoring,
        "checks": checks,
        "idle_p50_ms": percentile(idle, 0.5),
        "idle_p99_ms": percentile(idle, 0.99),
        "idle_before_p99_ms": percentile(before, 0.99),
        "idle_after_p99_ms": percentile(after, 0.99),
        "busy_checks": len(busy),
        "busy_seconds": round(busy_s, 2),
        "busy_p50_ms": percentile(busy, 0.5),
        "busy_p99_ms": percentile(busy, 0.99),
        "p99_ratio": round(percentile(busy, 0.99) / percentile(idle, 0.99), 2),
        "loader_ok": True,
    }
