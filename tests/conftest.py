"""Fixtures shared by every suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chain_node.anvil import AnvilProcess, anvil_available, start_anvil


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
