"""The chain interface: one abstract backend, two implementations (embedded, jsonrpc).

Shape follows py-evm's ``abc.py``: the interface lives here, implementations beside it
(:mod:`chain_node.embedded`, :mod:`chain_node.jsonrpc`); :func:`chain_node.open_chain`
picks one by configuration. A single conformance suite
(``tests/chain_node/test_conformance.py``) runs against every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import web3
    from web3.contract.contract import ContractFunction

__all__ = ["ChainBackend", "TxResult"]


@dataclass(frozen=True)
class TxResult:
    """Outcome of a mined transaction.

    tx_hash: ``"0x"`` + 64 hex digits. block_number: the block that includes it.
    status: 1 success, 0 reverted (``send`` raises on 0, so callers see 1).
    gas_used: gas units. contract_address: checksum address for a deployment, else None.
    receipt: the web3 receipt (AttributeDict), e.g. for
    ``contract.events.X().process_receipt(result.receipt)``.
    """

    tx_hash: str
    block_number: int
    status: int
    gas_used: int
    contract_address: str | None
    receipt: Any


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
