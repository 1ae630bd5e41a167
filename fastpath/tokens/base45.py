"""Base45 (RFC 9285), strict: the reference codec shared by both implementations' tests."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE: dict[str, int] = {c: i for i, c in enumerate(ALPHABET)}


class Base45Error(ValueError):
    """Input is not strict base45; ``reason`` is one of base45_length, base45_char,
    base45_overflow (see :mod:`fastpath.tokens.codes`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def b45encode(data: bytes) -> str:
    """Encode bytes as base45 text (RFC 9285 section 4): 2 bytes -> 3 chars, 1 -> 2."""
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode strict base45 (RFC 9285 section 4.2).

    Raises :class:`Base45Error` with reason ``base45_char`` (a character outside the
    alphabet; checked first), ``base45_length`` (length mod 3 == 1) or
    ``base45_overflow`` (a triplet above 65535 or a final pair above 255, left to right).
    """
    values: list[int] = []
    for ch in text:
        v = _VALUE.get(ch)
        if v is None:
            raise Base45Error("base45_char")
        values.append(v)
    if len(values) % 3 == 1:
        raise Base45Error("base45_length")
    out = bytearray()
    full = len(values) - len(values) % 3
    for i in range(0, full, 3):
        n = values[i] + values[i + 1] * 45 + values[i + 2] * 2025
        if n > 0xFFFF:
            raise Base45Error("base45_overflow")
        out += bytes((n >> 8, n & 0xFF))
    if len(values) % 3 == 2:
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise Base45Error("base45_overflow")
        out.append(n)
    return bytes(out)
