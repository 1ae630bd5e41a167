"""Shared support for the contract tests: chains, a deployed registry, typed-data signing, reverts.

Imported by the test modules of this package (``tests.contracts``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_typing import ChecksumAddress
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from chain_node.errors import ErrorRegistry, revert_from_exception
from contracts import error_abis, load_artifact

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

GRANT_TYPE = (
    "Grant(address subject,address controller,string purpose,string[] piCategories,"
    "bool sensitive,string[] thirdParties,bool separateConsent,uint64 validFrom,"
    "uint64 validUntil,bytes32 recordHash,uint256 nonce,uint256 deadline)"
)
WITHDRAWAL_TYPE = "Withdrawal(bytes32 consentId,address subject,uint256 nonce,uint256 deadline)"


def _fields(type_string: str) -> list[dict[str, str]]:
    inner = type_string[type_string.index("(") + 1 : -1]
    return [
        {"type": kind, "name": name}
        for kind, name in (part.split(" ") for part in inner.split(","))
    ]


EIP712_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
GRANT_FIELDS = _fields(GRANT_TYPE)
WITHDRAWAL_FIELDS = _fields(WITHDRAWAL_TYPE)

PURPOSES = ("payroll-verification", "medical-claims")
CATEGORIES = ("name", "id-number", "employment-history")

# checkConsent reason codes
OK, NOT_FOUND, WITHDRAWN, NOT_YET_VALID, EXPIRED = 0, 1, 2, 3, 4
WRONG_CONTROLLER, WRONG_PURPOSE, CATEGORY_NOT_GRANTED, CONTROLLER_SUSPENDED = 5, 6, 7, 8


def h(text: str) -> bytes:
    """keccak256 of a UTF-8 string, as bytes32."""
    return keccak(text=text)


def hashed_grant(message: dict[str, Any]) -> dict[str, Any]:
    """The on-chain ``Grant`` struct for a Grant message in its signed (string) form.

    Each text field becomes what EIP-712 ``encodeData`` puts in its place (EIP-712,
    "Definition of encodeData"): ``purposeHash`` = keccak256(utf8(purpose)),
    ``piCategoryHashes`` = the list of keccak256(utf8(category)) (the contract hashes their
    concatenation), ``thirdPartiesHash`` = keccak256(concat of keccak256(utf8(t))).
    """
    m = dict(message)
    return {
        "subject": m["subject"],
        "controller": m["controller"],
        "purposeHash": h(m["purpose"]),
        "piCategoryHashes": [h(c) for c in m["piCategories"]],
        "sensitive": m["sensitive"],
        "thirdPartiesHash": keccak(b"".join(h(t) for t in m["thirdParties"])),
        "separateConsent": m["separateConsent"],
        "validFrom": m["validFrom"],
        "validUntil": m["validUntil"],
        "recordHash": m["recordHash"],
        "nonce": m["nonce"],
        "deadline": m["deadline"],
    }


def fresh_nonce() -> int:
    """A keyed nonce as the service makes it: a random non-zero 192-bit key, sequence 0."""
    key = int.from_bytes(Account.create().key[:24], "big") or 1
    return key << 64


# --- reverts -------------------------------------------------------------------------------------

REVERT_ERRORS = (ContractLogicError, TransactionFailed)
_ERRORS = ErrorRegistry(error_abis())
_PARAMS = {entry["name"]: [p["name"] for p in entry["inputs"]] for entry in error_abis()}


@dataclass(frozen=True)
class Reverted:
    """A decoded custom-error revert: its name and arguments by ABI parameter name."""

    name: str
    args: dict[str, Any]


def decoded_revert(action: Callable[[], Any]) -> Reverted:
    """Run ``action``, which must revert with one of the artifacts' custom errors.

    Decodes through the production path, ``chain_node.errors.revert_from_exception``: web3
    raises ``ContractCustomError`` with the data as hex (anvil), eth-tester a generic
    ``TransactionFailed("execution reverted: b'<raw>'")`` carrying the raw selector.
    """
    try:
        action()
    except REVERT_ERRORS as exc:
        revert = revert_from_exception(exc, _ERRORS)
        assert revert is not None, f"not a revert: {exc!r}"
        assert revert.name in _PARAMS, f"not a custom error of the registry: {revert!r}"
        return Reverted(revert.name, dict(zip(_PARAMS[revert.name], revert.args, strict=True)))
    raise AssertionError("expected a revert, the call succeeded")


def assert_reverts(action: Callable[[], Any], name: str, **args: Any) -> Reverted:
    """Assert ``action`` reverts with custom error ``name`` and these argument values."""
    decoded = decoded_revert(action)
    assert decoded.name == name, f"expected {name}, got {decoded.name} {decoded.args}"
    for key, value in args.items():
        assert decoded.args[key] == value, f"{name}.{key}: {decoded.args[key]!r} != {value!r}"
    return decoded


# --- chains --------------------------------------------------------------------------------------


@dataclass
class Chain:
    """One backend: web3 connected to it, the registrar account, and a way to move time."""

    kind: str
    w3: Web3
    registrar: ChecksumAddress

    def now(self) -> int:
        """Timestamp of the latest block (seconds)."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def mine_at(self, timestamp: int) -> None:
        """Mine one block whose timestamp is exactly ``timestamp`` (later than the latest)."""
        if self.kind == "pyevm":
            # eth-tester mines the block at ``to - 1``; ``to`` becomes the pending timestamp
            self.w3.provider.ethereum_tester.time_travel(timestamp + 1)  # type: ignore[attr-defined]
        else:
            self.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert self.now() == timestamp

    def advance(self, seconds: int) -> None:
        """Mine a block ``seconds`` after the latest one."""
        self.mine_at(self.now() + seconds)

    @property
    def outsider(self) -> ChecksumAddress:
        """A funded, unlocked account without any role."""
        return list(self.w3.eth.accounts)[1]

    def send(self, fn: Any, sender: ChecksumAddress | None = None) -> TxReceipt:
        """Transact a contract function (from the registrar by default); it must succeed."""
        tx_hash = fn.transact({"from": sender or self.registrar})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1
        return receipt

    def deploy_registry(self) -> Contract:
        """Deploy a fresh ConsentRegistry with the registrar as admin."""
        artifact = load_artifact("ConsentRegistry")
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.send(factory.constructor(self.registrar))
        address = receipt["contractAddress"]
        assert address is not None
        return self.w3.eth.contract(address=address, abi=artifact.abi)


