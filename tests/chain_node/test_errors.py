"""Revert decoding: every form a revert arrives in maps to the same ChainRevert."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from eth_abi import encode
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from chain_node import ChainError, ChainRevert, ChainUnavailable, decode_revert
from chain_node.errors import ErrorRegistry, revert_from_exception

ADDR = "0x00000000000000000000000000000000DeaDBeef"
ERRORS: list[dict[str, Any]] = [
    {
        "type": "error",
        "name": "ProbeRefused",
        "inputs": [{"name": "account", "type": "address"}, {"name": "amount", "type": "uint256"}],
    },
    {
        "type": "error",
        "name": "BatchRejected",
        "inputs": [
            {
                "name": "item",
                "type": "tuple",
                "components": [{"name": "id", "type": "bytes32"}, {"name": "n", "type": "uint8"}],
            },
            {"name": "signers", "type": "address[]"},
        ],
    },
    {"type": "function", "name": "notAnError", "inputs": []},
]
SEL = keccak(text="ProbeRefused(address,uint256)")[:4]
CUSTOM = SEL + encode(["address", "uint256"], [ADDR, 7])
STRING = bytes.fromhex("08c379a0") + encode(["string"], ["deadline passed"])
PANIC = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])


def test_decode_custom_error() -> None:
    assert decode_revert(CUSTOM, ERRORS) == ("ProbeRefused", (ADDR, 7), "0x" + SEL.hex())


def test_decode_tuple_and_array_arguments() -> None:
    sel = keccak(text="BatchRejected((bytes32,uint8),address[])")[:4]
    data = sel + encode(["(bytes32,uint8)", "address[]"], [(b"\x01" * 32, 3), [ADDR, ADDR]])
    name, args, selector = decode_revert(data, ErrorRegistry(ERRORS))
    assert (name, selector) == ("BatchRejected", "0x" + sel.hex())
    assert args == ((b"\x01" * 32, 3), (ADDR, ADDR))


def test_decode_builtin_errors() -> None:
    assert decode_revert(STRING) == ("Error", ("deadline passed",), "0x08c379a0")
    assert decode_revert(PANIC) == ("Panic", (0x11,), "0x4e487b71")


@pytest.mark.parametrize(
    ("data", "selector"),
    [
        (b"", None),
        (b"\x01\x02", None),
        (CUSTOM, "0x" + SEL.hex()),  # not registered (no ABI passed)
        (bytes.fromhex("08c379a0") + b"\x00" * 5, "0x08c379a0"),  # truncated payload
        (SEL + b"\xff" * 3, "0x" + SEL.hex()),  # registered selector, malformed payload
    ],
)
def test_decode_unknown_never_raises(data: bytes, selector: str | None) -> None:
    errors = ERRORS if data[:4] == SEL and len(data) < 36 else None
    assert decode_revert(data, errors) == ("Unknown", (), selector)


def test_chain_revert_shape() -> None:
    exc = ChainRevert.from_data(CUSTOM, ErrorRegistry(ERRORS))
    assert isinstance(exc, ChainError)
    assert exc.name == "ProbeRefused"
    assert exc.args == (ADDR, 7)
    assert exc.data == CUSTOM
    assert exc.code == "chain_revert"
    assert str(exc) == exc.message == f"ProbeRefused({ADDR}, 7)"
    assert str(ChainRevert("Error", ("x",))) == "Error('x')"
    assert str(ChainRevert("Unknown")) == "Unknown()"
    back = pickle.loads(pickle.dumps(exc))
    assert (back.name, back.args, back.selector, back.data) == (
        exc.name,
        exc.args,
        exc.selector,
        exc.data,
    )


def test_unavailable_is_a_connection_error() -> None:
    exc = ChainUnavailable("node down")
    assert isinstance(exc, ChainError) and isinstance(exc, ConnectionError)
    assert exc.code == "chain_unavailable"


# -- every form a revert arrives in ------------------------------------------------------


def _forms() -> list[tuple[str, BaseException, tuple[str, tuple[Any, ...]]]]:
    custom = ("ProbeRefused", (ADDR, 7))
    string = ("Error", ("deadline passed",))
    return [
        # eth-tester: custom errors come as a stringified bytes literal
        ("tester-custom", TransactionFailed(f"execution reverted: {CUSTOM!r}"), custom),
        ("tester-bytes-only", TransactionFailed(repr(CUSTOM)), custom),
        # eth-tester: Error(string) already decoded to its reason
        ("tester-string", TransactionFailed("execution reverted: deadline passed"), string),
        ("tester-panic", TransactionFailed(f"execution reverted: {PANIC!r}"), ("Panic", (17,))),
        # web3: .data carries the raw revert data as 0x hex
        ("web3-custom", ContractCustomError("0x" + SEL.hex(), data="0x" + CUSTOM.hex()), custom),
        ("web3-logic", ContractLogicError("execution reverted", data="0x" + STRING.hex()), string),
        ("web3-panic", ContractPanicError("overflow", data="0x" + PANIC.hex()), ("Panic", (17,))),
        # web3 without data: only the decoded reason is left
        ("web3-reason", ContractLogicError("execution reverted: deadline passed"), string),
        ("web3-empty", ContractLogicError("execution reverted", data="0x"), ("Unknown", ())),
    ]


@pytest.mark.parametrize(("form", "exc", "expected"), _forms(), ids=[f[0] for f in _forms()])
def test_revert_from_every_form(
    form: str, exc: BaseException, expected: tuple[str, tuple[Any, ...]]
) -> None:
    revert = revert_from_exception(exc, ErrorRegistry(ERRORS))
    assert revert is not None
    assert (revert.name, revert.args) == expected


def test_non_revert_exceptions_are_not_reverts() -> None:
    assert revert_from_exception(ValueError("nonce too low")) is None
    assert revert_from_exception(ConnectionError("refused")) is None
