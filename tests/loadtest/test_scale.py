"""The scale model's arithmetic, pinned to the numbers README.md walks through."""

from __future__ import annotations

import pytest

from loadtest import scale
from loadtest.profiles import day_mean


def test_service_calls_at_national_peak() -> None:
    # 15.1e9 calls a year / 31,536,000 s = 478.8/s on average; x10 peak.
    assert scale.service_calls_peak() == pytest.approx(4788.18, abs=0.01)


def test_task_rates_at_national_peak() -> None:
    m = scale.national_peak()
    # 434 access channels polling their withdrawal feed every 5 s
    assert m["Department"].tasks == pytest.approx(
        {"access_check": 4788.18, "request_consent": 47.88, "withdrawal_feed": 86.8}, abs=0.01
    )
    # 8.41e6 x 0.2 / 86,400 / 0.42 = 46.35 app sessions/s at the morning rush
    assert m["Citizen"].tasks == pytest.approx(
        {
            "sign_in": 46.35,
            "pending_requests": 46.35,
            "list_consents": 46.35,
            "access_log": 46.35,
            "grant": 38.31,
            "withdraw": 1.92,
        },
        abs=0.01,
    )
    # 480 cities x 2 scans/s / 20 per batch
    assert m["Gate"].tasks == {"validate_batch": 48.0}
    assert m["Department"].users == pytest.approx(984.6, abs=0.1)
    assert m["Citizen"].users == pytest.approx(1128.1, abs=0.1)
    assert m["Gate"].users == 96.0


def test_users_scale_linearly_and_refuse_nonpositive() -> None:
    assert scale.users_at(1.0) == 2209
    assert scale.users_at(0.01) == 22
    assert scale.users_at(0.01, factor=5.0) == 110
    assert scale.users_at(1e-6) == 1
    with pytest.raises(ValueError, match="scale must be > 0"):
        scale.users_at(0)


def test_endpoint_rates_scale_except_registrar() -> None:
    full, tenth = scale.endpoint_rates(1.0), scale.endpoint_rates(0.1)
    assert set(full) == set(tenth)
    assert full["POST /v1/access-checks"] == pytest.approx(4788.18, abs=0.01)
    assert full["POST /v1/auth/siwe"] == full["POST /v1/auth/siwe/nonce"]
    for name, rate in full.items():
        expected = rate if name.endswith(("/v1/departments", "/v1/departments/[id]")) else rate / 10
        assert tenth[name] == pytest.approx(expected)
    assert max(full, key=full.__getitem__) == "POST /v1/access-checks"
    assert sum(full.values()) == pytest.approx(5244.8, abs=0.1)  # README's total


def test_weights_keep_the_mix() -> None:
    assert scale.class_weights() == {"Department": 98457, "Citizen": 112813, "Gate": 9600}
    w = scale.task_weights("Department")
    assert w == {"access_check": 4788179, "request_consent": 47882, "withdrawal_feed": 86800}
    assert scale.task_weights("Citizen")["withdraw"] == 1915


def test_pool_size_floors_partitions_and_caps() -> None:
    assert scale.pool_size(0.01, 60) == scale.PoolSize(
        grants=34, withdrawals=2, sign_ins=64, gate_codes=860, departments=5
    )
    two = scale.pool_size(0.01, 60, workers=2)
    assert (two.grants, two.withdrawals, two.sign_ins) == (68, 4, 128)
    big = scale.pool_size(1.0, 3600)
    assert big.grants == scale.MAX_POOL_GRANTS
    assert big.withdrawals == scale.MAX_POOL_WITHDRAWALS
    assert big.sign_ins == 5000


def test_day_profile_mean_is_the_models_peak_hour_factor() -> None:
    assert day_mean() == pytest.approx(scale.DAY_MEAN_FACTOR, abs=0.01)
