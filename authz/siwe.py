"""Sign-In with Ethereum (EIP-4361 / ERC-4361): strict message parser, builder and verifier.

A plain module, no web framework: the HTTP layer calls `new_nonce`, `parse_message`,
`verify_message` and (for clients and tests) `build_message`.

Grammar: the ABNF of ERC-4361 "Message Format", with RFC 3986 for `scheme`, `authority`
(the domain), `URI`, `pchar`, `reserved`/`unreserved`, and RFC 3339 section 5.6 for
`date-time`. Every field is checked when a `SiweMessage` is built, so a message object
always renders (`to_text`) to text that parses back to an equal object.

Deliberate limits beyond the ABNF (ERC-4361 "Maximum Lengths for ABNF Terms" asks for them):
- a message is at most `MAX_MESSAGE_CHARS` characters;
- a leap second (`:60`) is refused, Python datetimes cannot hold it;
- fractional seconds beyond microseconds are truncated to microseconds;
- the address must be EIP-55 checksummed (ERC-4361 says SHOULD; this service requires it).

Canonical text (what `to_text` and `build_message` write): no scheme unless given, the chain
id without leading zeros, timestamps in UTC with `Z`, seconds, and a fraction only when the
microseconds are not zero (3 digits when whole milliseconds, else 6), no empty `Resources:`
section. `to_text(parse_message(x)) == x` holds for canonical `x`; signatures are always
checked over the exact text received, never over a re-rendering.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_keys.exceptions import ValidationError as EthKeysValidationError
from eth_utils import is_checksum_address

__all__ = [
    "ISSUED_AT_SKEW_S",
    "MAX_MESSAGE_CHARS",
    "SiweError",
    "SiweMessage",
    "build_message",
    "new_nonce",
    "parse_message",
    "verify_message",
]

MAX_MESSAGE_CHARS = 16_384
"""Longest message accepted, in characters (the message is ASCII, so also bytes)."""

ISSUED_AT_SKEW_S = 60
"""Seconds an `issued-at` may lie in the future of the verifier's clock."""

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""Order of the secp256k1 group; low-s means s <= N // 2 (EIP-2)."""

_MAX_CHAIN_ID_DIGITS = 78  # 2**256 - 1 has 78 digits; chain ids are far shorter (EIP-155, EIP-2294)
_PREAMBLE_SUFFIX = " wants you to sign in with your Ethereum account:"

# --- RFC 3986 appendix A, as regular expressions (ASCII only) -------------------------------
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_GEN_DELIMS = r":/?#\[\]@"
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"
_IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = "|".join(
    [
        rf"(?:{_H16}:){{6}}{_LS32}",
        rf"::(?:{_H16}:){{5}}{_LS32}",
        rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    ]
)
_IPVFUTURE = rf"v[0-9A-Fa-f]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+"
_IP_LITERAL = rf"\[(?:{_IPV6}|{_IPVFUTURE})\]"
_REG_NAME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*"
_HOST = rf"(?:{_IP_LITERAL}|{_REG_NAME})"  # IPv4address is a subset of reg-name
_AUTHORITY = rf"(?:{_USERINFO}@)?{_HOST}(?::[0-9]*)?"
_SEGMENT = rf"{_PCHAR}*"
_SEGMENT_NZ = rf"{_PCHAR}+"
_HIER_PART = (
    rf"(?://{_AUTHORITY}(?:/{_SEGMENT})*"  # "//" authority path-abempty
    rf"|/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"  # path-absolute
    rf"|{_SEGMENT_NZ}(?:/{_SEGMENT})*"  # path-rootless
    r"|)"  # path-empty
)
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_URI = rf"{_SCHEME}:{_HIER_PART}(?:\?{_QUERY})?(?:#{_QUERY})?"

SCHEME_RE = re.compile(_SCHEME, re.ASCII)
AUTHORITY_RE = re.compile(_AUTHORITY, re.ASCII)
URI_RE = re.compile(_URI, re.ASCII)
REQUEST_ID_RE = re.compile(rf"{_PCHAR}*", re.ASCII)
STATEMENT_RE = re.compile(rf"[{_GEN_DELIMS}{_SUB_DELIMS}{_UNRESERVED} ]*", re.ASCII)
NONCE_RE = re.compile(r"[A-Za-z0-9]{8,}", re.ASCII)
CHAIN_ID_RE = re.compile(r"[0-9]+", re.ASCII)
ADDRESS_RE = re.compile(r"0x[0-9A-Fa-f]{40}", re.ASCII)

