"""Guardianships: the registrar records guardian -> ward with an end date (PIPL art. 31).

While a guardianship is active only the guardian's signature acts for the ward; the
record lives on chain (``GuardianSet`` / ``GuardianshipEnded``) and is projected into
the index.
"""

from __future__ import annotations

from authz.errors import BadRequest
from authz.ids import checksum
from authz.services import Services

MAX_GUARDIANSHIP_S = 100 * 365 * 24 * 3600


def set_guardian(svc: Services, ward: str, guardian: str, until: int) -> str:
    """Record ``guardian`` for ``ward`` until ``until`` (Unix s, inclusive); returns tx hash.

    Raises :class:`BadRequest` ``invalid_guardianship`` when the end is not in the future
    (or more than 100 years ahead) or guardian == ward.
    """
    ward, guardian = checksum(ward, "ward"), checksum(guardian, "guardian")
    if ward == guardian or until <= svc.now() or until > svc.now() + MAX_GUARDIANSHIP_S:
        raise BadRequest(
            "guardian must differ from ward, and until be in the future (at most 100 years ahead)",
            code="invalid_guardianship",
        )
    result = svc.ledger.send("setGuardian", ward, guardian, until)
    svc.indexer.sync(result.block_number)
    return result.tx_hash


def end_guardianship(svc: Services, ward: str) -> str:
    """End the ward's guardianship now; returns the transaction hash."""
    result = svc.ledger.send("endGuardianship", checksum(ward, "ward"))
    svc.indexer.sync(result.block_number)
    return result.tx_hash
