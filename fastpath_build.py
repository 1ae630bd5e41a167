"""Lists the Cython extension modules of `fastpath` (used by setup.py only)."""

from setuptools import Extension


def cython_extensions() -> list[Extension]:
    """Return the cythonized extension modules; empty until a compiled path exists."""
    modules: list[Extension] = []
    if not modules:
        return []
    from Cython.Build import cythonize

    return cythonize(modules, language_level=3, compiler_directives={"boundscheck": False})
