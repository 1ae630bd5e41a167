"""Behaviour shared by both backends: build, sign locally, send raw, wait, decode reverts.

Both backends talk to their chain through a ``web3.Web3`` (embedded: an in-process
eth-tester provider; jsonrpc: HTTP). They differ in how a receipt is awaited, how access
is serialized, and which exceptions mean "the node is gone"; those are the hooks below.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import TransactionNotFound

from .abc import ChainBackend, TxResult
from .errors import (
    ChainError,
    ChainRevert,
    ChainTimeout,
    ErrorRegistry,
    revert_from_exception,
)

if TYPE_CHECKING:
    from web3.contract.contract import ContractFunction

__all__ = ["Web3Backend", "tx_result"]

# Gas estimate headroom: 25 % over the estimate (state can change between the estimate
# and inclusion; a tx that runs out of gas costs more than the headroom does).
_GAS_HEADROOM_NUM, _GAS_HEADROOM_DEN = 5, 4
_FEE_TTL_S = 1.0


def tx_result(tx_hash: str, receipt: Any) -> TxResult:
    """TxResult of a web3 receipt (``tx_hash`` as 0x hex)."""
    contract = receipt.get("contractAddress")
    return TxResult(
        tx_hash=tx_hash,
        block_number=int(receipt["blockNumber"]),
        status=int(receipt["status"]),
        gas_used=int(receipt["gasUsed"]),
        contract_address=Web3.to_checksum_address(contract) if contract else None,
        receipt=receipt,
    )


class Web3Backend(ChainBackend):
    """Implements ChainBackend on a web3 instance and a local relayer key."""

    receipt_timeout_s: float = 120.0
    """How long ``send`` waits for a receipt before raising ChainTimeout (seconds)."""

    def __init__(self, w3: Web3, relayer_key: str | bytes, chain_id: int) -> None:
        self.w3 = w3
        self._account: LocalAccount = Account.from_key(relayer_key)
        self._chain_id = chain_id
        self._errors = ErrorRegistry()
        self._nonce_lock = threading.RLock()
        self._next_nonce: int | None = None
        self._fee_lock = threading.Lock()
        self._fees_at = 0.0
        self._fees: dict[str, int] = {}
        self._block_gas_limit = 30_000_000  # refreshed with the fees

    # -- identity --------------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        return self._chain_id

    @property
    def relayer(self) -> str:
        return str(self._account.address)

    def block_number(self) -> int:
        return int(self._guard(lambda: self.w3.eth.block_number))

    def register_errors(self, abi: list[dict[str, Any]]) -> None:
        self._errors.add(abi)

    # -- hooks -----------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> ChainError | None:
        """Return a ChainUnavailable for exceptions meaning the node is unreachable."""
        return None

    def _wait_receipt(self, tx_hash: str) -> Any:
        """Poll ``eth_getTransactionReceipt`` until it exists: every 10 ms at first, backing
        off x1.5 up to 500 ms (an auto-mining dev node answers within the first polls; a
        chain with 2-15 s blocks is not hammered). Raises ChainTimeout after
        ``self.receipt_timeout_s`` seconds."""
        deadline = time.monotonic() + self.receipt_timeout_s
        delay = 0.01
        while True:
            try:
                return self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
            except TransactionNotFound:
                pass
            if time.monotonic() >= deadline:
                raise ChainTimeout(
                    f"no receipt for {tx_hash} after {self.receipt_timeout_s:g} s", tx_hash
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _is_nonce_error(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return "nonce" in text

    # -- error mapping ---------------------------------------------------------------

    def _map(self, exc: BaseException) -> ChainError:
        revert = revert_from_exception(exc, self._errors)
        if revert is not None:
            return revert
        unavailable = self._unavailable(exc)
        if unavailable is not None:
            return unavailable
        if isinstance(exc, ChainError):
            return exc
        return ChainError(f"{type(exc).__name__}: {exc}")

    def _check_open(self) -> None:
        """Raise ChainUnavailable once the backend is closed (or otherwise stopped)."""

    def _guard(self, thunk: Any) -> Any:
        self._check_open()
        try:
            return thunk()
        except ChainError:
            raise
        except Exception as exc:
            raise self._map(exc) from exc

    # -- reads -----------------------------------------------------------------------

    def call(self, fn: ContractFunction, block: int | str = "latest") -> Any:
        relayer = self.relayer
        return self._guard(lambda: fn.call({"from": relayer}, block_identifier=block))  # type: ignore[arg-type]

    # -- writes ----------------------------------------------------------------------

    def deploy(
        self, abi: list[dict[str, Any]], bytecode: bytes, *args: Any, gas: int | None = None
    ) -> TxResult:
        self.register_errors(abi)
        ctor = self.w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args)
        return self._transact(None, ctor.data_in_transaction, gas)

    def send(self, fn: ContractFunction, *, gas: int | None = None) -> TxResult:
        return self._transact(fn.address, fn._encode_transaction_data(), gas)

    def _current_fees(self) -> dict[str, int]:
        """Fee fields for the next transaction, in wei; cached for one second.

        EIP-1559 chains (the latest block has ``baseFeePerGas``): ``maxPriorityFeePerGas``
        from ``eth_maxPriorityFeePerGas`` and ``maxFeePerGas = 2 x base fee + tip``, so the
        tx stays valid through several full blocks of base-fee growth (EIP-1559,
        "Specification"). Chains without a base fee (pre-London forks, some consortium
        networks): a legacy ``gasPrice`` from ``eth_gasPrice``.
        """
        with self._fee_lock:
            now = time.monotonic()
            if now - self._fees_at > _FEE_TTL_S:
                latest = self.w3.eth.get_block("latest")
                self._block_gas_limit = int(latest["gasLimit"])
                base = latest.get("baseFeePerGas")
                if base is None:
                    self._fees = {"gasPrice": int(self.w3.eth.gas_price)}
                else:
                    tip = int(self.w3.eth.max_priority_fee)
                    self._fees = {
                        "maxFeePerGas": 2 * int(base) + tip,
                        "maxPriorityFeePerGas": tip,
                    }
                self._fees_at = now
            return dict(self._fees)

    def _transact(self, to: str | None, data: str, gas: int | None) -> TxResult:
        tx: dict[str, Any] = {"from": self.relayer, "data": data, "value": 0}
        if to is not None:
            tx["to"] = to
        fees = self._guard(self._current_fees)
        if gas is None:
            estimate = int(self._guard(lambda: self.w3.eth.estimate_gas(tx)))  # type: ignore[arg-type]
            # headroom, but never above the block gas limit (the node would refuse the tx)
            gas = max(
                estimate,
                min(estimate * _GAS_HEADROOM_NUM // _GAS_HEADROOM_DEN, self._block_gas_limit),
            )
        tx.update(fees, gas=gas, chainId=self._chain_id)
        if "maxFeePerGas" in fees:
            tx["type"] = 2
        del tx["from"]
        tx_hash = self._sign_and_send(tx)
        result = tx_result(tx_hash, self._guard(lambda: self._wait_receipt(tx_hash)))
        if result.status != 1:
            raise self._replay_revert(tx, result)
        return result

    def _sign_and_send(self, tx: dict[str, Any]) -> str:
        """Assign the next relayer nonce, sign locally, send raw; return the 0x tx hash.

        The nonce is read once from ``eth_getTransactionCount(relayer, "pending")`` and
        then incremented locally under a lock; any send failure drops the cached nonce so
        the next send resyncs from the node, and a nonce error is retried once.
        """
        with self._nonce_lock:
            for attempt in (0, 1):
                if self._next_nonce is None:
                    self._next_nonce = int(
                        self._guard(
                            lambda: self.w3.eth.get_transaction_count(
                                self._account.address, "pending"
                            )
                        )
                    )
                tx["nonce"] = self._next_nonce
                signed = self._account.sign_transaction(tx)
                try:
                    sent = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except Exception as exc:
                    self._next_nonce = None
                    if attempt == 0 and self._is_nonce_error(exc):
                        continue
                    raise self._map(exc) from exc
                self._next_nonce += 1
                return "0x" + bytes(sent).hex()
        raise ChainError("unreachable: nonce retry loop exhausted")  # pragma: no cover

    def _replay_revert(self, tx: dict[str, Any], result: TxResult) -> ChainRevert:
        """Decode why a mined tx reverted by replaying it as a call on its parent block
        (exact when the tx was alone in its block, as with auto-mining nodes)."""
        call_tx = {k: v for k, v in tx.items() if k in ("to", "data", "value", "gas")}
        call_tx["from"] = self.relayer
        revert: ChainRevert
        try:
            self.w3.eth.call(call_tx, block_identifier=max(result.block_number - 1, 0))  # type: ignore[arg-type]
        except Exception as exc:
            mapped = self._map(exc)
            revert = mapped if isinstance(mapped, ChainRevert) else ChainRevert("Unknown")
        else:
            revert = ChainRevert("Unknown")
        revert.tx_hash = result.tx_hash
        return revert
