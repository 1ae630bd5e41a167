"""Validating scanned codes the way every gate does, online (the service) or offline
(``consentgate gate``): trust list from the chain's keys, the fast path, a shared replay
claim in Redis, and operator advice for clock errors.

Nothing here touches the service's database or chain, so the gate agent imports it alone.

Replay across gates (issue 5, item 4): with a Redis URL, each code that passed every
other stage is claimed with ``SET cg:cti:<hex> 1 NX EX <remaining life>`` (Redis ``SET``
with ``NX`` and ``EX``); a code already claimed is refused with stage ``replay``, reason
``replayed``. The remaining life is ``exp + skew - now`` rounded up, at least 1 s.

Redis loss: **fail open to per-gate protection.** When Redis cannot be reached, each
gate still refuses codes it has seen itself (the fast path's own replay cache), exactly
the documented behaviour without Redis; a batch reports ``"replay_scope": "gate"``
instead of ``"shared"``. Why: a code lives 60 s, so the worst case is one extra entry by
the same code at a second gate within a minute, while failing closed would stop every
gate of a station on one cache outage (and offline gates already run per-gate). After a
Redis restart without persistence, claims made before it are gone: a code used before
the restart can pass once more at another gate until its ``exp`` (at most 60 s + skew).
Reconnection is retried at most once a second, so an outage costs no latency per scan.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import cbor2

from fastpath.tokens import Result, StatusList, TrustList, codes
from fastpath.tokens.claims import sc1_cert_summary, sc1_summary
from fastpath.tokens.trust import key_from_spec

SKEW_S = 10.0
"""Clock tolerance of a gate (seconds) on iat/nbf/exp: a phone more than 10 s ahead, or a
code more than 10 s past its 60 s life, is refused with stage ``time``."""

REPLAY_KEY_PREFIX = "cg:cti:"


def trust_list(doc: Mapping[str, Any]) -> TrustList:
    """The keys a gate accepts from a ``GET /v1/trust-list`` document: every entry not
    ``revoked`` (validity windows are checked per token by the fast path)."""
    return TrustList(key_from_spec(spec) for spec in doc["trust_keys"] if not spec.get("revoked"))


def advice(result: Result, at: float) -> str | None:
    """A sentence for the gate operator when a code fails on time, else None.

    Uses the code's ``iat`` against the gate's clock ``at`` (Unix seconds).
    """
    if result.stage != "time":
        return None
    reason = result.reason
    if reason.startswith("cert_"):
        return "the phone's device certificate is out of date: open the card app online to renew it"
    if reason.startswith("key_"):
        return "the code's issuer key is outside its validity: the phone must re-enroll"
    iat = sc1_claims(result).get("iat")
    if isinstance(iat, int | float):
        offset = round(iat - at)
        if offset > 0:
            return (
                f"the phone's clock is {offset} s ahead of the gate's: ask the holder to set "
                "the date and time automatically, then show a new code"
            )
        if reason == "expired":
            return (
                f"the code was made {-offset} s ago (codes live 60 s): the phone's clock is "
                "behind or the screen is stale; ask the holder to set the time automatically "
                "and show a new code"
            )
    return "the code is outside its validity window: ask the holder to show a new code"


class RedisReplay:
    """The shared replay claims of every gate (Redis ``SET NX EX``).

    ``url``: a ``redis://`` URL. ``timeout`` seconds per Redis call. See the module
    docstring for the failure policy.
    """

    def __init__(self, url: str, timeout: float = 0.25, retry_after: float = 1.0) -> None:
        import redis

        self._errors = (redis.ConnectionError, redis.TimeoutError, OSError)
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.retry_after = retry_after
        self._down_until = 0.0

    def claim(
        self, items: Sequence[tuple[str, float]], now: float, skew: float
    ) -> list[bool] | None:
        """Claim each ``(cti hex, exp)``; True where this call claimed it first, False where
        another scan had. None when Redis is unreachable (the caller falls back)."""
        if not items:
            return []
        wall = time.monotonic()
        if wall < self._down_until:
            return None
        try:
            pipe = self.client.pipeline(transaction=False)
            for cti, exp in items:
                pipe.set(
                    REPLAY_KEY_PREFIX + cti, b"1", nx=True, ex=max(1, math.ceil(exp + skew - now))
                )
            return [bool(ok) for ok in pipe.execute()]
        except self._errors:
            self._down_until = wall + self.retry_after
            return None


def replayed(result: Result) -> Result:
    """``result`` turned into a ``replay``/``replayed`` refusal (same kid and claims)."""
    return Result(False, "replay", "replayed", result.kid, result[4], result[5])


def apply_shared_replay(
    results: list[Result], replay: RedisReplay | None, now: float, skew: float
) -> str:
    """Refuse, in place, every valid result whose cti another gate already claimed.

    Returns the replay scope of the batch: ``"shared"`` (Redis answered) or ``"gate"``
    (no Redis configured, or unreachable: per-gate protection only).
    """
    if replay is None:
        return "gate"
    valid = [i for i, r in enumerate(results) if r.valid]
    decoded = claims_batch([results[i] for i in valid])
    claims = [(c["cti"], float(c["exp"])) for c in decoded]
    answer = replay.claim(claims, now, skew)
    if answer is None:
        return "gate"
    for i, first in zip(valid, answer, strict=True):
        if not first:
            results[i] = replayed(results[i])
    return "shared"


_CERTS: dict[bytes, dict[str, Any]] = {}
_CERTS_MAX = 50_000


def _cert_summary(cert_bytes: bytes) -> dict[str, Any]:
    """:func:`sc1_cert_summary` of a device certificate (COSE_Sign1 bytes), cached by its
    bytes: a phone shows codes under one certificate for hours."""
    found = _CERTS.get(cert_bytes)
    if found is None:
        cose = cbor2.loads(cert_bytes)
        while isinstance(cose, cbor2.CBORTag):
            cose = cose.value
        found = sc1_cert_summary(cbor2.loads(cose[2]))
        if len(_CERTS) >= _CERTS_MAX:
            _CERTS.clear()
        _CERTS[cert_bytes] = found
    return found


_DECODE_ERRORS = (
    cbor2.CBORDecodeError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    ValueError,
)


def _summary(claims: Any, result: Result) -> dict[str, Any]:
    try:
        return sc1_summary(claims, _cert_summary(claims[codes.CLAIM_SC1_DEVICE_CERT]))
    except _DECODE_ERRORS:
        return result.claims


def _loads(payload: bytes) -> Any:
    try:
        return cbor2.loads(payload)
    except _DECODE_ERRORS:
        return None


def claims_batch(results: Sequence[Result]) -> list[dict[str, Any]]:
    """``result.claims`` of each result, in order; ``SC1:`` payloads are decoded with
    cbor2's C decoder, all of a batch in one call (as one indefinite-length array).

    Same keys (in the same order) and values as :func:`fastpath.tokens.claims.claims_of`:
    a payload passed the fast path's strict CBOR checks (one well-formed item, nothing
    after it), so any decoder reads it the same way; if the batch does not decode to one
    map per payload, each is decoded alone. Falls back to ``result.claims`` for any other
    profile or shape. Several times faster than the pure-Python reader, which would be
    most of a gate's cost per result otherwise.
    """
    payloads = [r[5] for r in results if r[5] is not None and r[4] == "sc1"]
    decoded: Any = None
    if payloads:
        try:
            decoded = cbor2.loads(b"\x9f" + b"".join(payloads) + b"\xff")
        except _DECODE_ERRORS:
            decoded = None
        if not isinstance(decoded, list) or len(decoded) != len(payloads):
            decoded = [_loads(p) for p in payloads]
    maps = iter(decoded or ())
    out: list[dict[str, Any]] = []
    for r in results:
        if r[5] is None:
            out.append({})
        elif r[4] != "sc1":
            out.append(r.claims)
        else:
            out.append(_summary(next(maps), r))
    return out


def sc1_claims(result: Result) -> dict[str, Any]:
    """``result.claims`` of one result, decoded as :func:`claims_batch` does."""
    return claims_batch([result])[0]


def result_dicts(results: Sequence[Result], at: float | Sequence[float]) -> list[dict[str, Any]]:
    """:func:`result_dict` of each result, in order (claims decoded by
    :func:`claims_batch`); ``at``: the gate's clock for all (Unix seconds), or one per
    result."""
    ats = [at] * len(results) if isinstance(at, int | float) else at
    out = []
    for r, claims, when in zip(results, claims_batch(results), ats, strict=True):
        d = {"valid": r[0], "stage": r[1], "reason": r[2], "kid": r[3], "claims": claims}
        if r[1] == "time":
            hint = advice(r, when)
            if hint is not None:
                d["advice"] = hint
        out.append(d)
    return out


def result_dict(result: Result, at: float) -> dict[str, Any]:
    """The fast path's result shape (``valid``, ``stage``, ``reason``, ``kid``,
    ``claims``), plus ``advice`` when the code failed on time; ``at``: the gate's clock
    (Unix seconds)."""
    return result_dicts([result], at)[0]


def status_from_doc(doc: Mapping[str, Any]) -> StatusList:
    """The :class:`StatusList` of a ``GET /v1/status-lists/{epoch}`` document."""
    return StatusList.decode(doc["encodedList"])
