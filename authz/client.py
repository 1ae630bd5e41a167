"""A small HTTP client of API v1 for scripts, the demo, benches and tests.

It speaks only the public API (what a third-party client would), signing typed data and
SIWE messages locally with eth-account keys. Every method raises
:class:`httpx.HTTPStatusError` on an error response (its body is RFC 9457 problem
details).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from authz import siwe


def sign_typed(key: LocalAccount, typed_data: dict[str, Any]) -> str:
    """Sign ``eth_signTypedData_v4`` JSON with eth-account; returns 0x hex ``r||s||v``."""
    return "0x" + Account.sign_typed_data(key.key, full_message=typed_data).signature.hex()


def request_body(subject: str, purpose: str, categories: list[str], **overrides: Any) -> dict:
    """A ``POST /v1/consent-requests`` body with sensible defaults (30-day validity)."""
    body: dict[str, Any] = {
        "subject": subject,
        "purpose": purpose,
        "pii_categories": categories,
        "sensitive": False,
        "third_parties": [],
        "legal_basis": "consent",
        "jurisdiction": "CN",
        "notice_url": "https://department.example/privacy",
        "retention_days": 1095,
        "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
    }
    body.update(overrides)
    return body


class Client:
    """API v1 over one :class:`httpx.Client`; ``http`` is reachable for anything else."""

    def __init__(self, base_url: str, timeout: float = 60, http: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http if http is not None else httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, resp: httpx.Response) -> Any:
        return resp.raise_for_status().json()

    def health(self) -> dict[str, Any]:
        """``GET /healthz``."""
        return dict(self._json(self.http.get("/healthz")))

    def register_department(
        self, registrar_token: str, name: str, address: str, purposes: list[str]
    ) -> dict[str, Any]:
        """``POST /v1/departments``; the result gains ``headers`` for the department's calls."""
        dept = dict(
            self._json(
                self.http.post(
                    "/v1/departments",
                    headers={"Authorization": f"Bearer {registrar_token}"},
                    json={"name": name, "address": address, "purposes": purposes},
                )
            )
        )
        dept["headers"] = {"Authorization": f"Bearer {dept['api_key']}"}
        return dept

    def request_consent(self, dept: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/consent-requests`` as ``dept``."""
        return dict(
            self._json(self.http.post("/v1/consent-requests", headers=dept["headers"], json=body))
        )

    def grant(
        self, request: dict[str, Any], key: LocalAccount, wait: str | None = "anchored"
    ) -> dict[str, Any]:
        """Sign the request's typed data with ``key`` and ``POST /v1/consents``
        (``?wait=anchored`` unless ``wait`` is None)."""
        body = {
            "request_id": request["request_id"],
            "signature": sign_typed(key, request["typed_data"]),
        }
        params = {"wait": wait} if wait else {}
        return dict(self._json(self.http.post("/v1/consents", params=params, json=body)))

    def check(
        self, dept: dict[str, Any], subject: str, purpose: str, categories: list[str]
    ) -> dict[str, Any]:
        """``POST /v1/access-checks`` as ``dept``."""
        return dict(
            self._json(
                self.http.post(
                    "/v1/access-checks",
                    headers=dept["headers"],
                    json={"subject": subject, "purpose": purpose, "pii_categories": categories},
                )
            )
        )

    def sign_in(self, key: LocalAccount, chain_id: int) -> dict[str, str]:
        """Sign in with EIP-4361 as ``key``; returns the bearer headers of the session."""
        nonce = self._json(self.http.post("/v1/auth/siwe/nonce"))["nonce"]
        message = siwe.build_message(
            domain=urlsplit(self.base_url).netloc,
            address=key.address,
            uri=self.base_url + "/",
            chain_id=chain_id,
            nonce=nonce,
            issued_at=datetime.now(UTC),
            statement="Sign in to consentgate to see and manage your consents.",
        )
        sig = "0x" + key.sign_message(encode_defunct(text=message)).signature.hex()
        token = self._json(
            self.http.post("/v1/auth/siwe", json={"message": message, "signature": sig})
        )["token"]
        return {"Authorization": f"Bearer {token}"}

    def withdraw(
        self,
        consent_id: str,
        key: LocalAccount,
        session: dict[str, str],
        wait: str | None = "anchored",
    ) -> dict[str, Any]:
        """Fetch the Withdrawal typed data (as ``session``), sign it with ``key``, post it
        (``?wait=anchored`` unless ``wait`` is None)."""
        path = f"/v1/consents/{consent_id}/withdrawal"
        wtd = self._json(self.http.get(path, headers=session))
        params = {"wait": wait} if wait else {}
        body = {"signature": sign_typed(key, wtd["typed_data"])}
        return dict(self._json(self.http.post(path, params=params, json=body)))

    def access_log(self, subject: str, session: dict[str, str]) -> list[dict[str, Any]]:
        """``GET /v1/subjects/{subject}/access-log`` entries, newest first."""
        return list(
            self._json(self.http.get(f"/v1/subjects/{subject}/access-log", headers=session))[
                "entries"
            ]
        )

    def consent(self, consent_id: str, headers: dict[str, str]) -> dict[str, Any]:
        """``GET /v1/consents/{consent_id}``."""
        return dict(self._json(self.http.get(f"/v1/consents/{consent_id}", headers=headers)))
