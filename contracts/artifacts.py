"""Loader of the committed contract artifacts (package data under ``contracts/artifacts``).

Artifacts are produced by :mod:`contracts.build`; reading them needs no Node. The chain layer
decodes custom-error reverts with :func:`error_abis` / :func:`decode_error`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_typing import ABIError
from eth_utils import (
    abi_to_signature,
    function_signature_to_4byte_selector,
    get_abi_input_types,
    to_checksum_address,
)

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


class ContractsError(Exception):
    """Root of every error raised by the :mod:`contracts` package."""

    code = "contracts_error"


class ArtifactNotFoundError(ContractsError, LookupError):
    """No committed artifact has the requested contract name."""

    code = "artifact_not_found"


class ArtifactInvalidError(ContractsError, ValueError):
    """An artifact file is missing a key or holds a malformed value."""

    code = "artifact_invalid"


class BuildError(ContractsError, RuntimeError):
    """Compiling the Solidity sources failed (no node, no node_modules, or solc diagnostics)."""

    code = "contracts_build_failed"


@dataclass(frozen=True, slots=True)
class Artifact:
    """One deployable contract as compiled.

    Attributes:
        name: Contract name, e.g. ``"ConsentRegistry"``.
        abi: The ABI (list of JSON ABI entries).
        bytecode: Creation code (bytes; append ABI-encoded constructor arguments to deploy).
        deployed_bytecode: Runtime code as it sits at the contract address.
        compiler_version: solc version string, e.g. ``"0.8.30+commit.73712a01.Emscripten.clang"``.
        source_hash: SHA-256 hex of the project sources (see :func:`contracts.build.source_hash`).
    """

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler_version: str
    source_hash: str


@dataclass(frozen=True, slots=True)
class DecodedError:
    """A custom-error revert decoded against the artifacts' ABIs.

    Attributes:
        name: Error name, e.g. ``"ConsentDeadlinePassed"``.
        signature: Canonical signature, e.g. ``"ConsentDeadlinePassed(uint256,uint256)"``.
        args: Argument values by ABI parameter name (addresses as checksummed str, bytes32 as
            bytes, integers as int).
    """

    name: str
    signature: str
    args: dict[str, Any]


def artifact_names() -> list[str]:
    """Names of every committed artifact, sorted."""
    folder = resources.files(__package__) / "artifacts"
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    )


def _hex_bytes(value: Any, key: str, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ArtifactInvalidError(f"{name}: {key} is not 0x-prefixed hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise ArtifactInvalidError(f"{name}: {key} is not hex") from exc


@cache
def load_artifact(name: str) -> Artifact:
    """Load the committed artifact ``contracts/artifacts/<name>.json`` (cached per name).

    Raises:
        ArtifactNotFoundError: no artifact with that name.
        ArtifactInvalidError: the file is not a well-formed artifact.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ArtifactNotFoundError(f"no artifact named {name!r}")
    entry = resources.files(__package__) / "artifacts" / f"{name}.json"
    if not entry.is_file():
        raise ArtifactNotFoundError(f"no artifact named {name!r}; known: {artifact_names()}")
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
        abi = data["abi"]
        compiler_version = data["compiler"]["version"]
        source_hash = data["sourceHash"]
        bytecode = _hex_bytes(data["bytecode"], "bytecode", name)
        deployed = _hex_bytes(data["deployedBytecode"], "deployedBytecode", name)
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, ArtifactInvalidError):
            raise
        raise ArtifactInvalidError(f"{name}: malformed artifact ({exc!r})") from exc
    if data.get("contractName") != name or not isinstance(abi, list) or not bytecode:
        raise ArtifactInvalidError(f"{name}: contractName, abi or bytecode does not fit")
    return Artifact(
        name=name,
        abi=abi,
        bytecode=bytecode,
        deployed_bytecode=deployed,
        compiler_version=str(compiler_version),
        source_hash=str(source_hash),
    )


@cache
def _error_table() -> dict[bytes, tuple[ABIError, ...]]:
    """4-byte selector -> the distinct error ABIs with it, across all artifacts."""
    table: dict[bytes, dict[str, ABIError]] = {}
    for name in artifact_names():
        for raw in load_artifact(name).abi:
            if raw.get("type") != "error":
                continue
            entry = cast(ABIError, raw)
            signature = abi_to_signature(entry)
            selector = function_signature_to_4byte_selector(signature)
            table.setdefault(selector, {}).setdefault(signature, entry)
    return {selector: tuple(by_sig.values()) for selector, by_sig in table.items()}


def error_abis() -> list[dict[str, Any]]:
    """Every ``type == "error"`` ABI entry across all artifacts, one per signature.

    Returns fresh copies; callers may modify them.
    """
    return [
        cast(dict[str, Any], copy.deepcopy(entry))
        for entries in _error_table().values()
        for entry in entries
    ]


def decode_error(data: bytes) -> DecodedError | None:
    """Decode revert data (4-byte selector + ABI-encoded arguments) as one of the custom errors.

    Returns None if the selector is unknown or the arguments do not decode (for example a plain
    ``Error(string)`` or ``Panic(uint256)`` revert, or truncated data).
    """
    if len(data) < 4:
        return None
    for entry in _error_table().get(bytes(data[:4]), ()):
        types = get_abi_input_types(entry)
        try:
            values = abi_decode(types, bytes(data[4:]), strict=True)
        except (DecodingError, ValueError, OverflowError):
            continue
        names = [param.get("name") or f"arg{i}" for i, param in enumerate(entry.get("inputs", []))]
        return DecodedError(
            name=entry["name"],
            signature=abi_to_signature(entry),
            args=dict(zip(names, _normalize(values, types), strict=True)),
        )
    return None


def _normalize(values: tuple[Any, ...], types: list[str]) -> list[Any]:
    return [
        to_checksum_address(v) if t == "address" else v for v, t in zip(values, types, strict=True)
    ]
