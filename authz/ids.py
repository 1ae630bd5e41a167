"""Identifiers, secrets and address handling shared by the domain modules."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from eth_utils import is_address, is_checksum_address, to_checksum_address

from authz.errors import BadRequest


def new_id(prefix: str) -> str:
    """A random identifier ``prefix_<24 hex>`` (96 bits)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def new_secret(prefix: str) -> str:
    """A bearer secret ``prefix_<43 url-safe chars>`` (256 bits)."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def secret_hash(secret: str) -> str:
    """SHA-256 hex of a high-entropy bearer secret (what the index stores)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@lru_cache(maxsize=65536)
def checksum(address: str, field: str = "address", allow_zero: bool = False) -> str:
    """Validate an Ethereum address and return its EIP-55 checksum form.

    All-lower or all-upper hex is accepted; mixed case must carry a valid EIP-55
    checksum; the zero address is refused unless ``allow_zero``. Raises
    :class:`BadRequest` ``invalid_address``. Cached (pure function; errors are not).
    """
    if not isinstance(address, str) or not is_address(address):
        raise BadRequest(f"{field} is not a 20-byte hex address", code="invalid_address")
    body = address[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(address):
        raise BadRequest(f"{field} has a wrong EIP-55 checksum", code="invalid_address")
    if not allow_zero and int(body, 16) == 0:
        raise BadRequest(f"{field} is the zero address", code="invalid_address")
    return to_checksum_address(address)


def to_hex(value: bytes | str) -> str:
    """``0x``-prefixed lower-case hex of bytes (text is returned as it is)."""
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


def from_hex(text: str) -> bytes:
    """Bytes of hex text, with or without ``0x``. Raises ``ValueError`` on non-hex."""
    return bytes.fromhex(text[2:] if text.startswith(("0x", "0X")) else text)
