"""Lists the Cython extension modules of `fastpath` (used by setup.py only).

No system libraries are linked: libsodium is reached at run time through the function
pointers exported by the PyNaCl wheel's shared object (see fastpath/_tokens.pyx);
libsecp256k1 through coincurve's CFFI module and keccak through pycryptodome's
``Crypto.Hash._keccak`` (see fastpath/_eip712.pyx).
"""

from setuptools import Extension


def cython_extensions() -> list[Extension]:
    """Return the cythonized extension modules."""
    modules: list[Extension] = [
        Extension(
            "fastpath._tokens",
            ["fastpath/_tokens.pyx"],
            extra_compile_args=["-O3"],
        ),
        Extension(
            "fastpath._eip712",
            ["fastpath/_eip712.pyx"],
            extra_compile_args=["-O3"],
        ),
    ]
    from Cython.Build import cythonize

    return cythonize(
        modules,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False},
    )
