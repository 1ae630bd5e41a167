"""Locust user classes for consentgate: Citizen, Department, Gate, Registrar.

Run through ``make loadtest`` (``python -m loadtest``), which builds the payload pool and
passes ``--pool``; by hand::

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --pool out/pool.json \\
        --shape soak --scale 0.01 --duration 60 --headless

Every payload that needs a signature comes from the pool (:mod:`loadtest.pool`); task
loops only pick prepared bodies, send them and check the answers. Paths with ids are
grouped with ``name=``. Besides Locust's own stats the run keeps status-code counts,
per-worker request totals, pool exhaustion and inline signatures; the master (or the
single local runner) writes them to ``--extras-out`` as JSON when it quits.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import locust.runners
import orjson
from eth_account import Account
from locust import FastHttpUser, argument_parser, constant, constant_throughput, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from loadtest import pool as pool_mod
from loadtest.profiles import PROFILES
from loadtest.scale import (
    ALLOWED_CHECK_SHARE,
    GATE_BATCH,
    PER_USER_TASKS_PER_S,
    REGISTRAR_TASKS_PER_S,
    class_weights,
    task_weights,
)
from loadtest.shapes import SelectedShape

log = logging.getLogger("loadtest")
SIWE_POOL_TTL_S = 540.0
"""Pre-signed sign-ins are used while their nonces are fresh (10 min TTL, 1 min margin)."""
JSON = {"Content-Type": "application/json"}
GRANT_ACCEPTED = frozenset({"pending", "anchored"})
"""A grant is accepted once durably in the outbox (``pending``); anchoring follows."""

__all__ = ["AccessCheckProbe", "Citizen", "Department", "Gate", "HealthzProbe", "Registrar"]
_ = SelectedShape  # the locustfile's only LoadTestShape

# Distributed mode on a busy machine: a Locust 2.47 worker rebuilds its default argument
# parser once per option of every spawn message (runners.py, "receive custom
# arguments"), ~1 s of blocked event loop per shape tick; heartbeats stall and the master
# drops the worker. The defaults never change within a process, so cache them, and give
# workers a longer heartbeat grace (locust issue #1897's documented knob).
argument_parser.default_args_dict = functools.cache(argument_parser.default_args_dict)
locust.runners.HEARTBEAT_LIVENESS = 10


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--pool", default="", help="payload pool JSON (loadtest.pool)")
    parser.add_argument("--shape", choices=sorted(PROFILES), default="soak")
    parser.add_argument("--scale", type=float, default=0.01, help="1.0 = national peak")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--skip-classes", default="", help="comma-separated user classes")
    parser.add_argument("--probe", default="", help="HealthzProbe or AccessCheckProbe only")
    parser.add_argument("--probe-users", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=1, help="pool partitions (workers)")
    parser.add_argument("--extras-out", default="", help="where the master writes extras JSON")


class Run:
    """This process's share of the pool and its counters (one per Locust process)."""

    def __init__(self) -> None:
        self.pool: pool_mod.Pool | None = None
        self.ready = False
        self.status: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self.worker_requests: Counter[str] = Counter()
        self.skipped: dict[str, str] = {}
        self.sign_ins: deque[dict[str, str]] = deque()
        self.grants: deque[dict[str, str]] = deque()
        self.withdrawals: deque[dict[str, str]] = deque()
        self.new_departments: deque[str] = deque()
        self.keys: dict[str, str] = {}
        self.checks: list[tuple[dict[str, str], str, bool]] = []
        self.valid_until = ""

    def setup(self, environment: Any) -> None:
        """Load the pool and take this worker's partition (first user start, when the
        worker index is known). Raises PoolError when --pool is missing/unreadable."""
        if self.ready:
            return
        opts = environment.parsed_options
        p = pool_mod.load(Path(opts.pool))
        runner = environment.runner
        index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        count = max(1, int(opts.partitions)) if isinstance(runner, WorkerRunner) else 1
        share = {"index": index, "count": count}
        self.pool = p
        self.sign_ins = deque(pool_mod.partition(p.sign_ins, **share))
        self.grants = deque(pool_mod.partition(p.grants, **share))
        self.withdrawals = deque(pool_mod.partition(p.withdrawals, **share))
        self.new_departments = deque(pool_mod.partition(p.new_departments, **share))
        self.keys = dict(zip(p.citizens, p.citizen_keys, strict=True))
        self.checks = _check_bodies(p)
        self.valid_until = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 90 * 86400)
        )
        self.ready = True

    def take(self, name: str) -> Any:
        """Pop one item of a consumable pool; None (and a counted exhaustion) when empty."""
        items: deque[Any] = getattr(self, name)
        if items:
            return items.popleft()
        self.counters[f"pool_exhausted.{name}"] += 1
        return None


