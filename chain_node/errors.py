"""Exceptions of the chain_node package and the decoder of EVM revert data.

Hierarchy (one root, builtin kinds inherited where they fit)::

    ChainError                      code "chain_error"
    ├── ChainRevert                 code "chain_revert"   a transaction or call reverted
    ├── ChainTimeout                code "chain_timeout"  sent, but no receipt in time
    │                               (also a TimeoutError)
    └── ChainUnavailable            code "chain_unavailable" (also a ConnectionError)

Revert data formats decoded by :func:`decode_revert`:

* ``Error(string)`` — selector ``0x08c379a0``, Solidity ``revert("...")`` / ``require``.
* ``Panic(uint256)`` — selector ``0x4e487b71``, Solidity >= 0.8 assertion/arith failures.
* custom errors — ``bytes4(keccak256("Name(type1,type2)"))`` followed by the ABI-encoded
  arguments (Solidity docs, "Errors and the Revert Statement"); decoded with the error ABI
  entries registered on the backend.
* anything else (empty data, unknown selector, malformed payload) — name ``"Unknown"``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import function_abi_to_4byte_selector, to_checksum_address

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
PANIC_SELECTOR = bytes.fromhex("4e487b71")

__all__ = [
    "ERROR_STRING_SELECTOR",
    "PANIC_SELECTOR",
    "ChainError",
    "ChainRevert",
    "ChainTimeout",
    "ChainUnavailable",
    "ErrorRegistry",
    "decode_revert",
    "revert_from_exception",
    "revert_from_rpc_error",
]


class ChainError(Exception):
    """Root of every error raised by chain_node. ``code`` is a stable machine-readable id."""

    code = "chain_error"


class ChainUnavailable(ChainError, ConnectionError):
    """The chain node cannot be reached (connection refused, timeout, closed backend).

    ``tx_hashes``: set by ``send_many`` — the transactions signed for that call (0x hex),
    which may or may not have reached the node; look them up before sending again.
    """

    code = "chain_unavailable"
    tx_hashes: tuple[str, ...] = ()


class ChainTimeout(ChainError, TimeoutError):
    """A transaction was sent but no receipt appeared in time; ``tx_hash`` says which.

    The transaction may still be mined later: look its receipt up before resending.
    """

    code = "chain_timeout"

    def __init__(self, message: str, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class ChainRevert(ChainError):
    """A transaction or call reverted.

    Attributes:
        name: custom error name, ``"Error"`` for a revert string, ``"Panic"`` for a
            Solidity panic, ``"Unknown"`` when the data cannot be decoded (or there is none,
            e.g. out of gas or an invalid opcode).
        args: decoded values, a tuple (addresses as checksum strings, uints as int,
            bytes as bytes, strings as str).
        selector: ``"0x"`` + 8 hex digits of the first four bytes of data, or None when the
            data is shorter than four bytes.
        data: the raw revert data (bytes, possibly empty).
        tx_hash: the reverted transaction's hash (0x hex) when it was mined, else None.

    ``str(exc)`` is ``"Name(arg1, arg2)"``.
    """

    code = "chain_revert"

    def __init__(
        self,
        name: str,
        args: tuple[Any, ...] = (),
        selector: str | None = None,
        data: bytes = b"",
        tx_hash: str | None = None,
    ) -> None:
        self.name = name
        self.selector = selector
        self.data = bytes(data)
        self.tx_hash = tx_hash
        # BaseException.args holds the decoded values, so ``exc.args`` is what callers want.
        super().__init__(*args)

    @property
    def message(self) -> str:
        """``"Name(arg1, arg2)"``; strings are quoted, bytes shown as 0x hex."""
        return f"{self.name}({', '.join(_fmt(a) for a in self.args)})"

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ChainRevert({self.message!r}, selector={self.selector!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ChainRevert, (self.name, self.args, self.selector, self.data, self.tx_hash))

    @classmethod
    def from_data(
        cls, data: bytes, errors: ErrorRegistry | Iterable[Mapping[str, Any]] | None = None
    ) -> ChainRevert:
        """Build from raw revert data, decoding it with ``errors`` (see decode_revert)."""
        name, args, selector = decode_revert(data, errors)
        return cls(name, args, selector, data)


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if not _is_address(value) else value
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _is_address(value: str) -> bool:
    return len(value) == 42 and value.startswith("0x") and value[2:].isalnum()


def _abi_type(param: Mapping[str, Any]) -> str:
    """Canonical ABI type string of one input, tuples expanded (Solidity ABI spec)."""
    typ: str = param["type"]
    if typ.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param.get("components", []))
        return f"({inner}){typ[5:]}"
    return typ


def _normalize(types: list[str], values: tuple[Any, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for typ, value in zip(types, values, strict=True):
        if typ == "address":
            out.append(to_checksum_address(value))
        elif typ == "address[]" and isinstance(value, tuple):
            out.append(tuple(to_checksum_address(v) for v in value))
        else:
            out.append(value)
    return tuple(out)


class ErrorRegistry:
    """Custom-error ABI entries by 4-byte selector. Thread-safe for readers after adds."""

    def __init__(self, abi: Iterable[Mapping[str, Any]] = ()) -> None:
        self._by_selector: dict[bytes, tuple[str, list[str]]] = {}
        self.add(abi)

    def add(self, abi: Iterable[Mapping[str, Any]]) -> None:
        """Register every ``{"type": "error"}`` entry of ``abi`` (others are ignored)."""
        for entry in abi:
            if entry.get("type") != "error":
                continue
            selector = bytes(function_abi_to_4byte_selector(dict(entry)))  # type: ignore[arg-type]
            types = [_abi_type(p) for p in entry.get("inputs", [])]
            self._by_selector[selector] = (entry["name"], types)

    def lookup(self, selector: bytes) -> tuple[str, list[str]] | None:
        """``(name, [abi types])`` for a selector, or None."""
        return self._by_selector.get(selector)

    def __len__(self) -> int:
        return len(self._by_selector)


def decode_revert(
    data: bytes, error_abis: ErrorRegistry | Iterable[Mapping[str, Any]] | None = None
) -> tuple[str, tuple[Any, ...], str | None]:
    """Decode EVM revert data into ``(name, args, selector)``.

    ``data`` is the raw return data of the reverted frame (bytes). ``error_abis`` is an
    :class:`ErrorRegistry` or an iterable of ABI entries (non-error entries are skipped).
    ``Error(string)`` gives ``("Error", (reason,), "0x08c379a0")``; ``Panic(uint256)``
    gives ``("Panic", (code,), "0x4e487b71")``; a registered custom error gives its name
    and decoded values (addresses checksummed); anything else gives
    ``("Unknown", (), selector-or-None)``. Never raises on malformed data.
    """
    data = bytes(data)
    if len(data) < 4:
        return "Unknown", (), None
    selector, payload = data[:4], data[4:]
    selector_hex = "0x" + selector.hex()
    registry = (
        error_abis if isinstance(error_abis, ErrorRegistry) else ErrorRegistry(error_abis or ())
    )
    if selector == ERROR_STRING_SELECTOR:
        name, types = "Error", ["string"]
    elif selector == PANIC_SELECTOR:
        name, types = "Panic", ["uint256"]
    else:
        found = registry.lookup(selector)
        if found is None:
            return "Unknown", (), selector_hex
        name, types = found
    try:
        values = _normalize(types, tuple(abi_decode(types, payload)))
    except (DecodingError, ValueError, TypeError, OverflowError):
        return "Unknown", (), selector_hex
    return name, values, selector_hex


_BYTES_REPR = re.compile(r"""(b'(?:[^'\\]|\\.)*'|b"(?:[^"\\]|\\.)*")""", re.S)
_HEX = re.compile(r"0x[0-9a-fA-F]*")


