"""The EVM chain behind one interface: embedded py-evm (default) or any JSON-RPC node.

>>> chain = open_chain(Path("data"))                       # embedded, durable in data/chain
>>> chain = open_chain(Path("data"), url="http://127.0.0.1:8545", relayer_key="0x...")
>>> result = chain.send(contract.functions.grant(...))     # TxResult, or ChainRevert
>>> contract.events.Granted().process_receipt(result.receipt)
>>> outcomes = chain.send_many([fn1, fn2, fn3])            # one TxResult/ChainError each

Modules: ``abc`` (ChainBackend, TxResult), ``errors`` (ChainError tree, revert decoding),
``embedded`` (py-evm via eth-tester on SQLite, chain id 27560), ``jsonrpc`` (HTTP node),
``store`` (the SQLite key-value store under py-evm), ``rpc_server`` (the embedded chain
served over JSON-RPC, ``consentgate chain-node``, so several processes share it),
``anvil`` (start/stop anvil for tests and load tests), ``bench``
(``python -m chain_node.bench [--anvil] [--many N]``).
Transaction pipeline: ``nonces`` (NonceManager: the relayer's nonces under one lock),
``retry`` (Backoff/Retrier: exponential backoff with jitter on transient node errors),
``pipeline`` (replacement fee bumps, send-error classification, receipt formatting).

Errors: every backend method raises ChainError subclasses only — ChainRevert (decoded
custom error / ``Error(string)`` / ``Panic``; register error ABIs with
``register_errors``), ChainTimeout, ChainUnavailable. Use ``chain.call``/``chain.send``
rather than ``contract.functions.x().call()`` on ``chain.w3`` for that guarantee: raw web3
calls raise ChainRevert on the embedded chain but web3's ContractLogicError on JSON-RPC.
"""

from __future__ import annotations

from pathlib import Path

from .abc import ChainBackend, TxResult
from .errors import ChainError, ChainRevert, ChainTimeout, ChainUnavailable, decode_revert

__all__ = [
    "ChainBackend",
    "ChainError",
    "ChainRevert",
    "ChainTimeout",
    "ChainUnavailable",
    "TxResult",
    "decode_revert",
    "open_chain",
]


def open_chain(
    data_dir: Path, url: str = "", relayer_key: str = "", *, synchronous: str = "FULL"
) -> ChainBackend:
    """Open the configured chain.

    ``url`` empty: the embedded py-evm chain stored in ``data_dir/chain`` (created on first
    start; ``relayer_key`` optional, see :func:`chain_node.embedded.open_embedded`;
    ``synchronous`` is the SQLite durability level: ``"FULL"`` survives power loss,
    ``"NORMAL"`` survives process crashes and is several times faster per block on slow
    disks).
    ``url`` set: a JSON-RPC node over HTTP(S); ``relayer_key`` (0x-hex secp256k1 private
    key of a funded account) is required. Raises ChainUnavailable when the node cannot be
    reached, ChainError for a bad configuration.
    """
    if not url:
        from .embedded import open_embedded

        return open_embedded(Path(data_dir), relayer_key, synchronous)
    from .jsonrpc import open_jsonrpc

    return open_jsonrpc(url, relayer_key)
