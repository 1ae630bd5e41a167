"""QR token decode and verification (``SC1:`` card codes, ``HC1:`` EU DCC).

One API, two implementations: the compiled module ``fastpath._tokens`` when it was
built, else the pure-Python :mod:`fastpath.tokens.reference`. Set
``CONSENTGATE_PUREPYTHON=1`` to force the reference. Both return :class:`Result`.

Use::

    from fastpath.tokens import StatusList, TrustList, Verifier
    from fastpath.tokens.issue import DeviceKey, IssuerKey, issue_device_cert, sign_sc1

    issuer = IssuerKey.generate()                      # EdDSA, kid = SHA-256(pk)[:8]
    device = DeviceKey.generate()                      # on the phone
    cert = issue_device_cert(issuer, device.public, pseudonym, status_index,
                             iat=now, exp=now + 86400)
    code = sign_sc1(device, cert)                      # "SC1:..." (60 s, fresh cti)
    gate = Verifier(TrustList([issuer.trust_key()]), profile="sc1", skew=30,
                    status=StatusList.decode(encoded_list))
    result = gate.verify(code, at=time.time())         # or gate.verify_batch(codes, at)
    result.valid, result.stage, result.reason, result.kid, result.claims

Stages and reason codes: :mod:`fastpath.tokens.codes`. QR images:
:mod:`fastpath.tokens.qr`. Benchmarks: :mod:`fastpath.tokens.bench`.
"""

from __future__ import annotations

import os
from typing import Any

from fastpath.tokens import reference
from fastpath.tokens.codes import REASONS, STAGES
from fastpath.tokens.result import Result
from fastpath.tokens.status import StatusList
from fastpath.tokens.trust import TrustKey, TrustList


def _selected() -> Any:
    """The implementation module in use (resolved on first use, not at import, so
    that ``fastpath._tokens`` can import this package's modules)."""
    if not os.environ.get("CONSENTGATE_PUREPYTHON"):
        try:
            from fastpath import _tokens

            return _tokens
        except ImportError:  # extension not built (CONSENTGATE_NO_EXTENSIONS=1)
            pass
    return reference


def __getattr__(name: str) -> Any:
    """``Verifier`` and ``IMPLEMENTATION`` of the selected implementation."""
    if name in ("Verifier", "IMPLEMENTATION"):
        return getattr(_selected(), name)
    raise AttributeError(name)


def implementations() -> dict[str, Any]:
    """Every available implementation module by name ("reference", "compiled")."""
    found: dict[str, Any] = {"reference": reference}
    try:
        from fastpath import _tokens as _fast

        found["compiled"] = _fast
    except ImportError:
        pass
    return found


__all__ = [
    "IMPLEMENTATION",
    "REASONS",
    "STAGES",
    "Result",
    "StatusList",
    "TrustKey",
    "TrustList",
    "Verifier",
    "implementations",
]
