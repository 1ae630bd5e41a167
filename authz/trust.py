"""The trust registry on chain and the issuer keys the service signs device certificates with.

One :class:`TrustRegistryClient` per process wraps the deployed ``TrustRegistry`` contract
(deployed beside the consent registry on first use; its address is remembered in
``DATA_DIR/deployments.json`` under the same chain key as :mod:`authz.ledger` uses).
Issuer private keys live in ``DATA_DIR/issuer_keys.json`` (mode 0600); their public keys,
COSE algorithm and validity are registered on chain, which is the source of truth for
what gates trust (``GET /v1/trust-list`` reads the chain, not the file).

Times are Unix seconds. Key ids are 8 bytes (SHA-256 of the public key, first 8 bytes).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from nacl.signing import SigningKey

from authz.errors import BadRequest, Conflict, ConsentgateError, Forbidden, NotFound
from chain_node import ChainBackend, ChainRevert, TxResult
from contracts import error_abis, load_artifact
from fastpath.tokens import codes
from fastpath.tokens.issue import IssuerKey

TRUST_REGISTRY = "TrustRegistry"
ISSUER_KEY_LIFETIME_S = 365 * 86400
ALG_BY_COSE = {codes.ALG_EDDSA: "EdDSA", codes.ALG_ES256: "ES256"}

REVERT_CODES: dict[str, tuple[type[ConsentgateError], str]] = {
    "TrustKeyExists": (Conflict, "issuer_key_exists"),
    "TrustKeyUnknown": (NotFound, "issuer_key_not_found"),
    "TrustKeyAlreadyRevoked": (Conflict, "issuer_key_already_revoked"),
    "TrustKeyInvalid": (BadRequest, "issuer_key_invalid"),
    "TrustInvalidValidity": (BadRequest, "invalid_validity"),
    "TrustEpochOutOfOrder": (Conflict, "epoch_out_of_order"),
    "TrustZeroDigest": (BadRequest, "digest_zero"),
    "AccessControlUnauthorizedAccount": (Forbidden, "chain_forbidden"),
}


def rfc3339(seconds: float) -> str:
    """Unix seconds -> ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ChainKey:
    """An issuer key as the trust registry holds it (``kid`` and ``public_key`` bytes)."""

    kid: bytes
    public_key: bytes
    alg: str
    valid_from: int
    valid_until: int
    revoked: bool
    revoked_at: int

    def spec(self) -> dict[str, Any]:
        """The JSON entry of ``GET /v1/trust-list`` (readable by
        :func:`fastpath.tokens.trust.key_from_spec`)."""
        return {
            "kid": self.kid.hex(),
            "alg": self.alg,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "not_before": rfc3339(self.valid_from),
            "not_after": rfc3339(self.valid_until),
            "revoked": self.revoked,
            "revoked_at": rfc3339(self.revoked_at) if self.revoked else None,
        }


class TrustRegistryClient:
    """The deployed trust registry on one chain.

    Attributes: ``chain``, ``contract`` (web3 contract), ``address`` (checksum),
    ``chain_id``, ``deployment`` (``{"address", "block_number", "tx_hash"}``).
    """

    def __init__(self, chain: ChainBackend, data_dir: Path) -> None:
        self.chain = chain
        self.chain_id = chain.chain_id
        artifact = load_artifact(TRUST_REGISTRY)
        chain.register_errors(error_abis())
        self.deployment = self._deployed(data_dir, artifact)
        self.address = to_checksum_address(self.deployment["address"])
        self.contract = chain.w3.eth.contract(address=self.address, abi=artifact.abi)

    def _deployed(self, data_dir: Path, artifact: Any) -> dict[str, Any]:
        path = data_dir / "deployments.json"
        known: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        genesis = self.chain.w3.eth.get_block(0)["hash"]
        key = f"{self.chain_id}:{bytes(genesis).hex()}"
        entry = known.get(key, {}).get(TRUST_REGISTRY)
        if entry and self.chain.w3.eth.get_code(entry["address"]):
            return dict(entry)
        result = self.chain.deploy(artifact.abi, artifact.bytecode, self.chain.relayer)
        entry = {
            "address": result.contract_address,
            "block_number": result.block_number,
            "tx_hash": result.tx_hash,
            "source_hash": artifact.source_hash,
        }
        known = json.loads(path.read_text()) if path.exists() else {}
        known.setdefault(key, {})[TRUST_REGISTRY] = entry
        tmp = path.with_suffix(".trust.tmp")
        tmp.write_text(json.dumps(known, indent=2, sort_keys=True))
        tmp.replace(path)
        return entry

    def send(self, fn_name: str, *args: Any) -> TxResult:
        """Send ``fn_name(*args)`` from the relayer; reverts become service errors
        (:data:`REVERT_CODES`, else 400 ``chain_rejected``)."""
        try:
            return self.chain.send(getattr(self.contract.functions, fn_name)(*args))
        except ChainRevert as exc:
            mapped = REVERT_CODES.get(exc.name)
            detail = f"the trust registry refused the transaction: {exc}"
            if mapped:
                raise mapped[0](detail, code=mapped[1], chain_error=exc.name) from exc
            raise BadRequest(detail, code="chain_rejected", chain_error=exc.name) from exc

    def call(self, fn_name: str, *args: Any) -> Any:
        """A view at the latest block."""
        return self.chain.call(getattr(self.contract.functions, fn_name)(*args))

    def keys(self) -> list[ChainKey]:
        """Every issuer key in registration order, as the chain holds it."""
        out = []
        for kid in self.call("issuerKeyIds"):
            pub, alg, start, end, revoked, revoked_at = self.call("issuerKey", kid)
            out.append(
                ChainKey(
                    bytes(kid),
                    bytes(pub),
                    ALG_BY_COSE.get(int(alg), str(alg)),
                    int(start),
                    int(end),
                    bool(revoked),
                    int(revoked_at),
                )
            )
        return out

    def latest_epoch(self) -> int:
        """The latest anchored status-list epoch (0 before the first)."""
        return int(self.call("latestEpoch"))

    def digest(self, epoch: int) -> tuple[bytes, int, int]:
        """``(sha256 digest, size_bits, anchored_at)`` anchored for ``epoch`` (zeros if none)."""
        digest, size, at = self.call("statusListDigest", epoch)
        return bytes(digest), int(size), int(at)