# --- RFC 3339 section 5.6 date-time ("T" and "Z" may be lowercase, section 5.6 NOTE) ----------
DATE_TIME_RE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt]"
    r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})(?:\.(?P<frac>[0-9]+))?"
    r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))",
    re.ASCII,
)

ERROR_CODES = frozenset(
    {
        "siwe_malformed",
        "siwe_domain_mismatch",
        "siwe_uri_mismatch",
        "siwe_chain_mismatch",
        "siwe_expired",
        "siwe_not_yet_valid",
        "siwe_issued_in_future",
        "siwe_too_old",
        "siwe_bad_signature",
        "siwe_address_mismatch",
        "siwe_nonce_invalid",
    }
)


class SiweError(ValueError):
    """A SIWE message or signature was refused.

    `code` is stable (one of `ERROR_CODES`) for problem details; `str(err)` is for humans.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown SIWE error code {code!r}")
        super().__init__(message)
        self.code = code

    def __repr__(self) -> str:
        return f"SiweError({self.code!r}, {str(self)!r})"


def _malformed(message: str) -> SiweError:
    return SiweError("siwe_malformed", message)


def _check(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise _malformed(f"{what} does not match its ERC-4361 grammar: {value!r:.80}")
    return value


def _utc(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise _malformed(f"{what} must be a timezone-aware datetime")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise _malformed(f"{what} is outside years 1..9999 in UTC") from exc


def parse_datetime(text: str, what: str = "date-time") -> datetime:
    """Parse an RFC 3339 (section 5.6) `date-time` into an aware UTC datetime.

    Offsets are applied (`-00:00` is read as UTC); fractions beyond microseconds are
    truncated. Raises SiweError("siwe_malformed") on any other form, an impossible date or
    time (RFC 3339 section 5.7), a leap second, or a year outside 1..9999 after conversion.
    """
    m = DATE_TIME_RE.fullmatch(text)
    if m is None:
        raise _malformed(f"{what} is not an RFC 3339 date-time: {text!r:.80}")
    frac = m["frac"] or ""
    try:
        local = datetime(
            int(m["y"]),
            int(m["mo"]),
            int(m["d"]),
            int(m["h"]),
            int(m["mi"]),
            int(m["s"]),
            int(frac[:6].ljust(6, "0")),
        )
        if m["z"] is not None:
            offset = timedelta(0)
        else:
            oh, om = int(m["oh"]), int(m["om"])
            if oh > 23 or om > 59:
                raise ValueError("offset out of range")
            offset = timedelta(hours=oh, minutes=om) * (1 if m["sign"] == "+" else -1)
        return (local - offset).replace(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise _malformed(f"{what} is not a valid RFC 3339 date-time: {text!r:.80}") from exc


def format_datetime(value: datetime) -> str:
    """Canonical RFC 3339 text of an aware datetime: UTC, `Z`, fraction only if non-zero."""
    v = value.astimezone(UTC)
    text = f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
    if v.microsecond % 1000 == 0 and v.microsecond:
        text += f".{v.microsecond // 1000:03d}"
    elif v.microsecond:
        text += f".{v.microsecond:06d}"
    return text + "Z"


@dataclass(frozen=True, kw_only=True)
class SiweMessage:
    """The fields of one ERC-4361 message, each checked against its grammar on creation.

    Datetimes are aware and normalized to UTC; `resources` is a tuple. Creating one with a
    field outside its grammar raises SiweError("siwe_malformed").
    """

    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    version: str = "1"
    statement: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default=())
    scheme: str | None = None

    def __post_init__(self) -> None:
        if self.scheme is not None:
            _check(SCHEME_RE, self.scheme, "scheme")
        _check(AUTHORITY_RE, self.domain, "domain")
        _check(ADDRESS_RE, self.address, "address")
        if not is_checksum_address(self.address):
            raise _malformed(f"address is not EIP-55 checksummed: {self.address}")
        if self.statement is not None:
            _check(STATEMENT_RE, self.statement, "statement")
        _check(URI_RE, self.uri, "uri")
        if self.version != "1":
            raise _malformed(f"version must be '1', got {self.version!r:.20}")
        if type(self.chain_id) is not int or not 0 <= self.chain_id < 2**256:
            raise _malformed(f"chain id must be an int in [0, 2**256), got {self.chain_id!r:.40}")
        _check(NONCE_RE, self.nonce, "nonce (8 or more ASCII letters and digits)")
        object.__setattr__(self, "issued_at", _utc(self.issued_at, "issued-at"))
        for name in ("expiration_time", "not_before"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _utc(getattr(self, name), name))
        if self.request_id is not None:
            _check(REQUEST_ID_RE, self.request_id, "request id")
        if isinstance(self.resources, str | bytes):
            raise _malformed("resources must be a sequence of URIs, not one string")
        resources = tuple(self.resources)
        for resource in resources:
            _check(URI_RE, resource, "resource")
        object.__setattr__(self, "resources", resources)

    def to_text(self) -> str:
        """Render the canonical ERC-4361 message text (LF line ends, no final LF)."""
        origin = f"{self.scheme}://{self.domain}" if self.scheme is not None else self.domain
        lines = [origin + _PREAMBLE_SUFFIX, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += [
            "",
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {format_datetime(self.issued_at)}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {format_datetime(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {format_datetime(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {resource}" for resource in self.resources]
        return "\n".join(lines)


class _Lines:
    """Cursor over the message's lines, for the strict top-to-bottom walk of the ABNF."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.pos = 0

    def peek(self) -> str | None:
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def take(self, what: str) -> str:
        line = self.peek()
        if line is None:
            raise _malformed(f"message ends where {what} was expected")
        self.pos += 1
        return line

    def optional(self, tag: str) -> str | None:
        """Value of the next line if it is `tag + value` (then consumed), else None."""
        line = self.peek()
        if line is None or not line.startswith(tag):
            return None
        self.pos += 1
        return line[len(tag) :]

    def field(self, tag: str) -> str:
        value = self.optional(tag)
        if value is None:
            raise _malformed(f"expected a line starting with {tag!r}, got {self.peek()!r:.80}")
        return value

    def blank(self, what: str) -> None:
        if self.take(what) != "":
            raise _malformed(f"expected an empty line {what}")


