"""Compile the Solidity sources into the committed artifacts (``python -m contracts.build``).

The build is pinned and deterministic: solc-js and OpenZeppelin come from ``contracts/package.json``
and its lock file (``make npm``), the settings below are fixed, and each artifact is written as
sorted-key JSON with a two-space indent, so rebuilding unchanged sources gives byte-identical files
(``tests/contracts/test_artifacts.py`` rebuilds into a temporary folder and compares).

Needs ``node`` on PATH and ``contracts/node_modules``; the Python package itself never does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contracts.artifacts import ARTIFACTS_DIR, BuildError

CONTRACTS_DIR = Path(__file__).resolve().parent
SRC_DIR = CONTRACTS_DIR / "src"
BUILD_JS = CONTRACTS_DIR / "build.js"
NODE_MODULES = CONTRACTS_DIR / "node_modules"

#: solc settings recorded in every artifact. ``evmVersion`` is explicit so the output does not
#: follow the compiler's default; cancun runs on py-evm's Prague VM and on anvil. ``viaIR``:
#: the legacy pipeline runs out of stack on the eleven-field ConsentGranted event. ``runs``:
#: tuned for execution, not deployment: a grant runs ~2,630 EVM instructions at 1,000,000 runs
#: against ~2,980 at 200 (-12%; py-evm time is proportional to instructions, not gas), for a
#: runtime of 14.8 kB instead of 10.3 kB (limit 24 kB, EIP-170).
SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 1_000_000},
    "viaIR": True,
    "metadata": {"bytecodeHash": "ipfs"},
}

_OUTPUT_SELECTION = {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}}


def source_files(src_dir: Path = SRC_DIR) -> list[Path]:
    """Every ``.sol`` file under ``src_dir``, sorted by POSIX path relative to ``contracts/``."""
    return sorted(src_dir.rglob("*.sol"), key=lambda p: p.relative_to(src_dir.parent).as_posix())


def source_hash(src_dir: Path = SRC_DIR) -> str:
    """SHA-256 (hex, no prefix) over the project's Solidity sources.

    For each file of :func:`source_files`, in order, the hash takes
    ``<path relative to contracts/>\\0<length in bytes>\\0<file bytes>``. OpenZeppelin sources are
    not included: their version is pinned by the npm lock file.
    """
    digest = hashlib.sha256()
    for path in source_files(src_dir):
        data = path.read_bytes()
        rel = path.relative_to(src_dir.parent).as_posix()
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _standard_input(src_dir: Path) -> dict[str, Any]:
    sources = {
        path.relative_to(src_dir.parent).as_posix(): {"content": path.read_text(encoding="utf-8")}
        for path in source_files(src_dir)
    }
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {**SETTINGS, "outputSelection": _OUTPUT_SELECTION},
    }


def compile_sources(src_dir: Path = SRC_DIR) -> tuple[str, dict[str, Any]]:
    """Run solc-js on the sources; return ``(compiler version, standard-JSON output)``.

    Raises:
        BuildError: node or ``node_modules`` is missing, or solc reports an error or a warning
            in a project source (warnings in the pinned library are ignored).
    """
    node = shutil.which("node")
    if node is None:
        raise BuildError("node is not on PATH; install Node.js to rebuild the contracts")
    if not (NODE_MODULES / "solc").is_dir():
        raise BuildError(f"{NODE_MODULES} has no solc; run `make npm` first")
    proc = subprocess.run(
        [node, str(BUILD_JS)],
        input=json.dumps(_standard_input(src_dir)),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BuildError(f"solc-js failed ({proc.returncode}): {proc.stderr.strip()}")
    result = json.loads(proc.stdout)
    output: dict[str, Any] = result["output"]
    problems = [
        e["formattedMessage"]
        for e in output.get("errors", [])
        if e["severity"] == "error"
        or (e["severity"] == "warning" and not _is_library(e.get("sourceLocation", {})))
    ]
    if problems:
        raise BuildError("solc reported:\n" + "\n".join(problems))
    return str(result["version"]), output


def _is_library(location: dict[str, Any]) -> bool:
    return str(location.get("file", "")).startswith("@")


def artifacts(src_dir: Path = SRC_DIR) -> dict[str, dict[str, Any]]:
    """Compile and return one artifact per deployable project contract, keyed by contract name.

    Deployable means: defined under ``src/`` and with non-empty creation bytecode (interfaces and
    abstract contracts have none). Each artifact has the keys ``contractName``, ``abi``,
    ``bytecode`` and ``deployedBytecode`` (``0x`` hex), ``compiler`` (``version``, ``settings``)
    and ``sourceHash`` (:func:`source_hash`).
    """
    version, output = compile_sources(src_dir)
    digest = source_hash(src_dir)
    result: dict[str, dict[str, Any]] = {}
    for file_name, contracts in sorted(output["contracts"].items()):
        if not file_name.startswith("src/"):
            continue
        for name, compiled in sorted(contracts.items()):
            bytecode = compiled["evm"]["bytecode"]["object"]
            if not bytecode:
                continue
            if name in result:
                raise BuildError(f"two deployable contracts named {name}")
            result[name] = {
                "contractName": name,
                "abi": compiled["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
                "compiler": {"version": version, "settings": SETTINGS},
                "sourceHash": digest,
            }
    return result


def render(artifact: dict[str, Any]) -> str:
    """The artifact's file text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(artifact, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def build(out_dir: Path = ARTIFACTS_DIR, src_dir: Path = SRC_DIR) -> list[Path]:
    """Write ``<out_dir>/<ContractName>.json`` for each deployable contract; return the paths.

    JSON files in ``out_dir`` that no longer match a contract are removed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in artifacts(src_dir).items():
        path = out_dir / f"{name}.json"
        path.write_text(render(artifact), encoding="utf-8")
        written.append(path)
    for stale in set(out_dir.glob("*.json")) - set(written):
        stale.unlink()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: ``python -m contracts.build [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m contracts.build", description=__doc__)
    parser.add_argument("--out", type=Path, default=ARTIFACTS_DIR, help="artifact folder")
    args = parser.parse_args(argv)
    try:
        paths = build(args.out)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
