"""Revocation status lists with W3C Bitstring Status List semantics.

Index i is bit i of the bitstring, counting from the most significant bit of byte 0
(W3C Bitstring Status List v1.0, section 3.1); 1 means revoked. Published form: GZIP
(RFC 1952) then base64url without padding (section 3.2 ``encodedList``).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib

from fastpath.errors import StatusListError

MIN_BITS = 131072  # the W3C minimum size (16 KiB), for herd privacy


class StatusList:
    """A mutable revocation bitstring of ``size_bits`` bits (a multiple of 8)."""

    def __init__(self, size_bits: int = MIN_BITS, bits: bytes | None = None) -> None:
        if bits is None:
            if size_bits <= 0 or size_bits % 8:
                raise StatusListError("size_bits must be a positive multiple of 8")
            self._bits = bytearray(size_bits // 8)
        else:
            self._bits = bytearray(bits)

    @property
    def size_bits(self) -> int:
        """Number of indexes the list covers."""
        return len(self._bits) * 8

    def bytes(self) -> bytes:
        """The raw bitstring."""
        return bytes(self._bits)

    def set(self, index: int, revoked: bool = True) -> None:
        """Mark index revoked (or not). Raises IndexError outside the list."""
        if not 0 <= index < self.size_bits:
            raise IndexError(index)
        mask = 0x80 >> (index % 8)
        if revoked:
            self._bits[index // 8] |= mask
        else:
            self._bits[index // 8] &= ~mask & 0xFF

    def is_revoked(self, index: int) -> bool:
        """Bit at index. Raises IndexError outside the list (the verifier fails closed)."""
        if not 0 <= index < self.size_bits:
            raise IndexError(index)
        return bool(self._bits[index // 8] & (0x80 >> (index % 8)))

    def encode(self) -> str:
        """The published ``encodedList``: gzip then base64url without padding."""
        packed = gzip.compress(bytes(self._bits), mtime=0)
        return base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, encoded: str) -> StatusList:
        """Parse an ``encodedList``. Raises :class:`StatusListError`."""
        try:
            packed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            return cls(bits=gzip.decompress(packed))
        except (binascii.Error, ValueError, OSError, EOFError, zlib.error) as exc:
            raise StatusListError(f"bad encodedList: {exc}") from exc
