"""Strict CBOR well-formedness gate (RFC 8949) shared by the reference pipeline.

Both implementations accept exactly the same byte strings: this module is the reference
rule (and the reference decoder), the compiled module re-implements it in C, and tests
compare the two on random and mutated inputs, and this decoder with ``cbor2`` on every
tag-free input. It does not use ``cbor2.loads`` for tokens because ``cbor2`` interprets
known tags (0, 1, 2, ...) and rejects or converts their content: a library's semantic
tag handling must not decide whether signed bytes are valid, and the compiled path
could not agree with it on every input. Tags are kept as :class:`Tagged`.

The profile, beyond RFC 8949 section 5.3.1 well-formedness:

- no indefinite-length items (``cbor_indefinite``); with ``cose_top``, the only tags
  allowed around the top item are tag 61 directly around tag 18, or tag 18 alone
  (``cose_tag``; RFC 8392 section 6, RFC 9052 section 2);
- text strings are strict UTF-8 (``cbor_utf8``); a one-byte simple value below 32 is
  malformed (RFC 8949 section 3.3);
- map keys are integers, byte strings or text strings (``cbor_key_type``) and unique
  within a map (``cbor_duplicate_key``); at most 256 entries per map
  (``cbor_too_large``); at most 16 nested containers and tags (``cbor_depth``);
- exactly one item, no trailing bytes (``cbor_trailing``).
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from fastpath.tokens.codes import MAX_CBOR_DEPTH, MAX_MAP_ENTRIES

TAG_CWT = 61
TAG_COSE_SIGN1 = 18


class Tagged(NamedTuple):
    """A tagged item (RFC 8949 section 3.4); tags are kept, never interpreted."""

    tag: int
    value: Any


class Simple(NamedTuple):
    """An unassigned simple value (RFC 8949 section 3.3)."""

    value: int


class _Undefined:
    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()
_SIMPLE: dict[int, Any] = {20: False, 21: True, 22: None, 23: UNDEFINED}


class CborError(ValueError):
    """The bytes break the strict profile; ``reason`` is a stable code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _head(buf: bytes, pos: int) -> tuple[int, int, int]:
    """Read one head at ``pos``: returns (major type, argument, next position)."""
    if pos >= len(buf):
        raise CborError("cbor_malformed")
    b = buf[pos]
    major, ai = b >> 5, b & 31
    pos += 1
    if ai < 24:
        return major, ai, pos
    if ai == 31:
        raise CborError("cbor_indefinite")
    if ai > 27:
        raise CborError("cbor_malformed")
    n = 1 << (ai - 24)
    if pos + n > len(buf):
        raise CborError("cbor_malformed")
    return major, int.from_bytes(buf[pos : pos + n], "big"), pos + n


def _item(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    """Decode one item at ``pos``; return (value, position after it)."""
    start = pos
    major, arg, pos = _head(buf, pos)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        end = pos + arg
        if arg > len(buf) - pos:
            raise CborError("cbor_malformed")
        if major == 2:
            return bytes(buf[pos:end]), end
        try:
            return bytes(buf[pos:end]).decode("utf-8"), end
        except UnicodeDecodeError:
            raise CborError("cbor_utf8") from None
    if major == 4:
        if depth + 1 > MAX_CBOR_DEPTH:
            raise CborError("cbor_depth")
        if arg > len(buf) - pos:
            raise CborError("cbor_malformed")
        items = []
        for _ in range(arg):
            value, pos = _item(buf, pos, depth + 1)
            items.append(value)
        return items, pos
    if major == 5:
        if depth + 1 > MAX_CBOR_DEPTH:
            raise CborError("cbor_depth")
        if arg > MAX_MAP_ENTRIES:
            raise CborError("cbor_too_large")
        if 2 * arg > len(buf) - pos:
            raise CborError("cbor_malformed")
        out: dict[Any, Any] = {}
        for _ in range(arg):
            key_major = buf[pos] >> 5 if pos < len(buf) else 0
            key, pos = _item(buf, pos, depth + 1)
            if key_major > 3:
                raise CborError("cbor_key_type")
            if key in out:
                raise CborError("cbor_duplicate_key")
            value, pos = _item(buf, pos, depth + 1)
            out[key] = value
        return out, pos
    if major == 6:
        if depth + 1 > MAX_CBOR_DEPTH:
            raise CborError("cbor_depth")
        value, pos = _item(buf, pos, depth + 1)
        return Tagged(arg, value), pos
    # major 7: simple values and floats
    ai = buf[start] & 31
    if ai == 24 and arg < 32:
        raise CborError("cbor_malformed")
    if ai == 25:
        return struct.unpack(">e", buf[start + 1 : pos])[0], pos
    if ai == 26:
        return struct.unpack(">f", buf[start + 1 : pos])[0], pos
    if ai == 27:
        return struct.unpack(">d", buf[start + 1 : pos])[0], pos
    return _SIMPLE.get(arg, Simple(arg)) if ai != 24 else Simple(arg), pos


def decode(buf: bytes, *, cose_top: bool = False) -> Any:
    """Decode exactly one item of the strict profile; raise :class:`CborError` otherwise.

    With ``cose_top``, the item may be wrapped in tag 61 around tag 18, or tag 18
    (``cose_tag`` for any other tag there).
    """
    pos = 0
    if cose_top and pos < len(buf) and buf[pos] >> 5 == 6:
        _, arg, pos = _head(buf, pos)
        if arg == TAG_CWT:
            if pos >= len(buf) or buf[pos] >> 5 != 6:
                raise CborError("cose_tag")
            _, arg, pos = _head(buf, pos)
        if arg != TAG_COSE_SIGN1:
            raise CborError("cose_tag")
    value, pos = _item(buf, pos, 0)
    if pos != len(buf):
        raise CborError("cbor_trailing")
    return value
