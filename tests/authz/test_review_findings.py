"""Regression tests for what an adversarial review of the service found."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from eth_account import Account

from authz.ledger import text_hash
from tests.authz.conftest import Env


def test_department_on_chain_but_missing_from_index_is_adopted(env: Env) -> None:
    """A crash between the registration transaction and the index write must not leave
    an address that can never be registered again."""
    address = Account.create().address
    env.svc.ledger.send("registerDepartment", address, [text_hash("billing")])
    resp = env.client.post(
        "/v1/departments",
        headers=env.registrar,
        json={"name": "Water Utility", "address": address, "purposes": ["billing", "metering"]},
    )
    assert resp.status_code == 201, resp.text
    assert (
        env.svc.ledger.call(
            "isPurposeRegistered", address, bytes.fromhex(text_hash("metering")[2:])
        )
        is True
    )
    again = env.client.post(
        "/v1/departments",
        headers=env.registrar,
        json={"name": "Water Utility", "address": address, "purposes": ["billing"]},
    )
    assert again.status_code == 409 and again.json()["code"] == "department_exists"


def test_api_key_rotation(env: Env) -> None:
    dept = env.department()
    resp = env.client.post(
        f"/v1/departments/{dept['department_id']}/api-key", headers=env.registrar
    )
    assert resp.status_code == 200
    new = {"Authorization": f"Bearer {resp.json()['api_key']}"}
    body = {
        "subject": Account.create().address,
        "purpose": "loan-underwriting",
        "pii_categories": ["income"],
    }
    assert (
        env.client.post("/v1/access-checks", headers=dept["headers"], json=body).json()["code"]
        == "invalid_api_key"
    )
    assert env.client.post("/v1/access-checks", headers=new, json=body).status_code == 200


def test_out_of_range_and_loose_inputs_refused_before_any_change(env: Env) -> None:
    ward, guardian = Account.create(), Account.create()
    far = env.client.post(
        "/v1/guardianships",
        headers=env.registrar,
        json={
            "ward": ward.address,
            "guardian": guardian.address,
            "until": "9999-12-31T23:59:59-23:59",
        },
    )
    assert far.status_code == 422 and far.json()["code"] == "validation_error"
    assert env.svc.ledger.call("guardianOf", ward.address)[1] == 0
    dept = env.department()
    base = {
        "subject": Account.create().address,
        "purpose": "loan-underwriting",
        "pii_categories": ["income"],
        "notice_url": "https://x.example/n",
        "retention_days": 1,
    }
    cases = [
        {**base, "valid_until": int(datetime.now(UTC).timestamp()) + 3600},
        {**base, "valid_until": "2031-01-01T00:00:00"},
        {**base, "valid_until": "2031-01-01T00:00:00Z", "third_parties": ["Zhang\x00San"]},
        {**base, "valid_until": "2031-01-01T00:00:00Z", "third_parties": ["evil\u202eexe"]},
    ]
    for body in cases:
        resp = env.client.post("/v1/consent-requests", headers=dept["headers"], json=body)
        assert resp.status_code == 422, body
    zero = env.client.post(
        "/v1/consent-requests",
        headers=dept["headers"],
        json={**base, "subject": "0x" + "00" * 20, "valid_until": "2031-01-01T00:00:00Z"},
    )
    assert zero.status_code == 400 and zero.json()["code"] == "invalid_address"
    name = env.client.post(
        "/v1/departments",
        headers=env.registrar,
        json={"name": "Bank\x07", "address": Account.create().address, "purposes": ["p"]},
    )
    assert name.status_code == 422


def test_upper_case_0x_prefix_and_sensitive_words(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    req = env.request(dept, citizen.address, pii_categories=["health"])
    assert req["typed_data"]["message"]["sensitive"] is True
    assert req["typed_data"]["message"]["separateConsent"] is True
    from authz.client import sign_typed

    sig = "0X" + sign_typed(citizen, req["typed_data"])[2:]
    resp = env.client.post(
        "/v1/consents?wait=anchored", json={"request_id": req["request_id"], "signature": sig}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["anchor"] == "anchored"


def test_withdrawal_offers_are_reused(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    req = env.request(dept, citizen.address)
    assert env.grant(req, citizen).status_code == 201
    session = env.sign_in(citizen)
    path = f"/v1/consents/{req['consent_id']}/withdrawal"
    first = env.client.get(path, headers=session).json()["typed_data"]["message"]
    second = env.client.get(path, headers=session).json()["typed_data"]["message"]
    assert first == second


def test_data_folder_is_private(env: Env) -> None:
    data_dir = env.svc.settings.data_dir
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "index.sqlite3").stat().st_mode) == 0o600


def test_openapi_documents_problem_details(env: Env) -> None:
    doc = env.client.get("/openapi.json").json()
    grant = doc["paths"]["/v1/consents"]["post"]["responses"]
    for status in ("400", "404", "409", "422"):
        assert list(grant[status]["content"]) == ["application/problem+json"]
        assert grant[status]["content"]["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
    assert {"type", "title", "status", "detail", "code"} <= set(
        doc["components"]["schemas"]["Problem"]["properties"]
    )
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_valid_until_far_ahead_refused(env: Env) -> None:
    dept = env.department()
    resp = env.client.post(
        "/v1/consent-requests",
        headers=dept["headers"],
        json={
            "subject": Account.create().address,
            "purpose": "loan-underwriting",
            "pii_categories": ["income"],
            "notice_url": "https://x.example/n",
            "retention_days": 1,
            "valid_until": (datetime.now(UTC) + timedelta(days=365 * 60)).isoformat(),
        },
    )
    assert resp.status_code == 400 and resp.json()["code"] == "invalid_validity"


def test_citizen_sees_open_requests_and_department_learns_of_withdrawals(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    first, second = env.request(dept, citizen.address), env.request(dept, citizen.address)
    session = env.sign_in(citizen)
    listed = env.client.get(
        f"/v1/subjects/{citizen.address}/consent-requests", headers=session
    ).json()["requests"]
    assert {r["request_id"] for r in listed} == {first["request_id"], second["request_id"]}
    assert env.grant(first, citizen).status_code == 201
    listed = env.client.get(
        f"/v1/subjects/{citizen.address}/consent-requests", headers=session
    ).json()["requests"]
    assert [r["request_id"] for r in listed] == [second["request_id"]]
    feed = env.client.get("/v1/department/withdrawals", headers=dept["headers"]).json()
    start = feed["next"]
    assert feed["withdrawals"] == []
    env.withdraw(first["consent_id"], citizen)
    feed = env.client.get(
        f"/v1/department/withdrawals?after={start}", headers=dept["headers"]
    ).json()
    assert [w["consent_id"] for w in feed["withdrawals"]] == [first["consent_id"]]
    other = env.department()
    assert (
        env.client.get("/v1/department/withdrawals", headers=other["headers"]).json()["withdrawals"]
        == []
    )


def test_serve_with_a_bad_database_url_refuses_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown dialect or an unreachable server in CONSENTGATE_DATABASE_URL: one line,
    exit 2, not a traceback from SQLAlchemy."""
    from typer.testing import CliRunner

    from authz.cli import app
    from authz.localserver import free_port
    from authz.settings import get_settings

    monkeypatch.setenv("CONSENTGATE_DATA_DIR", str(tmp_path))
    for url, says in (
        ("garbage://x", "Can't load plugin: sqlalchemy.dialects:garbage"),
        (f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nodb", "Connection refused"),
    ):
        monkeypatch.setenv("CONSENTGATE_DATABASE_URL", url)
        get_settings.cache_clear()
        try:
            out = CliRunner().invoke(app, ["serve"])
        finally:
            get_settings.cache_clear()
        assert out.exit_code == 2, out.output
        assert out.output.startswith("consentgate: cannot open the index database: "), out.output
        assert says in out.output and out.output.count("\n") == 1, out.output
