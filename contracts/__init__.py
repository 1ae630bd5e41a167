"""Solidity sources, their pinned build, and the loader of the committed artifacts."""

from contracts.artifacts import (
    Artifact,
    ArtifactInvalidError,
    ArtifactNotFoundError,
    BuildError,
    ContractsError,
    artifact_names,
    error_abis,
    load_artifact,
)

__all__ = [
    "Artifact",
    "ArtifactInvalidError",
    "ArtifactNotFoundError",
    "BuildError",
    "ContractsError",
    "artifact_names",
    "error_abis",
    "load_artifact",
]
