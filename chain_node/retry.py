"""Retries with exponential backoff and jitter for transient node errors.

Transient (retried): the node cannot be reached or timed out (connection refused, reset,
read timeout), HTTP 429 / 502 / 503 / 504, and JSON-RPC errors that mean "try again":
code -32005 ("limit exceeded", EIP-1474) and rate-limit messages. Never retried: reverts,
and every other JSON-RPC error (bad nonce, underpriced, invalid params), which a retry
cannot fix.

Delays ("equal jitter"): attempt ``n`` (0-based) waits ``d/2 + U(0, d/2)`` seconds with
``d = min(cap_s, base_s * factor**n)``, so concurrent clients spread out while the wait
still grows; a ``Retry-After`` header (seconds) on a 429/503 raises the wait to at least
that, within ``cap_s``. Clock, sleep and random source are injectable for tests.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from web3.exceptions import ProviderConnectionError, Web3RPCError

from .errors import ChainRevert, ChainUnavailable

__all__ = [
    "Backoff",
    "Retrier",
    "TransientRpcError",
    "is_transient",
    "rpc_error_is_transient",
]

T = TypeVar("T")

RETRY_HTTP_STATUS = frozenset({429, 502, 503, 504})
RATE_LIMIT_CODES = frozenset({-32005})
_RATE_LIMIT_WORDS = ("rate limit", "too many requests", "limit exceeded", "try again later")


class TransientRpcError(ChainUnavailable):
    """A JSON-RPC error object that asks the client to retry (rate limit, -32005); raised
    to the caller once the retries are used up.

    ``error``: the JSON-RPC error object (``{"code", "message", ...}``).
    """

    code = "chain_rate_limited"

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(f"JSON-RPC error {error.get('code')}: {error.get('message')}")
        self.error = dict(error)


def rpc_error_is_transient(error: Mapping[str, Any]) -> bool:
    """True for a JSON-RPC error object meaning "retry later": code -32005 (EIP-1474
    "limit exceeded") or a rate-limit message. Reverts (code 3, "execution reverted")
    are never transient."""
    message = str(error.get("message", "")).lower()
    if error.get("code") == 3 or "revert" in message:
        return False
    return error.get("code") in RATE_LIMIT_CODES or any(w in message for w in _RATE_LIMIT_WORDS)


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same request may succeed (see the module doc)."""
    if isinstance(exc, ChainRevert):
        return False
    if isinstance(exc, TransientRpcError):
        return True
    if isinstance(exc, ChainUnavailable):
        return False  # already final: retries used up, or a closed/stopped backend
    if isinstance(exc, requests.exceptions.HTTPError):
        response = exc.response
        return response is not None and response.status_code in RETRY_HTTP_STATUS
    if isinstance(
        exc,
        requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | ProviderConnectionError
        | ConnectionError
        | TimeoutError,
    ):
        return True
    if isinstance(exc, Web3RPCError):
        rpc = exc.rpc_response or {}
        err = rpc.get("error") if isinstance(rpc, dict) else None
        return isinstance(err, dict) and rpc_error_is_transient(err)
    return False


def _retry_after_s(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After: <seconds>`` header (RFC 9110, 10.2.3), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        return max(float(headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None  # an HTTP-date: not worth parsing for a node


@dataclass(frozen=True)
class Backoff:
    """Retry schedule. ``attempts``: total tries (>= 1). ``base_s``/``cap_s``: first and
    largest nominal delay (seconds). ``factor``: growth per attempt. ``max_elapsed_s``:
    no retry starts after this many seconds since the first try."""

    attempts: int = 6
    base_s: float = 0.05
    factor: float = 2.0
    cap_s: float = 2.0
    max_elapsed_s: float = 10.0

    def nominal_s(self, attempt: int) -> float:
        """``min(cap_s, base_s * factor**attempt)`` for 0-based ``attempt``."""
        return min(self.cap_s, self.base_s * self.factor**attempt)

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """The jittered wait before retry number ``attempt + 1``: in ``[d/2, d]``."""
        nominal = self.nominal_s(attempt)
        return nominal / 2 + rng.uniform(0, nominal / 2)


class Retrier:
    """Runs a callable, retrying transient failures on a :class:`Backoff` schedule.

    ``sleep``/``clock``/``rng``: injectable (defaults ``time.sleep``, ``time.monotonic``,
    a new ``random.Random``). ``sleeps`` holds the last 256 waits (seconds) and
    ``retries`` counts them all, for tests and metrics.
    """

    def __init__(
        self,
        backoff: Backoff | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        transient: Callable[[BaseException], bool] = is_transient,
    ) -> None:
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self.transient = transient
        self.sleeps: deque[float] = deque(maxlen=256)
        self.retries = 0

    def run(
        self, thunk: Callable[[], T], transient: Callable[[BaseException], bool] | None = None
    ) -> T:
        """Return ``thunk()``; on a transient exception wait and call again. Re-raises the
        last exception when it is not transient, after ``backoff.attempts`` tries, or when
        the next wait would end past ``backoff.max_elapsed_s``. ``transient`` replaces
        the retrier's predicate for this call."""
        is_retryable = transient or self.transient
        start = self.clock()
        attempt = 0
        while True:
            try:
                return thunk()
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                delay = self.backoff.delay_s(attempt, self.rng)
                hint = _retry_after_s(exc)
                if hint is not None:
                    delay = min(max(delay, hint), self.backoff.cap_s)
                attempt += 1
                elapsed = self.clock() - start
                if attempt >= self.backoff.attempts or elapsed + delay > self.backoff.max_elapsed_s:
                    raise
                self.sleeps.append(delay)
                self.retries += 1
                self.sleep(delay)
