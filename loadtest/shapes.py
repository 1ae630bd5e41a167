"""Load shapes (Locust ``LoadTestShape``): a compressed day, a spike, a soak.

Each shape runs a profile of :mod:`loadtest.profiles` times ``--scale`` for
``--duration`` seconds. ``SelectedShape`` is the locustfile's only shape: it runs the
profile named by ``--shape`` (Locust uses the first shape class it finds, so selection
happens here, from the parsed options).
"""

from __future__ import annotations

from typing import Any, ClassVar

from locust import LoadTestShape

from loadtest.profiles import PROFILES, Profile, tick_for


class ScaleShape(LoadTestShape):
    """Base of the three shapes: the profile times ``--scale``, for ``--duration`` s."""

    abstract = True
    profile: ClassVar[Profile]

    def options(self) -> Any:
        assert self.runner is not None
        return self.runner.environment.parsed_options

    def selected(self) -> Profile:
        return self.profile

    def tick(self) -> tuple[int, float, list[Any]] | None:
        assert self.runner is not None
        o = self.options()
        skip = frozenset(s for s in (getattr(o, "skip_classes", "") or "").split(",") if s)
        available = {c.__name__: c for c in self.runner.user_classes}
        t = self.get_run_time()
        return tick_for(self.selected(), t, float(o.duration), float(o.scale), available, skip)


class DayShape(ScaleShape):
    profile = PROFILES["day"]


class SpikeShape(ScaleShape):
    profile = PROFILES["spike"]


class SoakShape(ScaleShape):
    profile = PROFILES["soak"]


class SelectedShape(ScaleShape):
    """The shape named by ``--shape`` (day, spike, soak); the locustfile's only shape.

    With ``--probe CLASS`` it runs ``--probe-users`` users of that one class for
    ``--duration`` seconds instead (the ceiling measurement of :mod:`loadtest.ceiling`).
    """

    abstract = False

    def selected(self) -> Profile:
        return PROFILES[self.options().shape]

    def tick(self) -> tuple[int, float, list[Any]] | None:
        o = self.options()
        if not getattr(o, "probe", ""):
            return super().tick()
        assert self.runner is not None
        if self.get_run_time() >= float(o.duration):
            return None
        probe = [c for c in self.runner.user_classes if c.__name__ == o.probe]
        return int(o.probe_users), float(o.probe_users), probe
