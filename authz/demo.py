"""A real-HTTP walkthrough of the consent flow, used by ``consentgate demo``.

A department is registered, asks a fresh citizen key for consent, the citizen signs the
EIP-712 typed data (eth-account), the grant is anchored, an access check is allowed, the
citizen signs in with SIWE and withdraws, and the next check is denied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_account import Account

from authz.client import Client, request_body


def run_demo(base_url: str, registrar_token: str, echo: Callable[[str], Any] = print) -> bool:
    """Run the walkthrough; returns True when every step behaved as expected."""
    with Client(base_url) as api:
        chain = api.health()["chain"]
        echo(f"chain: {chain}")
        dept_key, citizen = Account.create(), Account.create()
        purpose = "loan-underwriting"
        dept = api.register_department(
            registrar_token, "Demo City Bank", dept_key.address, [purpose]
        )
        echo(f"department registered: {dept['department_id']} tx {dept['tx_hash']}")
        req = api.request_consent(
            dept, request_body(citizen.address, purpose, ["identity", "income"])
        )
        echo(f"consent requested: {req['request_id']}")
        grant = api.grant(req, citizen)
        echo(
            f"granted: consent {grant['consent_id']} tx {grant['tx_hash']} "
            f"block {grant['block_number']}"
        )
        first = api.check(dept, citizen.address, purpose, ["income"])
        echo(f"access check: allowed={first['allowed']} reason={first['reason']}")
        session = api.sign_in(citizen, chain["chain_id"])
        withdrawn = api.withdraw(grant["consent_id"], citizen, session)
        echo(
            f"withdrawn: status={withdrawn['status']} tx {withdrawn['tx_hash']} "
            f"block {withdrawn['block_number']}"
        )
        second = api.check(dept, citizen.address, purpose, ["income"])
        echo(f"access check: allowed={second['allowed']} reason={second['reason']}")
        echo("access log (newest first):")
        for e in api.access_log(citizen.address, session):
            echo(
                f"  {e['at']} {e['department_name']} {e['purpose']} {e['pii_categories']} "
                f"allowed={e['allowed']} ({e['reason']})"
            )
        echo("chain receipts:")
        for ev in api.consent(grant["consent_id"], session)["events"]:
            echo(f"  {ev['event']}: tx {ev['tx_hash']} block {ev['block_number']}")
        ok = first["allowed"] and withdrawn["status"] == "withdrawn" and not second["allowed"]
        echo("allowed -> withdrawn -> denied: " + ("OK" if ok else "UNEXPECTED"))
        return bool(ok)
