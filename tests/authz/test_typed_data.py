"""The project's typed-data code against the EIP-712 example and eth-account."""

import json

import pytest
from eth_account import Account

from authz import typed_data
from authz.errors import InvalidSignature
from tests.paths import TESTDATA

VECTORS = json.loads((TESTDATA / "vectors.json").read_text())
MAIL = VECTORS["eip712_mail"]


def _sig(r: str, s: str, v: int) -> str:
    return "0x" + r + s + bytes([v]).hex()


def test_eip712_mail_example_digest_and_signer() -> None:
    digest = typed_data.digest(MAIL["typed_data"])
    assert digest.hex() == MAIL["digest"]
    sig = MAIL["signature"]
    signer = typed_data.recover_signer(digest, _sig(sig["r"], sig["s"], sig["v"]))
    assert signer == MAIL["signer"]
    assert Account.from_key(MAIL["private_key"]).address == MAIL["signer"]


def test_eip712_mail_high_s_twin_rejected() -> None:
    twin = MAIL["high_s_twin_must_be_rejected"]
    with pytest.raises(InvalidSignature) as err:
        typed_data.recover_signer(
            typed_data.digest(MAIL["typed_data"]),
            _sig(MAIL["signature"]["r"], twin["s"], twin["v"]),
        )
    assert err.value.code == "signature_high_s"


def test_service_typed_data_signed_by_eth_account_recovers() -> None:
    key = Account.create()
    message = {
        "subject": key.address,
        "controller": "0x" + "22" * 20,
        "purpose": "loan",
        "piCategories": ["identity", "住址"],
        "sensitive": False,
        "thirdParties": [],
        "separateConsent": False,
        "validFrom": 1,
        "validUntil": 2,
        "recordHash": "0x" + "ab" * 32,
        "nonce": str(7 << 64),
        "deadline": "99",
    }
    td = typed_data.grant_typed_data(31337, "0x" + "33" * 20, message)
    sig = Account.sign_typed_data(key.key, full_message=td).signature
    assert typed_data.recover_signer(typed_data.digest(td), sig) == key.address
    assert typed_data.GRANT_TYPE == (
        "Grant(address subject,address controller,string purpose,string[] piCategories,"
        "bool sensitive,string[] thirdParties,bool separateConsent,uint64 validFrom,"
        "uint64 validUntil,bytes32 recordHash,uint256 nonce,uint256 deadline)"
    )


@pytest.mark.parametrize(
    ("sig", "code"),
    [
        ("0x" + "11" * 64, "signature_malformed"),
        ("0x" + "11" * 66, "signature_malformed"),
        ("0x" + "11" * 32 + "ff" * 32 + "1b", "signature_high_s"),
        ("0x" + "11" * 64 + "00", "signature_bad_v"),
        ("0x" + "11" * 64 + "01", "signature_bad_v"),
        ("0x" + "00" * 32 + "11" * 32 + "1b", "signature_malformed"),
        ("zz", "signature_malformed"),
    ],
)
def test_strict_signature_parsing(sig: str, code: str) -> None:
    with pytest.raises(InvalidSignature) as err:
        typed_data.parse_signature(sig)
    assert err.value.code == code
