"""Issue 5 targets, measured as ratios in one run (``python -m authz.gate_bench``).

- ``POST /v1/gate/validations`` over real HTTP (uvicorn on 127.0.0.1, batches of 100)
  against the in-process fast path on the same kind of codes: target >= 0.5.
- ``consentgate gate run --offline`` reading codes from stdin (a subprocess; its
  interpreter start is included) against the in-process fast path: target >= 0.8.

Codes are fresh (distinct cti) for each measurement, so replay never refuses them.
Prints one JSON object: scans per second of each path and the two ratios.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx


def measure(n: int = 20_000, batch: int = 100) -> dict[str, Any]:
    """Run the three measurements on ``n`` codes each; returns the figures."""
    import uvicorn
    from eth_account import Account

    from authz import devices, gates
    from authz.api.app import create_app
    from authz.gate_agent import GateAgent
    from authz.services import open_services
    from authz.settings import Settings
    from fastpath.tokens import IMPLEMENTATION, Verifier
    from fastpath.tokens.issue import DeviceKey, sign_sc1

    tmp = Path(tempfile.mkdtemp(prefix="gatebench"))
    svc = open_services(Settings(data_dir=tmp / "svc", port=0))
    phones = []
    for _ in range(20):
        device = DeviceKey.generate()
        e = devices.enroll_device(svc, Account.create().address, device.public.hex())
        import base64

        cert = base64.urlsafe_b64decode(
            e.device_certificate + "=" * (-len(e.device_certificate) % 4)
        )
        phones.append((device, cert))

    def codes() -> list[str]:
        now = int(time.time())
        return [sign_sc1(*phones[i % len(phones)], iat=now) for i in range(n)]

    gate, api_key = gates.register_gate(svc, "bench", "bench")
    doc = devices.trust_document(svc)
    status = devices.status_document(svc, devices.status_list(svc))
    from authz.fieldcheck import SKEW_S, status_from_doc, trust_list

    # in-process fast path
    qrs = codes()
    verifier = Verifier(trust_list(doc), profile="sc1", skew=SKEW_S, status=status_from_doc(status))
    start = time.perf_counter()
    for i in range(0, n, batch):
        assert all(r.valid for r in verifier.verify_batch(qrs[i : i + batch], time.time()))
    fast = n / (time.perf_counter() - start)

    # HTTP
    config = uvicorn.Config(create_app(services=svc), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    qrs = codes()
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {api_key}"}) as client:
        start = time.perf_counter()
        for i in range(0, n, batch):
            at = time.time()
            body = {
                "gate_id": gate.gate_id,
                "scans": [{"qr": q, "scanned_at": at} for q in qrs[i : i + batch]],
            }
            resp = client.post(url + "/v1/gate/validations", json=body)
            assert resp.status_code == 200 and all(r["valid"] for r in resp.json()["results"])
        http = n / (time.perf_counter() - start)

    # offline agent from stdin
    state = tmp / "gate"
    GateAgent(url, gate.gate_id, api_key, state).sync()
    server.should_exit = True
    thread.join(10)
    qrs = codes()
    data = ("\n".join(qrs) + "\n").encode()
    cmd = [
        sys.executable,
        "-m",
        "authz.cli",
        "gate",
        "run",
        "--offline",
        "--no-upload",
        "--state",
        str(state),
    ]
    start = time.perf_counter()
    out = subprocess.run(cmd, input=data, capture_output=True, check=True).stdout
    agent = n / (time.perf_counter() - start)
    valid = sum(1 for line in out.splitlines() if line.startswith(b'{"valid":true'))
    svc.close()
    return {
        "implementation": IMPLEMENTATION,
        "codes": n,
        "batch": batch,
        "fast_path_scans_per_s": round(fast),
        "http_scans_per_s": round(http),
        "agent_stdin_scans_per_s": round(agent),
        "agent_valid": valid,
        "http_ratio": round(http / fast, 3),
        "agent_ratio": round(agent / fast, 3),
    }


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)))
