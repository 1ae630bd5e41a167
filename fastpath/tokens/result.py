"""The verification result shared by both implementations."""

from __future__ import annotations

from typing import Any

from fastpath.tokens.claims import claims_of


class Result:
    """Outcome of verifying one scanned code (immutable).

    - ``valid``: True only when every stage passed (``stage == "ok"``).
    - ``stage``: ``"ok"`` or the name of the first failing stage (see
      :data:`fastpath.tokens.codes.STAGES`).
    - ``reason``: stable reason code (``"ok"`` when valid).
    - ``kid``: the signer's key id as lowercase hex (the issuer kid for ``SC1:``), or
      None before it was read.
    - ``claims``: JSON-ready claims once the ``cose`` stage passed, else ``{}``; decoded
      on first access from the verified payload bytes.
    """

    __slots__ = ("_claims", "_payload", "_profile", "kid", "reason", "stage", "valid")

    valid: bool
    stage: str
    reason: str
    kid: str | None
    _profile: str
    _payload: bytes | None
    _claims: dict[str, Any] | None

    def __init__(
        self,
        valid: bool,
        stage: str,
        reason: str,
        kid: str | None = None,
        profile: str = "",
        payload: bytes | None = None,
    ) -> None:
        object.__setattr__(self, "valid", valid)
        object.__setattr__(self, "stage", stage)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "kid", kid)
        object.__setattr__(self, "_profile", profile)
        object.__setattr__(self, "_payload", payload)
        object.__setattr__(self, "_claims", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Result is immutable")

    @property
    def claims(self) -> dict[str, Any]:
        """The claims as a JSON-ready dict (see :func:`fastpath.tokens.claims.claims_of`)."""
        cached = self._claims
        if cached is None:
            cached = {} if self._payload is None else claims_of(self._profile, self._payload)
            object.__setattr__(self, "_claims", cached)
        return cached

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

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Result(valid={self.valid!r}, stage={self.stage!r}, reason={self.reason!r}, "
            f"kid={self.kid!r})"
        )
