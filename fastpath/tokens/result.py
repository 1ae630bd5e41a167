"""The verification result shared by both implementations."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from fastpath.tokens.claims import claims_of


class Result(tuple[Any, ...]):
    """Outcome of verifying one scanned code (an immutable tuple underneath, so that the
    compiled module builds one in a single C call).

    - ``valid``: True only when every stage passed (``stage == "ok"``).
    - ``stage``: ``"ok"`` or the name of the first failing stage (see
      :data:`fastpath.tokens.codes.STAGES`).
    - ``reason``: stable reason code (``"ok"`` when valid).
    - ``kid``: the signer's key id as lowercase hex (the issuer kid for ``SC1:``), or
      None before it was read.
    - ``claims``: JSON-ready claims once the ``cose`` stage passed, else ``{}``; decoded
      on first access from the payload bytes.
    """

    __slots__ = ()

    def __new__(
        cls,
        valid: bool,
        stage: str,
        reason: str,
        kid: str | None = None,
        profile: str = "",
        payload: bytes | None = None,
    ) -> Result:
        # the last item is a one-slot cache for the decoded claims
        return tuple.__new__(cls, (valid, stage, reason, kid, profile, payload, []))

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickle / copy
        return tuple(self[:6])

    valid: bool = property(itemgetter(0))  # type: ignore[assignment]
    stage: str = property(itemgetter(1))  # type: ignore[assignment]
    reason: str = property(itemgetter(2))  # type: ignore[assignment]
    kid: str | None = property(itemgetter(3))  # type: ignore[assignment]

    @property
    def claims(self) -> dict[str, Any]:
        """The claims as a JSON-ready dict (see :func:`fastpath.tokens.claims.claims_of`)."""
        cache: list[dict[str, Any]] = self[6]
        if not cache:
            payload = self[5]
            cache.append({} if payload is None else claims_of(self[4], payload))
        return cache[0]

    def as_dict(self) -> dict[str, Any]:
        """The JSONL output shape: valid, stage, reason, kid, claims."""
        return {
            "valid": self.valid,
            "stage": self.stage,
            "reason": self.reason,
            "kid": self.kid,
            "claims": self.claims,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Result(valid={self.valid!r}, stage={self.stage!r}, reason={self.reason!r}, "
            f"kid={self.kid!r})"
        )
