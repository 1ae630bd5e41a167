"""Type stub of the compiled token verifier (fastpath/_tokens.pyx)."""

from collections.abc import Sequence
from typing import Any

from fastpath.tokens.result import Result
from fastpath.tokens.status import StatusList
from fastpath.tokens.trust import TrustList

IMPLEMENTATION: str
OPENSSL_WITHOUT_GIL: bool

class Verifier:
    implementation: str
    trust: TrustList
    status: StatusList | None
    profile: str
    skew: float
    replay_capacity: int
    cert_cache_capacity: int
    def __init__(
        self,
        trust: TrustList,
        *,
        profile: str = "sc1",
        skew: float = 0.0,
        status: StatusList | None = None,
        replay_capacity: int = 100_000,
        cert_cache_capacity: int = 10_000,
    ) -> None: ...
    def verify(self, qr: Any, at: float | None = None) -> Result: ...
    def verify_batch(self, qrs: Sequence[Any], at: float | None = None) -> list[Result]: ...
    def __len__(self) -> int: ...
    def memory(self) -> dict[str, float]: ...

def raw_ed25519_verify(items: list[tuple[bytes, bytes, bytes]]) -> int: ...
