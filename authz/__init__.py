"""consentgate's consent and authorization service: FastAPI app, off-chain index, CLI."""
