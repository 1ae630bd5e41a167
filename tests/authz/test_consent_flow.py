"""The consent ledger end to end through the HTTP API on the embedded chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak
from sqlalchemy import func, select

from authz import typed_data
from authz.client import sign_typed
from authz.ledger import grant_args
from authz.models import AccessRecord, Consent
from tests.authz.conftest import Env, projection_snapshot, worker_paused


def test_grant_check_withdraw_check(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    req = env.request(dept, citizen.address)
    assert req["typed_data"]["primaryType"] == "Grant"
    assert req["typed_data"]["domain"]["verifyingContract"] == env.svc.ledger.address
    resp = env.grant(req, citizen)
    assert resp.status_code == 201, resp.text
    grant = resp.json()
    assert grant["consent_id"] == req["consent_id"]
    assert (grant["status"], grant["anchor"]) == ("anchored", "anchored")
    receipt = env.svc.chain.w3.eth.get_transaction_receipt(grant["tx_hash"])
    assert receipt["blockNumber"] == grant["block_number"] and receipt["status"] == 1

    allowed = env.check(dept, citizen.address)
    assert allowed["allowed"] is True
    assert allowed["reason"] == "consent_valid"
    assert allowed["consent_id"] == grant["consent_id"]
    assert allowed["anchor"]["tx_hash"] == grant["tx_hash"]

    withdrawn = env.withdraw(grant["consent_id"], citizen)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    denied = env.check(dept, citizen.address)
    assert denied["allowed"] is False
    assert denied["reason"] == "consent_withdrawn"

    headers = env.sign_in(citizen)
    record = env.client.get(f"/v1/consents/{grant['consent_id']}", headers=headers).json()
    assert record["consent_status"] == "withdrawn"
    assert [e["event"] for e in record["events"]] == ["given", "withdrawn"]
    assert record["events"][0]["tx_hash"] == grant["tx_hash"]
    assert record["pii_principal_id"] == citizen.address
    assert record["pii_categories"] == ["identity", "income"]
    log = env.client.get(f"/v1/subjects/{citizen.address}/access-log", headers=headers).json()
    assert [e["allowed"] for e in log["entries"]] == [False, True]
    assert log["entries"][0]["department_name"] == "Test Bank"


def test_duplicate_grant_is_409_and_first_unchanged(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    req = env.request(dept, citizen.address)
    first = env.grant(req, citizen)
    assert first.status_code == 201
    again = env.grant(req, citizen)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["code"] == "duplicate_grant"
    with env.svc.db.sessions() as s:
        row = s.get(Consent, req["consent_id"])
        assert row is not None and row.granted_tx == first.json()["tx_hash"]
        assert not row.withdrawn


def _resigned(sig: str, transform: str) -> str:
    raw = bytes.fromhex(sig[2:])
    r, s, v = raw[:32], int.from_bytes(raw[32:64], "big"), raw[64]
    if transform == "high_s":
        s = typed_data.SECP256K1_N - s
        v = 55 - v  # 27 <-> 28 keeps the same public key
        return "0x" + (r + s.to_bytes(32, "big") + bytes([v])).hex()
    if transform == "v01":
        return "0x" + (raw[:64] + bytes([v - 27])).hex()
    if transform == "short":
        return "0x" + raw[:64].hex()
    raise AssertionError(transform)


def test_signature_rules(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    req = env.request(dept, citizen.address)
    good = sign_typed(citizen, req["typed_data"])
    cases = {"high_s": "signature_high_s", "v01": "signature_bad_v", "short": "signature_malformed"}
    for transform, code in cases.items():
        resp = env.client.post(
            "/v1/consents",
            json={"request_id": req["request_id"], "signature": _resigned(good, transform)},
        )
        assert resp.status_code == 400, (transform, resp.text)
        assert resp.json()["code"] == code
    # another chain id, another contract, another signer: recovers someone else
    for field, value in (("chainId", 1), ("verifyingContract", "0x" + "11" * 20)):
        td = {**req["typed_data"], "domain": {**req["typed_data"]["domain"], field: value}}
        resp = env.client.post(
            "/v1/consents",
            json={"request_id": req["request_id"], "signature": sign_typed(citizen, td)},
        )
        assert resp.status_code == 400 and resp.json()["code"] == "wrong_signer", field
    resp = env.grant(req, Account.create())
    assert resp.status_code == 400 and resp.json()["code"] == "wrong_signer"
    # none of the refusals consumed the request: the right signature still works
    assert env.grant(req, citizen).status_code == 201


def test_past_deadline_refused(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    req = env.request(dept, citizen.address)
    env.clock.offset = env.svc.settings.request_ttl_s + 60
    resp = env.grant(req, citizen)
    assert resp.status_code == 400
    assert resp.json()["code"] == "signature_expired"


def test_guardian_signs_for_ward(env: Env) -> None:
    dept, ward, guardian = env.department(), Account.create(), Account.create()
    until = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    resp = env.client.post(
        "/v1/guardianships",
        headers=env.registrar,
        json={"ward": ward.address, "guardian": guardian.address, "until": until},
    )
    assert resp.status_code == 201, resp.text
    req = env.request(dept, ward.address)
    own = env.grant(req, ward)
    assert own.status_code == 403 and own.json()["code"] == "guardian_required"
    by_guardian = env.grant(req, guardian)
    assert by_guardian.status_code == 201, by_guardian.text
    record = env.client.get(f"/v1/consents/{req['consent_id']}", headers=dept["headers"]).json()
    assert record["signer"] == guardian.address and record["signed_by_guardian"] is True
    assert env.check(dept, ward.address)["allowed"] is True
    # the guardian withdraws for the ward
    out = env.withdraw(req["consent_id"], guardian)
    assert out.status_code == 200, out.text
    assert env.check(dept, ward.address)["reason"] == "consent_withdrawn"


def test_unregistered_purpose_refused(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    resp = env.client.post(
        "/v1/consent-requests",
        headers=dept["headers"],
        json={
            "subject": citizen.address,
            "purpose": "marketing",
            "pii_categories": ["identity"],
            "notice_url": "https://bank.example/p",
            "retention_days": 30,
            "valid_until": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
        },
    )
    assert resp.status_code == 403
    assert resp.json()["code"] == "purpose_not_registered"


def test_suspended_department_denied(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    req = env.request(dept, citizen.address)
    assert env.grant(req, citizen).status_code == 201
    assert env.check(dept, citizen.address)["allowed"] is True
    resp = env.client.post(
        f"/v1/departments/{dept['department_id']}/suspension", headers=env.registrar
    )
    assert resp.status_code == 200, resp.text
    denied = env.check(dept, citizen.address)
    assert denied == {**denied, "allowed": False, "reason": "department_suspended"}
    assert (
        env.client.delete(
            f"/v1/departments/{dept['department_id']}/suspension", headers=env.registrar
        ).status_code
        == 200
    )
    assert env.check(dept, citizen.address)["allowed"] is True


def test_sensitive_or_third_party_sets_separate_consent(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    plain = env.request(dept, citizen.address)["typed_data"]["message"]
    assert plain["separateConsent"] is False and plain["sensitive"] is False
    by_category = env.request(dept, citizen.address, pii_categories=["medical_health"])
    assert by_category["typed_data"]["message"]["sensitive"] is True
    assert by_category["typed_data"]["message"]["separateConsent"] is True
    third = env.request(dept, citizen.address, third_parties=["Credit Bureau Ltd"])
    assert third["typed_data"]["message"]["thirdParties"] == ["Credit Bureau Ltd"]
    assert third["typed_data"]["message"]["separateConsent"] is True
    assert env.grant(third, citizen).status_code == 201


def test_category_outside_grant_and_expiry_denied(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    req = env.request(
        dept, citizen.address, valid_until=(datetime.now(UTC) + timedelta(days=2)).isoformat()
    )
    assert env.grant(req, citizen).status_code == 201
    assert env.check(dept, citizen.address, ("identity", "income"))["allowed"] is True
    outside = env.check(dept, citizen.address, ("income", "health_record"))
    assert (outside["allowed"], outside["reason"]) == (False, "category_not_granted")
    env.clock.offset = 3 * 24 * 3600
    expired = env.check(dept, citizen.address)
    assert (expired["allowed"], expired["reason"]) == (False, "consent_expired")
    assert env.check(dept, Account.create().address)["reason"] == "no_consent"


def test_no_personal_information_on_chain(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    third_party = "Zhang San 110101199003071234"
    req = env.request(
        dept,
        citizen.address,
        notice_url="https://bank.example/notice-7731",
        third_parties=[third_party],
    )
    grant = env.grant(req, citizen).json()
    tx = env.svc.chain.w3.eth.get_transaction(grant["tx_hash"])
    data = bytes(tx["input"])
    receipt = env.svc.chain.w3.eth.get_transaction_receipt(grant["tx_hash"])
    logged = b"".join(bytes(log["data"]) for log in receipt["logs"])
    labels = (b"loan-underwriting", b"identity", b"income", third_party.encode(), b"Zhang")
    others = (b"notice-7731", b"Test Bank", req["request_id"].encode(), b"1095")
    for secret in (*labels, *others, b"110101199003071234"):
        assert secret not in data and secret not in logged, secret
    assert bytes.fromhex(req["typed_data"]["message"]["recordHash"][2:]) in data
    assert keccak(text="loan-underwriting") in data
    assert keccak(keccak(text=third_party)) in data  # thirdPartiesHash of the one label


@pytest.mark.parametrize(
    "terms",
    [
        {},
        {"purpose": "贷款审批 ✓", "piCategories": ["身份证号", ""], "thirdParties": ["征信 Ltd"]},
        {"purpose": "", "piCategories": [], "thirdParties": []},
        {"thirdParties": ["", ""]},
    ],
    ids=["as-requested", "unicode", "empty", "empty-labels"],
)
def test_grant_args_hash_to_the_signed_digest(env: Env, terms: dict[str, Any]) -> None:
    """hashGrant(grant_args(message)) is the EIP-712 digest the citizen's wallet signs."""
    req = env.request(env.department(), Account.create().address)
    message = {**req["typed_data"]["message"], **terms}
    td = typed_data.grant_typed_data(env.svc.ledger.chain_id, env.svc.ledger.address, message)
    assert bytes(env.svc.ledger.call("hashGrant", grant_args(message))) == typed_data.digest(td)


