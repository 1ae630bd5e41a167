"""The offline gate agent behind ``consentgate gate``.

A gate keeps the last good trust list and status list in its state folder and validates
codes from stdin, a file, or a local HTTP port with the fast path, without the service.

Sync (``GateAgent.sync``) fetches ``GET /v1/trust-list`` and ``GET /v1/status-lists/{epoch}``
and loads them only when the list's SHA-256 (over the ``encodedList`` text) equals the
digest anchored on chain for that epoch. Where the anchored digest comes from:

- with ``chain_url`` (any EVM JSON-RPC node of the chain): the agent reads the
  ``TrustRegistry`` itself (``statusListDigest(epoch)``, ``issuerKeyIds``/``issuerKey``) and
  uses the chain's keys, not the service's copy; ``trust_registry`` pins the contract
  address (else the address the service names is used);
- without it (the embedded chain lives inside the service's process or behind its
  loopback-only ``chain-node``, so a gate cannot read it): the digest and keys the
  service reports from its chain in
  ``GET /v1/trust-list``, with the anchoring transaction and block in the status list
  document. This still catches a list altered in transit or on a cache between them,
  but not a dishonest service; run gates against a JSON-RPC chain for that.

A refused list (``SyncRefused``) leaves the last good lists in place. ``age_s`` says how
old they are; the CLI prints it on every start. Scan reports queue in
``reports.jsonl`` and ``upload`` sends them in batches to ``POST /v1/gate/reports``.
Replay across gates: :mod:`authz.fieldcheck` (``CONSENTGATE_REDIS_URL``).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from authz.fieldcheck import (
    SKEW_S,
    RedisReplay,
    apply_shared_replay,
    result_dicts,
    status_from_doc,
    trust_list,
)

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    import httpx

READ_BYTES = 1 << 16
"""Most bytes :meth:`GateAgent.run_stream` takes in one read (~140 codes of 450 bytes)."""
_LINE = orjson.OPT_APPEND_NEWLINE
UPLOAD_BATCH = 500


class GateAgentError(Exception):
    """Root of the agent's errors; ``code`` is stable."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class SyncRefused(GateAgentError):
    """A fetched list failed its check against the chain; the last good one stays."""


class NoLists(GateAgentError):
    """The gate never synced: it has no trust list to validate with."""


def _write(path: Path, doc: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(doc))
    tmp.chmod(0o600)
    os.replace(tmp, path)


class ChainReader:
    """Reads the trust registry over JSON-RPC (web3 HTTP provider)."""

    def __init__(self, url: str, address: str) -> None:
        from web3 import Web3

        from contracts import load_artifact

        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
        abi = load_artifact("TrustRegistry").abi
        self.contract = self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)

    def digest(self, epoch: int) -> str:
        """Hex SHA-256 anchored for ``epoch`` (zeros when none)."""
        return bytes(self.contract.functions.statusListDigest(epoch).call()[0]).hex()

    def trust_doc(self) -> dict[str, Any]:
        """The trust-list document built from the chain alone."""
        from authz.trust import ALG_BY_COSE, ChainKey

        f = self.contract.functions
        keys = []
        for kid in f.issuerKeyIds().call():
            pub, alg, start, end, revoked, at = f.issuerKey(kid).call()
            keys.append(
                ChainKey(
                    bytes(kid),
                    bytes(pub),
                    ALG_BY_COSE.get(alg, str(alg)),
                    start,
                    end,
                    revoked,
                    at,
                ).spec()
            )
        epoch = int(f.latestEpoch().call())
        return {"trust_keys": keys, "status_list": {"epoch": epoch, "digest": self.digest(epoch)}}


