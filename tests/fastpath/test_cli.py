"""``consentgate token verify`` and ``bench`` through Typer's runner."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastpath.cli import app
from fastpath.tokens.issue import HC1Signer

from .helpers import T0, Card, hc1_token

runner = CliRunner()


def _trust_file(tmp_path: Path, card: Card) -> Path:
    raw = bytes(card.issuer.private.verify_key)
    spec = {"kid": card.issuer.kid.hex(), "public_key": base64.b64encode(raw).decode()}
    path = tmp_path / "trust.json"
    path.write_text(json.dumps({"trust_keys": [spec]}))
    return path


def _lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_verify_sc1_codes(tmp_path: Path) -> None:
    card = Card()
    trust = _trust_file(tmp_path, card)
    args = ["verify", "--trust", str(trust), "--at", "2027-01-15T16:00:10+08:00"]
    ok = runner.invoke(app, [*args, card.code(), card.code()])
    assert ok.exit_code == 0, ok.output
    lines = _lines(ok.stdout)
    assert [line["valid"] for line in lines] == [True, True]
    assert lines[0]["kid"] == card.issuer.kid.hex()
    assert set(lines[0]) == {"valid", "stage", "reason", "kid", "claims"}
    bad = runner.invoke(app, [*args, card.code(), "SC1:GGW"])
    assert bad.exit_code == 1
    assert _lines(bad.stdout)[1] == {
        "valid": False,
        "stage": "base45",
        "reason": "base45_overflow",
        "kid": None,
        "claims": {},
    }
    late = runner.invoke(
        app, ["verify", "--trust", str(trust), "--at", "2027-01-15T09:00:00Z", card.code()]
    )
    assert late.exit_code == 1
    assert _lines(late.stdout)[0]["reason"] == "expired"


def test_verify_jsonl(tmp_path: Path) -> None:
    signer = HC1Signer.generate("ES256")
    cert = base64.b64encode(signer.cert_der).decode()
    qr = hc1_token(signer)
    requests = [
        {"qr": qr, "profile": "dcc", "trust_certs": [cert], "at": "2027-01-15T08:00:00Z"},
        {"qr": qr, "profile": "dcc", "trust_certs": [cert]},
        {"qr": qr, "profile": "dcc", "trust_certs": []},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in requests) + "\n")
    result = runner.invoke(app, ["verify", "--jsonl", str(path)])
    assert result.exit_code == 1
    lines = _lines(result.stdout)
    assert [(x["valid"], x["stage"], x["reason"]) for x in lines] == [
        (True, "ok", "ok"),
        (True, "ok", "ok"),
        (False, "kid", "kid_unknown"),
    ]
    assert lines[0]["kid"] == signer.kid.hex()
    assert lines[0]["claims"]["4"] == T0 + 3600
    path.write_text(json.dumps(requests[0]) + "\n")
    assert runner.invoke(app, ["verify", "--jsonl", str(path)]).exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["verify"],
        ["verify", "--profile", "xyz", "SC1:"],
        ["verify", "--at", "yesterday", "SC1:"],
        ["verify", "--trust", "/nonexistent.json", "SC1:"],
        ["verify", "--jsonl", "/nonexistent.jsonl"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2


def test_bad_jsonl_line_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"qr": 5}\n')
    assert runner.invoke(app, ["verify", "--jsonl", str(path)]).exit_code == 2
    path.write_text("not json\n")
    assert runner.invoke(app, ["verify", "--jsonl", str(path)]).exit_code == 2
    path.write_text('{"qr": "HC1:", "trust_certs": ["%%%"]}\n')
    assert runner.invoke(app, ["verify", "--jsonl", str(path)]).exit_code == 2


def test_bench_json_keys() -> None:
    result = runner.invoke(app, ["bench", "--json", "--count", "50", "--repeat", "1"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    for key in (
        "sc1_fast_per_s",
        "sc1_fast_2threads_per_s",
        "sc1_reference_per_s",
        "ed25519_raw_per_s",
        "hc1_fast_per_s",
        "hc1_cwt_per_s",
        "p256_raw_per_s",
        "sc1_vs_raw",
        "threads2_vs_1",
        "hc1_vs_cwt",
        "hc1_vs_raw",
    ):
        assert figures[key] > 0, key


def test_mounted_under_consentgate_token() -> None:
    from authz.cli import app as root

    result = runner.invoke(root, ["token", "verify", "--profile", "dcc", "HC1:GGW"])
    assert result.exit_code == 1
    assert _lines(result.stdout)[0]["reason"] == "base45_overflow"


def test_trust_certs_accept_wrapped_base64_and_pem() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from fastpath.errors import TrustListError
    from fastpath.tokens.trust import TrustList

    signer = HC1Signer.generate("ES256")
    b64 = base64.b64encode(signer.cert_der).decode()
    wrapped = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    pem = (
        x509.load_der_x509_certificate(signer.cert_der)
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    for text in (b64, wrapped, pem):
        assert TrustList.from_json({"trust_certs": [text]}).keys[0].kid == signer.kid
    for bad in ("%%%", 5, "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----"):
        with pytest.raises(TrustListError):
            TrustList.from_json({"trust_certs": [bad]})
