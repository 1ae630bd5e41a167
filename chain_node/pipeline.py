"""Pure helpers of the bulk transaction pipeline (``ChainBackend.send_many``).

Fee bumping for replacements, classification of ``eth_sendRawTransaction`` errors, and
turning raw JSON-RPC receipts into the web3 receipts that ``send`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from web3._utils.method_formatters import receipt_formatter
from web3.datastructures import AttributeDict

__all__ = [
    "REPLACEMENT_BUMP",
    "SendOutcome",
    "bump_fees",
    "classify_send_error",
    "format_receipt",
]

REPLACEMENT_BUMP = Fraction(9, 8)
"""Minimum fee growth of a replacement (same sender and nonce): +12.5 %. Geth's pool
requires +10 % on both ``maxFeePerGas`` and ``maxPriorityFeePerGas`` (``--txpool.pricebump``,
default 10); reth/anvil and some providers require +12.5 %; the larger one works on both."""


def _bumped(value: int, factor: Fraction) -> int:
    """``ceil(value * factor)``, at least ``value + 1`` (wei)."""
    scaled = -((-value * factor.numerator) // factor.denominator)
    return max(scaled, value + 1)


def bump_fees(
    previous: Mapping[str, int], current: Mapping[str, int], factor: Fraction = REPLACEMENT_BUMP
) -> dict[str, int]:
    """Fee fields (wei) for replacing a transaction that was sent with ``previous``.

    Each field is at least ``ceil(previous * factor)`` (and previous + 1) and at least the
    ``current`` market value of the same field (see ``_current_fees``), so the replacement
    both satisfies the pool's replacement rule and is includable now. EIP-1559
    (``maxFeePerGas``/``maxPriorityFeePerGas``): the fee cap is kept >= the tip, as
    EIP-1559 "Specification" requires. Legacy (``gasPrice``): bumped the same way.
    """
    out = {
        key: max(_bumped(int(value), factor), int(current.get(key, 0)))
        for key, value in previous.items()
        if key in ("maxFeePerGas", "maxPriorityFeePerGas", "gasPrice")
    }
    if "maxFeePerGas" in out:
        out["maxFeePerGas"] = max(out["maxFeePerGas"], out["maxPriorityFeePerGas"])
    return out


class SendOutcome:
    """What an ``eth_sendRawTransaction`` error means for the pipeline (string constants)."""

    ACCEPTED = "accepted"
    """The node has this exact transaction already ("already known"): as good as sent."""
    NONCE_LOW = "nonce_low"
    """The nonce is used (mined, or another tx of the sender holds it in the pool)."""
    UNDERPRICED = "underpriced"
    """A replacement did not bump the fees enough (or is below the pool's minimum)."""
    FAILED = "failed"
    """Anything else: the transaction was refused for good (funds, gas, format)."""


_ACCEPTED = ("already known", "known transaction", "already imported", "already exists")
_NONCE_LOW = ("nonce too low", "nonce is too low", "old nonce", "oldnonce", "invalid nonce")


def classify_send_error(error: Mapping[str, Any] | str) -> str:
    """Map a JSON-RPC error object (or message) from ``eth_sendRawTransaction`` to a
    :class:`SendOutcome` constant, by the messages geth, reth/anvil, Besu and Nethermind
    use (they share no error codes for these cases)."""
    message = (error if isinstance(error, str) else str(error.get("message", ""))).lower()
    if any(w in message for w in _ACCEPTED):
        return SendOutcome.ACCEPTED
    if any(w in message for w in _NONCE_LOW):
        return SendOutcome.NONCE_LOW
    if "underpriced" in message or ("replacement" in message and "fee" in message):
        return SendOutcome.UNDERPRICED
    return SendOutcome.FAILED


def format_receipt(raw: Mapping[str, Any]) -> Any:
    """A raw JSON-RPC receipt (hex strings) as web3 returns it from
    ``w3.eth.get_transaction_receipt``: ints, HexBytes, checksum addresses, AttributeDict."""
    return AttributeDict.recursive(receipt_formatter(dict(raw)))
