"""Compiled hot paths (Cython), each with a pure-Python reference of the same API."""
