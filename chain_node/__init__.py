"""The EVM chain behind one interface: embedded py-evm (default) or any JSON-RPC node."""
