"""Throughput measurements of the running service, printed as JSON (``consentgate bench``)."""

from __future__ import annotations

import time
from typing import Any

from eth_account import Account

from authz.client import Client, request_body, sign_typed


def grants_sequential(base_url: str, registrar_token: str, count: int) -> dict[str, Any]:
    """Post ``count`` signed grants one at a time over HTTP and time them.

    Requests are created and signed before the clock starts, so the figure is the cost
    of ``POST /v1/consents`` alone (verify + one chain transaction + index projection).
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
            api.http.post("/v1/consents", json=body).raise_for_status()
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
