"""The load-test package's errors: one root, each with a stable ``code``."""

from __future__ import annotations


class LoadtestError(Exception):
    """Root of every error raised by :mod:`loadtest`; ``code`` is stable for scripts."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class PoolError(LoadtestError):
    """The payload pool could not be built or read (``pool_setup_failed``,
    ``pool_unreadable``)."""


class ServiceError(LoadtestError):
    """The service under test could not be started or reached (``service_start_failed``)."""


class ReportError(LoadtestError):
    """Locust's CSV output is missing or malformed (``report_missing``)."""
