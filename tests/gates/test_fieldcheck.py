"""The gate's own claims reader agrees with the fast path's on every kind of SC1 result,
for both implementations."""

from __future__ import annotations

import time

import orjson
import pytest

from authz.fieldcheck import SKEW_S, advice, claims_batch, result_dict, result_dicts, sc1_claims
from fastpath.tokens import StatusList, TrustList, implementations
from fastpath.tokens.issue import DeviceKey, IssuerKey, issue_device_cert, sign_sc1


@pytest.mark.parametrize("name", sorted(implementations()))
def test_sc1_claims_equal_the_fast_paths(name: str) -> None:
    issuer, device = IssuerKey.generate(), DeviceKey.generate()
    now = int(time.time())
    status = StatusList(64)
    status.set(9)
    gate = implementations()[name].Verifier(
        TrustList([issuer.trust_key()]), profile="sc1", skew=SKEW_S, status=status
    )
    good = issue_device_cert(
        issuer, device.public, b"\x01" * 32, 3, iat=now, exp=now + 600, nbf=now
    )
    lost = issue_device_cert(issuer, device.public, b"\x02" * 32, 9, iat=now - 0.5, exp=now + 600)
    code = sign_sc1(device, good, iat=now)
    codes = [
        code,
        code,
        sign_sc1(device, lost, iat=now),
        sign_sc1(device, good, iat=now - 200),
        "SC1:xx",
    ]
    results = gate.verify_batch(codes, now)
    assert [r.reason for r in results] == ["ok", "replayed", "revoked", "expired", "base45_char"]
    for r in results:
        assert sc1_claims(r) == r.claims
        assert list(sc1_claims(r)) == list(r.claims)  # same JSON text: same key order
    assert sc1_claims(results[1]) is not sc1_claims(results[0])  # no shared dict
    assert sc1_claims(results[0])["status_index"] == 3
    assert advice(results[3], now) is not None and "200 s ago" in advice(results[3], now)
    assert advice(results[0], now) is None
    # a batch decodes in one call, with the same answer as one result at a time
    batch = claims_batch(results)
    assert [orjson.dumps(c) for c in batch] == [orjson.dumps(r.claims) for r in results]
    assert batch[-1] == {} and batch[0] is not batch[1]
    shaped = result_dicts(results, [now] * len(results))
    assert [orjson.dumps(d) for d in shaped] == [orjson.dumps(result_dict(r, now)) for r in results]
    assert "advice" in shaped[3] and "advice" not in shaped[0]
    assert result_dicts(results, now) == shaped
