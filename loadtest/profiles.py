"""Load profiles: a compressed day, a spike, a soak, and the user counts they ask for.

A profile is ``factor(t, duration)`` (1.0 = the chosen ``--scale`` of national peak) over
a run of ``duration`` seconds; :func:`tick_for` turns it into a Locust tick with the scale
model (:func:`loadtest.scale.users_at`). Plain Python, no Locust import (importing Locust
monkey-patches the process with gevent), so the driver and the tests can use it;
:mod:`loadtest.shapes` wraps the profiles in ``LoadTestShape`` classes.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, ClassVar

from loadtest.scale import users_at

DAY_POINTS: tuple[tuple[float, float], ...] = (
    (0.0, 0.10),
    (5.0, 0.06),
    (6.5, 0.45),
    (8.0, 1.00),
    (9.5, 0.55),
    (12.0, 0.50),
    (14.0, 0.42),
    (17.0, 0.62),
    (18.5, 0.92),
    (20.0, 0.50),
    (22.0, 0.26),
    (24.0, 0.10),
)
"""(hour of day, factor): night trough, morning rush at 08:00 (the peak, 1.0), lunch,
evening rush at 18:30 (0.92). Linear between points."""

SPIKE_FACTOR = 5.0
SPIKE_SECONDS = 30.0
SPAWN_SECONDS = 2.0
"""Every change of user count is spawned within about this many seconds."""


def day_factor(hour: float) -> float:
    """Factor of the compressed-day profile at ``hour`` (0-24, wraps)."""
    h = hour % 24.0
    i = bisect_right([p[0] for p in DAY_POINTS], h) - 1
    (h0, f0), (h1, f1) = DAY_POINTS[i], DAY_POINTS[min(i + 1, len(DAY_POINTS) - 1)]
    return f0 if h1 == h0 else f0 + (f1 - f0) * (h - h0) / (h1 - h0)


def day_mean(steps: int = 24 * 60) -> float:
    """Mean of the day profile (numerical, one point a minute)."""
    return sum(day_factor(24.0 * i / steps) for i in range(steps)) / steps


class Profile:
    """A load profile: ``factor(t, duration)`` for ``0 <= t < duration``; None after."""

    name: ClassVar[str] = ""

    def factor(self, t: float, duration: float) -> float | None:
        raise NotImplementedError

    def load_seconds(self, duration: float, steps: int = 600) -> float:
        """Integral of the factor over the run (seconds at full scale), for pool sizing."""
        dt = duration / steps
        return sum((self.factor(i * dt, duration) or 0.0) * dt for i in range(steps))


class Day(Profile):
    """24 hours compressed into ``duration``: morning and evening rush."""

    name = "day"

    def factor(self, t: float, duration: float) -> float | None:
        return None if t >= duration else day_factor(24.0 * t / duration)


class Spike(Profile):
    """Steady at 1.0, then x5 for 30 s in the middle of the run, then back to 1.0."""

    name = "spike"

    def spike_window(self, duration: float) -> tuple[float, float]:
        start = max(0.0, (duration - SPIKE_SECONDS) / 2)
        return start, start + SPIKE_SECONDS

    def factor(self, t: float, duration: float) -> float | None:
        if t >= duration:
            return None
        start, end = self.spike_window(duration)
        return SPIKE_FACTOR if start <= t < end else 1.0


class Soak(Profile):
    """Constant 1.0 for the whole (long) run; the default smoke is a short soak."""

    name = "soak"

    def factor(self, t: float, duration: float) -> float | None:
        return None if t >= duration else 1.0


PROFILES: dict[str, Profile] = {p.name: p for p in (Day(), Spike(), Soak())}

SCALED_CLASSES = ("Department", "Citizen", "Gate")


def tick_for(
    profile: Profile,
    t: float,
    duration: float,
    scale: float,
    available: dict[str, Any],
    skip: frozenset[str] = frozenset(),
) -> tuple[int, float, list[Any]] | None:
    """The ``(user_count, spawn_rate, user_classes)`` of a shape at run time ``t``.

    ``available`` maps class names to the locustfile's user classes; the Registrar
    (``fixed_count`` 1) is added on top of the scaled users; classes in ``skip`` (e.g.
    Gate when its endpoint is absent) get no users. None ends the run.
    """
    f = profile.factor(t, duration)
    if f is None:
        return None
    classes = [available[n] for n in SCALED_CLASSES if n in available and n not in skip]
    users = users_at(scale, f)
    if "Registrar" in available and "Registrar" not in skip:
        classes.append(available["Registrar"])
        users += 1
    return users, max(1.0, users / SPAWN_SECONDS), classes
