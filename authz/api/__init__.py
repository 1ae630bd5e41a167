"""HTTP layer: thin FastAPI handlers over the domain modules of :mod:`authz`."""
