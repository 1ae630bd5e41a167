"""Build hook for the compiled fast paths (Cython).

Metadata lives in pyproject.toml; this file only declares the extension modules, so
`pip install -e .` compiles them. Set CONSENTGATE_NO_EXTENSIONS=1 to skip the build (the
pure-Python references are then used).
"""

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def extensions() -> list:
    if os.environ.get("CONSENTGATE_NO_EXTENSIONS"):
        return []
    from fastpath_build import cython_extensions  # type: ignore[import-not-found]

    return cython_extensions()


setup(ext_modules=extensions())
