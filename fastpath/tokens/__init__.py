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
