"""A real-HTTP walkthrough of the consent flow, used by ``consentgate demo``.

A department is registered, asks a fresh citizen key for consent, the citizen signs the
EIP-712 typed data (eth-account), the grant is anchored, an access check is allowed, the
citizen signs in with SIWE and withdraws, and the next check is denied.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

from authz import siwe


def sign_typed(key: Any, typed_data: dict[str, Any]) -> str:
    """Sign ``eth_signTypedData_v4`` JSON with eth-account; returns 0x hex r||s||v."""
    return "0x" + Account.sign_typed_data(key.key, full_message=typed_data).signature.hex()


def siwe_sign_in(client: httpx.Client, base_url: str, key: Any, chain_id: int) -> str:
    """Sign in as ``key`` with EIP-4361; returns the bearer session token."""
    nonce = client.post("/v1/auth/siwe/nonce").raise_for_status().json()["nonce"]
    message = siwe.build_message(
        domain=urlsplit(base_url).netloc,
        address=key.address,
        uri=base_url.rstrip("/") + "/",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=datetime.now(UTC),
        statement="Sign in to consentgate to see and manage your consents.",
    )
    sig = key.sign_message(encode_defunct(text=message)).signature.hex()
    resp = client.post("/v1/auth/siwe", json={"message": message, "signature": "0x" + sig})
    return str(resp.raise_for_status().json()["token"])


def run_demo(base_url: str, registrar_token: str, echo: Callable[[str], Any] = print) -> bool:
    """Run the walkthrough; returns True when every step behaved as expected."""
    with httpx.Client(base_url=base_url, timeout=60) as c:
        health = c.get("/healthz").raise_for_status().json()
        chain_id = health["chain"]["chain_id"]
        echo(f"chain: {health['chain']}")
        dept_key, citizen = Account.create(), Account.create()
        dept = (
            c.post(
                "/v1/departments",
                headers={"Authorization": f"Bearer {registrar_token}"},
                json={
                    "name": "Demo City Bank",
                    "address": dept_key.address,
                    "purposes": ["loan-underwriting"],
                },
            )
            .raise_for_status()
            .json()
        )
        echo(f"department registered: {dept['department_id']} tx {dept['tx_hash']}")
        dh = {"Authorization": f"Bearer {dept['api_key']}"}
        req = (
            c.post(
                "/v1/consent-requests",
                headers=dh,
                json={
                    "subject": citizen.address,
                    "purpose": "loan-underwriting",
                    "pii_categories": ["identity", "income"],
                    "sensitive": False,
                    "third_parties": [],
                    "legal_basis": "consent",
                    "jurisdiction": "CN",
                    "notice_url": "https://bank.example/privacy",
                    "retention_days": 1095,
                    "valid_until": (datetime.now(UTC) + timedelta(days=365)).isoformat(),
                },
            )
            .raise_for_status()
            .json()
        )
        echo(f"consent requested: {req['request_id']}")
        grant = (
            c.post(
                "/v1/consents",
                json={
                    "request_id": req["request_id"],
                    "signature": sign_typed(citizen, req["typed_data"]),
                },
            )
            .raise_for_status()
            .json()
        )
        echo(
            f"granted: consent {grant['consent_id']} tx {grant['tx_hash']} "
            f"block {grant['block_number']}"
        )
        check = {
            "subject": citizen.address,
            "purpose": "loan-underwriting",
            "pii_categories": ["income"],
        }
        first = c.post("/v1/access-checks", headers=dh, json=check).raise_for_status().json()
        echo(f"access check: allowed={first['allowed']} reason={first['reason']}")
        token = siwe_sign_in(c, base_url, citizen, chain_id)
        ch = {"Authorization": f"Bearer {token}"}
        wtd = (
            c.get(f"/v1/consents/{grant['consent_id']}/withdrawal", headers=ch)
            .raise_for_status()
            .json()
        )
        withdrawn = (
            c.post(
                f"/v1/consents/{grant['consent_id']}/withdrawal",
                json={"signature": sign_typed(citizen, wtd["typed_data"])},
            )
            .raise_for_status()
            .json()
        )
        echo(
            f"withdrawn: status={withdrawn['status']} tx {withdrawn['tx_hash']} "
            f"block {withdrawn['block_number']}"
        )
        second = c.post("/v1/access-checks", headers=dh, json=check).raise_for_status().json()
        echo(f"access check: allowed={second['allowed']} reason={second['reason']}")
        log = (
            c.get(f"/v1/subjects/{citizen.address}/access-log", headers=ch)
            .raise_for_status()
            .json()
        )
        echo("access log (newest first):")
        for e in log["entries"]:
            echo(
                f"  {e['at']} {e['department_name']} {e['purpose']} {e['pii_categories']} "
                f"allowed={e['allowed']} ({e['reason']})"
            )
        record = c.get(f"/v1/consents/{grant['consent_id']}", headers=ch).raise_for_status().json()
        echo("chain receipts:")
        for ev in record["events"]:
            echo(f"  {ev['event']}: tx {ev['tx_hash']} block {ev['block_number']}")
        ok = first["allowed"] and withdrawn["status"] == "withdrawn" and not second["allowed"]
        echo("allowed -> withdrawn -> denied: " + ("OK" if ok else "UNEXPECTED"))
        return bool(ok)
