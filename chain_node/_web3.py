"""Behaviour shared by both backends: build, sign locally, send raw, wait, decode reverts.

Both backends talk to their chain through a ``web3.Web3`` (embedded: an in-process
eth-tester provider; jsonrpc: HTTP). They differ in how a receipt is awaited, how access
is serialized, and which exceptions mean "the node is gone"; those are the hooks below.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import TransactionNotFound

from .abc import ChainBackend, TxResult
from .errors import (
    ChainError,
    ChainRevert,
    ChainTimeout,
    ChainUnavailable,
    ErrorRegistry,
    revert_from_exception,
    revert_from_rpc_error,
)
from .nonces import NonceManager
from .pipeline import SendOutcome, bump_fees, classify_send_error, format_receipt
from .retry import Retrier, TransientRpcError, rpc_error_is_transient

if TYPE_CHECKING:
    from web3.contract.contract import ContractFunction

__all__ = ["Web3Backend", "tx_result"]

# Gas estimate headroom: 25 % over the estimate (state can change between the estimate
# and inclusion; a tx that runs out of gas costs more than the headroom does).
_GAS_HEADROOM_NUM, _GAS_HEADROOM_DEN = 5, 4
_FEE_TTL_S = 1.0
_MAYBE_OURS = (SendOutcome.ACCEPTED, SendOutcome.NONCE_LOW)
"""Send errors that, after a resend of the same bytes, may mean the first one got in."""


NONCE_ATTEMPTS = 5
"""Sends of one transaction with a fresh nonce each, while the node says the nonce is
taken (a nonce error on a first send means it was not accepted: re-signing is safe)."""


def tx_result(tx_hash: str, receipt: Any, replaced: Sequence[str] = ()) -> TxResult:
    """TxResult of a web3 receipt (``tx_hash`` as 0x hex)."""
    contract = receipt.get("contractAddress")
    return TxResult(
        tx_hash=tx_hash,
        block_number=int(receipt["blockNumber"]),
        status=int(receipt["status"]),
        gas_used=int(receipt["gasUsed"]),
        contract_address=Web3.to_checksum_address(contract) if contract else None,
        receipt=receipt,
        replaced=tuple(replaced),
    )


def _with_gas_headroom(estimate: int, block_gas_limit: int) -> int:
    """25 % over ``estimate``, but never above the block gas limit (refused by nodes)."""
    return max(estimate, min(estimate * _GAS_HEADROOM_NUM // _GAS_HEADROOM_DEN, block_gas_limit))


@dataclass
class _InFlight:
    """One nonce of a ``send_many`` call: the tx as last signed and every hash sent."""

    index: int
    tx: dict[str, Any]
    hashes: list[str] = field(default_factory=list)
    sent_at: float = 0.0


class Web3Backend(ChainBackend):
    """Implements ChainBackend on a web3 instance and a local relayer key."""

    receipt_timeout_s: float = 120.0
    """How long ``send`` waits for a receipt before raising ChainTimeout (seconds)."""

    stuck_after_s: float = 30.0
    """``send_many``: replace a tx with higher fees when unmined this long (seconds)."""

    batch_limit: int = 500
    """Most calls in one JSON-RPC batch (geth refuses more than 1000 by default)."""

    clock: Callable[[], float] = staticmethod(time.monotonic)
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(self, w3: Web3, relayer_key: str | bytes, chain_id: int) -> None:
        self.w3 = w3
        self._account: LocalAccount = Account.from_key(relayer_key)
        self._chain_id = chain_id
        self._errors = ErrorRegistry()
        self.nonces = NonceManager(
            lambda: self.w3.eth.get_transaction_count(self._account.address, "pending")
        )
        """The relayer's nonce counter (see :mod:`chain_node.nonces`)."""
        self._fee_lock = threading.Lock()
        self._fees_at = 0.0
        self._fees: dict[str, int] = {}
        self._block_gas_limit = 30_000_000  # refreshed with the fees
        self.retrier = Retrier()
        """Backoff for transient node errors in ``send_many`` (see chain_node.retry)."""

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
            gas = _with_gas_headroom(estimate, self._block_gas_limit)
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
        the next send resyncs from the node, and a nonce error is retried with a fresh
        nonce up to :data:`NONCE_ATTEMPTS` times in all: several processes sharing one
        relayer (API workers, the anchoring child) can take the same nonce again between
        a resync and the send. The send itself is retried on transient errors (same bytes
        each time, see :meth:`_send_raw`).
        """
        with self.nonces:
            for attempt in range(NONCE_ATTEMPTS):
                tx["nonce"] = self._guard(self.nonces.peek)
                signed = self._account.sign_transaction(tx)
                try:
                    sent = self._send_raw(signed)
                except Exception as exc:
                    self.nonces.resync()
                    if attempt < NONCE_ATTEMPTS - 1 and self._is_nonce_error(exc):
                        continue
                    raise self._map(exc) from exc
                self.nonces.advance(1)
                return "0x" + bytes(sent).hex()
        raise ChainError("unreachable: nonce retry loop exhausted")  # pragma: no cover

    def _send_raw(self, signed: Any) -> bytes:
        """``eth_sendRawTransaction`` of a signed tx, retried with :attr:`retrier` on
        transient errors (same bytes each time); returns the tx hash (32 bytes).

        After a resend, "already known" or "nonce too low" may mean that an earlier
        attempt got through and only its answer was lost: if the node knows this very
        hash, it counts as sent (re-signing with a new nonce would run the call twice).
        On the first attempt the same answers mean the nonce is taken by another sender
        and are raised (the caller resyncs and re-signs).
        """
        tries = 0

        def once() -> bytes:
            nonlocal tries
            tries += 1
            try:
                return bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction))
            except Exception as exc:
                if (
                    tries > 1
                    and classify_send_error(str(exc)) in _MAYBE_OURS
                    and self._known(["0x" + bytes(signed.hash).hex()]) == [True]
                ):
                    return bytes(signed.hash)
                raise

        return self.retrier.run(once)

    def _known(self, hashes: list[str]) -> list[bool]:
        """Whether the node knows each tx hash (pool or chain): one batch of
        ``eth_getTransactionByHash``."""
        responses = self._batch([("eth_getTransactionByHash", [h]) for h in hashes])
        return [bool(r.get("result")) for r in responses]

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

    # -- bulk pipeline (send_many) ---------------------------------------------------

    def send_many(
        self,
        fns: Sequence[ContractFunction],
        *,
        gas: int | None = None,
        stuck_after_s: float | None = None,
        timeout_s: float | None = None,
    ) -> list[TxResult | ChainError]:
        items: list[tuple[str | None, str]] = [
            (fn.address, fn._encode_transaction_data()) for fn in fns
        ]
        return self._send_many(
            items,
            gas,
            self.stuck_after_s if stuck_after_s is None else stuck_after_s,
            self.receipt_timeout_s if timeout_s is None else timeout_s,
        )

    def _rpc_batch(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """Raw JSON-RPC responses (``{"result"}`` or ``{"error"}``) of ``calls``, in order.

        Default: one request after another through the provider; the JSON-RPC backend
        sends one HTTP batch instead. Raises the transport's exceptions.
        """
        return [dict(self.w3.provider.make_request(m, p)) for m, p in calls]  # type: ignore[arg-type]

    def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """``_rpc_batch`` in chunks of ``batch_limit``, each retried on transient errors;
        raises ChainUnavailable once the retries are used up."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(calls), self.batch_limit):
            chunk = calls[start : start + self.batch_limit]
            out.extend(self._guard(lambda c=chunk: self.retrier.run(lambda: self._rpc_batch(c))))
        return out

    def _submit_raw(self, raws: list[str]) -> list[dict[str, Any]]:
        """``eth_sendRawTransaction`` of every 0x-hex raw tx in one batch; returns the raw
        responses in order.

        The whole batch (transport errors) or the items refused with a transient error
        are sent again, same bytes, with backoff. An item that was sent more than once
        and then answered "already known"/"nonce too low" is reported sent
        (``{"result": hash}``) when the node knows its hash, as in :meth:`_send_raw`.
        """
        responses: list[dict[str, Any]] = [{} for _ in raws]
        tries = [0] * len(raws)
        todo = list(range(len(raws)))

        def attempt() -> None:
            for k in todo:
                tries[k] += 1
            calls = [("eth_sendRawTransaction", [raws[k]]) for k in todo]
            got: list[dict[str, Any]] = []
            for start in range(0, len(calls), self.batch_limit):
                got.extend(self._rpc_batch(calls[start : start + self.batch_limit]))
            again, errors = [], []
            for k, resp in zip(list(todo), got, strict=True):
                err = resp.get("error")
                if isinstance(err, dict) and rpc_error_is_transient(err):
                    again.append(k)
                    errors.append(err)
                else:
                    responses[k] = resp
            todo[:] = again
            if again:
                raise TransientRpcError(errors[0])

        self._guard(lambda: self.retrier.run(attempt))
        resent = [
            k
            for k, resp in enumerate(responses)
            if tries[k] > 1
            and "error" in resp
            and classify_send_error(resp["error"]) in _MAYBE_OURS
        ]
        if resent:
            hashes = ["0x" + keccak(hexstr=raws[k]).hex() for k in resent]
            for k, tx_hash, ours in zip(resent, hashes, self._known(hashes), strict=True):
                if ours:
                    responses[k] = {"result": tx_hash}
        return responses

    def _relayer_tx(
        self, to: str | None, data: str, fees: dict[str, int], **fields: int
    ) -> dict[str, Any]:
        """An unsigned relayer tx calling ``to`` (None: a deployment) with ``data`` (0x
        hex), value 0, ``fees`` (type 2 when they are EIP-1559 fees) and ``fields``
        (``gas``, ``nonce``)."""
        tx: dict[str, Any] = {"data": data, "value": 0, "chainId": self._chain_id, **fees}
        tx.update(fields)
        if to is not None:
            tx["to"] = to
        if "maxFeePerGas" in fees:
            tx["type"] = 2
        return tx

    def _sign(self, tx: dict[str, Any]) -> tuple[str, str]:
        """``(raw 0x hex, tx hash 0x hex)`` of ``tx`` signed with the relayer key."""
        signed = self._account.sign_transaction(tx)
        return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()

    def _item_error(self, error: dict[str, Any]) -> ChainError:
        revert = revert_from_rpc_error(error, self._errors)
        if revert is not None:
            return revert
        return ChainError(f"node refused the transaction: {error.get('message', error)}")

    def _send_many(
        self,
        items: list[tuple[str | None, str]],
        gas: int | None,
        stuck_after_s: float,
        timeout_s: float,
    ) -> list[TxResult | ChainError]:
        results: list[TxResult | ChainError | None] = [None] * len(items)
        if not items:
            return []
        deadline = self.clock() + timeout_s
        fees = self._guard(self._current_fees)
        txs: list[dict[str, Any]] = []
        for to, data in items:
            txs.append(self._relayer_tx(to, data, fees))
        if gas is None:
            calls = [
                (
                    "eth_estimateGas",
                    [
                        {"from": self.relayer, "data": t["data"], "value": "0x0"}
                        | ({"to": t["to"]} if "to" in t else {})
                    ],
                )
                for t in txs
            ]
            for i, resp in enumerate(self._batch(calls)):
                if "error" in resp:
                    results[i] = self._item_error(resp["error"])
                else:
                    txs[i]["gas"] = _with_gas_headroom(
                        int(resp["result"], 16), self._block_gas_limit
                    )
        else:
            for t in txs:
                t["gas"] = gas
        flights: dict[int, _InFlight] = {}
        live = [i for i, r in enumerate(results) if r is None]
        self._submit_new(live, txs, results, flights, retry_nonce=True)
        self._await(flights, results, stuck_after_s, deadline)
        return [r if r is not None else ChainError("no outcome") for r in results]

    def _submit_new(
        self,
        live: list[int],
        txs: list[dict[str, Any]],
        results: list[TxResult | ChainError | None],
        flights: dict[int, _InFlight],
        *,
        retry_nonce: bool,
    ) -> None:
        """Sign ``txs[i]`` for ``i`` in ``live`` with consecutive nonces and send them in
        one batch, under the nonce lock. Accepted ones go to ``flights`` (by nonce)."""
        if not live:
            return
        with self.nonces:
            first = int(self._guard(self.nonces.peek))
            signed = []
            for k, i in enumerate(live):
                txs[i]["nonce"] = first + k
                signed.append(self._sign(txs[i]))
            try:
                responses = self._submit_raw([raw for raw, _ in signed])
            except ChainUnavailable as exc:
                self.nonces.resync()
                exc.tx_hashes = tuple(h for _, h in signed)
                raise
            now = self.clock()
            retry, failed_nonces, accepted_nonces = [], [], []
            for i, (_, tx_hash), resp in zip(live, signed, responses, strict=True):
                nonce = txs[i]["nonce"]
                if "result" in resp:
                    flights[nonce] = _InFlight(i, dict(txs[i]), [tx_hash], now)
                    accepted_nonces.append(nonce)
                elif retry_nonce and classify_send_error(resp.get("error") or {}) != (
                    SendOutcome.FAILED
                ):
                    # the nonce is taken by another sender (even "already known": the same
                    # bytes from elsewhere are not this call): re-sign with a fresh one
                    retry.append(i)
                else:
                    results[i] = self._item_error(resp.get("error") or {})
                    failed_nonces.append(nonce)
            if len(accepted_nonces) == len(live):
                self.nonces.advance(len(live))
                return
            self.nonces.resync()
            top = max(accepted_nonces, default=-1)
            for nonce in failed_nonces:
                if nonce < top:  # later nonces wait for this one: fill the gap
                    self._fill_gap(nonce, txs[live[0]])
            self._submit_new(retry, txs, results, flights, retry_nonce=False)

    def _fill_gap(self, nonce: int, like: dict[str, Any]) -> None:
        """Send a 0-value transfer to the relayer itself at ``nonce`` (21,000 gas, fees of
        ``like``), so the relayer's later transactions can be mined."""
        tx = {
            k: v
            for k, v in like.items()
            if k in ("chainId", "type", "maxFeePerGas", "maxPriorityFeePerGas", "gasPrice")
        }
        tx.update(to=self.relayer, value=0, data="0x", gas=21_000, nonce=nonce)
        self._submit_raw([self._sign(tx)[0]])

    def _await(
        self,
        flights: dict[int, _InFlight],
        results: list[TxResult | ChainError | None],
        stuck_after_s: float,
        deadline: float,
    ) -> None:
        """Poll the receipts of every hash in ``flights`` in one batch per round (every
        10 ms at first, x1.5 up to 500 ms), replacing stuck ones, until all are mined or
        ``deadline`` (clock seconds) passes."""
        try:
            self._poll(flights, results, stuck_after_s, deadline)
        except ChainUnavailable as exc:
            # what the node kept is unknown (a restarted node may have lost its pool): the
            # next send reads the pending count again
            self.nonces.resync()
            exc.tx_hashes = tuple(h for f in flights.values() for h in f.hashes)
            raise

    def _poll(self, flights: Any, results: Any, stuck_after_s: float, deadline: float) -> None:
        """The polling loop of :meth:`_await` (same arguments)."""
        delay = 0.01
        while flights:
            pairs = [(nonce, h) for nonce, f in flights.items() for h in f.hashes]
            responses = self._batch([("eth_getTransactionReceipt", [h]) for _, h in pairs])
            for (nonce, tx_hash), resp in zip(pairs, responses, strict=True):
                raw = resp.get("result")
                if raw and nonce in flights and raw.get("blockNumber") is not None:
                    self._finish(flights.pop(nonce), tx_hash, raw, results)
            if not flights:
                return
            now = self.clock()
            if now >= deadline:
                for f in flights.values():
                    results[f.index] = ChainTimeout(
                        f"no receipt for nonce {f.tx['nonce']} before the deadline", f.hashes[-1]
                    )
                return
            stuck = [f for f in flights.values() if now - f.sent_at >= stuck_after_s]
            if stuck:
                self._replace(stuck)
            self.sleep(min(delay, max(deadline - now, 0.0)))
            delay = min(delay * 1.5, 0.5)

    def _finish(
        self, flight: _InFlight, tx_hash: str, raw: dict[str, Any], results: list[Any]
    ) -> None:
        others = [h for h in flight.hashes if h != tx_hash]
        result = tx_result(tx_hash, format_receipt(raw), others)
        if result.status == 1:
            results[flight.index] = result
        else:
            results[flight.index] = self._replay_revert(flight.tx, result)

    def _replace(self, stuck: list[_InFlight]) -> None:
        """Re-sign each stuck tx with the same nonce and bumped fees; send in one batch."""
        current = self._guard(self._current_fees)
        bumped = [{**f.tx, **bump_fees(f.tx, current)} for f in stuck]
        signed = [self._sign(tx) for tx in bumped]
        responses = self._submit_raw([raw for raw, _ in signed])
        now = self.clock()
        for f, tx, (_, tx_hash), resp in zip(stuck, bumped, signed, responses, strict=True):
            f.sent_at = now
            outcome = (
                SendOutcome.ACCEPTED
                if "result" in resp
                else classify_send_error(resp.get("error") or {})
            )
            if outcome == SendOutcome.ACCEPTED:
                f.tx = tx
                f.hashes.append(tx_hash)
            elif outcome == SendOutcome.UNDERPRICED:
                f.tx = tx  # not enough for this node: the next round bumps from here
            # NONCE_LOW: one of f.hashes was mined meanwhile; the next poll finds it
