"""Request and response models of API v1 (pydantic).

Request models forbid unknown fields and use strict scalar types, so a wrong type is a
422 problem rather than a silent coercion. Response models are the public shape: only
what they declare leaves the service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
)

Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
Hex32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$")]
Signature = Annotated[str, StringConstraints(pattern=r"^(0[xX])?[0-9a-fA-F]*$", max_length=1000)]
# Printable text: no C0/C1 controls, no bidirectional overrides (Unicode TR9 "Trojan Source").
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]+$"
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=PRINTABLE)
]
Purpose = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")]
Category = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z


def _rfc3339_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string (e.g. 2030-01-01T00:00:00Z)")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must be RFC 3339 with a time zone offset (e.g. Z)")
    if value.timestamp() > MAX_TIMESTAMP:
        raise ValueError("must be at most 9999-12-31T23:59:59Z")
    return value


class DepartmentCreate(Strict):
    name: Name
    address: Address
    purposes: list[Purpose] = Field(min_length=1, max_length=50)


class DepartmentCreated(BaseModel):
    department_id: str
    address: str
    api_key: str = Field(description="Shown once; the service stores only its SHA-256.")
    purposes: list[str]
    tx_hash: str


class DepartmentPublic(BaseModel):
    department_id: str
    name: str
    address: str
    purposes: list[str]
    active: bool


class SuspensionResult(BaseModel):
    department_id: str
    active: bool
    tx_hash: str


class GuardianshipCreate(Strict):
    ward: Address
    guardian: Address
    until: datetime

    _text = field_validator("until", mode="before")(_rfc3339_text)
    _tz = field_validator("until")(_aware)


class GuardianshipResult(BaseModel):
    ward: str
    guardian: str | None
    until: str | None
    tx_hash: str


class ConsentRequestCreate(Strict):
    subject: Address
    purpose: Purpose
    pii_categories: list[Category] = Field(min_length=1, max_length=50)
    sensitive: StrictBool = False
    third_parties: list[ShortText] = Field(default_factory=list, max_length=20)
    legal_basis: ShortText = "consent"
    jurisdiction: Annotated[str, StringConstraints(min_length=2, max_length=20)] = "CN"
    notice_url: Url
    retention_days: StrictInt = Field(ge=0, le=36500)
    valid_until: datetime

    _text = field_validator("valid_until", mode="before")(_rfc3339_text)
    _tz = field_validator("valid_until")(_aware)


class TypedData(BaseModel):
    types: dict[str, list[dict[str, str]]]
    primaryType: str
    domain: dict[str, Any]
    message: dict[str, Any]


class ConsentRequestCreated(BaseModel):
    request_id: str
    consent_id: str = Field(description="The EIP-712 digest; the consent's id once granted.")
    typed_data: TypedData


class ConsentRequestPublic(ConsentRequestCreated):
    subject: str
    department_id: str
    record: dict[str, Any]
    granted: bool


class GrantCreate(Strict):
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    signature: Signature


class AnchoredResult(BaseModel):
    consent_id: str
    status: str = Field(description="grant: pending | anchored | failed; withdrawal: withdrawn")
    anchor: str = Field(description="pending | anchored | failed")
    tx_hash: str | None
    block_number: int | None
    error_code: str | None = None


class GrantBatchCreate(Strict):
    items: list[GrantCreate] = Field(min_length=1, max_length=1000)


class GrantBatchItemResult(BaseModel):
    accepted: bool
    consent_id: str | None = None
    status: str | None = None
    anchor: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    error_code: str | None = None
    problem: dict[str, Any] | None = Field(
        default=None, description="RFC 9457 problem details when the item was refused"
    )


class GrantBatchResult(BaseModel):
    results: list[GrantBatchItemResult]


class WithdrawalTypedData(BaseModel):
    typed_data: TypedData


class WithdrawalCreate(Strict):
    signature: Signature


class AccessCheckCreate(Strict):
    subject: Address
    purpose: Purpose
    pii_categories: list[Category] = Field(min_length=1, max_length=50)


class AccessCheckResult(BaseModel):
    allowed: bool
    consent_id: str | None
    reason: str
    access_id: str
    anchor: dict[str, Any] | None


class Nonce(BaseModel):
    nonce: str


class SiweCreate(Strict):
    message: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    signature: Signature


class SiweSession(BaseModel):
    token: str
    address: str
    expires_at: int = Field(description="Unix seconds")


class ChainInfo(BaseModel):
    backend: str
    chain_id: int
    block_number: int


class Health(BaseModel):
    status: str
    chain: ChainInfo


class ChainDetails(ChainInfo):
    registry: str
    relayer: str
    indexed_block: int


class ProblemItemError(BaseModel):
    loc: list[str]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is sent
    (``application/problem+json``)."""

    type: str = Field(description="urn:consentgate:problem:<code>")
    title: str
    status: int
    detail: str
    code: str = Field(description="stable, snake_case; part of the API contract")
    errors: list[ProblemItemError] | None = Field(
        default=None, description="validation_error / malformed_json: each failing field"
    )


class ApiKey(BaseModel):
    department_id: str
    api_key: str = Field(description="Shown once; the previous key stops working.")