def _optional_datetime(value: str | None, what: str) -> datetime | None:
    return None if value is None else parse_datetime(value, what)


def parse_message(text: str) -> SiweMessage:
    """Parse `text` strictly per the ERC-4361 ABNF ("ABNF Message Format").

    Line order is fixed, lines end with LF only (no CR), the last line has no LF, and no
    line may follow the grammar's last optional field. Raises SiweError("siwe_malformed"),
    also when `text` is longer than MAX_MESSAGE_CHARS or not a str.
    """
    if not isinstance(text, str):
        raise _malformed("message must be a str")
    if len(text) > MAX_MESSAGE_CHARS:
        raise _malformed(f"message longer than {MAX_MESSAGE_CHARS} characters")
    if "\r" in text:
        raise _malformed("message contains CR; ERC-4361 lines end with LF only")
    lines = _Lines(text)

    preamble = lines.take("the preamble")
    if not preamble.endswith(_PREAMBLE_SUFFIX):
        raise _malformed(f"first line must end with {_PREAMBLE_SUFFIX!r}")
    origin = preamble[: -len(_PREAMBLE_SUFFIX)]
    scheme: str | None = None
    if "://" in origin:  # an authority never holds "/", so this can only be the scheme
        scheme, origin = origin.split("://", 1)
    address = lines.take("the address")
    lines.blank("after the address")

    # address LF LF [ statement LF ] LF "URI: ": a non-empty line, or an empty line followed
    # by another empty line, is the statement; an empty line followed by "URI: " is not.
    statement: str | None = None
    line = lines.take("the statement or an empty line")
    if line != "" or lines.peek() == "":
        statement = line
        lines.blank("after the statement")

    uri = lines.field("URI: ")
    version = lines.field("Version: ")
    chain_id = _check(CHAIN_ID_RE, lines.field("Chain ID: "), "chain id")
    if len(chain_id) > _MAX_CHAIN_ID_DIGITS:
        raise _malformed("chain id has too many digits")
    nonce = lines.field("Nonce: ")
    issued_at = parse_datetime(lines.field("Issued At: "), "issued-at")
    expiration_time = _optional_datetime(lines.optional("Expiration Time: "), "expiration")
    not_before = _optional_datetime(lines.optional("Not Before: "), "not-before")
    request_id = lines.optional("Request ID: ")
    resources: list[str] = []
    if lines.peek() == "Resources:":
        lines.pos += 1
        while (resource := lines.optional("- ")) is not None:
            resources.append(resource)
    if lines.peek() is not None:
        raise _malformed(f"unexpected line after the last field: {lines.peek()!r:.80}")

    return SiweMessage(
        scheme=scheme,
        domain=origin,
        address=address,
        statement=statement,
        uri=uri,
        version=version,
        chain_id=int(chain_id),
        nonce=nonce,
        issued_at=issued_at,
        expiration_time=expiration_time,
        not_before=not_before,
        request_id=request_id,
        resources=tuple(resources),
    )


