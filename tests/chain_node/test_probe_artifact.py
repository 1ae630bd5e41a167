"""The committed Probe.json is built from the committed Probe.sol."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from eth_utils import keccak

FIXTURES = Path(__file__).parent / "fixtures"


def test_probe_artifact_matches_source() -> None:
    artifact = json.loads((FIXTURES / "Probe.json").read_text())
    source = (FIXTURES / "Probe.sol").read_bytes()
    assert artifact["source_sha256"] == hashlib.sha256(source).hexdigest()
    assert artifact["compiler"].startswith("0.8.30+")
    errors = [e for e in artifact["abi"] if e["type"] == "error"]
    assert [e["name"] for e in errors] == ["ProbeRefused"]
    fn = {e["name"] for e in artifact["abi"] if e["type"] == "function"}
    assert {"increment", "failCustom", "failString", "incrementUnless", "divide", "now_"} <= fn
    assert keccak(text="ProbeRefused(address,uint256)")[:4].hex() == "10a56673"