def test_bad_input_is_problem_details_and_changes_nothing(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    req = env.request(dept, citizen.address)
    with env.svc.db.sessions() as s:
        before = (
            s.scalar(select(func.count()).select_from(Consent)),
            s.scalar(select(func.count()).select_from(AccessRecord)),
        )
    h = {**dept["headers"], "content-type": "application/json"}
    cases = [
        ("/v1/consents", {}, b'{"request_id": ', 400, "malformed_json"),
        ("/v1/consents", {}, b'{"request_id": 5, "signature": "0x00"}', 422, "validation_error"),
        (
            "/v1/consents",
            {},
            b'{"request_id": "x", "signature": "0x", "extra": 1}',
            422,
            "validation_error",
        ),
        (
            "/v1/access-checks",
            h,
            b'{"subject": "nope", "purpose": "p", "pii_categories": []}',
            422,
            "validation_error",
        ),
        (
            "/v1/consents",
            {},
            b'{"request_id": "' + b"a" * env.svc.settings.max_body_bytes + b'"}',
            413,
            "body_too_large",
        ),
        (
            "/v1/consents",
            {},
            b'{"request_id": "req_missing", "signature": "0x00"}',
            404,
            "request_not_found",
        ),
    ]
    for path, headers, body, status, code in cases:
        resp = env.client.post(
            path, content=body, headers={"content-type": "application/json", **headers}
        )
        assert resp.status_code == status, (code, resp.text)
        problem = resp.json()
        assert resp.headers["content-type"] == "application/problem+json"
        assert problem["code"] == code and problem["status"] == status
        assert {"type", "title", "detail"} <= problem.keys()
    assert env.client.get("/v1/nowhere").json()["code"] == "not_found"
    with env.svc.db.sessions() as s:
        after = (
            s.scalar(select(func.count()).select_from(Consent)),
            s.scalar(select(func.count()).select_from(AccessRecord)),
        )
    assert after == before
    assert env.grant(req, citizen).status_code == 201


def test_auth_is_required_and_scoped(env: Env) -> None:
    dept, other, citizen = env.department(), env.department(), Account.create()
    req = env.request(dept, citizen.address)
    env.grant(req, citizen)
    assert env.client.post("/v1/departments", json={}).json()["code"] == "missing_credentials"
    bad = env.client.post(
        "/v1/departments",
        headers=dept["headers"],
        json={"name": "x", "address": Account.create().address, "purposes": ["p"]},
    )
    assert bad.status_code == 403 and bad.json()["code"] == "registrar_only"
    assert (
        env.client.get(f"/v1/consents/{req['consent_id']}", headers=other["headers"]).status_code
        == 403
    )
    stranger = env.sign_in(Account.create())
    assert (
        env.client.get(f"/v1/subjects/{citizen.address}/consents", headers=stranger).status_code
        == 403
    )
    mine = env.client.get(
        f"/v1/subjects/{citizen.address}/consents", headers=env.sign_in(citizen)
    ).json()
    assert [c["consent_id"] for c in mine["consents"]] == [req["consent_id"]]


def test_reindex_equals_live_index(env: Env) -> None:
    dept, citizen = env.department(), Account.create()
    req = env.request(dept, citizen.address)
    grant = env.grant(req, citizen).json()
    env.withdraw(grant["consent_id"], citizen)

    with worker_paused(env):
        live = projection_snapshot(env.svc)
        assert live["consents"]
        env.svc.reindex()
        assert projection_snapshot(env.svc) == live


def test_openapi_lists_the_contracted_paths(env: Env) -> None:
    paths = env.client.get("/openapi.json").json()["paths"]
    for path in (
        "/healthz",
        "/v1/departments",
        "/v1/consent-requests",
        "/v1/consents",
        "/v1/consents/{consent_id}",
        "/v1/consents/{consent_id}/withdrawal",
        "/v1/access-checks",
        "/v1/auth/siwe/nonce",
        "/v1/auth/siwe",
        "/v1/subjects/{address}/consents",
        "/v1/subjects/{address}/access-log",
    ):
        assert path in paths, path
    health = env.client.get("/healthz").json()
    assert health["status"] == "ok" and health["chain"]["backend"] == "embedded"


def test_registry_typehashes_match_the_service_types(env: Env) -> None:
    ledger = env.svc.ledger
    assert bytes(ledger.call("grantTypehash")) == keccak(text=typed_data.GRANT_TYPE)
    assert bytes(ledger.call("withdrawalTypehash")) == keccak(text=typed_data.WITHDRAWAL_TYPE)


def test_chain_refusals_map_to_stable_codes(env: Env) -> None:
    """The registry enforces the same rules on its own; its custom errors become codes."""
    from authz.errors import BadRequest, Conflict

    dept, citizen = env.department(), Account.create()
    req = env.request(dept, citizen.address, pii_categories=["medical_health"])
    assert req["typed_data"]["message"]["separateConsent"] is True
    # a Grant that omits the separate consent, signed correctly, reaches the chain
    message = {**req["typed_data"]["message"], "separateConsent": False}
    td = typed_data.grant_typed_data(env.svc.ledger.chain_id, env.svc.ledger.address, message)
    sig = bytes.fromhex(sign_typed(citizen, td)[2:])
    with pytest.raises(BadRequest) as refused:
        env.svc.ledger.send("grant", grant_args(message), sig)
    assert refused.value.code == "separate_consent_required"
    good = bytes.fromhex(sign_typed(citizen, req["typed_data"])[2:])
    env.svc.ledger.send("grant", grant_args(req["typed_data"]["message"]), good)
    with pytest.raises(Conflict) as dup:
        env.svc.ledger.send("grant", grant_args(req["typed_data"]["message"]), good)
    assert dup.value.code in {"duplicate_grant", "nonce_used"}
