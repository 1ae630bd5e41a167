"""Embedded chain: py-evm through eth-tester, in process, durable in ``data_dir/chain/``.

Layout of ``data_dir/chain/``::

    chain.sqlite (+ -wal, -shm)   py-evm's key-value database (chain_node.store.SqliteKV)
    relayer.key                   0x-hex secp256k1 key of the relayer (mode 0600)
    LOCK                          flock held while a process has the chain open

Chain id: :data:`CHAIN_ID` = 27560 (after ISO/IEC TS 27560, the consent-record standard;
not a public network's id). Fork: Prague from genesis, post-merge (no PoW), gas limit
constant at 30,029,122 per block. Genesis funds the relayer with 10^9 ether.

Durability: every transaction is auto-mined into its own block; after each block the
buffered database writes go to SQLite in one transaction (WAL, synchronous=FULL), and only
then does ``send_raw_transaction`` return — so an acknowledged transaction survives
SIGKILL and power loss, and a block is on disk entirely or not at all. On start the chain
opens from the stored canonical head (same block hashes, state, nonces) instead of
genesis.

Visibility: the commit happens inside the chain lock, before any reader can take it, so
no reader (``eth_getLogs`` for the index, ``eth_blockNumber``, receipts) ever sees a block
that is not yet on disk — an index projected from chain events cannot get ahead of what
a crash would leave. (That is why there is no group commit: sealing blocks under the lock
and fsyncing several of them outside it would overlap the fsync with execution, but
readers could then see blocks that a crash erases.)

Time: eth-tester stamps the pending block when the *previous* block is mined, so an idle
chain would produce blocks dated in the past. This backend re-stamps the pending block
with ``max(wall clock + offset, parent)`` right before the first transaction enters it
(and before mining), so ``block.timestamp`` follows wall-clock time; blocks may share a
second (see :class:`SameSecondPragueVM`). ``time_travel`` adds to the persistent offset
(stored with the blocks).

Threads: py-evm is not thread-safe; one re-entrant lock serializes every request through
``w3`` and every backend method, so ``w3`` may be shared across threads.

Sending (``send``/``deploy`` without explicit gas): one EVM run. The tx is signed with
the gas still free in the block (capped at :data:`TX_GAS_CAP`) and applied to the
pending block; a failure rolls the pending block back (nothing mined, nonce unused) and
raises ChainRevert with the exact revert data; a success is mined and committed. With
explicit gas the tx goes through eth-tester like any raw tx and is mined even if it fails.

Bulk (``send_many``): the items are applied to the pending block one after another and
mined as one block, so N transactions cost one commit (one fsync) instead of N; an item
that fails without explicit gas is taken out of the block again (nothing sent, nonce
unused). py-evm's own ``MiningChain.apply_transaction`` rebuilds the block's tries per
transaction (quadratic: 100 txs took 18 s); :meth:`EmbeddedChain._fill_block` builds them
once, and the receipts of the last block read are kept decoded (one decode per block).
Measured (``python -m chain_node.bench --many 100``, FULL, load average 3.3-4.2, four
runs): 190-330 tx/s in calls of 100 against 70-110 tx/s for ``send`` one at a time
(x2.4-3.2); ~240 tx/s in calls of 1000 (tries and bloom grow with the block). Per tx:
3.1 ms in a send_many of 50 vs 7.7 ms per send and 4.3 ms for py-evm alone mining one
pre-signed tx per block.

Measured with ``python -m chain_node.bench`` on the shared 2-core dev box (Python 3.11,
py-evm 0.12.1b1) while other jobs kept the load average at 5-7, so ranges:

* one block commit to SQLite: 5.5-6.6 ms with synchronous=FULL (one WAL fsync; the disk
  dominates), 0.27-0.6 ms with NORMAL;
* ``send`` of ``Probe.increment()``, one at a time: ~46 tx/s with FULL, ~60 tx/s with
  NORMAL, against 85 tx/s for py-evm alone applying and mining pre-signed txs in memory
  (ratio 0.55 / 0.71). The first version (eth-tester's binary-search estimate, then the
  send) did 25-30 / 50-72 tx/s;
* ``eth_getLogs`` over 1000 blocks that all match: 1.45 s (eth-tester's own: 4.7 s), see
  :class:`_FastLogsTester`; a receipt lookup: ~2 ms at any depth (eth-tester scans);
* start (open) with 1000 blocks on disk: 2-12 ms (the head is read, nothing replayed);
  first send after the open 16-80 ms. Data dir: ~2.9 MB per 1000 blocks.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.chain import ChainDB
from eth.exceptions import CanonicalHeadNotFound, OutOfGas
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth.vm.forks import PragueVM
from eth.vm.spoof import SpoofTransaction
from eth_account import Account
from eth_bloom import BloomFilter
from eth_tester import EthereumTester
from eth_tester.backends.pyevm.main import (
    BLANK_ROOT_HASH,
    PyEVMBackend,
    _get_vm_for_block_number,
    get_default_genesis_params,
)
from eth_tester.backends.pyevm.serializers import (
    serialize_log,
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionFailed, TransactionNotFound
from eth_tester.utils.filters import Filter, check_if_log_matches
from eth_typing import Address, BlockNumber, Hash32, HexStr
from eth_utils import to_wei
from eth_utils.toolz import assoc
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.eth_tester.defaults import API_ENDPOINTS, static_return

from ._web3 import Web3Backend, tx_result
from .abc import TxResult
from .errors import ChainError, ChainRevert, ChainUnavailable, ErrorRegistry
from .nonces import NonceManager
from .store import SqliteKV

if TYPE_CHECKING:
    from web3.contract.contract import ContractFunction

__all__ = ["CHAIN_ID", "EmbeddedChain", "open_embedded"]

CHAIN_ID = 27560
TX_GAS_CAP = 2**24
"""Gas limit of a relayer tx without explicit gas: 16,777,216, the per-transaction cap of
EIP-7825 (Osaka), so such a tx is valid on later forks too."""
RELAYER_BALANCE_WEI = to_wei(10**9, "ether")
_RETRY_IN_NEW_BLOCK = ChainError("out of gas in a partly filled block")
_META_OFFSET = "time_offset_s"
_META_CHAIN_ID = "chain_id"


class SameSecondPragueVM(PragueVM):
    """Prague, except that a block may carry its parent's timestamp.

    Mainnet requires ``timestamp > parent.timestamp``; with one block per transaction that
    would push ``block.timestamp`` ahead of wall-clock time by one second per block under
    load (40 tx/s for a minute = 40 minutes ahead), and deadlines and validity windows
    checked against ``block.timestamp`` would expire early. Development nodes solve it the
    same way: anvil stamps auto-mined blocks with the wall-clock second, and Hardhat has
    ``allowBlocksWithSameTimestamp``. Every other header rule is unchanged.
    """

    @classmethod
    def validate_header(cls, header: Any, parent_header: Any) -> None:
        if parent_header is not None and header.timestamp == parent_header.timestamp:
            header = header.copy(timestamp=header.timestamp + 1)  # check the other rules
        super().validate_header(header, parent_header)


class ConsentgateChain(MiningChain):
    """py-evm chain class of the embedded node: Prague (same-second blocks allowed) from
    block 0, fixed chain id, constant gas limit (as eth-tester's own tester chain)."""

    chain_id = CHAIN_ID
    vm_configuration = ((BlockNumber(0), SameSecondPragueVM),)

    def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
        return super().create_header_from_parent(
            parent_header, **assoc(header_params, "gas_limit", parent_header.gas_limit)
        )

    def get_transaction_builder(self) -> Any:
        return super().get_vm().get_transaction_builder()


class _DurablePyEVMBackend(PyEVMBackend):
    """eth-tester's py-evm backend on a stored chain: commits after each mined block,
    follows wall-clock time, and raises ChainRevert (raw revert data decoded) from
    ``call``/``estimate_gas`` instead of eth-tester's stringified TransactionFailed."""

    def __init__(self, chain: ConsentgateChain, store: SqliteKV, errors: ErrorRegistry) -> None:
        # PyEVMBackend.__init__ would build a fresh in-memory chain; set state directly.
        self.account_keys = ()
        self.chain = chain
        self._store = store
        self._errors = errors
        self.broken: BaseException | None = None
        self._receipts_cache: tuple[bytes, Any] = (b"", ())
        raw = store.get_meta(_META_OFFSET)
        self.time_offset = int(raw.decode()) if raw else 0

    # -- time ------------------------------------------------------------------------

    def restamp(self) -> None:
        """Date the still-empty pending block ``max(now + offset, parent)`` (seconds)."""
        header = self.chain.header
        if header.transaction_root != BLANK_ROOT_HASH:
            return  # already holds transactions: its time is fixed
        parent = self.chain.get_canonical_head()
        stamp = max(int(time.time()) + self.time_offset, parent.timestamp)
        if stamp != header.timestamp:
            self.chain.header = header.copy(timestamp=stamp)

    def add_time_offset(self, seconds: int) -> None:
        self.time_offset += seconds
        self._store.set_meta(_META_OFFSET, str(self.time_offset).encode())

    # -- mining and durability -------------------------------------------------------

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = b"\x00" * 20) -> tuple[Any, ...]:
        if self.broken is not None:
            raise ChainUnavailable(f"embedded chain stopped after a failed commit: {self.broken}")
        hashes = []
        try:
            for _ in range(num_blocks):
                self.restamp()
                hashes.extend(super().mine_blocks(1, coinbase))
                self._store.commit()
        except BaseException as exc:
            # The in-memory chain is now ahead of the disk: refuse further work; reopening
            # the data dir resumes from the last committed block.
            self._store.discard()
            self.broken = exc
            raise
        return tuple(hashes)

    def send_raw_transaction(self, raw_transaction: bytes) -> bytes:
        self.restamp()
        return super().send_raw_transaction(raw_transaction)

    # -- transaction lookup ----------------------------------------------------------

    def _find_transaction(self, transaction_hash: bytes) -> tuple[Any, Any, int]:
        """``(block, transaction, index)`` through py-evm's tx-hash index (one key read).

        eth-tester scans every block from the head down (~0.5 ms per block: 50 s for a
        receipt at the bottom of a 100,000-block chain); the index makes it constant.
        Raises eth-tester's TransactionNotFound.
        """
        try:
            number, index = self.chain.chaindb.get_transaction_index(Hash32(transaction_hash))
        except EVMTransactionNotFound:
            pending = self.chain.get_block()
            for i, tx in enumerate(pending.transactions):
                if tx.hash == transaction_hash:
                    return pending, tx, i
            raise TransactionNotFound(
                f"No transaction found for transaction hash: 0x{transaction_hash.hex()}"
            ) from None
        block = self.chain.get_canonical_block_by_number(number)
        return block, block.transactions[index], index

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._find_transaction(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        return serialize_transaction(block, transaction, index, is_pending)

    def _receipts_of(self, block: Any, is_pending: bool) -> Any:
        """The receipts of ``block``; those of the last mined block asked for are kept, so
        reading every receipt of an N-tx block (``send_many``) decodes them once, not N
        times. Mined blocks never change here (no reorgs), so the cache cannot go stale."""
        if is_pending:
            return block.get_receipts(self.chain.chaindb)
        key = bytes(block.hash)
        if self._receipts_cache[0] != key:
            self._receipts_cache = (key, block.get_receipts(self.chain.chaindb))
        return self._receipts_cache[1]

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._find_transaction(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        receipts = self._receipts_of(block, is_pending)
        return serialize_transaction_receipt(
            block, receipts, transaction, index, is_pending, self.chain.get_vm()
        )

    # -- reverts ---------------------------------------------------------------------

    def _revert_of(self, computation: Any) -> ChainRevert:
        from eth.exceptions import Revert

        if isinstance(computation.error, Revert):
            return ChainRevert.from_data(computation.output, self._errors)
        return ChainRevert("Unknown")

    def call(self, transaction: dict[str, Any], block_number: Any = "latest") -> bytes:
        computation = self._execute(transaction, block_number)
        if computation.is_error:
            raise self._revert_of(computation)
        return bytes(computation.output)

    def _execute(self, transaction: dict[str, Any], block_number: Any) -> Any:
        """Run ``transaction`` (eth_call / estimate semantics) on the state at
        ``block_number`` and roll it back; returns the computation.

        A sender that cannot pay for the gas is credited what it lacks for the gas (not
        for any value it sends) inside the rolled-back snapshot: geth and anvil do not
        charge gas for calls either, so a third party's read from an unfunded address
        works here too, and a transfer it cannot afford still fails as there.
        """
        tx = dict(transaction)
        tx.setdefault("gas", self._max_available_gas())
        unsigned = self._get_normalized_and_unsigned_evm_transaction(tx, block_number)
        sender = transaction["from"]
        spoofed = SpoofTransaction(unsigned, from_=sender)
        state = _get_vm_for_block_number(self.chain, block_number).state
        snapshot = state.snapshot()
        try:
            price = getattr(unsigned, "max_fee_per_gas", None) or getattr(unsigned, "gas_price", 0)
            needed = unsigned.gas * price + unsigned.value
            if unsigned.value <= state.get_balance(sender) < needed:  # gas only, not value
                state.set_balance(sender, needed)
            return state.apply_transaction(spoofed)
        finally:
            state.revert(snapshot)

    def estimate_gas(self, transaction: dict[str, Any], block_number: Any = "latest") -> int:
        """Gas limit (units) that lets ``transaction`` succeed: two executions, not py-evm's
        binary search (about 13 executions for a small call; 6x slower end to end).

        1. Run once with all the block's gas: revert -> ChainRevert (raw data decoded);
           else ``used`` = gas consumed before the refund (EIP-3529 refunds are paid only
           at the end, so execution needs the pre-refund amount).
        2. ``candidate = used + used // 63 + 2300``: the EIP-150 63/64 reserve a CALL keeps
           back and a stipend's worth of slack; run again with exactly that limit.
        3. If that run fails, fall back to eth-tester's exact binary search.
        """
        if block_number not in ("latest", "safe", "finalized"):
            return int(super().estimate_gas(transaction, block_number))
        probe = {k: v for k, v in transaction.items() if k != "gas"}
        first = self._execute(probe, block_number)
        if first.is_error:
            raise self._revert_of(first)
        limit = self._max_available_gas()
        used = limit - first.get_gas_remaining()
        candidate = min(used + used // 63 + 2300, limit)
        if not self._execute({**probe, "gas": candidate}, block_number).is_error:
            return candidate
        try:  # pragma: no cover - only for contracts that the heuristic above misjudges
            return int(super().estimate_gas(transaction, block_number))
        except TransactionFailed as exc:
            raise ChainRevert("Unknown") from exc


class _FastLogsTester(EthereumTester):
    """EthereumTester whose ``get_logs`` reads py-evm blocks and receipts directly.

    eth-tester serializes each block in the range in full, then finds and serializes
    each transaction's receipt through separate lookups (~5 ms per block on the dev
    box). Here each block is loaded once, skipped when its logs bloom cannot contain a
    requested address, and its logs are serialized straight from the stored receipts.
    Same filter semantics and output as eth-tester (tests compare the two).
    """

    def get_logs(
        self,
        from_block: Any = None,
        to_block: Any = None,
        address: Any = None,
        topics: Any = None,
    ) -> tuple[Any, ...]:
        self.validator.validate_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        raw_from, raw_to, raw_address, raw_topics = self.normalizer.normalize_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        params = {
            "from_block": raw_from,
            "to_block": raw_to,
            "addresses": raw_address,
            "topics": raw_topics,
        }
        log_filter = Filter(filter_params=params, filter_fn=partial(check_if_log_matches, **params))
        chain = self.backend.chain
        head = chain.get_canonical_head().block_number
        lower = raw_from if isinstance(raw_from, int) else self._number_of(raw_from, head)
        upper = raw_to if isinstance(raw_to, int) else self._number_of(raw_to, head)
        wanted = (
            None
            if raw_address is None
            else [raw_address]
            if isinstance(raw_address, bytes)
            else list(raw_address)
        )
        for number in range(lower, min(upper, head) + 1):
            block = chain.get_canonical_block_by_number(BlockNumber(number))
            if wanted is not None:
                bloom = BloomFilter(block.header.bloom)
                if not any(addr in bloom for addr in wanted):
                    continue
            receipts = block.get_receipts(chain.chaindb)
            for tx_index, (tx, receipt) in enumerate(
                zip(block.transactions, receipts, strict=True)
            ):
                for log_index, log in enumerate(receipt.logs):
                    log_filter.add(serialize_log(block, tx, tx_index, log, log_index, False))
        return tuple(
            self.normalizer.normalize_outbound_log_entry(item) for item in log_filter.get_all()
        )

    @staticmethod
    def _number_of(tag: Any, head: int) -> int:
        return 0 if tag == "earliest" else head  # latest, safe, finalized, pending, None


class _LockedProvider(EthereumTesterProvider):
    """EthereumTesterProvider whose every request runs under the chain's lock."""

    def __init__(self, tester: EthereumTester, lock: threading.RLock, owner: EmbeddedChain):
        # web3's eth-tester endpoints answer eth_chainId with a constant; answer ours.
        endpoints = {ns: dict(methods) for ns, methods in API_ENDPOINTS.items()}
        endpoints["eth"]["chainId"] = static_return(CHAIN_ID)
        super().__init__(tester, api_endpoints=endpoints)
        self._lock = lock
        self._owner = owner

    def make_request(self, method: Any, params: Any) -> Any:
        with self._lock:
            self._owner._check_open()
            return super().make_request(method, params)


def _load_or_create_key(path: Path, given: str) -> str:
    """Relayer key: the stored one; on first start ``given`` or a fresh random key, written
    with mode 0600. Raises ChainError if ``given`` differs from the stored key (only the
    stored key is funded on this chain)."""
    if path.exists():
        stored = path.read_text().strip()
        if given and Account.from_key(given).key != Account.from_key(stored).key:
            raise ChainError(
                f"relayer key differs from the one this chain was created with ({path})"
            )
        return stored
    key = given or "0x" + secrets.token_hex(32)
    Account.from_key(key)  # ValueError before anything is written for a malformed key
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key


class EmbeddedChain(Web3Backend):
    """The embedded py-evm chain (``kind == "embedded"``). Build with :func:`open_embedded`.

    Extra attributes: ``tester`` (the EthereumTester), ``path`` (``data_dir/chain``).
    """

    kind = "embedded"

    def __init__(self, data_dir: Path, relayer_key: str = "", synchronous: str = "FULL") -> None:
        self.path = Path(data_dir) / "chain"
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.closed = False
        self._lock = threading.RLock()
        self._lock_fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise ChainError(f"chain data dir {self.path} is in use by another process") from exc
        store: SqliteKV | None = None
        try:
            key = _load_or_create_key(self.path / "relayer.key", relayer_key)
            store = self._store = SqliteKV(self.path / "chain.sqlite", synchronous=synchronous)
            chain = self._open_chain(key)
        except BaseException as exc:
            if store is not None:
                store.close()
            os.close(self._lock_fd)
            if isinstance(exc, ValueError):  # unreadable key file or relayer_key
                raise ChainError(f"bad relayer key for {self.path}: {exc}") from exc
            raise
        errors = ErrorRegistry()
        self._backend = _DurablePyEVMBackend(chain, self._store, errors)
        self.tester = _FastLogsTester(self._backend)
        w3 = Web3(_LockedProvider(self.tester, self._lock, self))
        super().__init__(w3, key, CHAIN_ID)
        self._errors = errors  # shared with the py-evm backend's decoder
        # nonces from the pending block's state, under the chain lock (py-evm is the pool)
        self.nonces = NonceManager(self._state_nonce, self._lock)

    def _state_nonce(self) -> int:
        """The relayer's nonce in the pending block's state (caller holds the lock)."""
        address = Address(bytes.fromhex(self.relayer[2:]))
        return int(self._backend.chain.get_vm().state.get_nonce(address))

    def _open_chain(self, key: str) -> ConsentgateChain:
        db = AtomicDB(self._store)
        stored_id = self._store.get_meta(_META_CHAIN_ID)
        try:
            ChainDB(db).get_canonical_head()
        except CanonicalHeadNotFound:
            relayer = Account.from_key(key).address
            genesis_state = {
                bytes.fromhex(relayer[2:]): {
                    "balance": RELAYER_BALANCE_WEI,
                    "nonce": 0,
                    "code": b"",
                    "storage": {},
                }
            }
            chain = ConsentgateChain.from_genesis(
                db,
                get_default_genesis_params(),
                genesis_state,  # type: ignore[arg-type]
            )
            self._store.set_meta(_META_CHAIN_ID, str(CHAIN_ID).encode())
            self._store.commit()
            return chain  # type: ignore[return-value]
        if stored_id is not None and int(stored_id.decode()) != CHAIN_ID:
            raise ChainError(f"{self.path} holds chain id {stored_id.decode()}, not {CHAIN_ID}")
        return ConsentgateChain(db)

    # -- ChainBackend ----------------------------------------------------------------

    def _wait_receipt(self, tx_hash: str) -> Any:
        # Auto-mined and committed before send_raw_transaction returned.
        return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]

    def _transact(self, to: str | None, data: str, gas: int | None) -> Any:
        with self._lock:  # py-evm executes one tx at a time anyway; keep build..mine atomic
            if gas is not None:
                # explicit gas: sent as given and mined even if it fails, as on any node
                return super()._transact(to, data, gas)
            return self._apply_or_roll_back(to, data)

    def _apply_or_roll_back(self, to: str | None, data: str) -> TxResult:
        """Send with the pre-flight folded into the execution itself (one EVM run).

        The relayer signs the tx with the gas still free in the pending block (at most
        :data:`TX_GAS_CAP`; only gas *used* is charged) and py-evm applies it to the
        pending block. If it fails, the pending block is put back as it was — nothing is
        mined, the nonce is not used — and ChainRevert carries the exact revert data, as
        a failed ``eth_estimateGas`` would. Otherwise the block is mined and committed.
        Compared with estimate (two runs) + send (one run) this halves the py-evm work.
        Caller holds ``self._lock``.
        """
        self._check_open()
        backend, chain = self._backend, self._backend.chain
        backend.restamp()
        header = chain.header
        fees = self._current_fees()
        gas = min(header.gas_limit - header.gas_used, TX_GAS_CAP)
        tx = self._relayer_tx(to, data, fees, gas=gas, nonce=self.nonces.peek())
        signed = self._account.sign_transaction(tx)
        evm_tx = chain.get_vm().get_transaction_builder().decode(bytes(signed.raw_transaction))
        try:
            _, _, computation = chain.apply_transaction(evm_tx)
        except Exception as exc:  # invalid tx (nonce, balance): nothing was applied
            chain.header = header
            self.nonces.resync()
            raise self._map(exc) from exc
        if computation.is_error:
            chain.header = header  # the pending block as before: nothing mined
            raise backend._revert_of(computation)
        self.nonces.advance(1)
        try:
            self.tester.mine_blocks(1)  # mine and commit (see _DurablePyEVMBackend.mine_blocks)
        except Exception as exc:  # the backend is now stopped (ChainUnavailable from here on)
            raise self._map(exc) from exc
        tx_hash = "0x" + bytes(evm_tx.hash).hex()
        return tx_result(tx_hash, self.w3.eth.get_transaction_receipt(HexStr(tx_hash)))

    def send_many(
        self,
        fns: Sequence[ContractFunction],
        *,
        gas: int | None = None,
        stuck_after_s: float | None = None,
        timeout_s: float | None = None,
    ) -> list[TxResult | ChainError]:
        """All of ``fns`` applied to the pending block in order and mined as one block
        (a new block starts when the gas limit is reached): one commit (one fsync) per
        block instead of per transaction. ``gas`` None: as :meth:`_apply_or_roll_back`,
        each tx gets the gas still free and one that fails is rolled back (ChainRevert,
        not sent, nonce unused). ``gas`` set: failing txs are mined with status 0
        (ChainRevert with ``tx_hash``, decoded from the execution itself).
        ``stuck_after_s``/``timeout_s`` are ignored: the block is mined at once."""
        items: list[tuple[str | None, str]] = [
            (fn.address, fn._encode_transaction_data()) for fn in fns
        ]
        with self._lock:
            self._check_open()
            return self._apply_many(items, gas)

    def _apply_many(
        self, items: list[tuple[str | None, str]], gas: int | None
    ) -> list[TxResult | ChainError]:
        results: list[TxResult | ChainError | None] = [None] * len(items)
        fees = self._current_fees()
        pos = 0
        while pos < len(items):
            pos = self._fill_block(items, pos, gas, fees, results)
        return [r if r is not None else ChainError("no outcome") for r in results]

    def _fill_block(
        self,
        items: list[tuple[str | None, str]],
        pos: int,
        gas: int | None,
        fees: dict[str, int],
        results: list[TxResult | ChainError | None],
    ) -> int:
        """Apply ``items[pos:]`` to the pending block until it is full, then mine and
        commit it; return the index of the first item left for the next block.

        py-evm's ``MiningChain.apply_transaction`` rebuilds the block's transaction and
        receipt tries for every transaction (quadratic in the block size: 100 txs took
        18 s); here the VM applies them one after another and the tries are built once,
        as ``MiningChain.mine_all`` does. A failing tx (``gas`` None) is taken out by
        re-applying the ones kept so far on a fresh VM (failures are the exception).
        """
        backend, chain = self._backend, self._backend.chain
        backend.restamp()
        vm = chain.get_vm(chain.header)
        base_block = vm.get_block()
        header = base_block.header
        txs: list[Any] = []
        receipts: list[Any] = []
        applied: list[tuple[int, str, ChainRevert | None]] = []
        nonce = self.nonces.peek()
        builder = vm.get_transaction_builder()
        while pos < len(items):
            to, data = items[pos]
            free = header.gas_limit - header.gas_used
            tx_gas = min(free, TX_GAS_CAP) if gas is None else gas
            if tx_gas > free and txs:
                break  # full: the rest goes into the next block
            tx = self._relayer_tx(to, data, fees, gas=tx_gas, nonce=nonce)
            evm_tx = builder.decode(bytes(self._account.sign_transaction(tx).raw_transaction))
            failure: ChainError | None = None
            # with the gas left in a partly filled block the tx may fail only for lack of
            # gas (below intrinsic gas: invalid; else out of gas): retry in a fresh block
            short_of_gas = gas is None and free < TX_GAS_CAP and bool(txs)
            try:
                receipt, computation = vm.apply_transaction(header, evm_tx)
            except Exception as exc:  # invalid (gas below intrinsic, funds)
                failure = _RETRY_IN_NEW_BLOCK if short_of_gas else self._map(exc)
            else:
                if computation.is_error and gas is None:
                    if isinstance(computation.error, OutOfGas) and short_of_gas:
                        failure = _RETRY_IN_NEW_BLOCK
                    else:
                        failure = backend._revert_of(computation)
            if failure is not None:
                # py-evm cannot revert one transaction of a block in progress (applying
                # the next one locks the journal): re-apply the ones kept on a fresh VM.
                vm = chain.get_vm(chain.header)
                header = base_block.header
                for kept, kept_receipt in zip(txs, receipts, strict=True):
                    vm.apply_transaction(header, kept)
                    header = vm.add_receipt_to_header(header, kept_receipt)
                if failure is _RETRY_IN_NEW_BLOCK:
                    break
                results[pos] = failure  # taken out: nothing sent, nonce unused
                pos += 1
                continue
            header = vm.add_receipt_to_header(header, receipt)
            txs.append(evm_tx)
            receipts.append(receipt)
            revert = backend._revert_of(computation) if computation.is_error else None
            applied.append((pos, "0x" + bytes(evm_tx.hash).hex(), revert))
            nonce += 1
            pos += 1
        if not applied:
            return pos
        vm.state.persist()
        block = vm.set_block_transactions_and_withdrawals(
            base_block,
            header.copy(state_root=vm.state.state_root),
            tuple(txs),
            tuple(receipts),
        )
        chain.header = block.header
        self.nonces.advance(len(applied))
        try:
            self.tester.mine_blocks(1)  # mine and commit, as in _apply_or_roll_back
        except Exception as exc:
            raise self._map(exc) from exc
        self._receipts_into(applied, results)
        return pos

    def _receipts_into(
        self,
        applied: list[tuple[int, str, ChainRevert | None]],
        results: list[TxResult | ChainError | None],
    ) -> None:
        """Fill ``results`` for the txs of the block just mined, in one pass over it."""
        for i, tx_hash, revert in applied:
            receipt = self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
            if revert is None:
                results[i] = tx_result(tx_hash, receipt)
            else:
                revert.tx_hash = tx_hash
                results[i] = revert

    def block_number(self) -> int:
        with self._lock:
            self._check_open()
            return int(self._backend.chain.get_canonical_head().block_number)

    def time_travel(self, seconds: int) -> None:
        with self._lock:
            self.add_time_offset(seconds)
            self.mine_block()

    def add_time_offset(self, seconds: int) -> None:
        """Stamp every later block ``seconds`` (>= 0) later (``evm_increaseTime``); the
        offset is stored with the next block. Raises ValueError for a negative value."""
        if seconds < 0:
            raise ValueError("time_travel: seconds must be >= 0")
        with self._lock:
            self._check_open()
            self._backend.add_time_offset(seconds)

    def mine_block(self) -> None:
        """Mine the pending block now and commit it (``evm_mine``)."""
        with self._lock:
            self._check_open()
            self.tester.mine_blocks(1)

    def _check_open(self) -> None:
        if self.closed:
            raise ChainUnavailable("embedded chain is closed")
        if self._backend.broken is not None:
            raise ChainUnavailable(
                f"embedded chain stopped after a failed commit ({self._backend.broken}); "
                "reopen it to resume from the last committed block"
            )

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                if self._backend.broken is None:
                    self._store.commit()
                self._store.close()
            finally:
                os.close(self._lock_fd)


def open_embedded(
    data_dir: Path, relayer_key: str = "", synchronous: str = "FULL"
) -> EmbeddedChain:
    """Open (or create) the embedded chain stored in ``data_dir/chain``.

    ``relayer_key``: optional 0x-hex private key, used only when the chain is created
    (later it must match the stored one). ``synchronous``: SQLite durability level,
    ``"FULL"`` (survives power loss) or ``"NORMAL"`` (survives process crashes).
    Raises ChainError if another process holds the data dir or it belongs to another
    chain id.
    """
    return EmbeddedChain(data_dir, relayer_key, synchronous)
