"""Token builders for tests: well-formed codes and the malformed ones field bugs need."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from fastpath.tokens import codes
from fastpath.tokens.base45 import b45encode
from fastpath.tokens.issue import DeviceKey, HC1Signer, IssuerKey, issue_device_cert, sign1

T0 = 1_800_000_000  # a fixed "now" (2027-01-15T08:00:00Z)


def hc1(cose: bytes) -> str:
    """HC1 text around COSE bytes."""
    return codes.PREFIX_HC1 + b45encode(zlib.compress(cose))


def hc1_claims(iat: float = T0 - 100, exp: float = T0 + 3600) -> dict[int, Any]:
    """Minimal DCC claims."""
    return {1: "XX", codes.CLAIM_IAT: iat, codes.CLAIM_EXP: exp, -260: {1: {"ver": "1.3.0"}}}


def hc1_token(
    signer: HC1Signer,
    *,
    claims: Mapping[int, Any] | None = None,
    protected: Mapping[int, Any] | None = None,
    unprotected: Mapping[int, Any] | None = None,
    sign: Callable[[bytes], bytes] | None = None,
    tag: str = "18",
) -> str:
    """A DCC code; defaults: ES256/PS256 and kid protected, signed by ``signer``."""
    alg = codes.ALG_ES256 if signer.alg == "ES256" else codes.ALG_PS256
    prot = {1: alg, 4: signer.kid} if protected is None else protected
    cose = sign1(
        hc1_claims() if claims is None else claims,
        sign or signer.sign,
        protected=prot,
        unprotected=unprotected,
        tag=tag,
    )
    return hc1(cose)


class Card:
    """An issuer, a device and its certificate: makes SC1 codes."""

    def __init__(self, issuer: IssuerKey | None = None, *, index: int = 7) -> None:
        self.issuer = issuer or IssuerKey.generate()
        self.device = DeviceKey.generate()
        self.cert = issue_device_cert(
            self.issuer,
            self.device.public,
            b"\x01" * 32,
            index,
            iat=T0 - 3600,
            exp=T0 + 86400,
        )

    def code(self, iat: float = T0, lifetime: float = 60, cti: bytes | None = None) -> str:
        """A fresh SC1 code."""
        claims = {
            codes.CLAIM_EXP: iat + lifetime,
            codes.CLAIM_IAT: iat,
            codes.CLAIM_CTI: cti or os.urandom(16),
            codes.CLAIM_SC1_DEVICE_CERT: self.cert,
        }
        return codes.PREFIX_SC1 + b45encode(
            sign1(claims, self.device.sign, protected={1: codes.ALG_EDDSA})
        )


def fields(result: Any) -> dict[str, Any]:
    """The comparable fields of a result."""
    return result.as_dict()  # type: ignore[no-any-return]
