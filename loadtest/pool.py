"""The payload pool, built before the run so the generator spends no CPU on crypto.

:func:`build_pool` talks to the service over HTTP like any client would: it registers
departments, gives a set of citizens consents to check (real grants, one chain
transaction each), creates consent requests and signs their EIP-712 typed data offline
(eth-account), pre-signs SIWE messages on server nonces, prepares signed withdrawals,
and, when the gate endpoint of issue 5 is deployed, registers gates and issues codes.
The result is plain JSON (:class:`Pool` round-trips through :func:`save` / :func:`load`).

Shapes (all strings as the API returns them): see the :class:`Pool` fields.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from eth_account import Account
from eth_account.messages import encode_defunct

from authz import siwe
from authz.client import sign_typed
from loadtest.errors import PoolError
from loadtest.scale import GATE_BATCH, PoolSize

PURPOSE = "service-delivery"
CATEGORIES = ["identity", "income"]
CHECK_CATEGORIES = ["income"]
NOTICE_URL = "https://dept.example/privacy"
GATE_PATH = "/v1/gate/validations"
CODE_BUCKET_S = 30
"""Gate codes live about 60 s; they are issued in buckets of this many seconds of iat."""


@dataclass
class Pool:
    """Everything the user classes consume. Lists are partitioned across workers.

    - ``departments``: ``[{"department_id", "api_key", "address"}]`` (purpose PURPOSE);
    - ``consented``: ``[{"subject", "department"}]`` subjects who granted CATEGORIES to
      ``departments[department]`` (access checks for CHECK_CATEGORIES are allowed);
    - ``strangers``: addresses without consent (checks are denied ``no_consent``);
    - ``citizens``: addresses of the consented citizens (who sign in);
    - ``citizen_keys``: their throwaway private keys (hex), for the inline fallback of a
      sign-in when the pre-signed ones ran out;
    - ``sign_ins``: ``[{"address", "message", "signature"}]`` pre-signed EIP-4361
      messages on unused server nonces (valid 10 minutes from ``built_at``);
    - ``grants``: ``[{"request_id", "signature"}]`` signed, not yet submitted;
    - ``withdrawals``: ``[{"consent_id", "signature", "token", "subject"}]``: a consent
      whose withdrawal typed data was fetched and signed; ``token`` is the subject's
      session for the GET;
    - ``new_departments``: fresh addresses for the Registrar to register;
    - ``gate``: ``{"available", "reason", "gates": [{"gate_id", "api_key"}],
      "codes": [[qr, ...] per CODE_BUCKET_S bucket from built_at]}``.
    """

    base_url: str
    chain_id: int
    built_at: float
    registrar_token: str
    departments: list[dict[str, str]] = field(default_factory=list)
    consented: list[dict[str, Any]] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)
    citizens: list[str] = field(default_factory=list)
    citizen_keys: list[str] = field(default_factory=list)
    sign_ins: list[dict[str, str]] = field(default_factory=list)
    grants: list[dict[str, str]] = field(default_factory=list)
    withdrawals: list[dict[str, str]] = field(default_factory=list)
    new_departments: list[str] = field(default_factory=list)
    gate: dict[str, Any] = field(default_factory=lambda: {"available": False, "reason": ""})


def save(pool: Pool, path: Path) -> None:
    """Write the pool as JSON (orjson)."""
    path.write_bytes(orjson.dumps(asdict(pool)))


def load(path: Path) -> Pool:
    """Read a pool written by :func:`save`; raises :class:`PoolError` when unreadable."""
    try:
        return Pool(**orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError, TypeError) as exc:
        raise PoolError(f"cannot read pool {path}: {exc}", code="pool_unreadable") from exc


def partition(items: list[Any], index: int, count: int) -> list[Any]:
    """Worker ``index`` of ``count``'s share: every count-th item from index (0-based)."""
    return items[index::count] if count > 1 else list(items)


def random_address() -> str:
    """A fresh random 20-byte address (0x hex); nobody holds its key."""
    return "0x" + os.urandom(20).hex()


SIWE_STATEMENT = "Sign in to consentgate to see and manage your consents."