RUN = Run()


def _check_bodies(p: pool_mod.Pool) -> list[tuple[dict[str, str], str, bool]]:
    """Prepared access checks: (headers, JSON body, expected ``allowed``); a share
    ALLOWED_CHECK_SHARE of them for consented subjects, the rest for strangers."""
    heads = [{**JSON, "Authorization": f"Bearer {d['api_key']}"} for d in p.departments]
    allowed = [
        (
            heads[c["department"]],
            _json(
                {
                    "subject": c["subject"],
                    "purpose": pool_mod.PURPOSE,
                    "pii_categories": pool_mod.CHECK_CATEGORIES,
                }
            ),
            True,
        )
        for c in p.consented
    ]
    n_denied = max(1, round(len(allowed) * (1 - ALLOWED_CHECK_SHARE) / ALLOWED_CHECK_SHARE))
    denied = [
        (
            heads[i % len(heads)],
            _json(
                {
                    "subject": s,
                    "purpose": pool_mod.PURPOSE,
                    "pii_categories": pool_mod.CHECK_CATEGORIES,
                }
            ),
            False,
        )
        for i, s in enumerate(p.strangers[:n_denied])
    ]
    return allowed + denied


@events.request.add_listener
def _count_status(response: Any = None, exception: Any = None, **_: Any) -> None:
    code = getattr(response, "status_code", 0) or 0
    RUN.status[str(code) if code else "connection_error"] += 1


@events.report_to_master.add_listener
def _report(client_id: str, data: dict[str, Any]) -> None:
    data["cg_status"] = dict(RUN.status)
    data["cg_counters"] = dict(RUN.counters)
    RUN.status.clear()
    RUN.counters.clear()


@events.worker_report.add_listener
def _merge(client_id: str, data: dict[str, Any]) -> None:
    RUN.status.update(data.get("cg_status", {}))
    RUN.counters.update(data.get("cg_counters", {}))
    RUN.worker_requests[client_id] += int(data.get("stats_total", {}).get("num_requests", 0))


@events.quitting.add_listener
def _write_extras(environment: Any, **_: Any) -> None:
    path = getattr(environment.parsed_options, "extras_out", "")
    if not path or isinstance(environment.runner, WorkerRunner):
        return
    extras = {
        "status_codes": dict(sorted(RUN.status.items())),
        "counters": dict(sorted(RUN.counters.items())),
        "workers": dict(RUN.worker_requests)
        if isinstance(environment.runner, MasterRunner)
        else {},
        "skipped": RUN.skipped,
    }
    Path(path).write_bytes(orjson.dumps(extras, option=orjson.OPT_INDENT_2))


def _json(value: Any) -> str:
    """Compact JSON text (orjson) for a request body."""
    return orjson.dumps(value).decode()


def _check(resp: Any, expect: int) -> Any:
    """Fail the response unless its status is ``expect``; returns the parsed JSON body."""
    if resp.status_code != expect:
        resp.failure(f"expected {expect}, got {resp.status_code}: {(resp.text or '')[:200]}")
        return None
    try:
        return orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        resp.failure("response is not JSON")
        return None


class Base(FastHttpUser):
    """Loads the pool on the first start in this process."""

    abstract = True

    def on_start(self) -> None:
        RUN.setup(self.environment)


