"""Solidity sources, their pinned build, and the loader of the committed artifacts."""