def build_message(
    *,
    domain: str,
    address: str,
    uri: str,
    chain_id: int,
    nonce: str,
    issued_at: datetime,
    statement: str | None = None,
    expiration_time: datetime | None = None,
    not_before: datetime | None = None,
    request_id: str | None = None,
    resources: Iterable[str] = (),
    scheme: str | None = None,
) -> str:
    """Build the canonical ERC-4361 text for these fields (version "1").

    Datetimes must be timezone-aware (written in UTC). Raises SiweError("siwe_malformed")
    if any field is outside its grammar or the text exceeds MAX_MESSAGE_CHARS.
    """
    text = SiweMessage(
        domain=domain,
        address=address,
        uri=uri,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        statement=statement,
        expiration_time=expiration_time,
        not_before=not_before,
        request_id=request_id,
        resources=tuple(resources),
        scheme=scheme,
    ).to_text()
    if len(text) > MAX_MESSAGE_CHARS:
        raise _malformed(f"message longer than {MAX_MESSAGE_CHARS} characters")
    return text


def new_nonce() -> str:
    """A fresh nonce: 32 lowercase hex characters (128 bits from `secrets`), ERC-4361 valid."""
    return secrets.token_hex(16)


def _signature_bytes(signature: str | bytes) -> bytes:
    if isinstance(signature, str):
        hex_part = signature[2:] if signature[:2] in ("0x", "0X") else signature
        if re.fullmatch(r"[0-9A-Fa-f]*", hex_part, re.ASCII) is None or len(hex_part) % 2:
            raise SiweError("siwe_bad_signature", "signature is not hex")
        return bytes.fromhex(hex_part)
    if isinstance(signature, bytes | bytearray | memoryview):
        return bytes(signature)
    raise SiweError("siwe_bad_signature", "signature must be hex text or bytes")


def recover_address(text: str, signature: str | bytes) -> str:
    """EIP-191 (version 0x45, personal_sign) signer of `text`, as an EIP-55 address.

    `signature` is 65 bytes r || s || v (or their hex, `0x` optional) with v in {27, 28},
    1 <= r < N and 1 <= s <= N // 2 (EIP-2 low s). Raises SiweError("siwe_bad_signature").
    """
    sig = _signature_bytes(signature)
    if len(sig) != 65:
        raise SiweError("siwe_bad_signature", f"signature must be 65 bytes, got {len(sig)}")
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if v not in (27, 28):
        raise SiweError("siwe_bad_signature", f"signature v must be 27 or 28, got {v}")
    if not 1 <= r < SECP256K1_N:
        raise SiweError("siwe_bad_signature", "signature r out of range")
    if not 1 <= s <= SECP256K1_N // 2:
        raise SiweError("siwe_bad_signature", "signature s is not low (EIP-2)")
    try:
        return str(Account.recover_message(encode_defunct(text=text), vrs=(v, r, s)))
    except (BadSignature, EthKeysValidationError, ValueError) as exc:  # no such curve point
        raise SiweError("siwe_bad_signature", "no public key recovers from signature") from exc