def _data_from_message(message: str) -> bytes | None:
    """Raw bytes from eth-tester's ``"execution reverted: b'...'"`` message, if present."""
    match = _BYTES_REPR.search(message)
    if match is None:
        return None
    try:
        value = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return None
    return bytes(value) if isinstance(value, bytes) else None


def revert_from_exception(
    exc: BaseException, errors: ErrorRegistry | None = None
) -> ChainRevert | None:
    """Map any known revert form to :class:`ChainRevert`, or return None if ``exc`` is not
    a revert.

    Forms handled:

    * :class:`ChainRevert` — returned as is.
    * web3 ``ContractLogicError`` / ``ContractCustomError`` / ``ContractPanicError`` with
      ``.data`` (0x hex of the revert data, or for some nodes None/"no data").
    * web3 ``Web3RPCError`` whose JSON-RPC error has ``data`` (geth/anvil
      ``"execution reverted"`` with code 3).
    * eth-tester ``TransactionFailed``: either ``"execution reverted: b'<raw>'"`` (custom
      errors, panics: the raw selector + data as a Python bytes literal) or
      ``"execution reverted: <reason>"`` (an ``Error(string)`` already decoded by
      eth-tester).
    """
    from web3.exceptions import ContractLogicError, Web3RPCError

    if isinstance(exc, ChainRevert):
        return exc
    if isinstance(exc, ContractLogicError):
        data = _hex_to_bytes(exc.data)
        if data:
            return ChainRevert.from_data(data, errors)
        reason = str(exc.message or "")
        return _from_reason(reason)
    if isinstance(exc, Web3RPCError):
        rpc = exc.rpc_response or {}
        err = rpc.get("error") if isinstance(rpc, dict) else None
        return revert_from_rpc_error(err, errors) if isinstance(err, dict) else None
    if type(exc).__name__ == "TransactionFailed":  # eth_tester.exceptions, imported lazily
        message = str(exc.args[0]) if exc.args else ""
        raw = _data_from_message(message)
        if raw is not None:
            return ChainRevert.from_data(raw, errors)
        return _from_reason(message)
    return None


def revert_from_rpc_error(
    error: Mapping[str, Any], errors: ErrorRegistry | None = None
) -> ChainRevert | None:
    """Map a JSON-RPC error object (``{"code", "message", "data"}``) to ChainRevert when
    it reports a revert (geth/anvil ``"execution reverted"``, code 3, revert data in
    ``data``), else return None."""
    if "revert" not in str(error.get("message", "")).lower():
        return None
    data = _hex_to_bytes(error.get("data"))
    if data:
        return ChainRevert.from_data(data, errors)
    return _from_reason(str(error.get("message", "")))


def _hex_to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str) and _HEX.fullmatch(value) and len(value) % 2 == 0:
        return bytes.fromhex(value[2:])
    if isinstance(value, dict):  # some nodes nest {"data": "0x..."}
        return _hex_to_bytes(value.get("data"))
    return b""


def _from_reason(message: str) -> ChainRevert:
    """A revert whose data was already decoded to a reason string by the provider."""
    prefix = "execution reverted"
    reason = message.strip()
    if reason.lower().startswith(prefix):
        reason = reason[len(prefix) :].lstrip(": ").strip()
    if not reason:
        return ChainRevert("Unknown")
    return ChainRevert("Error", (reason,), "0x" + ERROR_STRING_SELECTOR.hex())
