"""Fixtures: every token test runs on both implementations (reference and compiled)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from fastpath.tokens import implementations

IMPLS = implementations()
# CI builds the extension; a missing compiled module must fail loudly, not skip.
if not os.environ.get("CONSENTGATE_NO_EXTENSIONS") and "compiled" not in IMPLS:
    raise RuntimeError("fastpath._tokens is not built: run `make install`")


@pytest.fixture(params=sorted(IMPLS))
def impl(request: pytest.FixtureRequest) -> Any:
    """An implementation module exposing ``Verifier`` and ``IMPLEMENTATION``."""
    return IMPLS[request.param]