def signed_siwe(base_url: str, chain_id: int, key: Any, nonce: str) -> dict[str, str]:
    """An EIP-4361 sign-in for ``base_url`` (domain = its host:port, URI = its root),
    issued now, signed with EIP-191 ``personal_sign`` by ``key`` (an eth-account local
    account): ``{"address", "message", "signature"}`` (signature 0x hex r||s||v)."""
    base = base_url.rstrip("/")
    message = siwe.build_message(
        domain=urlsplit(base).netloc,
        address=key.address,
        uri=base + "/",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=datetime.now(UTC),
        statement=SIWE_STATEMENT,
    )
    sig = "0x" + key.sign_message(encode_defunct(text=message)).signature.hex()
    return {"address": key.address, "message": message, "signature": sig}


class _Builder:
    def __init__(self, client: httpx.Client, base_url: str, registrar_token: str) -> None:
        self.c = client
        self.base_url = base_url.rstrip("/")
        self.registrar = {"Authorization": f"Bearer {registrar_token}"}

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        resp = self.c.request(method, path, **kw)
        if resp.status_code != expect:
            raise PoolError(
                f"{method} {path} answered {resp.status_code}: {resp.text[:300]}",
                code="pool_setup_failed",
            )
        return resp.json()

    def department(self, name: str) -> dict[str, str]:
        body = {"name": name, "address": random_address(), "purposes": [PURPOSE]}
        d = self.call("POST", "/v1/departments", 201, headers=self.registrar, json=body)
        return {
            "department_id": d["department_id"],
            "api_key": d["api_key"],
            "address": d["address"],
        }

    def request(self, dept: dict[str, str], subject: str) -> dict[str, Any]:
        body = {
            "subject": subject,
            "purpose": PURPOSE,
            "pii_categories": CATEGORIES,
            "sensitive": False,
            "third_parties": [],
            "legal_basis": "consent",
            "jurisdiction": "CN",
            "notice_url": NOTICE_URL,
            "retention_days": 365,
            "valid_until": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
        }
        headers = {"Authorization": f"Bearer {dept['api_key']}"}
        return self.call("POST", "/v1/consent-requests", 201, headers=headers, json=body)

    def grant(self, dept: dict[str, str], key: Any) -> str:
        req = self.request(dept, key.address)
        body = {"request_id": req["request_id"], "signature": sign_typed(key, req["typed_data"])}
        # wait until anchored: access checks allow only consents the chain holds
        out = self.call("POST", "/v1/consents?wait=anchored", 201, json=body)
        if out.get("status") != "anchored":
            raise PoolError(f"setup grant not anchored: {out}", code="pool_setup_failed")
        return str(out["consent_id"])

    def siwe_message(self, key: Any, chain_id: int) -> dict[str, str]:
        nonce = self.call("POST", "/v1/auth/siwe/nonce", 200)["nonce"]
        return signed_siwe(self.base_url, chain_id, key, nonce)

    def session(self, key: Any, chain_id: int) -> str:
        signed = self.siwe_message(key, chain_id)
        body = {"message": signed["message"], "signature": signed["signature"]}
        return str(self.call("POST", "/v1/auth/siwe", 200, json=body)["token"])


