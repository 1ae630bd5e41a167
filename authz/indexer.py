"""Projects the registry's chain events into the off-chain index.

There is one projection path: :meth:`Indexer.sync` reads the registry's logs from the
block after the cursor up to a target block, applies each event idempotently (keyed by
transaction hash and log index) and then moves the cursor, all in one database
transaction. The live API calls ``sync`` right after its own transaction is mined;
``consentgate reindex`` clears the projection tables and syncs from the deployment block,
so a rebuilt index equals the live one.
"""

from __future__ import annotations

import threading
from typing import Any, cast

from eth_typing import ABIEvent
from eth_utils import event_abi_to_log_topic, to_checksum_address
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from authz.db import Database
from authz.ids import to_hex
from authz.ledger import Ledger
from authz.models import (
    PROJECTION_TABLES,
    AnchoredBatch,
    Consent,
    ConsentEvent,
    ConsentRequest,
    DepartmentState,
    Guardianship,
    Meta,
)

CURSOR_KEY = "indexer_cursor"


class Indexer:
    """Applies ``ConsentRegistry`` events to the projection tables."""

    def __init__(self, db: Database, ledger: Ledger) -> None:
        self.db = db
        self.ledger = ledger
        self._lock = threading.Lock()
        self._events: dict[bytes, Any] = {}
        for contract in (ledger.registry, ledger.anchor):
            for abi in contract.abi:
                if abi.get("type") == "event":
                    event_abi = cast(ABIEvent, abi)
                    self._events[event_abi_to_log_topic(event_abi)] = getattr(
                        contract.events, event_abi["name"]
                    )()
        self._block_times: dict[int, int] = {}

    def cursor(self) -> int:
        """The last block whose events are in the index (deploy block - 1 when none)."""
        value = self.db.get_meta(CURSOR_KEY)
        return int(value) if value is not None else self.ledger.deploy_block - 1

    def sync(self, to_block: int | None = None) -> int:
        """Apply every registry event up to ``to_block`` (default: the chain head).

        Returns the new cursor. Safe to call from many threads; idempotent.
        """
        with self._lock:
            head = self.ledger.chain.block_number() if to_block is None else to_block
            start = self.cursor() + 1
            if start > head:
                return head
            logs = self.ledger.chain.w3.eth.get_logs(
                {
                    "address": [self.ledger.address, self.ledger.anchor_address],
                    "fromBlock": start,
                    "toBlock": head,
                }
            )
            with self.db.session() as s:
                # Another process sharing the index (``serve --workers``) may have applied
                # some of these blocks since the cursor was read, and this process's lock
                # does not stop it: take the database's write lock first (a no-op update
                # of the cursor row; on PostgreSQL its row lock), then re-read the cursor
                # and skip what is done, instead of failing on its rows.
                s.execute(update(Meta).where(Meta.key == CURSOR_KEY).values(value=Meta.value))
                value = s.scalar(select(Meta.value).where(Meta.key == CURSOR_KEY))
                done = int(value) if value is not None else start - 1
                for log in sorted(logs, key=lambda g: (g["blockNumber"], g["logIndex"])):
                    if log["blockNumber"] > done:
                        self._apply(s, log)
                head = max(head, done)
                s.merge(Meta(key=CURSOR_KEY, value=str(head)))
            return head

    def reindex(self) -> int:
        """Drop every projection and rebuild it from the chain. Returns the new cursor."""
        with self._lock, self.db.session() as s:
            for table in PROJECTION_TABLES:
                s.execute(delete(table))

            s.execute(delete(Meta).where(Meta.key == CURSOR_KEY))
        self._block_times.clear()
        return self.sync()

    # -- projection ---------------------------------------------------------------------
    def _block_time(self, number: int) -> int:
        if number not in self._block_times:
            self._block_times[number] = self.ledger.block_time(number)
        return self._block_times[number]

    def _apply(self, s: Session, log: Any) -> None:
        topics = log["topics"]
        if not topics:
            return
        handler = self._events.get(bytes(topics[0]))
        if handler is None:
            return
        ev = handler.process_log(log)
        name = ev["event"]
        args = ev["args"]
        apply = getattr(self, f"_on_{name}", None)
        if apply is not None:
            apply(s, args, ev)

    def _on_DepartmentRegistered(self, s: Session, a: Any, ev: Any) -> None:
        s.merge(
            DepartmentState(
                address=to_checksum_address(a["department"]),
                active=True,
                purpose_hashes=[to_hex(h) for h in a["purposeHashes"]],
                block_number=ev["blockNumber"],
            )
        )

    def _on_PurposesAdded(self, s: Session, a: Any, ev: Any) -> None:
        row = s.get(DepartmentState, to_checksum_address(a["department"]))
        if row is not None:
            added = [to_hex(h) for h in a["purposeHashes"] if to_hex(h) not in row.purpose_hashes]
            row.purpose_hashes = [*row.purpose_hashes, *added]

    def _set_active(self, s: Session, address: str, active: bool) -> None:
        row = s.get(DepartmentState, to_checksum_address(address))
        if row is not None:
            row.active = active

    def _on_DepartmentSuspended(self, s: Session, a: Any, ev: Any) -> None:
        self._set_active(s, a["department"], False)

    def _on_DepartmentReinstated(self, s: Session, a: Any, ev: Any) -> None:
        self._set_active(s, a["department"], True)

    def _on_GuardianSet(self, s: Session, a: Any, ev: Any) -> None:
        s.merge(
            Guardianship(
                ward=to_checksum_address(a["ward"]),
                guardian=to_checksum_address(a["guardian"]),
                until=int(a["until"]),
                active=True,
            )
        )

    def _on_GuardianshipEnded(self, s: Session, a: Any, ev: Any) -> None:
        row = s.get(Guardianship, to_checksum_address(a["ward"]))
        if row is not None:
            row.active = False

    def _record_event(self, s: Session, ev: Any, consent_id: str, kind: str, signer: str) -> None:
        s.merge(
            ConsentEvent(
                tx_hash=to_hex(ev["transactionHash"]),
                log_index=int(ev["logIndex"]),
                consent_id=consent_id,
                event=kind,
                signer=to_checksum_address(signer),
                block_number=int(ev["blockNumber"]),
                block_time=self._block_time(int(ev["blockNumber"])),
            )
        )

    def _on_ConsentGranted(self, s: Session, a: Any, ev: Any) -> None:
        consent_id = to_hex(a["consentId"])
        request = s.scalar(select(ConsentRequest).where(ConsentRequest.consent_id == consent_id))
        message = request.message if request is not None else {}
        s.merge(
            Consent(
                consent_id=consent_id,
                request_id=request.request_id if request is not None else None,
                subject=to_checksum_address(a["subject"]),
                controller=to_checksum_address(a["controller"]),
                signer=to_checksum_address(a["signer"]),
                purpose=message.get("purpose"),
                purpose_hash=to_hex(a["purposeHash"]),
                pii_categories=list(message.get("piCategories", [])),
                category_hashes=[to_hex(h) for h in a["piCategoryHashes"]],
                sensitive=bool(a["sensitive"]),
                third_party=bool(a["thirdParty"]),
                valid_from=int(a["validFrom"]),
                valid_until=int(a["validUntil"]),
                record_hash=to_hex(a["recordHash"]),
                withdrawn=False,
                granted_block=int(ev["blockNumber"]),
                granted_tx=to_hex(ev["transactionHash"]),
            )
        )
        self._record_event(s, ev, consent_id, "given", a["signer"])

    def _on_BatchAnchored(self, s: Session, a: Any, ev: Any) -> None:
        s.merge(
            AnchoredBatch(
                batch_id=int(a["batchId"]),
                consent_root=to_hex(a["consentRoot"]),
                consent_count=int(a["consentCount"]),
                status_root=to_hex(a["statusRoot"]),
                audit_root=to_hex(a["auditRoot"]),
                audit_count=int(a["auditCount"]),
                tx_hash=to_hex(ev["transactionHash"]),
                block_number=int(ev["blockNumber"]),
            )
        )

    def _on_ConsentWithdrawn(self, s: Session, a: Any, ev: Any) -> None:
        consent_id = to_hex(a["consentId"])
        row = s.get(Consent, consent_id)
        if row is not None:
            row.withdrawn = True
        self._record_event(s, ev, consent_id, "withdrawn", a["signer"])