class IssuerKeys:
    """The issuer private keys in ``DATA_DIR/issuer_keys.json`` (mode 0600).

    File shape: ``{"keys": [{"kid": hex, "seed": hex (32-byte Ed25519 seed),
    "valid_from": s, "valid_until": s}]}``, oldest first.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "issuer_keys.json"
        self._lock = threading.Lock()

    def _load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return list(json.loads(self.path.read_text())["keys"])

    def _save(self, entries: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": entries}, indent=2))
        tmp.chmod(0o600)
        tmp.replace(self.path)

    def entries(self) -> list[dict[str, Any]]:
        """The stored entries, oldest first."""
        with self._lock:
            return self._load()

    def generate(self, now: int, lifetime_s: int = ISSUER_KEY_LIFETIME_S) -> dict[str, Any]:
        """Create and store a new Ed25519 issuer key valid ``[now, now + lifetime_s]``."""
        key = IssuerKey.generate("EdDSA")
        entry = {
            "kid": key.kid.hex(),
            "seed": bytes(key.private).hex(),
            "valid_from": now,
            "valid_until": now + lifetime_s,
        }
        with self._lock:
            entries = self._load()
            entries.append(entry)
            self._save(entries)
        return entry

    @staticmethod
    def signer(entry: dict[str, Any]) -> IssuerKey:
        """The :class:`IssuerKey` of a stored entry."""
        return IssuerKey(
            bytes.fromhex(entry["kid"]), "EdDSA", SigningKey(bytes.fromhex(entry["seed"]))
        )


class Trust:
    """Issuer keys registered on chain and the one the service signs with now."""

    def __init__(self, registry: TrustRegistryClient, store: IssuerKeys) -> None:
        self.registry = registry
        self.store = store
        self._lock = threading.Lock()
        self._keys: list[ChainKey] | None = None

    def chain_keys(self, refresh: bool = False) -> list[ChainKey]:
        """The chain's keys (cached until a change made through this object)."""
        with self._lock:
            if self._keys is None or refresh:
                self._keys = self.registry.keys()
            return list(self._keys)

    def add_key(self, now: int, lifetime_s: int = ISSUER_KEY_LIFETIME_S) -> tuple[ChainKey, str]:
        """Generate a key, register it on chain; returns it and the transaction hash."""
        entry = self.store.generate(now, lifetime_s)
        signer = IssuerKeys.signer(entry)
        result = self.registry.send(
            "addIssuerKey",
            signer.kid,
            bytes(signer.private.verify_key),
            codes.ALG_EDDSA,
            entry["valid_from"],
            entry["valid_until"],
        )
        keys = self.chain_keys(refresh=True)
        return next(k for k in keys if k.kid == signer.kid), result.tx_hash

    def revoke_key(self, kid: bytes) -> str:
        """Revoke a key on chain (gates drop it at their next sync); returns the tx hash."""
        result = self.registry.send("revokeIssuerKey", kid)
        self.chain_keys(refresh=True)
        return result.tx_hash

    def ensure_key(self, now: int) -> None:
        """Register a first issuer key when the chain has none usable (first start)."""
        if self._signing_entry(now) is None:
            self.add_key(now)

    def _signing_entry(self, now: int) -> tuple[dict[str, Any], ChainKey] | None:
        on_chain = {k.kid.hex(): k for k in self.chain_keys()}
        best = None
        for entry in self.store.entries():
            key = on_chain.get(entry["kid"])
            if key and not key.revoked and key.valid_from <= now < key.valid_until:
                best = (entry, key)  # newest usable key wins
        return best

    def signing_key(self, now: int) -> tuple[IssuerKey, ChainKey]:
        """The newest stored key that the chain holds as valid now and not revoked.

        Raises :class:`Conflict` ``no_issuer_key`` when there is none (the registrar must
        add one: ``POST /v1/trust-list/keys``).
        """
        found = self._signing_entry(now)
        if found is None:
            raise Conflict("no valid issuer key on chain", code="no_issuer_key")
        return IssuerKeys.signer(found[0]), found[1]