def _cert_bytes(value: Any) -> bytes:
    """A device certificate from JSON: hex or base64url text (issue 5 leaves it open)."""
    text = str(value)
    try:
        return bytes.fromhex(text)
    except ValueError:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def gate_pool(
    b: _Builder, keys: list[Any], chain_id: int, codes_needed: int, run_seconds: float
) -> dict[str, Any]:
    """The pool's ``gate`` entry for the issue-5 contract.

    Probes ``POST /v1/gate/validations``: a 404 means issue 5 is not deployed and the
    Gate users are skipped (``available`` False, ``reason`` says why); so does a missing
    fastpath issuance API. Otherwise registers two gates (``POST /v1/gates``), enrolls one
    device per citizen (``POST /v1/devices``) and signs ``SC1:`` codes offline with the
    device keys, their iat spread over the run in CODE_BUCKET_S buckets (codes live ~60 s).
    """
    if b.c.post(GATE_PATH, json={}).status_code == 404:
        return {"available": False, "reason": f"{GATE_PATH} answers 404 (issue 5 not deployed)"}
    try:
        from fastpath.tokens.issue import DeviceKey, sign_sc1
    except ImportError as exc:
        return {"available": False, "reason": f"fastpath token issuance API missing: {exc}"}
    gates = []
    for i in range(2):
        g = b.call(
            "POST",
            "/v1/gates",
            201,
            headers=b.registrar,
            json={"name": f"Load Test Gate {i}", "location": "loadtest"},
        )
        gates.append({"gate_id": g["gate_id"], "api_key": g["api_key"]})
    devices = []
    for key in keys:
        dev = DeviceKey.generate()
        headers = {"Authorization": f"Bearer {b.session(key, chain_id)}"}
        body = {"device_public_key": dev.public.hex()}
        resp = b.c.post("/v1/devices", headers=headers, json=body)
        if resp.status_code not in (200, 201):
            return {"available": False, "reason": f"POST /v1/devices answered {resp.status_code}"}
        devices.append((dev, _cert_bytes(resp.json()["device_certificate"])))
    buckets = int(run_seconds // CODE_BUCKET_S) + 1
    per_bucket = max(GATE_BATCH, codes_needed // buckets)
    now = int(time.time())
    codes = [
        [
            sign_sc1(*devices[i % len(devices)], iat=now + k * CODE_BUCKET_S)
            for i in range(per_bucket)
        ]
        for k in range(buckets)
    ]
    return {"available": True, "reason": "", "gates": gates, "codes": codes}


def build_pool(
    base_url: str,
    registrar_token: str,
    size: PoolSize,
    *,
    citizens: int = 6,
    departments: int = 2,
    strangers: int = 50,
    run_seconds: float = 60.0,
    timeout: float = 60.0,
) -> Pool:
    """Build a pool against the service at ``base_url``.

    Costs ``citizens x departments + size.withdrawals`` chain transactions (grants) plus
    ``departments``; everything else is index writes and offline signatures. Raises
    :class:`PoolError` ``pool_setup_failed`` when the service refuses a setup call.
    ``run_seconds`` spreads the gate codes' iat over the run (see :func:`gate_pool`).
    """
    with httpx.Client(base_url=base_url, timeout=timeout) as c:
        b = _Builder(c, base_url, registrar_token)
        chain_id = int(b.call("GET", "/healthz", 200)["chain"]["chain_id"])
        pool = Pool(base_url.rstrip("/"), chain_id, time.time(), registrar_token)
        pool.departments = [b.department(f"Load Test Department {i}") for i in range(departments)]
        keys = [Account.create() for _ in range(citizens)]
        pool.citizens = [k.address for k in keys]
        pool.citizen_keys = ["0x" + k.key.hex() for k in keys]
        for key in keys:
            for j, dept in enumerate(pool.departments):
                b.grant(dept, key)
                pool.consented.append({"subject": key.address, "department": j})
        pool.strangers = [random_address() for _ in range(strangers)]
        for i in range(size.grants):
            key = keys[i % len(keys)]
            req = b.request(pool.departments[i % departments], key.address)
            pool.grants.append(
                {"request_id": req["request_id"], "signature": sign_typed(key, req["typed_data"])}
            )
        sessions: dict[str, str] = {}
        for i in range(size.withdrawals):
            key = keys[i % len(keys)]
            consent_id = b.grant(pool.departments[i % departments], key)
            token = sessions.get(key.address) or b.session(key, chain_id)
            sessions[key.address] = token
            headers = {"Authorization": f"Bearer {token}"}
            td = b.call("GET", f"/v1/consents/{consent_id}/withdrawal", 200, headers=headers)
            pool.withdrawals.append(
                {
                    "consent_id": consent_id,
                    "signature": sign_typed(key, td["typed_data"]),
                    "token": token,
                    "subject": key.address,
                }
            )
        pool.sign_ins = [
            b.siwe_message(keys[i % len(keys)], chain_id) for i in range(size.sign_ins)
        ]
        pool.new_departments = [random_address() for _ in range(size.departments)]
        pool.gate = gate_pool(b, keys, chain_id, size.gate_codes, run_seconds)
    return pool