# --- the registry under test ---------------------------------------------------------------------


@dataclass
class Registry:
    """A freshly deployed registry with one active department holding :data:`PURPOSES`."""

    chain: Chain
    contract: Contract
    department: ChecksumAddress

    @property
    def address(self) -> ChecksumAddress:
        return self.contract.address

    def citizen(self) -> LocalAccount:
        """A fresh key pair (a card holder)."""
        return Account.create()

    def domain(self, **overrides: Any) -> dict[str, Any]:
        domain = {
            "name": "consentgate",
            "version": "1",
            "chainId": self.chain.w3.eth.chain_id,
            "verifyingContract": self.address,
        }
        domain.update(overrides)
        return domain

    def grant_message(self, subject: str, **overrides: Any) -> dict[str, Any]:
        """Valid Grant terms for ``subject`` with this department; override any field."""
        now = self.chain.now()
        message: dict[str, Any] = {
            "subject": subject,
            "controller": self.department,
            "purpose": PURPOSES[0],
            "piCategories": list(CATEGORIES[:2]),
            "sensitive": False,
            "thirdParties": [],
            "separateConsent": False,
            "validFrom": now - 10,
            "validUntil": now + 30 * 86400,
            "recordHash": keccak(text=f"record of {subject}"),
            "nonce": fresh_nonce(),
            "deadline": now + 3600,
        }
        message.update(overrides)
        return message

    def withdrawal_message(
        self, consent_id: bytes, subject: str, **overrides: Any
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "consentId": consent_id,
            "subject": subject,
            "nonce": fresh_nonce(),
            "deadline": self.chain.now() + 3600,
        }
        message.update(overrides)
        return message

    def typed_data(
        self, primary: str, message: dict[str, Any], domain: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The full ``eth_signTypedData_v4`` document for a Grant or Withdrawal."""
        fields = GRANT_FIELDS if primary == "Grant" else WITHDRAWAL_FIELDS
        return {
            "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, primary: fields},
            "primaryType": primary,
            "domain": domain or self.domain(),
            "message": message,
        }

    def sign(
        self,
        signer: LocalAccount,
        primary: str,
        message: dict[str, Any],
        domain: dict[str, Any] | None = None,
    ) -> bytes:
        """65-byte signature (r || s || v, v in {27, 28}) by eth-account."""
        signed = Account.sign_typed_data(
            signer.key, full_message=self.typed_data(primary, message, domain)
        )
        return bytes(signed.signature)

    def digest(self, primary: str, message: dict[str, Any]) -> bytes:
        """The EIP-712 digest eth-account computes for the document."""
        signable = encode_typed_data(full_message=self.typed_data(primary, message))
        return keccak(b"\x19" + signable.version + signable.header + signable.body)

    def hash_grant(self, message: dict[str, Any]) -> bytes:
        """The contract's ``hashGrant`` of a string-form Grant message (sent hashed)."""
        return bytes(self.contract.functions.hashGrant(hashed_grant(message)).call())

    def grant(self, message: dict[str, Any], signature: bytes) -> TxReceipt:
        """Relay a grant signed over the string form; the transaction carries the hashed form."""
        return self.chain.send(self.contract.functions.grant(hashed_grant(message), signature))

    def grant_batch(self, messages: list[dict[str, Any]], signatures: list[bytes]) -> Any:
        """The ``grantBatch`` contract function for string-form messages (not yet sent)."""
        return self.contract.functions.grantBatch([hashed_grant(m) for m in messages], signatures)

    def signed_grant(
        self, signer: LocalAccount, subject: str | None = None, **overrides: Any
    ) -> tuple[bytes, dict[str, Any], TxReceipt]:
        """Sign and relay a grant; return ``(consentId, message, receipt)``."""
        message = self.grant_message(subject or signer.address, **overrides)
        receipt = self.grant(message, self.sign(signer, "Grant", message))
        (event,) = self.contract.events.ConsentGranted().process_receipt(receipt)
        return bytes(event["args"]["consentId"]), message, receipt

    def refuse_grant(
        self,
        by: LocalAccount,
        message: dict[str, Any],
        error: str,
        domain: dict[str, Any] | None = None,
        /,
        **args: Any,
    ) -> Reverted:
        """Sign ``message`` by ``by``; assert the grant reverts with ``error`` and ``args``."""
        signature = self.sign(by, "Grant", message, domain)
        return assert_reverts(lambda: self.grant(message, signature), error, **args)

    def withdraw(self, message: dict[str, Any], signature: bytes) -> TxReceipt:
        return self.chain.send(self.contract.functions.withdraw(message, signature))

    def check(
        self,
        consent_id: bytes,
        controller: str | None = None,
        purpose: str = PURPOSES[0],
        categories: tuple[str, ...] | list[str] = CATEGORIES[:2],
    ) -> tuple[bool, int]:
        valid, reason = self.contract.functions.checkConsent(
            consent_id, controller or self.department, h(purpose), [h(c) for c in categories]
        ).call()
        return bool(valid), int(reason)