def _uri_within(uri: str, prefix: str) -> bool:
    """`uri` starts with `prefix` at a boundary: "https://a.org" does not cover "https://a.org.evil"."""
    if not uri.startswith(prefix):
        return False
    return len(uri) == len(prefix) or prefix.endswith("/") or uri[len(prefix)] in "/?#"


def verify_message(
    text: str,
    signature: str | bytes,
    *,
    domain: str,
    uri_prefix: str,
    chain_id: int,
    now: datetime,
    consume_nonce: Callable[[str], bool],
    max_age_s: int = 600,
) -> SiweMessage:
    """Verify a signed ERC-4361 message for this service and consume its nonce.

    Checks, in order (ERC-4361 "Verifying a signed Message"):
    1. `text` parses (`parse_message`)                              -> siwe_malformed
    2. its domain equals `domain` (host[:port], exact string), and its scheme, if the
       message has one, equals the scheme of `uri_prefix` (ERC-4361 "Specifying the
       Request Origin"; no scheme means https)                    -> siwe_domain_mismatch
    3. its uri starts with `uri_prefix` at a path boundary          -> siwe_uri_mismatch
    4. its chain id equals `chain_id`                               -> siwe_chain_mismatch
    5. issued-at <= now + ISSUED_AT_SKEW_S seconds                  -> siwe_issued_in_future
    6. issued-at >= now - max_age_s seconds                         -> siwe_too_old
    7. expiration time, if any, is after `now`                      -> siwe_expired
    8. not-before, if any, is at or before `now`                    -> siwe_not_yet_valid
    9. signature: EIP-191 personal_sign of the exact `text`, 65 bytes, v in {27, 28},
       low s (EIP-2)                                                -> siwe_bad_signature
    10. the recovered signer equals the message's address           -> siwe_address_mismatch
    11. `consume_nonce(nonce)` returns True (issued and unused; the callback marks it used;
        called last, so a refused message burns no nonce)           -> siwe_nonce_invalid

    `now` must be timezone-aware (ValueError otherwise: a caller bug, not a bad message);
    an exception raised by `consume_nonce` (say, the store is down) propagates unchanged.
    Contract accounts (ERC-1271) are not supported: only EOA signatures verify.
    Returns the parsed message; raises SiweError with the code above.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    msg = parse_message(text)
    if msg.domain != domain:
        raise SiweError("siwe_domain_mismatch", f"message is for {msg.domain!r}, not {domain!r}")
    service_scheme = uri_prefix.partition(":")[0].lower()
    if msg.scheme is not None and msg.scheme.lower() != service_scheme:
        raise SiweError("siwe_domain_mismatch", f"message origin scheme is {msg.scheme!r}")
    if not _uri_within(msg.uri, uri_prefix):
        raise SiweError("siwe_uri_mismatch", f"uri {msg.uri!r} is not under {uri_prefix!r}")
    if msg.chain_id != chain_id:
        raise SiweError("siwe_chain_mismatch", f"chain id {msg.chain_id}, expected {chain_id}")
    if msg.issued_at > now + timedelta(seconds=ISSUED_AT_SKEW_S):
        raise SiweError("siwe_issued_in_future", "message issued in the future")
    if msg.issued_at < now - timedelta(seconds=max_age_s):
        raise SiweError("siwe_too_old", f"message issued more than {max_age_s} s ago")
    if msg.expiration_time is not None and msg.expiration_time <= now:
        raise SiweError("siwe_expired", "message has expired")
    if msg.not_before is not None and msg.not_before > now:
        raise SiweError("siwe_not_yet_valid", "message is not valid yet")
    signer = recover_address(text, signature)
    if signer != msg.address:
        raise SiweError("siwe_address_mismatch", "signature is not by the message's address")
    if not consume_nonce(msg.nonce):
        raise SiweError("siwe_nonce_invalid", "nonce unknown or already used")
    return msg
