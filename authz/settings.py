"""Service settings, read from environment variables prefixed ``CONSENTGATE_``.

One ``Settings`` class, served through the cached :func:`get_settings` so tests can
override it (``get_settings.cache_clear()`` after changing the environment).
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "token"})


class Settings(BaseSettings):
    """Configuration of one service process.

    Environment variables (all optional):

    - ``CONSENTGATE_DATA_DIR``: folder for the SQLite index, the embedded chain and
      generated secrets (default ``./data``).
    - ``CONSENTGATE_HOST`` / ``CONSENTGATE_PORT``: where ``serve`` listens
      (default ``127.0.0.1:8000``).
    - ``CONSENTGATE_WORKERS``: API processes ``serve`` runs (default 1).
    - ``CONSENTGATE_ANCHORING``: where the anchoring worker runs. ``thread``: in each API
      process (the outbox lease lets one at a time send); ``process``: ``serve`` runs one
      dedicated ``consentgate anchor-worker`` child and its API processes send nothing
      (acceptance and anchoring then use two cores instead of sharing one interpreter);
      ``off``: this process never anchors (run ``consentgate anchor-worker`` elsewhere;
      JSON-RPC chain only); ``auto`` (default): ``process`` whenever ``serve`` runs more
      than one process (see :meth:`Settings.split`), else ``thread``.
    - ``CONSENTGATE_INGEST_PORT``: when set (not 0), ``serve`` also runs a bulk-ingest API
      process on this port for channels relaying batches of grants, so that they never
      slow the departments' access checks on ``PORT``.
    - ``CONSENTGATE_CHAIN_NODE_PORT``: on the embedded chain, when ``serve`` runs more than
      one process it serves the chain from a ``consentgate chain-node`` child on
      127.0.0.1 at this port (default 0: a free port), which every other process reaches
      over JSON-RPC (the chain's folder belongs to one process).
    - ``CONSENTGATE_BULK_NICE``: niceness added to ``serve``'s anchoring and ingest
      children (default 10; 0 to 19): under full load the CPU serves checks first.
    - ``CONSENTGATE_CHAIN_URL``: an EVM JSON-RPC URL; empty means the embedded py-evm chain.
    - ``CONSENTGATE_RELAYER_KEY``: hex private key that pays gas on a JSON-RPC chain.
    - ``CONSENTGATE_REGISTRY_ADDRESS``: use this deployed registry instead of deploying one.
    - ``CONSENTGATE_ANCHOR_MODE``: ``direct`` (a registry record per consent, sent in
      batch calls) or ``batched`` (Merkle commitments; docs/anchoring.md).
    - ``CONSENTGATE_BATCH_MAX``: most outbox items per anchoring batch (default 256).
    - ``CONSENTGATE_BATCH_WAIT_MS``: longest an accepted item waits for a fuller batch
      (milliseconds, default 50).
    - ``CONSENTGATE_AUDIT_WAIT_MS``: longest an audit event (an access check) waits
      before an audit-only anchoring batch is sent (milliseconds, default 10000: each
      batch is a chain transaction, and an audit trail a few seconds behind is fine).
    - ``CONSENTGATE_WAIT_TIMEOUT_S``: how long ``?wait=anchored`` blocks at most.
    - ``CONSENTGATE_REQUEST_TTL_S``: how long a consent request's signature deadline
      runs (seconds, default 7 days).
    - ``CONSENTGATE_REGISTRAR_TOKEN``: bearer token of the platform registrar; when unset
      it is generated on first start and stored in ``DATA_DIR/registrar_token``.
    - ``CONSENTGATE_PUBLIC_URL``: the URL citizens see; SIWE messages must name its
      host as ``domain`` and a URI under it (EIP-4361).
    - ``CONSENTGATE_DATABASE_URL``: SQLAlchemy URL of the index (default SQLite in DATA_DIR).
    - ``CONSENTGATE_ACCESS_LOG_PATH``: SQLite only: the access log's file (default beside
      the index, ``index-accesslog.sqlite3``). Put it on a device of its own: every
      check commits to it (one fdatasync), and on a shared disk that flush waits behind
      the bulk writers' data (docs/anchoring.md, "Deployment").
    - ``CONSENTGATE_REDIS_URL``: Redis shared by the gates for replay claims across gates
      (``redis://127.0.0.1:6379/0``); empty means replay protection per gate.
    """

    model_config = SettingsConfigDict(env_prefix="CONSENTGATE_", extra="ignore")

    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    ingest_port: int = Field(default=0, ge=0, le=65535)
    chain_node_port: int = Field(default=0, ge=0, le=65535)
    bulk_nice: int = Field(default=10, ge=0, le=19)
    chain_url: str = ""
    relayer_key: str = ""
    registry_address: str = ""
    anchor_mode: Literal["direct", "batched"] = "direct"
    anchoring: Literal["auto", "thread", "process", "off"] = "auto"
    batch_max: int = Field(default=256, ge=1, le=100_000)
    batch_wait_ms: int = Field(default=50, ge=0, le=600_000)
    wait_timeout_s: float = Field(default=30.0, gt=0, le=600)
    audit_wait_ms: int = Field(default=10_000, ge=0, le=3_600_000)
    request_ttl_s: int = 7 * 24 * 3600
    registrar_token: str = ""
    public_url: str = ""
    database_url: str = ""
    access_log_path: str = ""
    pseudonym_secret: str = ""
    redis_url: str = ""
    max_body_bytes: int = 1024 * 1024
    siwe_ttl_s: int = 3600
    env: str = "development"

    @field_validator("registrar_token")
    @classmethod
    def _refuse_placeholder(cls, value: str) -> str:
        if value and value.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("CONSENTGATE_REGISTRAR_TOKEN is a placeholder; set a real secret")
        return value

    @property
    def embedded(self) -> bool:
        """True when the embedded py-evm chain is used (``CHAIN_URL`` empty)."""
        return not self.chain_url

    @property
    def anchoring_here(self) -> bool:
        """True when an API process opened with these settings runs the anchoring worker
        in a thread (``ANCHORING`` ``thread`` or ``auto``; ``serve`` resolves ``auto``
        first, see :meth:`serve_anchoring`)."""
        return self.anchoring in ("thread", "auto")

    @property
    def split(self) -> bool:
        """True when ``serve`` runs more than one process: a JSON-RPC chain (the anchoring
        child, unless ``ANCHORING`` keeps it in the API), ``WORKERS`` > 1, an
        ``INGEST_PORT`` or ``ANCHORING=process``. On the embedded chain ``serve`` then
        runs the chain in a ``consentgate chain-node`` child first."""
        return (
            not self.embedded
            or self.workers > 1
            or self.ingest_port != 0
            or self.anchoring == "process"
        )

    def serve_anchoring(self) -> Literal["thread", "process", "off"]:
        """Where ``consentgate serve`` runs the anchoring worker: ``auto`` becomes
        ``process`` when ``serve`` runs more than one process anyway (:attr:`split`) and
        ``thread`` otherwise (the one-process embedded deployment)."""
        if self.anchoring == "auto":
            return "process" if self.split else "thread"
        return self.anchoring

    @property
    def base_url(self) -> str:
        """The service's public base URL (``PUBLIC_URL`` or ``http://HOST:PORT``)."""
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    def db_url(self) -> str:
        """SQLAlchemy URL of the off-chain index."""
        return self.database_url or f"sqlite:///{self.data_dir / 'index.sqlite3'}"

    def secret(self, name: str, nbytes: int = 32) -> str:
        """Return the secret stored in ``DATA_DIR/name``, creating it on first use.

        The file is written with mode 0600. Returns the URL-safe text of ``nbytes``
        random bytes.
        """
        path = self.data_dir / name
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(nbytes)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(value + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
        return value

    def effective_registrar_token(self) -> str:
        """The registrar bearer token: the configured one, else the stored/generated one."""
        return self.registrar_token or self.secret("registrar_token")


@lru_cache
def get_settings() -> Settings:
    """The process's settings (cached)."""
    return Settings()
