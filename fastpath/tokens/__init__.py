"""QR token decode and verification (``SC1:`` card codes, ``HC1:`` EU DCC).

One API, two implementations: the compiled module ``fastpath._tokens`` when it was
built, else the pure-Python :mod:`fastpath.tokens.reference`. Set
``CONSENTGATE_PUREPYTHON=1`` to force the reference. Both return :class:`Result`.
"""

from __future__ import annotations

import os
from typing import Any

from fastpath.tokens import reference
from fastpath.tokens.codes import REASONS, STAGES
from fastpath.tokens.result import Result
from fastpath.tokens.status import StatusList
from fastpath.tokens.trust import TrustKey, TrustList

_impl: Any = reference
if not os.environ.get("CONSENTGATE_PUREPYTHON"):
    try:
        from fastpath import _tokens as _impl
    except ImportError:  # extension not built (CONSENTGATE_NO_EXTENSIONS=1)
        _impl = reference

Verifier = _impl.Verifier
IMPLEMENTATION: str = _impl.IMPLEMENTATION


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
