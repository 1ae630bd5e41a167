"""Stage names and stable reason codes of the QR token pipeline.

The stages run in this order; a result names the first one that failed, or ``"ok"``::

    prefix -> base45 -> zlib -> cose -> kid -> signature -> time -> revocation -> replay

``zlib`` applies to ``HC1:`` only, ``revocation`` and ``replay`` to ``SC1:`` only; a stage
that does not apply passes. Reason codes are part of the public contract (logs, gates,
the JSONL output of ``consentgate token verify``): never rename one.
"""

from __future__ import annotations

STAGES: tuple[str, ...] = (
    "prefix",
    "base45",
    "zlib",
    "cose",
    "kid",
    "signature",
    "time",
    "revocation",
    "replay",
)
STAGE_OK = "ok"

# Index = the integer code the compiled module uses; order is frozen (append only).
REASONS: tuple[str, ...] = (
    "ok",
    # prefix
    "not_text",  # input is not a str
    "too_long",  # more than MAX_QR_CHARS characters
    "prefix_mismatch",  # context prefix is not the profile's one
    # base45 (RFC 9285 section 4)
    "base45_length",  # length mod 3 == 1
    "base45_char",  # character outside the 45-character alphabet
    "base45_overflow",  # triplet above 65535 or pair above 255
    # zlib (RFC 1950)
    "zlib_invalid",
    "zlib_trailing",  # bytes after the end of the zlib stream
    "zlib_too_large",  # inflated size above MAX_INFLATED_BYTES
    # cose: CBOR well-formedness (RFC 8949) and the project's strict profile
    "cbor_malformed",
    "cbor_trailing",
    "cbor_indefinite",
    "cbor_utf8",
    "cbor_key_type",
    "cbor_duplicate_key",
    "cbor_depth",
    "cbor_too_large",
    # cose: COSE_Sign1 (RFC 9052 section 4.2) and CWT (RFC 8392)
    "cose_tag",
    "cose_structure",
    "cose_detached_payload",
    "cose_header",
    "claims_not_map",
    "claim_type",
    "claim_missing",
    "cnf_invalid",
    # kid
    "kid_missing",
    "kid_type",
    "kid_unknown",
    # signature
    "alg_missing",
    "alg_unsupported",
    "alg_key_mismatch",
    "signature_encoding",
    "signature_invalid",
    # time (RFC 8392 section 3.1.4-3.1.6)
    "iat_in_future",
    "not_yet_valid",
    "expired",
    "exp_missing",
    "lifetime_too_long",
    "key_not_yet_valid",
    "key_expired",
    # revocation (W3C Bitstring Status List)
    "revoked",
    "status_index_out_of_range",
    # replay
    "replayed",
    "replay_cache_full",
)
REASON_CODE: dict[str, int] = {name: i for i, name in enumerate(REASONS)}

# Reasons raised while reading the device certificate inside an SC1 token carry this
# prefix (``cert_cose_structure``, ``cert_signature_invalid``, ``cert_expired``...).
CERT_PREFIX = "cert_"

PREFIX_SC1 = "SC1:"
PREFIX_HC1 = "HC1:"
# "cwt" takes raw COSE_Sign1 bytes (no prefix, base45 or zlib) with generic CWT rules:
# for RFC 8392 vectors and callers that already hold the bytes.
PROFILES: dict[str, str] = {"sc1": PREFIX_SC1, "dcc": PREFIX_HC1, "cwt": ""}

MAX_QR_CHARS = 8192
MAX_INFLATED_BYTES = 65536
MAX_CBOR_DEPTH = 16
MAX_MAP_ENTRIES = 256
MAX_SC1_LIFETIME_S = 300.0
MAX_SAFE_INT = 2**53  # integer NumericDates must be exact as IEEE doubles

# COSE algorithm identifiers (IANA COSE Algorithms registry)
ALG_EDDSA = -8
ALG_ES256 = -7
ALG_PS256 = -37
ALG_NAMES: dict[int, str] = {ALG_EDDSA: "EdDSA", ALG_ES256: "ES256", ALG_PS256: "PS256"}

# CWT claim keys (RFC 8392 section 4; RFC 8747 for cnf) and the SC1 private claims
CLAIM_ISS = 1
CLAIM_SUB = 2
CLAIM_EXP = 4
CLAIM_NBF = 5
CLAIM_IAT = 6
CLAIM_CTI = 7
CLAIM_CNF = 8
CLAIM_HCERT = -260  # EU DCC: {1: the health certificate map}
CLAIM_SC1_DEVICE_CERT = -65537  # bstr: the issuer-signed device certificate (COSE_Sign1)
CLAIM_SC1_STATUS_INDEX = -65538  # uint: index in the issuer's revocation bitstring

MAX_CTI_BYTES = 64
MAX_SUB_BYTES = 64
