"""atheris fuzz target (``make fuzz``): the compiled verifier on arbitrary inputs.

Coverage feedback comes from the instrumented pure-Python reference, which mirrors the
compiled pipeline check for check; every input runs through both and must give the same
result (valid, stage, reason, kid, claims) without raising. Any disagreement or
exception stops the fuzzer with the input saved by libFuzzer.
"""

from __future__ import annotations

import sys
import zlib

import atheris

with atheris.instrument_imports(include=["fastpath"]):
    from fastpath import _tokens as compiled
    from fastpath.tokens import reference
    from fastpath.tokens.base45 import b45decode, b45encode
    from fastpath.tokens.trust import TrustList
    from tests.fastpath.helpers import T0, Card, hc1_token

from fastpath.tokens.issue import HC1Signer

CARD = Card()
SIGNER = HC1Signer.generate("ES256")
TRUST = {"sc1": TrustList([CARD.issuer.trust_key()]), "dcc": TrustList([SIGNER.trust_key()])}
SEEDS = {
    "sc1": b45decode(CARD.code()[4:]),
    "dcc": zlib.decompress(b45decode(hc1_token(SIGNER)[4:])),
}


def _splice(seed: bytes, data: bytes) -> bytes:
    """Overwrite part of a valid token with fuzz bytes (reaches the deep stages)."""
    if len(data) < 2:
        return seed
    at = data[0] * 256 + data[1]
    at %= len(seed)
    return seed[:at] + data[2:] + seed[at + len(data) - 2 :]


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 6, data[1:]
    if mode == 0:
        profile, qr = "cwt", body
    elif mode == 1:
        profile, qr = "sc1", "SC1:" + b45encode(body)
    elif mode == 2:
        profile, qr = "dcc", "HC1:" + b45encode(zlib.compress(body))
    elif mode == 3:
        profile, qr = "sc1", "SC1:" + b45encode(_splice(SEEDS["sc1"], body))
    elif mode == 4:
        profile, qr = "dcc", "HC1:" + b45encode(zlib.compress(_splice(SEEDS["dcc"], body)))
    else:
        profile, qr = "sc1", body.decode("latin-1")
    trust = TRUST.get(profile, TrustList())
    fast = compiled.Verifier(trust, profile=profile).verify(qr, T0).as_dict()
    ref = reference.Verifier(trust, profile=profile).verify(qr, T0).as_dict()
    if fast != ref:
        raise AssertionError(f"implementations disagree on {qr!r}: {fast} != {ref}")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
