"""Request and response models of the field endpoints (issue 5): devices, tokens,
revocations, status lists, trust list, gates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    field_validator,
)

from authz.api.schemas import Address, Name, ShortText, Strict

DeviceKeyText = Annotated[
    str, StringConstraints(min_length=43, max_length=64, pattern=r"^[0-9A-Za-z+/_=-]+$")
]
Qr = Annotated[str, StringConstraints(max_length=8192)]


class DeviceCreate(Strict):
    device_public_key: DeviceKeyText = Field(description="Ed25519 public key, hex or base64")


class DeviceCertificatePublic(BaseModel):
    device_certificate_id: str
    device_certificate: str = Field(description="COSE_Sign1 bytes, base64url without padding")
    status_index: int
    kid: str = Field(description="issuer key id, hex")
    issued_at: int = Field(description="Unix seconds")
    expires_at: int = Field(description="Unix seconds")


class TokenPublic(BaseModel):
    qr: str
    png_base64: str
    expires_at: int = Field(description="Unix seconds")


class RevocationCreate(Strict):
    subject: Address | None = None
    status_index: StrictInt | None = Field(default=None, ge=0)
    device_certificate_id: Annotated[str, StringConstraints(max_length=40)] | None = None
    reason: ShortText


class RevocationPublic(BaseModel):
    revocation_id: str
    kind: str
    status_indexes: list[int]
    epoch: int
    digest: str = Field(description="SHA-256 of the epoch's encodedList, hex")
    tx_hash: str
    block_number: int


class IssuerKeyCreated(BaseModel):
    kid: str
    not_before: str
    not_after: str
    tx_hash: str


class KeyRevoked(BaseModel):
    kid: str
    tx_hash: str


class GateCreate(Strict):
    name: Name
    location: Name


class GateCreated(BaseModel):
    gate_id: str
    api_key: str


class Scan(Strict):
    qr: Qr
    scanned_at: StrictInt | StrictFloat = Field(
        description="Unix seconds, or an RFC 3339 date-time with offset"
    )

    @field_validator("scanned_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("scanned_at: Unix seconds or RFC 3339 with offset") from None
            if parsed.tzinfo is None:
                raise ValueError("scanned_at: RFC 3339 needs a time zone offset")
            return parsed.timestamp()
        return value


class ValidationBatch(Strict):
    gate_id: Annotated[str, StringConstraints(max_length=40)]
    scans: list[Scan] = Field(max_length=10_000)


class ScanReport(Strict):
    cti: str | None = None
    kid: str | None = None
    valid: bool
    stage: Annotated[str, StringConstraints(max_length=20)]
    reason: Annotated[str, StringConstraints(max_length=64)]
    scanned_at: StrictInt | StrictFloat


class ReportBatch(Strict):
    gate_id: Annotated[str, StringConstraints(max_length=40)]
    reports: list[ScanReport] = Field(max_length=10_000)


class ReportsAccepted(BaseModel):
    batch_id: str
    accepted: int
