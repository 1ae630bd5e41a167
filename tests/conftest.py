"""Fixtures shared by every suite."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest's default "prepend" import mode puts tests/ first on sys.path, where the folder
# tests/chain_node (no __init__.py) would be taken for a namespace package and shadow the
# real chain_node package (installed editable, found after sys.path entries). Import the
# real package with tests/ out of the path; sys.modules then keeps it. (Dropping this needs
# `--import-mode=importlib` in the pytest options.)
_TESTS = str(Path(__file__).resolve().parent)
_saved_path = sys.path[:]
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _TESTS]
try:
    importlib.import_module("chain_node")
finally:
    sys.path[:] = _saved_path

from chain_node.anvil import AnvilProcess, anvil_available, start_anvil  # noqa: E402


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilProcess]:
    """One anvil node for the session (127.0.0.1, free port, chain id 31337); its first
    dev account key is ``anvil.relayer_key``. Always stopped at the end. Tests using it
    are marked ``@pytest.mark.anvil``."""
    if not anvil_available():
        pytest.fail("anvil binary missing: run `make npm` (contracts/node_modules/.bin/anvil)")
    node = start_anvil()
    try:
        yield node
    finally:
        node.stop()
