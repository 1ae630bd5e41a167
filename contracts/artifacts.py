"""Loader of the committed contract artifacts (package data under ``contracts/artifacts``).

Artifacts are produced by :mod:`contracts.build`; reading them needs no Node. The chain layer
decodes custom-error reverts with :func:`error_abis` (``chain_node.errors.ErrorRegistry``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

from eth_typing import ABIError
from eth_utils import abi_to_signature

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
def _errors() -> tuple[dict[str, Any], ...]:
    """The distinct error ABI entries across all artifacts, by canonical signature."""
    by_signature: dict[str, dict[str, Any]] = {}
    for name in artifact_names():
        for entry in load_artifact(name).abi:
            if entry.get("type") == "error":
                by_signature.setdefault(abi_to_signature(cast(ABIError, entry)), entry)
    return tuple(by_signature.values())


def error_abis() -> list[dict[str, Any]]:
    """Every ``type == "error"`` ABI entry across all artifacts, one per signature.

    Returns fresh copies; callers may modify them. Feed them to
    ``chain_node.errors.ErrorRegistry`` to decode custom-error reverts.
    """
    return [copy.deepcopy(entry) for entry in _errors()]