class GateAgent:
    """One gate's agent.

    ``url``: the service; ``gate_id`` / ``api_key``: from ``POST /v1/gates``;
    ``state_dir``: where the last good lists and the report queue live; ``http``: an
    ``httpx.Client`` (tests pass the app's TestClient); ``chain_url`` /
    ``trust_registry``: see the module docstring; ``redis_url``: shared replay claims.
    """

    def __init__(
        self,
        url: str,
        gate_id: str,
        api_key: str,
        state_dir: Path,
        *,
        http: httpx.Client | None = None,
        chain_url: str = "",
        trust_registry: str = "",
        redis_url: str = "",
        clock: Any = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.gate_id = gate_id
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._http = http
        self.chain_url = chain_url
        self.trust_registry = trust_registry
        self.replay = RedisReplay(redis_url) if redis_url else None
        self.clock = clock
        self._verifier: Any = None
        self._lock = threading.Lock()  # the local HTTP port serves from several threads

    @property
    def http(self) -> Any:
        """The HTTP client (httpx, created on first use: an offline run never imports it)."""
        if self._http is None:
            import httpx

            self._http = httpx.Client(timeout=10)
        return self._http

    @http.setter
    def http(self, client: Any) -> None:
        self._http = client

    # -- lists ----------------------------------------------------------------------------
    def _get(self, path: str) -> dict[str, Any]:
        resp = self.http.get(self.url + path)
        if resp.status_code != 200:
            raise GateAgentError(f"GET {path}: HTTP {resp.status_code}", "sync_http")
        doc: dict[str, Any] = resp.json()
        return doc

    def sync(self) -> dict[str, Any]:
        """Fetch, check against the chain, and store the lists; returns the new meta
        ``{"epoch", "synced_at", "keys", "source"}``.

        Raises :class:`SyncRefused` (``digest_mismatch``, ``epoch_mismatch``) leaving the
        last good lists, or :class:`GateAgentError` ``sync_http`` / ``sync_unreachable``.
        """
        import httpx

        try:
            trust = self._get("/v1/trust-list")
            if self.chain_url:
                chain = ChainReader(self.chain_url, self.trust_registry or trust["contract"])
                trust = {**trust, **chain.trust_doc()}
                source = "chain"
            else:
                source = "service"
            anchored = trust["status_list"]
            status = self._get(f"/v1/status-lists/{anchored['epoch']}")
        except httpx.HTTPError as exc:
            raise GateAgentError(f"service unreachable: {exc}", "sync_unreachable") from exc
        if status.get("epoch") != anchored["epoch"]:
            raise SyncRefused(
                f"asked for epoch {anchored['epoch']}, got {status.get('epoch')}", "epoch_mismatch"
            )
        digest = hashlib.sha256(str(status["encodedList"]).encode("ascii")).hexdigest()
        if digest != anchored["digest"]:
            raise SyncRefused(
                f"status list of epoch {anchored['epoch']} has SHA-256 {digest}, the chain "
                f"anchored {anchored['digest']}: refused, keeping the last good list",
                "digest_mismatch",
            )
        trust_list(trust)  # parses, or raises before anything is stored
        status_from_doc(status)
        _write(self.state_dir / "trust.json", trust)
        _write(self.state_dir / "status.json", status)
        meta = {
            "epoch": anchored["epoch"],
            "synced_at": self.clock(),
            "keys": sum(1 for k in trust["trust_keys"] if not k.get("revoked")),
            "source": source,
        }
        _write(self.state_dir / "meta.json", meta)
        self._verifier = None
        return meta

    def meta(self) -> dict[str, Any] | None:
        """The last good sync's meta, or None when the gate never synced."""
        path = self.state_dir / "meta.json"
        return orjson.loads(path.read_bytes()) if path.exists() else None

    def age_s(self) -> float | None:
        """Seconds since the last good sync (None: never)."""
        meta = self.meta()
        return None if meta is None else max(0.0, self.clock() - meta["synced_at"])

    def describe(self, online: bool) -> str:
        """One line for the operator: epoch, age of the lists, online or offline."""
        meta = self.meta()
        if meta is None:
            return "gate: no lists yet (never synced)"
        mode = "online" if online else "OFFLINE, using the last good lists"
        return (
            f"gate {self.gate_id}: status list epoch {meta['epoch']}, {meta['keys']} issuer "
            f"keys, synced {round(self.age_s() or 0)} s ago from the {meta['source']} ({mode})"
        )

    def verifier(self) -> Any:
        """The fast-path verifier on the stored lists. Raises :class:`NoLists`."""
        if self._verifier is None:
            from fastpath.tokens import Verifier

            try:
                trust = orjson.loads((self.state_dir / "trust.json").read_bytes())
                status = orjson.loads((self.state_dir / "status.json").read_bytes())
            except FileNotFoundError:
                raise NoLists("no synced lists: run `consentgate gate sync`", "no_lists") from None
            self._verifier = Verifier(
                trust_list(trust), profile="sc1", skew=SKEW_S, status=status_from_doc(status)
            )
        return self._verifier

    # -- scanning -------------------------------------------------------------------------
    def validate(self, qrs: list[str], at: float | None = None) -> list[dict[str, Any]]:
        """Validate codes scanned at ``at`` (Unix seconds, default now); queue one report
        per code in ``reports.jsonl`` (one append per call)."""
        now = self.clock() if at is None else at
        with self._lock:
            results = self.verifier().verify_batch(qrs, now)
        apply_shared_replay(results, self.replay, now, SKEW_S)
        out = result_dicts(results, now)
        reports = b"".join(
            [
                orjson.dumps(
                    {
                        "cti": d["claims"].get("cti"),
                        "kid": d["kid"],
                        "valid": d["valid"],
                        "stage": d["stage"],
                        "reason": d["reason"],
                        "scanned_at": now,
                    },
                    option=_LINE,
                )
                for d in out
            ]
        )
        with self._lock, open(self.state_dir / "reports.jsonl", "ab") as queue:
            queue.write(reports)
        return out

    def _answer(self, qrs: list[str], out: IO[bytes]) -> int:
        """Validate ``qrs``, write their results (one JSON per line) in one write and
        flush, so a reader of ``out`` never sees a partial line or waits for a buffer."""
        if not qrs:
            return 0
        out.write(b"".join([orjson.dumps(d, option=_LINE) for d in self.validate(qrs)]))
        out.flush()
        return len(qrs)

    def run_stream(self, source: IO[bytes], out: IO[bytes]) -> int:
        """Validate one code per line of a binary stream (stdin, a file), blank lines
        skipped; write one JSON result per line to ``out``, in input order. Returns the
        number of codes.

        Takes whatever the stream has ready (at most :data:`READ_BYTES`, one ``read1``):
        a fast pipe or a file is validated ~140 codes per batch, while a reader feeding
        one code at a time gets its answer at once. After each batch the results are
        written and flushed whole, so a program reading ``out`` sees complete lines as
        soon as they exist. Lines end with LF, CRLF or CR; a last line without one is
        validated at end of input. Bytes that are not UTF-8 fail as a malformed code.

        Raises :class:`NoLists` when the gate never synced, and what ``out`` raises
        (``BrokenPipeError`` when its reader went away: the batches before are written,
        their reports queued).
        """
        read = source.read1 if hasattr(source, "read1") else source.read
        count = 0
        pending = b""
        while block := read(READ_BYTES):
            cut = max(block.rfind(b"\n"), block.rfind(b"\r")) + 1
            if not cut:
                pending += block
                continue
            count += self._answer(_codes(pending + block[:cut]), out)
            pending = block[cut:]
        count += self._answer(_codes(pending), out)
        out.flush()
        return count

    def upload(self, batch: int = UPLOAD_BATCH) -> int:
        """Send queued reports in batches; returns how many were accepted. Stops at the
        first failure and keeps the rest queued (offline)."""
        path = self.state_dir / "reports.jsonl"
        if not path.exists():
            return 0
        import httpx

        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        sent = 0
        try:
            while sent < len(lines):
                part = [orjson.loads(line) for line in lines[sent : sent + batch]]
                resp = self.http.post(
                    self.url + "/v1/gate/reports",
                    headers=self.headers,
                    json={"gate_id": self.gate_id, "reports": part},
                )
                if resp.status_code != 201:
                    break
                sent += len(part)
        except httpx.HTTPError:
            pass
        rest = lines[sent:]
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(line + b"\n" for line in rest))
        os.replace(tmp, path)
        return sent

    def serve(self, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        """A local HTTP endpoint for readers: ``POST /scan`` with the code as the body
        (text) -> one JSON result. Returns the (not yet started) server."""
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/scan":
                    self.send_error(404)
                    return
                declared = self.headers.get("Content-Length", "")
                if not declared.isdigit():  # absent, negative or not a number
                    self.send_error(411, "send Content-Length: the code's length in bytes")
                    return
                if int(declared) > 16384:
                    self.send_error(413, "a code is at most 16384 bytes")
                    return
                qr = self.rfile.read(int(declared)).decode("utf-8", "replace").strip()
                body = orjson.dumps(agent.validate([qr])[0])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return

        return ThreadingHTTPServer((host, port), Handler)


def _codes(block: bytes) -> list[str]:
    """The non-blank lines of ``block``, stripped (undecodable bytes become U+FFFD)."""
    lines = block.decode("utf-8", "replace").splitlines()
    return [code for code in (line.strip() for line in lines) if code]
