"""The root exception of :mod:`fastpath` and its subclasses (stable ``code`` strings)."""

from __future__ import annotations


class FastpathError(Exception):
    """Root of every error raised by :mod:`fastpath`; ``code`` is a stable string."""

    code = "fastpath_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class TrustListError(FastpathError, ValueError):
    """A trust-list entry (key, certificate, kid) cannot be used."""

    code = "trust_list_invalid"


class StatusListError(FastpathError, ValueError):
    """A published revocation status list cannot be decoded."""

    code = "status_list_invalid"


class IssuanceError(FastpathError, ValueError):
    """Token or certificate issuance was given inconsistent inputs."""

    code = "issuance_invalid"


class QRImageError(FastpathError, ValueError):
    """An image holds no readable QR code."""

    code = "qr_unreadable"