class Department(Base):
    """A department's backend: access checks before every use of data (the dominant
    call), now and then a new consent request, and a poll of its withdrawal feed."""

    weight = class_weights()["Department"]
    wait_time = constant_throughput(PER_USER_TASKS_PER_S["Department"])
    _w = task_weights("Department")

    def on_start(self) -> None:
        super().on_start()
        assert RUN.pool is not None
        self.dept = random.choice(RUN.pool.departments)
        self.headers = {**JSON, "Authorization": f"Bearer {self.dept['api_key']}"}
        self.feed_after = 0

    @task(_w["access_check"])
    def access_check(self) -> None:
        headers, body, expected = random.choice(RUN.checks)
        with self.client.post(
            "/v1/access-checks", data=body, headers=headers, catch_response=True
        ) as resp:
            out = _check(resp, 200)
            if out is not None and out.get("allowed") is not expected:
                resp.failure(
                    f"allowed={out.get('allowed')} ({out.get('reason')}), expected {expected}"
                )

    @task(_w["withdrawal_feed"])
    def withdrawal_feed(self) -> None:
        with self.client.get(
            "/v1/department/withdrawals",
            params={"after": self.feed_after},
            headers=self.headers,
            name="/v1/department/withdrawals",
            catch_response=True,
        ) as resp:
            out = _check(resp, 200)
            if out is not None:
                self.feed_after = int(out.get("next", self.feed_after))

    @task(_w["request_consent"])
    def request_consent(self) -> None:
        assert RUN.pool is not None
        body = {
            "subject": random.choice(RUN.pool.citizens),
            "purpose": pool_mod.PURPOSE,
            "pii_categories": pool_mod.CATEGORIES,
            "notice_url": pool_mod.NOTICE_URL,
            "retention_days": 365,
            "valid_until": RUN.valid_until,
        }
        with self.client.post(
            "/v1/consent-requests",
            data=_json(body),
            headers=self.headers,
            catch_response=True,
        ) as resp:
            _check(resp, 201)


class Citizen(Base):
    """A card holder in the app: signs in with SIWE, looks at the requests awaiting a
    signature, its consents and its access log, grants a pending request, now and then
    withdraws a consent."""

    weight = class_weights()["Citizen"]
    wait_time = constant_throughput(PER_USER_TASKS_PER_S["Citizen"])
    _w = task_weights("Citizen")

    def on_start(self) -> None:
        super().on_start()
        assert RUN.pool is not None
        self.address = random.choice(RUN.pool.citizens)
        self.headers: dict[str, str] = {}
        self.sign_in()

    def _signed_message(self) -> dict[str, str] | None:
        """A pre-signed sign-in while the pool is fresh, else one signed here (counted)."""
        assert RUN.pool is not None
        if time.time() - RUN.pool.built_at < SIWE_POOL_TTL_S:
            item = RUN.take("sign_ins")
            if item is not None:
                return item
        key = RUN.keys.get(self.address)
        if key is None:
            return None
        with self.client.post("/v1/auth/siwe/nonce", catch_response=True) as resp:
            out = _check(resp, 200)
        if out is None:
            return None
        RUN.counters["inline_signatures"] += 1
        return _inline_siwe(RUN.pool, key, out["nonce"])

    @task(_w["sign_in"])
    def sign_in(self) -> None:
        signed = self._signed_message()
        if signed is None:
            return
        if "nonce_fetched" not in signed:
            with self.client.post("/v1/auth/siwe/nonce", catch_response=True) as resp:
                _check(resp, 200)
        body = {"message": signed["message"], "signature": signed["signature"]}
        with self.client.post(
            "/v1/auth/siwe", data=_json(body), headers=JSON, catch_response=True
        ) as resp:
            out = _check(resp, 200)
            if out is not None:
                self.address = signed["address"]
                self.headers = {"Authorization": f"Bearer {out['token']}"}

    def _own_view(self, view: str) -> None:
        """GET one of the signed-in citizen's own views, ``/v1/subjects/{address}/{view}``."""
        if self.headers:
            with self.client.get(
                f"/v1/subjects/{self.address}/{view}",
                headers=self.headers,
                name=f"/v1/subjects/[address]/{view}",
                catch_response=True,
            ) as resp:
                _check(resp, 200)

    @task(_w["pending_requests"])
    def pending_requests(self) -> None:
        self._own_view("consent-requests")

    @task(_w["list_consents"])
    def list_consents(self) -> None:
        self._own_view("consents")

    @task(_w["access_log"])
    def access_log(self) -> None:
        self._own_view("access-log")

    @task(_w["grant"])
    def grant(self) -> None:
        item = RUN.take("grants")
        if item is None:
            return
        with self.client.post(
            "/v1/consents", data=_json(item), headers=JSON, catch_response=True
        ) as resp:
            out = _check(resp, 201)
            if out is not None and out.get("status") not in GRANT_ACCEPTED:
                resp.failure(f"grant status {out.get('status')}")

    @task(_w["withdraw"])
    def withdraw(self) -> None:
        item = RUN.take("withdrawals")
        if item is None:
            return
        path = f"/v1/consents/{item['consent_id']}/withdrawal"
        name = "/v1/consents/[id]/withdrawal"
        with self.client.get(
            path,
            headers={"Authorization": f"Bearer {item['token']}"},
            name=name,
            catch_response=True,
        ) as resp:
            _check(resp, 200)
        body = _json({"signature": item["signature"]})
        with self.client.post(
            path, data=body, headers=JSON, name=name, catch_response=True
        ) as resp:
            out = _check(resp, 200)
            if out is not None and out.get("status") != "withdrawn":
                resp.failure(f"withdrawal status {out.get('status')}")


