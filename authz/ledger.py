"""The consent registry contract as the service uses it: deployment and transactions.

One :class:`Ledger` per process wraps a :class:`chain_node.ChainBackend` and the deployed
``ConsentRegistry``. The deployment address is kept in ``DATA_DIR/deployments.json``
keyed by chain id and genesis block hash, so the index database can be dropped and
rebuilt from the chain (``consentgate reindex``) without losing track of the contract.
"""

from __future__ import annotations

import json
from functools import lru_cache
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
ANCHOR = "ConsentAnchor"

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
    "AnchorIndexNotAnchored": (Conflict, "not_yet_anchored"),
    "AnchorBatchIdNotNext": (Conflict, "batch_id_not_next"),
    "AnchorBatchNotFound": (NotFound, "batch_not_found"),
    "AnchorConsentCountDecreased": (BadRequest, "anchor_count_decreased"),
    "AnchorAuditCountDecreased": (BadRequest, "anchor_count_decreased"),
    "AnchorCountTooLarge": (BadRequest, "anchor_count_too_large"),
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
        _text_keccak(m["purpose"]),
        [_text_keccak(c) for c in m["piCategories"]],
        m["sensitive"],
        _third_parties_hash(tuple(m["thirdParties"])),
        m["separateConsent"],
        int(m["validFrom"]),
        int(m["validUntil"]),
        bytes.fromhex(m["recordHash"][2:]),
        int(m["nonce"]),
        int(m["deadline"]),
    )


@lru_cache(maxsize=65536)
def _text_keccak(value: str) -> bytes:
    """``keccak256(utf8(value))``; cached: purposes, categories and third parties are a
    small vocabulary repeated across every grant of a batch."""
    return keccak(text=value)


@lru_cache(maxsize=16384)
def _third_parties_hash(third_parties: tuple[str, ...]) -> bytes:
    return keccak(b"".join(_text_keccak(t) for t in third_parties))


def withdrawal_args(message: dict[str, Any]) -> tuple[Any, ...]:
    """The registry's ``Withdrawal`` struct (as a tuple) from a Withdrawal message."""
    return (
        bytes.fromhex(message["consentId"][2:]),
        message["subject"],
        int(message["nonce"]),
        int(message["deadline"]),
    )


@lru_cache(maxsize=65536)
def text_hash(value: str) -> str:
    """``keccak256(utf8(value))`` as 0x hex: how EIP-712 hashes a ``string`` field.

    Cached: purposes and PI categories are a small vocabulary hashed on every check."""
    return "0x" + keccak(text=value).hex()


def deployment_key(chain: ChainBackend) -> str:
    """``<chain id>:<genesis block hash>``: which chain a deployments.json entry is for."""
    return f"{chain.chain_id}:{bytes(chain.w3.eth.get_block(0)['hash']).hex()}"


def known_deployment(chain: ChainBackend, data_dir: Path) -> dict[str, str]:
    """Addresses this data folder deployed on ``chain`` (name -> address), read only."""
    path = data_dir / "deployments.json"
    if not path.exists():
        return {}
    entries = json.loads(path.read_text()).get(deployment_key(chain), {})
    return {name: str(e["address"]) for name, e in entries.items()}


class Ledger:
    """The deployed contracts on one chain: ``ConsentRegistry`` and ``ConsentAnchor``.

    Attributes: ``chain`` (the backend), ``registry`` / ``anchor`` (web3 contracts),
    ``address`` (the registry's checksum address: the EIP-712 ``verifyingContract``),
    ``anchor_address``, ``chain_id``, ``deploy_block`` (first block to index).
    Deployments are remembered in ``DATA_DIR/deployments.json`` keyed by chain id and
    genesis hash; ``registry_address`` (setting ``CONSENTGATE_REGISTRY_ADDRESS``) uses an
    existing registry instead.
    """

    def __init__(self, chain: ChainBackend, data_dir: Path, registry_address: str = "") -> None:
        self.chain = chain
        self.chain_id = chain.chain_id
        chain.register_errors(error_abis())
        self._path = data_dir / "deployments.json"
        self._key = deployment_key(chain)
        self.address = to_checksum_address(
            registry_address or self._deployed(REGISTRY, chain.relayer)
        )
        self.anchor_address = to_checksum_address(
            self._deployed(ANCHOR, chain.relayer, self.address)
        )
        self.registry = chain.w3.eth.contract(address=self.address, abi=load_artifact(REGISTRY).abi)
        self.anchor = chain.w3.eth.contract(
            address=self.anchor_address, abi=load_artifact(ANCHOR).abi
        )
        known = self._known()
        blocks = [int(known.get(name, {}).get("block_number", 0)) for name in (REGISTRY, ANCHOR)]
        self.deploy_block = min(blocks) if not registry_address else 0

    # -- deployment -------------------------------------------------------------------
    def _known(self) -> dict[str, Any]:
        all_known: dict[str, Any] = (
            json.loads(self._path.read_text()) if self._path.exists() else {}
        )
        return dict(all_known.get(self._key, {}))

    def _deployed(self, name: str, *ctor_args: Any) -> str:
        """The address of ``name`` on this chain, deploying it on first use."""
        entry = self._known().get(name)
        if entry and self.chain.w3.eth.get_code(entry["address"]):
            return str(entry["address"])
        artifact = load_artifact(name)
        result = self.chain.deploy(artifact.abi, artifact.bytecode, *ctor_args)
        assert result.contract_address is not None
        all_known: dict[str, Any] = (
            json.loads(self._path.read_text()) if self._path.exists() else {}
        )
        all_known.setdefault(self._key, {})[name] = {
            "address": result.contract_address,
            "block_number": result.block_number,
            "tx_hash": result.tx_hash,
            "source_hash": artifact.source_hash,
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(all_known, indent=2, sort_keys=True))
        tmp.replace(self._path)
        return str(result.contract_address)

    # -- transactions -----------------------------------------------------------------
    def _contract(self, on: str) -> Any:
        return self.anchor if on == "anchor" else self.registry

    def send(self, fn_name: str, *args: Any, on: str = "registry") -> TxResult:
        """Send ``fn_name(*args)`` to the registry (or ``on="anchor"``) from the relayer.

        Raises the :class:`ConsentgateError` subclass mapped from the custom error (see
        :func:`revert_to_error`); :class:`chain_node.ChainUnavailable` when the node is down.
        """
        fn = getattr(self._contract(on).functions, fn_name)(*args)
        try:
            return self.chain.send(fn)
        except ChainRevert as exc:
            raise revert_to_error(exc) from exc

    def call(self, fn_name: str, *args: Any, on: str = "registry") -> Any:
        """Call a view of the registry (or ``on="anchor"``) at the latest block."""
        fn = getattr(self._contract(on).functions, fn_name)(*args)
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
