"""Property: the contract's EIP-712 digests equal eth-account's for arbitrary terms."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from tests.contracts.contract_support import Registry

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
texts = st.text(max_size=40)
uint64 = st.integers(min_value=0, max_value=2**64 - 1)
uint256 = st.integers(min_value=0, max_value=2**256 - 1)

grants = st.fixed_dictionaries(
    {
        "subject": addresses,
        "controller": addresses,
        "purpose": texts,
        "piCategories": st.lists(texts, max_size=5),
        "sensitive": st.booleans(),
        "thirdParties": st.lists(texts, max_size=3),
        "separateConsent": st.booleans(),
        "validFrom": uint64,
        "validUntil": uint64,
        "recordHash": st.binary(min_size=32, max_size=32),
        "nonce": uint256,
        "deadline": uint256,
    }
)
withdrawals = st.fixed_dictionaries(
    {
        "consentId": st.binary(min_size=32, max_size=32),
        "subject": addresses,
        "nonce": uint256,
        "deadline": uint256,
    }
)


def _checksummed(message: dict[str, Any]) -> dict[str, Any]:
    return {
        k: Web3.to_checksum_address(v) if k in ("subject", "controller") else v
        for k, v in message.items()
    }


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(grant=grants, withdrawal=withdrawals)
def test_digests_match_eth_account(
    registry: Registry, grant: dict[str, Any], withdrawal: dict[str, Any]
) -> None:
    grant, withdrawal = _checksummed(grant), _checksummed(withdrawal)
    functions = registry.contract.functions
    assert registry.hash_grant(grant) == registry.digest("Grant", grant)
    assert bytes(functions.hashWithdrawal(withdrawal).call()) == registry.digest(
        "Withdrawal", withdrawal
    )
