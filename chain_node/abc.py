"""The chain interface: one abstract backend, two implementations (embedded, jsonrpc).

Shape follows py-evm's ``abc.py``: the interface lives here, implementations beside it
(:mod:`chain_node.embedded`, :mod:`chain_node.jsonrpc`); :func:`chain_node.open_chain`
picks one by configuration. A single conformance suite
(``tests/chain_node/test_conformance.py``) runs against every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import web3
    from web3.contract.contract import ContractFunction

    from .errors import ChainError

__all__ = ["ChainBackend", "TxResult"]


@dataclass(frozen=True)
class TxResult:
    """Outcome of a mined transaction.

    tx_hash: ``"0x"`` + 64 hex digits. block_number: the block that includes it.
    status: 1 success, 0 reverted (``send`` raises on 0, so callers see 1).
    gas_used: gas units. contract_address: checksum address for a deployment, else None.
    receipt: the web3 receipt (AttributeDict), e.g. for
    ``contract.events.X().process_receipt(result.receipt)``.
    replaced: hashes of earlier transactions with the same nonce that this one replaced
    (``send_many`` fee bumps), oldest first; none of them is mined.
    """

    tx_hash: str
    block_number: int
    status: int
    gas_used: int
    contract_address: str | None
    receipt: Any
    replaced: tuple[str, ...] = ()


class ChainBackend(ABC):
    """An EVM chain reached through a relayer account that signs and pays for every tx.

    All methods are safe to call from several threads. Errors: every method raises
    :class:`chain_node.errors.ChainError` subclasses — ``ChainRevert`` for reverts,
    ``ChainUnavailable`` when the node cannot be reached.
    """

    kind: str
    """``"embedded"`` or ``"jsonrpc"``."""

    w3: web3.Web3
    """A synchronous Web3 bound to this chain (contract objects, event decoding, reads)."""

    @property
    @abstractmethod
    def chain_id(self) -> int:
        """EIP-155 chain id."""

    @property
    @abstractmethod
    def relayer(self) -> str:
        """Checksum address of the account that signs and pays for transactions."""

    @abstractmethod
    def block_number(self) -> int:
        """Number of the latest mined block."""

    @abstractmethod
    def deploy(
        self, abi: list[dict[str, Any]], bytecode: bytes, *args: Any, gas: int | None = None
    ) -> TxResult:
        """Deploy a contract (constructor ``args``); ``TxResult.contract_address`` is set.

        Raises ChainRevert if the constructor reverts.
        """

    @abstractmethod
    def send(self, fn: ContractFunction, *, gas: int | None = None) -> TxResult:
        """Send ``fn`` as a relayer transaction and wait until it is mined.

        Builds the EIP-1559 transaction, signs it locally with the relayer key
        (eth-account), sends the raw bytes and waits for the receipt. Nonces are assigned
        under a lock, so concurrent threads never collide. ``gas`` (units) skips the
        estimate. Raises ChainRevert (decoded with the registered errors) when the
        pre-flight estimate reverts or the receipt has status 0.
        """

    @abstractmethod
    def send_many(
        self,
        fns: Sequence[ContractFunction],
        *,
        gas: int | None = None,
        stuck_after_s: float | None = None,
        timeout_s: float | None = None,
    ) -> list[TxResult | ChainError]:
        """Send ``fns`` as relayer transactions with consecutive nonces; wait for all.

        Returns one outcome per function, in order: a :class:`TxResult` (mined, status 1),
        a ``ChainRevert`` (refused by the pre-flight estimate: not sent, no nonce used, or
        mined with status 0: ``tx_hash`` set), ``ChainTimeout`` (not mined within
        ``timeout_s`` seconds, default ``receipt_timeout_s``; ``tx_hash`` = the last one
        sent for that nonce) or another ``ChainError`` (refused by the node for good).
        One bad item never sinks the others.

        JSON-RPC: estimates, ``eth_sendRawTransaction`` and receipt polls each go as one
        HTTP batch (JSON-RPC 2.0 "Batch"); transient node errors are retried with
        backoff (:mod:`chain_node.retry`); a transaction not mined ``stuck_after_s``
        seconds (default ``stuck_after_s`` attribute) after it was sent is replaced by
        the same nonce with fees bumped >= 12.5 % (:mod:`chain_node.pipeline`).
        Embedded: all in one block (one commit), reverts decoded exactly.
        ``gas`` (units) for every item skips the estimates; estimates run against the
        latest block, each alone, so pass ``gas`` when items depend on earlier ones.

        Raises ChainUnavailable (``tx_hashes`` = the signed transactions, which may have
        reached the node) when the node stops answering; the nonce counter resyncs.
        """

    @abstractmethod
    def call(self, fn: ContractFunction, block: int | str = "latest") -> Any:
        """Run ``fn`` as an ``eth_call`` from the relayer at ``block``; return the decoded
        value(s). Raises ChainRevert."""

    @abstractmethod
    def register_errors(self, abi: list[dict[str, Any]]) -> None:
        """Add the ``{"type": "error"}`` entries of ``abi`` to the revert decoder."""

    @abstractmethod
    def time_travel(self, seconds: int) -> None:
        """Test helper: move chain time forward by ``seconds`` (>= 0) and mine a block, so
        the next blocks have ``block.timestamp`` >= previous + ``seconds``."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend (files, connections). Idempotent."""

    def __enter__(self) -> ChainBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
