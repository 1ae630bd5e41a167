"""Load profiles and the ticks they give Locust (no Locust import: it would gevent-patch
the test process)."""

from __future__ import annotations

import pytest

from loadtest.profiles import PROFILES, SPIKE_FACTOR, day_factor, tick_for


class Department: ...


class Citizen: ...


class Gate: ...


class Registrar: ...


class HealthzProbe: ...


AVAILABLE = {c.__name__: c for c in (Department, Citizen, Gate, Registrar, HealthzProbe)}


def test_day_factor_has_two_rushes_and_wraps() -> None:
    assert day_factor(8.0) == 1.0
    assert day_factor(18.5) == 0.92
    assert day_factor(3.0) == pytest.approx(0.076)  # 0.10 -> 0.06 between 00:00 and 05:00
    assert day_factor(32.0) == 1.0
    assert min(day_factor(h / 4) for h in range(96)) == 0.06


def test_day_compresses_24_hours_into_the_run() -> None:
    day = PROFILES["day"]
    assert day.factor(20.0, 60.0) == 1.0  # 20 s of 60 = 08:00
    assert day.factor(46.25, 60.0) == 0.92  # 18:30
    assert day.factor(60.0, 60.0) is None


def test_spike_is_five_times_for_thirty_seconds_in_the_middle() -> None:
    spike = PROFILES["spike"]
    assert [spike.factor(t, 90.0) for t in (0.0, 29.9, 30.0, 59.9, 60.0, 89.9)] == [
        1.0,
        1.0,
        SPIKE_FACTOR,
        SPIKE_FACTOR,
        1.0,
        1.0,
    ]
    assert spike.factor(90.0, 90.0) is None
    assert spike.factor(5.0, 20.0) == SPIKE_FACTOR  # shorter than the spike: all spike
    assert spike.load_seconds(90.0) == pytest.approx(60 + 5 * 30, abs=0.5)


def test_soak_is_constant() -> None:
    soak = PROFILES["soak"]
    assert {soak.factor(t, 3600.0) for t in (0.0, 1800.0, 3599.0)} == {1.0}
    assert soak.load_seconds(120.0) == pytest.approx(120.0)


def test_tick_scales_users_and_adds_one_registrar() -> None:
    users, rate, classes = tick_for(PROFILES["soak"], 1.0, 60.0, 0.01, AVAILABLE) or (0, 0, [])
    assert users == 23  # 22 scaled users + the Registrar
    assert rate == 11.5  # spawned within 2 s
    assert classes == [Department, Citizen, Gate, Registrar]  # never the probes


def test_tick_skips_classes_and_follows_the_spike() -> None:
    tick = tick_for(PROFILES["spike"], 45.0, 90.0, 0.01, AVAILABLE, frozenset({"Gate"}))
    assert tick is not None
    users, _, classes = tick
    assert users == 111  # 0.01 x 5 -> 110 scaled users + Registrar
    assert Gate not in classes
    assert tick_for(PROFILES["spike"], 90.0, 90.0, 0.01, AVAILABLE) is None