def _inline_siwe(p: pool_mod.Pool, key_hex: str, nonce: str) -> dict[str, str]:
    """Sign a SIWE message here (only when the pre-signed pool is stale or empty)."""
    signed = pool_mod.signed_siwe(p.base_url, p.chain_id, Account.from_key(key_hex), nonce)
    return {**signed, "nonce_fetched": "1"}


class Gate(Base):
    """An online-validating gate controller: batches of GATE_BATCH scans to
    ``POST /v1/gate/validations`` (issue 5), with codes issued before the run.

    Skipped (the user stops, the reason lands in the extras) when the pool says the
    endpoint answered 404 or the fastpath issuance API is missing.
    """

    weight = class_weights()["Gate"]
    wait_time = constant_throughput(PER_USER_TASKS_PER_S["Gate"])

    def on_start(self) -> None:
        super().on_start()
        assert RUN.pool is not None
        gate = RUN.pool.gate
        if not gate.get("available"):
            if "Gate" not in RUN.skipped:
                log.warning("Gate users skipped: %s", gate.get("reason"))
            RUN.skipped["Gate"] = str(gate.get("reason"))
            raise StopUser()
        g = random.choice(gate["gates"])
        self.gate_id = g["gate_id"]
        self.headers = {**JSON, "Authorization": f"Bearer {g['api_key']}"}

    @task
    def validate_batch(self) -> None:
        assert RUN.pool is not None
        buckets = RUN.pool.gate["codes"]
        k = int((time.time() - RUN.pool.built_at) // pool_mod.CODE_BUCKET_S)
        codes = buckets[min(k, len(buckets) - 1)]
        start = random.randrange(max(1, len(codes) - GATE_BATCH + 1))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        scans = [{"qr": q, "scanned_at": now} for q in codes[start : start + GATE_BATCH]]
        body = _json({"gate_id": self.gate_id, "scans": scans})
        with self.client.post(
            pool_mod.GATE_PATH, data=body, headers=self.headers, catch_response=True
        ) as resp:
            out = _check(resp, 200)
            results = out.get("results") if isinstance(out, dict) else out
            if out is not None and (not isinstance(results, list) or len(results) != len(scans)):
                resp.failure(f"expected {len(scans)} results, got {str(results)[:100]}")


class Registrar(Base):
    """The platform operator: registers a department or looks one up, rarely."""

    fixed_count = 1
    wait_time = constant_throughput(REGISTRAR_TASKS_PER_S)

    def on_start(self) -> None:
        super().on_start()
        assert RUN.pool is not None
        self.headers = {**JSON, "Authorization": f"Bearer {RUN.pool.registrar_token}"}

    @task
    def register(self) -> None:
        address = RUN.take("new_departments")
        if address is None:
            return
        body = {"name": "Registered In Load", "address": address, "purposes": [pool_mod.PURPOSE]}
        with self.client.post(
            "/v1/departments", data=_json(body), headers=self.headers, catch_response=True
        ) as resp:
            _check(resp, 201)

    @task
    def lookup(self) -> None:
        assert RUN.pool is not None
        d = random.choice(RUN.pool.departments)
        with self.client.get(
            f"/v1/departments/{d['department_id']}",
            headers=self.headers,
            name="/v1/departments/[id]",
            catch_response=True,
        ) as resp:
            _check(resp, 200)


class HealthzProbe(Base):
    """Ceiling probe: ``GET /healthz`` back to back (only with ``--probe``)."""

    weight = 1
    wait_time = constant(0)

    @task
    def healthz(self) -> None:
        with self.client.get("/healthz", catch_response=True) as resp:
            _check(resp, 200)


class AccessCheckProbe(Department):
    """Ceiling probe: access checks back to back (only with ``--probe``)."""

    weight = 1
    wait_time = constant(0)
    tasks = [Department.access_check]
