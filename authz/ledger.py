"""The consent registry contract as the service uses it: deployment and transactions.

One :class:`Ledger` per process wraps a :class:`chain_node.ChainBackend` and the deployed
``ConsentRegistry``. The deployment address is kept in ``DATA_DIR/deployments.json``
keyed by chain id and genesis block hash, so the index database can be dropped and
rebuilt from the chain (``consentgate reindex``) without losing track of the contract.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address

from authz.errors import (
    BadRequest,
    Conflict,
    ConsentgateError,
    Forbidden,
    InvalidSignature,
    NotFound,
)
from chain_node import ChainBackend, ChainRevert, TxResult
from contracts import error_abis, load_artifact

REGISTRY = "ConsentRegistry"

# Custom errors of the registry -> (service error class, stable code). Anything not listed
# is reported as a 400 ``chain_rejected`` with the decoded error in the detail.
REVERT_CODES: dict[str, tuple[type[ConsentgateError], str]] = {
    "ConsentAlreadyExists": (Conflict, "duplicate_grant"),
    "InvalidAccountNonce": (Conflict, "nonce_used"),
    "ConsentAlreadyWithdrawn": (Conflict, "already_withdrawn"),
    "ConsentDeadlinePassed": (InvalidSignature, "signature_expired"),
    "ConsentDeadlineZero": (InvalidSignature, "deadline_zero"),
    "ConsentInvalidSignature": (InvalidSignature, "signature_malformed"),
    "ConsentInvalidSignatureLength": (InvalidSignature, "signature_malformed"),
    "ConsentInvalidSignatureS": (InvalidSignature, "signature_high_s"),
    "ConsentInvalidSignatureV": (InvalidSignature, "signature_bad_v"),
    "ConsentSubjectMismatch": (InvalidSignature, "subject_mismatch"),
    "ConsentUnauthorizedSigner": (InvalidSignature, "wrong_signer"),
    "ConsentWardSignatureRefused": (Forbidden, "guardian_required"),
    "ConsentInvalidValidity": (BadRequest, "invalid_validity"),
    "ConsentNoCategories": (BadRequest, "no_categories"),
    "ConsentBatchLengthMismatch": (BadRequest, "batch_length_mismatch"),
    "DepartmentNoPurposes": (BadRequest, "no_purposes"),
    "DepartmentZeroAddress": (BadRequest, "invalid_address"),
    "DepartmentPurposeAlreadyRegistered": (Conflict, "purpose_already_registered"),
    "ConsentSeparateConsentRequired": (BadRequest, "separate_consent_required"),
    "ConsentNotFound": (NotFound, "consent_not_found"),
    "DepartmentAlreadyRegistered": (Conflict, "department_exists"),
    "DepartmentAlreadySuspended": (Conflict, "department_already_suspended"),
    "DepartmentNotSuspended": (Conflict, "department_not_suspended"),
    "DepartmentNotActive": (Forbidden, "department_suspended"),
    "DepartmentNotRegistered": (NotFound, "department_not_registered"),
    "DepartmentPurposeNotRegistered": (Forbidden, "purpose_not_registered"),
    "GuardianIsWard": (BadRequest, "invalid_guardianship"),
    "GuardianUntilInPast": (BadRequest, "invalid_guardianship"),
    "GuardianZeroAddress": (BadRequest, "invalid_guardianship"),
    "GuardianNotSet": (NotFound, "guardianship_not_found"),
    "AccessControlUnauthorizedAccount": (Forbidden, "chain_forbidden"),
}


def grant_args(message: dict[str, Any]) -> tuple[Any, ...]:
    """The registry's ``Grant`` struct (as a tuple) from a Grant typed-data message.

    ``message`` is the signed (string) form: ``purpose`` str, ``piCategories`` and
    ``thirdParties`` lists of str, ``recordHash`` 0x hex, integers as int or decimal str.
    The three text fields are replaced by what EIP-712 ``encodeData`` puts in their place
    (EIP-712, "Definition of encodeData"), so no label travels in calldata (issue 2, "No
    personal information on chain") while the contract still computes the signed digest:
    ``purposeHash`` = keccak256(utf8(purpose)) (32 bytes), ``piCategoryHashes`` = one
    keccak256(utf8(c)) per category in signed order (stored on chain for checks), and
    ``thirdPartiesHash`` = keccak256 of the concatenated keccak256(utf8(t)), which is
    keccak256(b"") for no third parties. Raises ``KeyError`` for a missing field.
    """
    m = message
    return (
        m["subject"],
        m["controller"],
        keccak(text=m["purpose"]),
        [keccak(text=c) for c in m["piCategories"]],
        m["sensitive"],
        keccak(b"".join(keccak(text=t) for t in m["thirdParties"])),
        m["separateConsent"],
        int(m["validFrom"]),
        int(m["validUntil"]),
        bytes.fromhex(m["recordHash"][2:]),
        int(m["nonce"]),
        int(m["deadline"]),
    )


def withdrawal_args(message: dict[str, Any]) -> tuple[Any, ...]:
    """The registry's ``Withdrawal`` struct (as a tuple) from a Withdrawal message."""
    return (
        bytes.fromhex(message["consentId"][2:]),
        message["subject"],
        int(message["nonce"]),
        int(message["deadline"]),
    )


def text_hash(value: str) -> str:
    """``keccak256(utf8(value))`` as 0x hex: how EIP-712 hashes a ``string`` field."""
    return "0x" + keccak(text=value).hex()


class Ledger:
    """The deployed consent registry on one chain.

    Attributes: ``chain`` (the backend), ``registry`` (web3 contract), ``address``
    (checksum address of the registry), ``chain_id``.
    """

    def __init__(self, chain: ChainBackend, data_dir: Path, registry_address: str = "") -> None:
        self.chain = chain
        self.chain_id = chain.chain_id
        self._lock = threading.Lock()
        artifact = load_artifact(REGISTRY)
        chain.register_errors(error_abis())
        address = registry_address or self._deployed_address(data_dir, artifact)
        self.address = to_checksum_address(address)
        self.registry = chain.w3.eth.contract(address=self.address, abi=artifact.abi)
        self.deploy_block = self._deploy_block(data_dir)

    # -- deployment -------------------------------------------------------------------
    def _deployment_key(self) -> str:
        genesis = self.chain.w3.eth.get_block(0)["hash"]
        return f"{self.chain_id}:{bytes(genesis).hex()}"

    def _deployed_address(self, data_dir: Path, artifact: Any) -> str:
        path = data_dir / "deployments.json"
        known: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        key = self._deployment_key()
        entry = known.get(key, {}).get(REGISTRY)
        if entry and self.chain.w3.eth.get_code(entry["address"]):
            return str(entry["address"])
        result = self.chain.deploy(artifact.abi, artifact.bytecode, self.chain.relayer)
        assert result.contract_address is not None
        known.setdefault(key, {})[REGISTRY] = {
            "address": result.contract_address,
            "block_number": result.block_number,
            "tx_hash": result.tx_hash,
            "source_hash": artifact.source_hash,
        }
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=2, sort_keys=True))
        tmp.replace(path)
        return str(result.contract_address)

    def _deploy_block(self, data_dir: Path) -> int:
        path = data_dir / "deployments.json"
        if not path.exists():
            return 0
        entry = json.loads(path.read_text()).get(self._deployment_key(), {}).get(REGISTRY, {})
        if entry.get("address", "").lower() != self.address.lower():
            return 0
        return int(entry.get("block_number", 0))

    # -- transactions -----------------------------------------------------------------
    def send(self, fn_name: str, *args: Any) -> TxResult:
        """Send ``registry.fn_name(*args)`` from the relayer; map reverts to service errors.

        Raises the :class:`ConsentgateError` subclass mapped from the custom error (see
        :func:`revert_to_error`).
        """
        fn = getattr(self.registry.functions, fn_name)(*args)
        try:
            return self.chain.send(fn)
        except ChainRevert as exc:
            raise revert_to_error(exc) from exc

    def call(self, fn_name: str, *args: Any) -> Any:
        """Call a view of the registry at the latest block."""
        fn = getattr(self.registry.functions, fn_name)(*args)
        try:
            return self.chain.call(fn)
        except ChainRevert as exc:
            raise revert_to_error(exc) from exc

    def block_time(self, block_number: int) -> int:
        """Timestamp (Unix seconds) of a block."""
        return int(self.chain.w3.eth.get_block(block_number)["timestamp"])


def revert_to_error(exc: ChainRevert) -> ConsentgateError:
    """Turn a decoded registry revert into a service error with a stable code.

    :data:`REVERT_CODES` maps each registry error to a code; any other revert is a 400
    ``chain_rejected``. The decoded error goes into ``detail`` and ``chain_error``.
    """
    name = exc.name
    mapped = REVERT_CODES.get(name)
    detail = f"the registry refused the transaction: {exc}"
    if mapped:
        cls, code = mapped
        return cls(detail, code=code, chain_error=name)
    return BadRequest(detail, code="chain_rejected", chain_error=name)
