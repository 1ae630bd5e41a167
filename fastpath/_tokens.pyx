# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Compiled QR token verifier: same API and results as :mod:`fastpath.tokens.reference`.

The pipeline runs in C with the GIL released (``verify_batch`` releases it once per
batch): base45, the strict CBOR reader, COSE_Sign1 / CWT field extraction, the
Sig_structure, SHA-256 and Ed25519 (libsodium, through the function pointers of the
PyNaCl wheel's shared object), ES256/PS256 (libcrypto's EVP_DigestVerify, through the
function pointers reachable from CPython's ``_hashlib``), the device-certificate cache
and the replay table (each behind a PyThread lock). Only these take the GIL back: zlib
(HC1, Python's ``zlib``), ES256/PS256 when libcrypto's symbols are not reachable (then
``cryptography``; ``OPENSSL_WITHOUT_GIL`` says which) and building the results.
"""

import ctypes

import nacl._sodium
import nacl.bindings

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from cpython.pythread cimport (
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
    WAIT_LOCK,
)
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.math cimport INFINITY, NAN, isfinite, ldexp
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy, memset

from fastpath.tokens import codes as _codes
from fastpath.tokens.common import inflate as _inflate
from fastpath.tokens.common import library_verify as _library_verify
from fastpath.tokens.common import signature_length as _signature_length
from fastpath.tokens.result import Result as _Result

IMPLEMENTATION = "compiled"

cdef extern from "Python.h":
    bint PyUnicode_Check(object o)
    bint PyBytes_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    void* PyUnicode_DATA(object o)

cdef enum:
    R_OK = 0
    R_NOT_TEXT = 1
    R_TOO_LONG = 2
    R_PREFIX_MISMATCH = 3
    R_BASE45_LENGTH = 4
    R_BASE45_CHAR = 5
    R_BASE45_OVERFLOW = 6
    R_ZLIB_INVALID = 7
    R_ZLIB_TRAILING = 8
    R_ZLIB_TOO_LARGE = 9
    R_CBOR_MALFORMED = 10
    R_CBOR_TRAILING = 11
    R_CBOR_INDEFINITE = 12
    R_CBOR_UTF8 = 13
    R_CBOR_KEY_TYPE = 14
    R_CBOR_DUPLICATE_KEY = 15
    R_CBOR_DEPTH = 16
    R_CBOR_TOO_LARGE = 17
    R_COSE_TAG = 18
    R_COSE_STRUCTURE = 19
    R_COSE_DETACHED_PAYLOAD = 20
    R_COSE_HEADER = 21
    R_CLAIMS_NOT_MAP = 22
    R_CLAIM_TYPE = 23
    R_CLAIM_MISSING = 24
    R_CNF_INVALID = 25
    R_KID_MISSING = 26
    R_KID_TYPE = 27
    R_KID_UNKNOWN = 28
    R_ALG_MISSING = 29
    R_ALG_UNSUPPORTED = 30
    R_ALG_KEY_MISMATCH = 31
    R_SIGNATURE_ENCODING = 32
    R_SIGNATURE_INVALID = 33
    R_IAT_IN_FUTURE = 34
    R_NOT_YET_VALID = 35
    R_EXPIRED = 36
    R_EXP_MISSING = 37
    R_LIFETIME_TOO_LONG = 38
    R_KEY_NOT_YET_VALID = 39
    R_KEY_EXPIRED = 40
    R_REVOKED = 41
    R_STATUS_INDEX_OUT_OF_RANGE = 42
    R_REPLAYED = 43
    R_REPLAY_CACHE_FULL = 44

cdef enum:
    S_PREFIX = 0
    S_BASE45 = 1
    S_ZLIB = 2
    S_COSE = 3
    S_KID = 4
    S_SIGNATURE = 5
    S_TIME = 6
    S_REVOCATION = 7
    S_REPLAY = 8
    S_OK = 9

cdef enum:
    P_SC1 = 0
    P_DCC = 1
    P_CWT = 2

cdef enum:
    A_OTHER = 0
    A_EDDSA = 1
    A_ES256 = 2
    A_PS256 = 3

cdef enum:  # the limits of fastpath.tokens.codes (checked at import below)
    MAX_DEPTH = 16
    MAX_MAP = 256
    MAX_QR = 8192
    MAX_CTI = 64
    MAX_SUB = 64

# the enum above is generated from codes.REASONS; refuse to run if they drifted apart
if len(_codes.REASONS) != R_REPLAY_CACHE_FULL + 1 or _codes.REASONS[R_SIGNATURE_INVALID] != "signature_invalid":
    raise ImportError("fastpath._tokens is out of date with codes.REASONS: rebuild it")

if (MAX_DEPTH, MAX_MAP, MAX_QR, MAX_CTI, MAX_SUB) != (
    _codes.MAX_CBOR_DEPTH, _codes.MAX_MAP_ENTRIES, _codes.MAX_QR_CHARS, _codes.MAX_CTI_BYTES,
    _codes.MAX_SUB_BYTES,
) or _codes.MAX_SC1_LIFETIME_S != 300.0 or _codes.MAX_SAFE_INT != 2**53:
    raise ImportError("fastpath._tokens limits differ from fastpath.tokens.codes: rebuild it")

cdef uint64_t SAFE_INT = (<uint64_t>1) << 53  # integer NumericDates must be exact doubles
cdef tuple _STAGE_NAMES = tuple(_codes.STAGES) + (_codes.STAGE_OK,)
cdef tuple _REASONS = tuple(_codes.REASONS)
cdef tuple _CERT_REASONS = tuple(_codes.CERT_PREFIX + r for r in _codes.REASONS)
cdef dict _REASON_CODE = dict(_codes.REASON_CODE)
cdef tuple _PROFILE_NAMES = ("sc1", "dcc", "cwt")
_tuple_new = tuple.__new__  # Result is a tuple subclass: one C call builds it

# ---- libsodium through the PyNaCl wheel's shared object --------------------------------

ctypedef int (*ed_verify_t)(const unsigned char*, const unsigned char*, unsigned long long,
                            const unsigned char*) noexcept nogil
ctypedef int (*sha256_t)(unsigned char*, const unsigned char*, unsigned long long) noexcept nogil
ctypedef int (*siphash_t)(unsigned char*, const unsigned char*, unsigned long long,
                          const unsigned char*) noexcept nogil

cdef ed_verify_t _ed_verify = NULL
cdef sha256_t _sha256 = NULL
cdef siphash_t _siphash = NULL


cdef uintptr_t _symbol(object lib, str name) except 0:
    return <uintptr_t>ctypes.cast(getattr(lib, name), ctypes.c_void_p).value


def _load_sodium():
    global _ed_verify, _sha256, _siphash
    nacl.bindings.sodium_init()
    lib = ctypes.CDLL(nacl._sodium.__file__)
    _ed_verify = <ed_verify_t>_symbol(lib, "crypto_sign_ed25519_verify_detached")
    _sha256 = <sha256_t>_symbol(lib, "crypto_hash_sha256")
    _siphash = <siphash_t>_symbol(lib, "crypto_shorthash_siphash24")


_load_sodium()

# ---- OpenSSL (libcrypto) without the GIL -------------------------------------------------
# The ``cryptography`` wheel links OpenSSL statically and exports none of it; CPython's
# own ``_hashlib`` links libcrypto dynamically, so its symbols are reachable through that
# module's handle. When they are not (another build of Python), ES256/PS256 go through
# ``cryptography`` with the GIL held: same results, no parallelism.

ctypedef void* (*d2i_pubkey_t)(void**, const unsigned char**, long) noexcept nogil
ctypedef void* (*md_ctx_new_t)() noexcept nogil
ctypedef void (*ptr_free_t)(void*) noexcept nogil
ctypedef const void* (*evp_md_t)() noexcept nogil
ctypedef int (*dv_init_t)(void*, void**, const void*, void*, void*) noexcept nogil
ctypedef int (*dv_t)(void*, const unsigned char*, size_t, const unsigned char*, size_t) noexcept nogil
ctypedef int (*pctx_int_t)(void*, int) noexcept nogil
ctypedef int (*pctx_md_t)(void*, const void*) noexcept nogil
ctypedef void (*void_fn_t)() noexcept nogil

cdef bint _ossl = False
cdef d2i_pubkey_t _d2i_PUBKEY = NULL
cdef md_ctx_new_t _md_ctx_new = NULL
cdef ptr_free_t _md_ctx_free = NULL
cdef ptr_free_t _pkey_free = NULL
cdef evp_md_t _evp_sha256 = NULL
cdef dv_init_t _dv_init = NULL
cdef dv_t _dv = NULL
cdef pctx_int_t _set_rsa_padding = NULL
cdef pctx_int_t _set_pss_saltlen = NULL
cdef pctx_md_t _set_mgf1_md = NULL
cdef void_fn_t _err_clear = NULL


def _load_openssl():
    global _ossl, _d2i_PUBKEY, _md_ctx_new, _md_ctx_free, _pkey_free, _evp_sha256
    global _dv_init, _dv, _set_rsa_padding, _set_pss_saltlen, _set_mgf1_md, _err_clear
    import os
    if os.environ.get("CONSENTGATE_NO_OPENSSL_POINTERS"):
        return
    try:
        import _hashlib
        lib = ctypes.CDLL(_hashlib.__file__)
        _d2i_PUBKEY = <d2i_pubkey_t>_symbol(lib, "d2i_PUBKEY")
        _md_ctx_new = <md_ctx_new_t>_symbol(lib, "EVP_MD_CTX_new")
        _md_ctx_free = <ptr_free_t>_symbol(lib, "EVP_MD_CTX_free")
        _pkey_free = <ptr_free_t>_symbol(lib, "EVP_PKEY_free")
        _evp_sha256 = <evp_md_t>_symbol(lib, "EVP_sha256")
        _dv_init = <dv_init_t>_symbol(lib, "EVP_DigestVerifyInit")
        _dv = <dv_t>_symbol(lib, "EVP_DigestVerify")
        _set_rsa_padding = <pctx_int_t>_symbol(lib, "EVP_PKEY_CTX_set_rsa_padding")
        _set_pss_saltlen = <pctx_int_t>_symbol(lib, "EVP_PKEY_CTX_set_rsa_pss_saltlen")
        _set_mgf1_md = <pctx_md_t>_symbol(lib, "EVP_PKEY_CTX_set_rsa_mgf1_md")
        _err_clear = <void_fn_t>_symbol(lib, "ERR_clear_error")
    except (ImportError, OSError, AttributeError, TypeError):
        return
    _ossl = True


_load_openssl()
OPENSSL_WITHOUT_GIL = _ossl


cdef Py_ssize_t der_integer(uint8_t* out, const uint8_t* v, int n) noexcept nogil:
    """DER INTEGER of an unsigned big-endian value (X.690 section 8.3)."""
    cdef int i = 0, length, pad
    while i < n - 1 and v[i] == 0:
        i += 1
    length = n - i
    pad = 1 if v[i] & 0x80 else 0
    out[0] = 0x02
    out[1] = <uint8_t>(length + pad)
    if pad:
        out[2] = 0
    memcpy(out + 2 + pad, v + i, <size_t>length)
    return 2 + pad + length


cdef bint ossl_verify(CKey* k, const uint8_t* msg, Py_ssize_t mlen, const uint8_t* sig,
                      Py_ssize_t sig_len) noexcept nogil:
    """ES256 (raw r||s re-encoded as DER, RFC 9053 section 2.1) or PS256 (RFC 8230:
    PSS, SHA-256, MGF1-SHA-256, 32-byte salt) through libcrypto's EVP_DigestVerify."""
    cdef uint8_t der[80]
    cdef const uint8_t* sp = sig
    cdef Py_ssize_t sn = sig_len, o
    cdef void* ctx
    cdef void* pctx = NULL
    cdef int r = 0
    if k.alg == A_ES256:
        o = der_integer(der + 2, sig, 32)
        o += der_integer(der + 2 + o, sig + 32, 32)
        der[0] = 0x30
        der[1] = <uint8_t>o
        sp = der
        sn = o + 2
    ctx = _md_ctx_new()
    if ctx == NULL:
        return False
    if _dv_init(ctx, &pctx, _evp_sha256(), NULL, k.evp_pkey) == 1:
        if k.alg == A_PS256:
            if (_set_rsa_padding(pctx, 6) <= 0 or _set_pss_saltlen(pctx, 32) <= 0
                    or _set_mgf1_md(pctx, _evp_sha256()) <= 0):
                _md_ctx_free(ctx)
                _err_clear()
                return False
        r = _dv(ctx, sp, <size_t>sn, msg, <size_t>mlen)
    _md_ctx_free(ctx)
    if r != 1:
        _err_clear()
    return r == 1

# ---- base45 (RFC 9285) ---------------------------------------------------------------

cdef signed char _B45[256]


def _init_b45():
    cdef int i
    for i in range(256):
        _B45[i] = -1
    for i, ch in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"):
        _B45[ord(ch)] = i


_init_b45()


cdef int b45decode(const uint8_t* s, Py_ssize_t n, uint8_t* out,
                   Py_ssize_t* out_len) noexcept nogil:
    """Strict base45 of ASCII text: characters, then length, then values."""
    cdef Py_ssize_t i, o = 0, full
    cdef uint32_t v
    for i in range(n):
        if _B45[s[i]] < 0:
            return R_BASE45_CHAR
    if n % 3 == 1:
        return R_BASE45_LENGTH
    full = n - n % 3
    i = 0
    while i < full:
        v = <uint32_t>_B45[s[i]] + <uint32_t>_B45[s[i + 1]] * 45 + <uint32_t>_B45[s[i + 2]] * 2025
        if v > 0xFFFF:
            return R_BASE45_OVERFLOW
        out[o] = <uint8_t>(v >> 8)
        out[o + 1] = <uint8_t>(v & 0xFF)
        o += 2
        i += 3
    if n % 3 == 2:
        v = <uint32_t>_B45[s[full]] + <uint32_t>_B45[s[full + 1]] * 45
        if v > 0xFF:
            return R_BASE45_OVERFLOW
        out[o] = <uint8_t>v
        o += 1
    out_len[0] = o
    return 0

# ---- strict CBOR (mirrors fastpath.tokens.cbor) --------------------------------------

cdef struct Head:
    int major
    int ai
    uint64_t arg
    Py_ssize_t next


cdef inline int read_head(const uint8_t* b, Py_ssize_t n, Py_ssize_t pos, Head* h) noexcept nogil:
    cdef int ai, k, i
    cdef uint64_t v = 0
    if pos >= n:
        return R_CBOR_MALFORMED
    h.major = b[pos] >> 5
    ai = b[pos] & 31
    h.ai = ai
    pos += 1
    if ai < 24:
        h.arg = ai
        h.next = pos
        return 0
    if ai == 31:
        return R_CBOR_INDEFINITE
    if ai > 27:
        return R_CBOR_MALFORMED
    k = 1 << (ai - 24)
    if pos + k > n:
        return R_CBOR_MALFORMED
    for i in range(k):
        v = (v << 8) | b[pos + i]
    h.arg = v
    h.next = pos + k
    return 0


cdef bint utf8_ok(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """Strict UTF-8 as Python's decoder: no overlongs, surrogates or > U+10FFFF."""
    cdef Py_ssize_t i = 0
    cdef uint8_t c, lo, hi
    cdef int k, j
    while i < n:
        c = s[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif c == 0xE0:
            k = 2
            lo = 0xA0
        elif 0xE1 <= c <= 0xEC or c == 0xEE or c == 0xEF:
            k = 2
        elif c == 0xED:
            k = 2
            hi = 0x9F
        elif c == 0xF0:
            k = 3
            lo = 0x90
        elif 0xF1 <= c <= 0xF3:
            k = 3
        elif c == 0xF4:
            k = 3
            hi = 0x8F
        else:
            return False
        if i + k >= n:
            return False
        if not (lo <= s[i + 1] <= hi):
            return False
        for j in range(2, k + 1):
            if not (0x80 <= s[i + j] <= 0xBF):
                return False
        i += k + 1
    return True


cdef Py_ssize_t skip(const uint8_t* b, Py_ssize_t n, Py_ssize_t pos) noexcept nogil:
    """Position after a well-formed item (only call on checked bytes)."""
    cdef Head h
    cdef uint64_t i
    read_head(b, n, pos, &h)
    if h.major == 2 or h.major == 3:
        return h.next + <Py_ssize_t>h.arg
    if h.major == 4:
        pos = h.next
        for i in range(h.arg):
            pos = skip(b, n, pos)
        return pos
    if h.major == 5:
        pos = h.next
        for i in range(2 * h.arg):
            pos = skip(b, n, pos)
        return pos
    if h.major == 6:
        return skip(b, n, h.next)
    return h.next


cdef bint key_equal(const uint8_t* b, Py_ssize_t n, Py_ssize_t p, Py_ssize_t q) noexcept nogil:
    cdef Head x, y
    read_head(b, n, p, &x)
    read_head(b, n, q, &y)
    if x.major != y.major or x.arg != y.arg:
        return False
    if x.major <= 1:
        return True
    return memcmp(b + x.next, b + y.next, <size_t>x.arg) == 0


cdef int check_item(const uint8_t* b, Py_ssize_t n, Py_ssize_t pos, int depth,
                    Py_ssize_t* out) noexcept nogil:
    cdef Head h
    cdef int r, key_major
    cdef uint64_t i, j
    cdef Py_ssize_t p, key_pos, q, map_start
    r = read_head(b, n, pos, &h)
    if r:
        return r
    p = h.next
    if h.major <= 1:
        out[0] = p
        return 0
    if h.major <= 3:
        if h.arg > <uint64_t>(n - p):
            return R_CBOR_MALFORMED
        if h.major == 3 and not utf8_ok(b + p, <Py_ssize_t>h.arg):
            return R_CBOR_UTF8
        out[0] = p + <Py_ssize_t>h.arg
        return 0
    if h.major == 4:
        if depth + 1 > MAX_DEPTH:
            return R_CBOR_DEPTH
        if h.arg > <uint64_t>(n - p):
            return R_CBOR_MALFORMED
        for i in range(h.arg):
            r = check_item(b, n, p, depth + 1, &p)
            if r:
                return r
        out[0] = p
        return 0
    if h.major == 5:
        if depth + 1 > MAX_DEPTH:
            return R_CBOR_DEPTH
        if h.arg > MAX_MAP:
            return R_CBOR_TOO_LARGE
        if 2 * h.arg > <uint64_t>(n - p):
            return R_CBOR_MALFORMED
        map_start = p
        for i in range(h.arg):
            key_major = (b[p] >> 5) if p < n else 0
            key_pos = p
            r = check_item(b, n, p, depth + 1, &p)
            if r:
                return r
            if key_major > 3:
                return R_CBOR_KEY_TYPE
            q = map_start
            for j in range(i):
                if key_equal(b, n, q, key_pos):
                    return R_CBOR_DUPLICATE_KEY
                q = skip(b, n, skip(b, n, q))
            r = check_item(b, n, p, depth + 1, &p)
            if r:
                return r
        out[0] = p
        return 0
    if h.major == 6:
        if depth + 1 > MAX_DEPTH:
            return R_CBOR_DEPTH
        r = check_item(b, n, p, depth + 1, &p)
        if r:
            return r
        out[0] = p
        return 0
    if h.ai == 24 and h.arg < 32:
        return R_CBOR_MALFORMED
    out[0] = p
    return 0


cdef int check_top(const uint8_t* b, Py_ssize_t n, bint cose_top, Py_ssize_t* start) noexcept nogil:
    cdef Py_ssize_t pos = 0, end = 0
    cdef Head h
    cdef int r
    if cose_top and n > 0 and (b[0] >> 5) == 6:
        r = read_head(b, n, 0, &h)
        if r:
            return r
        pos = h.next
        if h.arg == 61:
            if pos >= n or (b[pos] >> 5) != 6:
                return R_COSE_TAG
            r = read_head(b, n, pos, &h)
            if r:
                return r
            pos = h.next
        if h.arg != 18:
            return R_COSE_TAG
    start[0] = pos
    r = check_item(b, n, pos, 0, &end)
    if r:
        return r
    if end != n:
        return R_CBOR_TRAILING
    return 0


cdef struct Val:
    const uint8_t* b
    Py_ssize_t n
    Py_ssize_t pos
    bint found


cdef Val map_find(const uint8_t* b, Py_ssize_t n, Py_ssize_t map_pos, int64_t label) noexcept nogil:
    """Value of an integer label in a checked map (found=False when absent)."""
    cdef Val v
    cdef Head h, k
    cdef uint64_t i
    cdef Py_ssize_t p
    v.b = b
    v.n = n
    v.found = False
    v.pos = 0
    read_head(b, n, map_pos, &h)
    p = h.next
    for i in range(h.arg):
        read_head(b, n, p, &k)
        if (k.major == 0 and label >= 0 and k.arg == <uint64_t>label) or (
            k.major == 1 and label < 0 and k.arg == <uint64_t>(-1 - label)
        ):
            v.pos = skip(b, n, p)
            v.found = True
            return v
        p = skip(b, n, skip(b, n, p))
    return v


cdef inline Head head_of(Val v) noexcept nogil:
    cdef Head h
    read_head(v.b, v.n, v.pos, &h)
    return h


cdef double decode_float(const uint8_t* b, int ai) noexcept nogil:
    cdef uint16_t hbits
    cdef uint32_t f32
    cdef uint64_t f64
    cdef float fv
    cdef double dv
    cdef int e, m
    if ai == 25:
        hbits = (<uint16_t>b[0] << 8) | b[1]
        e = (hbits >> 10) & 0x1F
        m = hbits & 0x3FF
        if e == 0:
            dv = ldexp(<double>m, -24)
        elif e != 31:
            dv = ldexp(<double>(m + 1024), e - 25)
        else:
            dv = INFINITY if m == 0 else NAN
        return -dv if hbits & 0x8000 else dv
    if ai == 26:
        f32 = (<uint32_t>b[0] << 24) | (<uint32_t>b[1] << 16) | (<uint32_t>b[2] << 8) | b[3]
        memcpy(&fv, &f32, 4)
        return <double>fv
    f64 = 0
    for e in range(8):
        f64 = (f64 << 8) | b[e]
    memcpy(&dv, &f64, 8)
    return dv


cdef int numeric_date(Val v, bint required, double* out, bint* present) noexcept nogil:
    """NumericDate: integer within +-2**53 or a finite float (RFC 8392 section 2)."""
    cdef Head h
    present[0] = False
    if not v.found:
        return R_CLAIM_MISSING if required else 0
    h = head_of(v)
    if h.major == 0 and h.arg <= SAFE_INT:
        out[0] = <double>h.arg
    elif h.major == 1 and h.arg <= SAFE_INT - 1:
        out[0] = -1.0 - <double>h.arg
    elif h.major == 7 and 25 <= h.ai <= 27:
        out[0] = decode_float(v.b + v.pos + 1, h.ai)
        if not isfinite(out[0]):
            return R_CLAIM_TYPE
    else:
        return R_CLAIM_TYPE
    present[0] = True
    return 0


cdef int bytes_claim(Val v, Py_ssize_t limit, const uint8_t** p, Py_ssize_t* n) noexcept nogil:
    cdef Head h
    if not v.found:
        return R_CLAIM_MISSING
    h = head_of(v)
    if h.major != 2 or h.arg < 1 or h.arg > <uint64_t>limit:
        return R_CLAIM_TYPE
    p[0] = v.b + h.next
    n[0] = <Py_ssize_t>h.arg
    return 0

# ---- COSE_Sign1 ----------------------------------------------------------------------

cdef struct Sign1:
    const uint8_t* b
    Py_ssize_t n
    const uint8_t* prot
    Py_ssize_t prot_len
    Py_ssize_t unprot_pos
    const uint8_t* payload
    Py_ssize_t payload_len
    const uint8_t* sig
    Py_ssize_t sig_len


cdef int parse_sign1(const uint8_t* b, Py_ssize_t n, Sign1* s) noexcept nogil:
    """COSE_Sign1 (RFC 9052 section 4.2) with a claims-map payload; mirrors
    reference._parse_sign1 check for check."""
    cdef Py_ssize_t p, p1, p2, p3, start
    cdef Head h, h0, h1, h2, h3
    cdef int r
    r = check_top(b, n, True, &start)
    if r:
        return r
    read_head(b, n, start, &h)
    if h.major != 4 or h.arg != 4:
        return R_COSE_STRUCTURE
    p = h.next
    read_head(b, n, p, &h0)
    p1 = skip(b, n, p)
    read_head(b, n, p1, &h1)
    if h0.major != 2 or h1.major != 5:
        return R_COSE_STRUCTURE
    p2 = skip(b, n, p1)
    read_head(b, n, p2, &h2)
    if h2.major == 7 and h2.ai == 22:
        return R_COSE_DETACHED_PAYLOAD
    p3 = skip(b, n, p2)
    read_head(b, n, p3, &h3)
    if h2.major != 2 or h3.major != 2:
        return R_COSE_STRUCTURE
    s.b = b
    s.n = n
    s.prot = b + h0.next
    s.prot_len = <Py_ssize_t>h0.arg
    s.unprot_pos = p1
    s.payload = b + h2.next
    s.payload_len = <Py_ssize_t>h2.arg
    s.sig = b + h3.next
    s.sig_len = <Py_ssize_t>h3.arg
    if s.prot_len:
        r = check_top(s.prot, s.prot_len, False, &start)
        if r:
            return r
        if (s.prot[0] >> 5) != 5:
            return R_COSE_HEADER
    r = check_top(s.payload, s.payload_len, False, &start)
    if r:
        return r
    if (s.payload[0] >> 5) != 5:
        return R_CLAIMS_NOT_MAP
    return 0


cdef Val header(Sign1* s, int64_t label) noexcept nogil:
    """Protected bucket wins, else the unprotected one (RFC 9052 section 3)."""
    cdef Val v
    if s.prot_len:
        v = map_find(s.prot, s.prot_len, 0, label)
        if v.found:
            return v
    return map_find(s.b, s.n, s.unprot_pos, label)


cdef inline Val claim(Sign1* s, int64_t label) noexcept nogil:
    return map_find(s.payload, s.payload_len, 0, label)


cdef int alg_of(Sign1* s, int* alg) noexcept nogil:
    cdef Val v = header(s, 1)
    cdef Head h
    if not v.found:
        return R_ALG_MISSING
    h = head_of(v)
    if h.major == 1 and h.arg == 7:
        alg[0] = A_EDDSA
    elif h.major == 1 and h.arg == 6:
        alg[0] = A_ES256
    elif h.major == 1 and h.arg == 36:
        alg[0] = A_PS256
    else:
        return R_ALG_UNSUPPORTED
    return 0


cdef Py_ssize_t bstr_head(uint8_t* out, Py_ssize_t n) noexcept nogil:
    if n < 24:
        out[0] = <uint8_t>(0x40 | n)
        return 1
    if n < 0x100:
        out[0] = 0x58
        out[1] = <uint8_t>n
        return 2
    if n < 0x10000:
        out[0] = 0x59
        out[1] = <uint8_t>(n >> 8)
        out[2] = <uint8_t>n
        return 3
    out[0] = 0x5A
    out[1] = <uint8_t>(n >> 24)
    out[2] = <uint8_t>(n >> 16)
    out[3] = <uint8_t>(n >> 8)
    out[4] = <uint8_t>n
    return 5


cdef Py_ssize_t sig_structure(Sign1* s, uint8_t* out) noexcept nogil:
    """["Signature1", protected, h'', payload] (RFC 9052 section 4.4); ``out`` holds
    at least 24 + prot_len + payload_len bytes."""
    cdef Py_ssize_t o = 0
    memcpy(out, b"\x84\x6aSignature1", 12)
    o = 12
    o += bstr_head(out + o, s.prot_len)
    memcpy(out + o, s.prot, <size_t>s.prot_len)
    o += s.prot_len
    out[o] = 0x40
    o += 1
    o += bstr_head(out + o, s.payload_len)
    memcpy(out + o, s.payload, <size_t>s.payload_len)
    return o + s.payload_len

# ---- trust keys, caches ----------------------------------------------------------------

cdef struct CKey:
    const uint8_t* kid
    Py_ssize_t kid_len
    int alg
    Py_ssize_t sig_len
    uint8_t raw[32]
    double nb
    double na
    bint has_nb
    bint has_na
    PyObject* pykey
    void* evp_pkey  # libcrypto EVP_PKEY for ES256/PS256 when OPENSSL_WITHOUT_GIL


cdef struct CertEntry:
    uint8_t digest[32]
    bint used
    uint8_t device_key[32]
    uint64_t status_index
    double iat
    double nbf
    double exp
    bint has_iat
    bint has_nbf
    int signer


cdef struct ReplaySlot:
    uint8_t key[32]
    double exp



cdef struct Tok:
    const uint8_t* text
    Py_ssize_t text_len
    int stage
    int reason
    bint cert
    bint decided
    uint8_t* dec
    PyObject* inflated
    const uint8_t* data
    Py_ssize_t data_len
    bint payload_ok
    const uint8_t* payload
    Py_ssize_t payload_len
    const uint8_t* kid
    Py_ssize_t kid_len
    int signer  # trust key index whose kid matched (its hex is cached), else -1


cdef inline int fail(Tok* t, int stage, int reason, bint cert) noexcept nogil:
    t.stage = stage
    t.reason = reason
    t.cert = cert
    return reason


cdef inline int check_time(double now, double skew, bint has_iat, double iat, bint has_nbf,
                           double nbf, bint has_exp, double exp, CKey* key) noexcept nogil:
    """RFC 8392 sections 3.1.4-3.1.6 with skew, then the signer key window."""
    if has_iat and iat > now + skew:
        return R_IAT_IN_FUTURE
    if has_nbf and nbf > now + skew:
        return R_NOT_YET_VALID
    if not has_exp:
        return R_EXP_MISSING
    if exp < now - skew:
        return R_EXPIRED
    if key == NULL:
        return 0
    if key.has_nb and has_iat and iat < key.nb:
        return R_KEY_NOT_YET_VALID
    if key.has_na and exp > key.na:
        return R_KEY_EXPIRED
    return 0


cdef Py_ssize_t _pow2_at_least(Py_ssize_t n):
    cdef Py_ssize_t p = 16
    while p < n:
        p <<= 1
    return p


cdef class Verifier:
    """Compiled verifier; see :class:`fastpath.tokens.reference.Verifier` for the API.

    Memory (see :meth:`memory`): the replay table holds 40-byte slots, at least 2 per
    entry of ``replay_capacity`` (a power of two: 80-160 bytes per entry); the
    device-certificate cache holds one 120-byte slot per entry of
    ``cert_cache_capacity`` (a power of two), direct-mapped by the SHA-256 of the
    certificate bytes. Both are allocated once, when the verifier is made.
    """

    cdef readonly object trust
    cdef readonly object status
    cdef readonly str profile
    cdef readonly double skew
    cdef readonly Py_ssize_t replay_capacity
    cdef readonly Py_ssize_t cert_cache_capacity
    cdef int prof
    cdef bytes prefix_b
    cdef const char* prefix_p
    cdef Py_ssize_t prefix_len
    cdef object _keep_status
    cdef CKey* keys
    cdef Py_ssize_t nkeys
    cdef list _keep
    cdef list _kid_hex
    cdef const uint8_t* status_bits
    cdef Py_ssize_t status_size_bits
    cdef CertEntry* certs
    cdef Py_ssize_t cert_mask
    cdef PyThread_type_lock cert_lock
    cdef ReplaySlot* replay
    cdef Py_ssize_t replay_mask
    cdef Py_ssize_t replay_count
    cdef PyThread_type_lock replay_lock
    cdef uint8_t sipkey[16]

    implementation = IMPLEMENTATION

    def __cinit__(self, *args, **kwargs):
        self.keys = NULL
        self.certs = NULL
        self.replay = NULL
        self.cert_lock = PyThread_allocate_lock()
        self.replay_lock = PyThread_allocate_lock()
        if self.cert_lock == NULL or self.replay_lock == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.keys != NULL and _ossl:
            for i in range(self.nkeys):
                if self.keys[i].evp_pkey != NULL:
                    _pkey_free(self.keys[i].evp_pkey)
        free(self.keys)
        free(self.certs)
        free(self.replay)
        if self.cert_lock != NULL:
            PyThread_free_lock(self.cert_lock)
        if self.replay_lock != NULL:
            PyThread_free_lock(self.replay_lock)

    def __init__(self, trust, *, str profile="sc1", double skew=0.0, status=None,
                 Py_ssize_t replay_capacity=100_000, Py_ssize_t cert_cache_capacity=10_000):
        cdef Py_ssize_t i, slots
        cdef CKey* k
        cdef const unsigned char* p
        if profile not in _codes.PROFILES:
            raise ValueError(f"unknown profile {profile!r}")
        if replay_capacity < 1 or cert_cache_capacity < 1:
            raise ValueError("capacities must be positive")
        self.trust = trust
        self.profile = profile
        self.prof = _PROFILE_NAMES.index(profile)
        self.prefix_b = _codes.PROFILES[profile].encode("ascii")
        self.prefix_len = len(self.prefix_b)
        self.prefix_p = PyBytes_AS_STRING(self.prefix_b)
        self.skew = skew
        self.status = status
        self.replay_capacity = replay_capacity
        self.cert_cache_capacity = cert_cache_capacity
        self._keep = []
        self._kid_hex = [bytes(key.kid).hex() for key in trust.keys]
        keys = list(trust.keys)
        self.nkeys = len(keys)
        self.keys = <CKey*>calloc(max(1, self.nkeys), sizeof(CKey))
        if self.keys == NULL:
            raise MemoryError()
        for i, key in enumerate(keys):
            k = &self.keys[i]
            kid = bytes(key.kid)
            self._keep.append(kid)
            self._keep.append(key)
            k.kid = <const uint8_t*>PyBytes_AS_STRING(kid)
            k.kid_len = len(kid)
            k.pykey = <PyObject*>key
            k.alg = {"EdDSA": A_EDDSA, "ES256": A_ES256, "PS256": A_PS256}.get(key.alg, A_OTHER)
            if k.alg == A_EDDSA:
                if len(key.raw) != 32:
                    raise ValueError("Ed25519 trust key must be 32 raw bytes")
                memcpy(k.raw, PyBytes_AS_STRING(key.raw), 32)
            k.sig_len = _signature_length(key) if k.alg != A_OTHER else -1
            if _ossl and (k.alg == A_ES256 or k.alg == A_PS256):
                spki = bytes(key.raw)
                self._keep.append(spki)
                p = <const unsigned char*>PyBytes_AS_STRING(spki)
                k.evp_pkey = _d2i_PUBKEY(NULL, &p, len(spki))
                if k.evp_pkey == NULL:
                    _err_clear()
            k.has_nb = key.not_before is not None
            k.nb = key.not_before if k.has_nb else 0.0
            k.has_na = key.not_after is not None
            k.na = key.not_after if k.has_na else 0.0
        slots = _pow2_at_least(cert_cache_capacity)
        self.certs = <CertEntry*>calloc(slots, sizeof(CertEntry))
        self.cert_mask = slots - 1
        slots = _pow2_at_least(2 * replay_capacity)
        self.replay = <ReplaySlot*>calloc(slots, sizeof(ReplaySlot))
        self.replay_mask = slots - 1
        if self.certs == NULL or self.replay == NULL:
            raise MemoryError()
        sip = nacl.bindings.randombytes(16) if hasattr(nacl.bindings, "randombytes") else None
        if sip is None:
            import os
            sip = os.urandom(16)
        memcpy(self.sipkey, PyBytes_AS_STRING(sip), 16)

    def __len__(self):
        return self.replay_count

    def memory(self):
        """Bytes held by the bounded caches (allocated up front, fixed size).

        ``replay_bytes_per_entry``: table bytes per entry of ``replay_capacity``
        (40-byte slots, load factor <= 0.5, power-of-two table: 80 to 160 bytes).
        ``cert_cache_bytes_per_entry``: the same for ``cert_cache_capacity``.
        """
        replay = (self.replay_mask + 1) * sizeof(ReplaySlot)
        certs = (self.cert_mask + 1) * sizeof(CertEntry)
        return {
            "replay_entries": self.replay_count,
            "replay_bytes": replay,
            "replay_bytes_per_entry": replay / self.replay_capacity,
            "cert_cache_bytes": certs,
            "cert_cache_bytes_per_entry": certs / self.cert_cache_capacity,
        }

    # ---- public API -------------------------------------------------------------------

    def verify(self, qr, at=None):
        """Run every stage on one scanned text; see the reference. Never raises."""
        return self.verify_batch((qr,), at)[0]

    def verify_batch(self, qrs, at=None):
        """Verify many codes in order, releasing the GIL once for the whole batch."""
        cdef list seq = list(qrs)
        cdef Py_ssize_t n = len(seq), i
        cdef Tok* toks
        cdef Tok* t
        cdef double now = 0.0
        cdef bint has_now = at is not None
        cdef list out
        if has_now:
            now = float(at)
        if self.status is not None:
            bits = self.status._bits
            self._keep_status = bits
            self.status_bits = <const uint8_t*>(<char*>bits)
            self.status_size_bits = len(bits) * 8
        toks = <Tok*>calloc(max(1, n), sizeof(Tok))
        if toks == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                self._prepare(&toks[i], seq[i])
            with nogil:
                for i in range(n):
                    if not toks[i].decided:
                        self._process(&toks[i], now, has_now)
            out = [None] * n
            for i in range(n):
                out[i] = self._result(&toks[i])
            return out
        finally:
            for i in range(n):
                t = &toks[i]
                free(t.dec)
                if t.inflated != NULL:
                    Py_DECREF(<object>t.inflated)
            free(toks)

    # ---- GIL-held helpers ----------------------------------------------------------------

    cdef int _prepare(self, Tok* t, object qr) except -1:
        t.stage = S_OK
        t.signer = -1
        if self.prof == P_CWT:
            if not PyBytes_CheckExact(qr):
                t.decided = True
                fail(t, S_PREFIX, R_NOT_TEXT, False)
                return 0
            t.text = <const uint8_t*>PyBytes_AS_STRING(qr)
            t.text_len = PyBytes_GET_SIZE(qr)
            return 0
        if not PyUnicode_CheckExact(qr):
            t.decided = True
            fail(t, S_PREFIX, R_NOT_TEXT, False)
            return 0
        t.text_len = PyUnicode_GET_LENGTH(qr)
        if t.text_len > MAX_QR:
            t.decided = True
            fail(t, S_PREFIX, R_TOO_LONG, False)
            return 0
        if PyUnicode_IS_ASCII(qr):
            t.text = <const uint8_t*>PyUnicode_DATA(qr)
            return 0
        # non-ASCII text: the prefix is ASCII, so base45 cannot succeed after it
        t.decided = True
        if not qr.startswith(_codes.PROFILES[self.profile]):
            fail(t, S_PREFIX, R_PREFIX_MISMATCH, False)
        else:
            fail(t, S_BASE45, R_BASE45_CHAR, False)
        return 0

    cdef object _result(self, Tok* t):
        cdef int r = t.reason
        kid = None
        payload = None
        if t.signer >= 0:
            kid = self._kid_hex[t.signer]
        elif t.kid != NULL:
            kid = PyBytes_FromStringAndSize(<const char*>t.kid, t.kid_len).hex()
        if t.payload_ok:
            payload = PyBytes_FromStringAndSize(<const char*>t.payload, t.payload_len)
        return _tuple_new(_Result, (
            t.stage == S_OK,
            _STAGE_NAMES[t.stage],
            _CERT_REASONS[r] if t.cert else _REASONS[r],
            kid,
            self.profile,
            payload,
            [],
        ))

    cdef int _inflate(self, Tok* t) noexcept:
        try:
            out = _inflate(PyBytes_FromStringAndSize(<const char*>t.data, t.data_len))
            if isinstance(out, str):
                return _REASON_CODE[out]
            Py_INCREF(out)
            t.inflated = <PyObject*>out
            t.data = <const uint8_t*>PyBytes_AS_STRING(out)
            t.data_len = PyBytes_GET_SIZE(out)
            return 0
        except BaseException:
            return R_ZLIB_INVALID

    cdef bint _py_verify(self, Py_ssize_t i, const uint8_t* msg, Py_ssize_t mlen,
                         Sign1* s) noexcept:
        try:
            return bool(_library_verify(
                <object>self.keys[i].pykey,
                PyBytes_FromStringAndSize(<const char*>msg, mlen),
                PyBytes_FromStringAndSize(<const char*>s.sig, s.sig_len),
            ))
        except BaseException:
            return False

    # ---- the pipeline (no GIL) -----------------------------------------------------------

    cdef void _process(self, Tok* t, double now, bint has_now) noexcept nogil:
        cdef int r
        cdef Py_ssize_t plen = self.prefix_len
        if self.prof == P_CWT:
            t.data = t.text
            t.data_len = t.text_len
        else:
            if t.text_len < plen or memcmp(t.text, self.prefix_p, plen) != 0:
                fail(t, S_PREFIX, R_PREFIX_MISMATCH, False)
                return
            t.dec = <uint8_t*>malloc(t.text_len + 1)
            if t.dec == NULL:
                fail(t, S_BASE45, R_BASE45_LENGTH, False)
                return
            r = b45decode(t.text + plen, t.text_len - plen, t.dec, &t.data_len)
            if r:
                fail(t, S_BASE45, r, False)
                return
            t.data = t.dec
            if self.prof == P_DCC:
                with gil:
                    r = self._inflate(t)
                if r:
                    fail(t, S_ZLIB, r, False)
                    return
        self._run(t, now, has_now)

    cdef int _kid_stage(self, Sign1* s, Tok* t) noexcept nogil:
        cdef Val v = header(s, 4)
        cdef Head h
        cdef Py_ssize_t i
        if not v.found:
            return R_KID_MISSING
        h = head_of(v)
        if h.major != 2:
            return R_KID_TYPE
        t.kid = v.b + h.next
        t.kid_len = <Py_ssize_t>h.arg
        for i in range(self.nkeys):
            if self.keys[i].kid_len == t.kid_len and memcmp(
                self.keys[i].kid, t.kid, <size_t>t.kid_len
            ) == 0:
                t.signer = <int>i  # same kid bytes: its cached hex is the kid's hex
                return 0
        return R_KID_UNKNOWN

    cdef int _verify_with(self, Sign1* s, const uint8_t* kid, Py_ssize_t kid_len,
                          int* signer) noexcept nogil:
        cdef int alg, r
        cdef Py_ssize_t i, mlen = 0
        cdef bint candidates = False, tried = False, ok
        cdef uint8_t stack[2048]
        cdef uint8_t* msg = NULL
        cdef CKey* k
        r = alg_of(s, &alg)
        if r:
            return r
        for i in range(self.nkeys):
            k = &self.keys[i]
            if k.alg != alg or k.kid_len != kid_len or memcmp(k.kid, kid, <size_t>kid_len) != 0:
                continue
            candidates = True
            if s.sig_len != k.sig_len:
                continue
            tried = True
            if msg == NULL:
                if 24 + s.prot_len + s.payload_len <= 2048:
                    msg = stack
                else:
                    msg = <uint8_t*>malloc(24 + s.prot_len + s.payload_len)
                    if msg == NULL:
                        return R_SIGNATURE_INVALID
                mlen = sig_structure(s, msg)
            if alg == A_EDDSA:
                ok = _ed_verify(s.sig, msg, <unsigned long long>mlen, k.raw) == 0
            elif k.evp_pkey != NULL:
                ok = ossl_verify(k, msg, mlen, s.sig, s.sig_len)
            else:
                with gil:
                    ok = self._py_verify(i, msg, mlen, s)
            if ok:
                signer[0] = <int>i
                if msg != stack:
                    free(msg)
                return 0
        if msg != NULL and msg != stack:
            free(msg)
        if not candidates:
            return R_ALG_KEY_MISMATCH
        return R_SIGNATURE_INVALID if tried else R_SIGNATURE_ENCODING

    cdef void _run(self, Tok* t, double now, bint has_now) noexcept nogil:
        cdef Sign1 tok
        cdef int r, signer = 0, alg
        cdef bint sc1 = self.prof == P_SC1
        cdef double exp = 0, nbf = 0, iat = 0
        cdef bint has_exp, has_nbf, has_iat
        cdef Val v, v1
        cdef Head h
        cdef const uint8_t* cti = NULL
        cdef Py_ssize_t cti_len = 0, mlen
        cdef const uint8_t* cert = NULL
        cdef Py_ssize_t cert_len = 0
        cdef uint8_t digest[32]
        cdef CertEntry e
        cdef CertEntry* slot
        cdef uint8_t stack[2048]
        cdef uint8_t* msg
        cdef uint64_t idx
        r = parse_sign1(t.data, t.data_len, &tok)
        if r:
            fail(t, S_COSE, r, False)
            return
        r = numeric_date(claim(&tok, 4), sc1, &exp, &has_exp)
        if not r:
            r = numeric_date(claim(&tok, 5), False, &nbf, &has_nbf)
        if not r:
            r = numeric_date(claim(&tok, 6), sc1, &iat, &has_iat)
        if r:
            fail(t, S_COSE, r, False)
            return
        if not sc1:
            if self.prof == P_DCC:
                v = claim(&tok, -260)
                if not v.found:
                    fail(t, S_COSE, R_CLAIM_MISSING, False)
                    return
                h = head_of(v)
                if h.major != 5:
                    fail(t, S_COSE, R_CLAIM_TYPE, False)
                    return
                v1 = map_find(v.b, v.n, v.pos, 1)
                if not v1.found or head_of(v1).major != 5:
                    fail(t, S_COSE, R_CLAIM_TYPE, False)
                    return
            t.payload_ok = True
            t.payload = tok.payload
            t.payload_len = tok.payload_len
            r = self._kid_stage(&tok, t)
            if r:
                fail(t, S_KID, r, False)
                return
            r = self._verify_with(&tok, t.kid, t.kid_len, &signer)
            if r:
                fail(t, S_SIGNATURE, r, False)
                return
            if has_now:
                r = check_time(now, self.skew, has_iat, iat, has_nbf, nbf, has_exp, exp,
                               &self.keys[signer])
                if r:
                    fail(t, S_TIME, r, False)
            return
        r = bytes_claim(claim(&tok, 7), MAX_CTI, &cti, &cti_len)
        if r:
            fail(t, S_COSE, r, False)
            return
        v = claim(&tok, -65537)
        if not v.found:
            fail(t, S_COSE, R_CLAIM_MISSING, False)
            return
        h = head_of(v)
        if h.major != 2:
            fail(t, S_COSE, R_CLAIM_TYPE, False)
            return
        cert = v.b + h.next
        cert_len = <Py_ssize_t>h.arg
        _sha256(digest, cert, <unsigned long long>cert_len)
        PyThread_acquire_lock(self.cert_lock, WAIT_LOCK)
        slot = &self.certs[(<uint64_t*>digest)[0] & <uint64_t>self.cert_mask]
        e.used = slot.used and memcmp(slot.digest, digest, 32) == 0
        if e.used:
            e = slot[0]
        PyThread_release_lock(self.cert_lock)
        t.payload_ok = True
        t.payload = tok.payload
        t.payload_len = tok.payload_len
        if e.used:
            t.kid = self.keys[e.signer].kid
            t.kid_len = self.keys[e.signer].kid_len
            t.signer = e.signer
        else:
            t.payload_ok = False
            if self._check_cert(t, &tok, cert, cert_len, &e):
                return
            memcpy(e.digest, digest, 32)
            e.used = True
            PyThread_acquire_lock(self.cert_lock, WAIT_LOCK)
            self.certs[(<uint64_t*>digest)[0] & <uint64_t>self.cert_mask] = e
            PyThread_release_lock(self.cert_lock)
        # signature: the device key confirmed by the certificate signs the token
        r = alg_of(&tok, &alg)
        if not r and alg != A_EDDSA:
            r = R_ALG_KEY_MISMATCH
        if not r and tok.sig_len != 64:
            r = R_SIGNATURE_ENCODING
        if r:
            fail(t, S_SIGNATURE, r, False)
            return
        if 24 + tok.prot_len + tok.payload_len <= 2048:
            msg = stack
        else:
            msg = <uint8_t*>malloc(24 + tok.prot_len + tok.payload_len)
            if msg == NULL:
                fail(t, S_SIGNATURE, R_SIGNATURE_INVALID, False)
                return
        mlen = sig_structure(&tok, msg)
        r = _ed_verify(tok.sig, msg, <unsigned long long>mlen, e.device_key)
        if msg != stack:
            free(msg)
        if r != 0:
            fail(t, S_SIGNATURE, R_SIGNATURE_INVALID, False)
            return
        if has_now:
            r = check_time(now, self.skew, has_iat, iat, has_nbf, nbf, has_exp, exp, NULL)
            if not r and exp - iat > 300.0:
                r = R_LIFETIME_TOO_LONG
            if r:
                fail(t, S_TIME, r, False)
                return
            r = check_time(now, self.skew, e.has_iat, e.iat, e.has_nbf, e.nbf, True, e.exp,
                           &self.keys[e.signer])
            if r:
                fail(t, S_TIME, r, True)
                return
        if self.status_bits != NULL:
            idx = e.status_index
            if idx >= <uint64_t>self.status_size_bits:
                fail(t, S_REVOCATION, R_STATUS_INDEX_OUT_OF_RANGE, False)
                return
            if self.status_bits[idx >> 3] & (0x80 >> (idx & 7)):
                fail(t, S_REVOCATION, R_REVOKED, False)
                return
        r = self._replay_admit(cti, cti_len, exp, now, has_now)
        if r:
            fail(t, S_REPLAY, r, False)

    cdef int _check_cert(self, Tok* t, Sign1* tok, const uint8_t* cert, Py_ssize_t cert_len,
                         CertEntry* e) noexcept nogil:
        """cose, kid and signature stages of the device certificate (mirrors
        reference.Verifier._check_cert); returns non-zero after recording a failure."""
        cdef Sign1 c
        cdef int r
        cdef const uint8_t* sub
        cdef Py_ssize_t sub_len
        cdef double exp = 0
        cdef bint has_exp
        cdef Val v, k1, kty, crv, x
        cdef Head h
        r = parse_sign1(cert, cert_len, &c)
        if not r:
            r = bytes_claim(claim(&c, 2), MAX_SUB, &sub, &sub_len)
        if not r:
            r = numeric_date(claim(&c, 4), True, &exp, &has_exp)
        if not r:
            r = numeric_date(claim(&c, 5), False, &e.nbf, &e.has_nbf)
        if not r:
            r = numeric_date(claim(&c, 6), False, &e.iat, &e.has_iat)
        if not r:
            v = claim(&c, 8)
            if not v.found:
                r = R_CLAIM_MISSING
            else:
                r = R_CNF_INVALID
                if head_of(v).major == 5:
                    k1 = map_find(v.b, v.n, v.pos, 1)
                    if k1.found and head_of(k1).major == 5:
                        kty = map_find(k1.b, k1.n, k1.pos, 1)
                        crv = map_find(k1.b, k1.n, k1.pos, -1)
                        x = map_find(k1.b, k1.n, k1.pos, -2)
                        if (kty.found and crv.found and x.found
                                and head_of(kty).major == 0 and head_of(kty).arg == 1
                                and head_of(crv).major == 0 and head_of(crv).arg == 6
                                and head_of(x).major == 2 and head_of(x).arg == 32):
                            memcpy(e.device_key, x.b + head_of(x).next, 32)
                            r = 0
        if not r:
            v = claim(&c, -65538)
            if not v.found:
                r = R_CLAIM_MISSING
            else:
                h = head_of(v)
                if h.major != 0 or h.arg >= SAFE_INT:
                    r = R_CLAIM_TYPE
                e.status_index = h.arg
        if r:
            return fail(t, S_COSE, r, True)
        e.exp = exp
        t.payload_ok = True
        t.payload = tok.payload
        t.payload_len = tok.payload_len
        r = self._kid_stage(&c, t)
        if r:
            return fail(t, S_KID, r, False)
        r = self._verify_with(&c, t.kid, t.kid_len, &e.signer)
        if r:
            return fail(t, S_SIGNATURE, r, True)
        return 0

    cdef int _replay_admit(self, const uint8_t* cti, Py_ssize_t n, double exp, double now,
                           bint has_now) noexcept nogil:
        """Bounded replay set (see the reference ReplayCache for the rules)."""
        cdef uint8_t key[32]
        cdef uint8_t digest[32]
        cdef Py_ssize_t i
        memset(key, 0, 32)
        key[0] = <uint8_t>n
        if n <= 31:
            memcpy(key + 1, cti, <size_t>n)
        else:  # long cti values are keyed by their SHA-256 (first 31 bytes)
            _sha256(digest, cti, <unsigned long long>n)
            memcpy(key + 1, digest, 31)
        PyThread_acquire_lock(self.replay_lock, WAIT_LOCK)
        i = self._replay_find(key)
        if self.replay[i].key[0] != 0:
            PyThread_release_lock(self.replay_lock)
            return R_REPLAYED
        if self.replay_count >= self.replay_capacity:
            if has_now:
                self._replay_purge(now - self.skew)
            if self.replay_count >= self.replay_capacity:
                PyThread_release_lock(self.replay_lock)
                return R_REPLAY_CACHE_FULL
            i = self._replay_find(key)
        memcpy(self.replay[i].key, key, 32)
        self.replay[i].exp = exp
        self.replay_count += 1
        PyThread_release_lock(self.replay_lock)
        return 0

    cdef Py_ssize_t _replay_find(self, const uint8_t* key) noexcept nogil:
        """Slot holding key, or the empty slot where it would go (linear probing)."""
        cdef uint64_t hv
        cdef Py_ssize_t i
        _siphash(<unsigned char*>&hv, key, 32, self.sipkey)
        i = <Py_ssize_t>(hv & <uint64_t>self.replay_mask)
        while self.replay[i].key[0] != 0 and memcmp(self.replay[i].key, key, 32) != 0:
            i = (i + 1) & self.replay_mask
        return i

    cdef void _replay_purge(self, double limit) noexcept nogil:
        """Drop entries with exp < limit and rehash the rest."""
        cdef Py_ssize_t i, j = 0, slots = self.replay_mask + 1
        cdef ReplaySlot* live = <ReplaySlot*>malloc(self.replay_count * sizeof(ReplaySlot) + 1)
        if live == NULL:
            return
        for i in range(slots):
            if self.replay[i].key[0] != 0 and not self.replay[i].exp < limit:
                live[j] = self.replay[i]
                j += 1
        memset(self.replay, 0, slots * sizeof(ReplaySlot))
        self.replay_count = j
        for i in range(j):
            self.replay[self._replay_find(live[i].key)] = live[i]
        free(live)


def raw_ed25519_verify(list items):
    """Baseline for benchmarks: libsodium ``crypto_sign_ed25519_verify_detached`` alone
    over ``[(signature, message, public_key), ...]`` in a C loop without the GIL.
    Returns how many verified."""
    cdef Py_ssize_t n = len(items), i, ok = 0
    cdef const unsigned char** sigs = <const unsigned char**>malloc(max(1, n) * sizeof(void*))
    cdef const unsigned char** msgs = <const unsigned char**>malloc(max(1, n) * sizeof(void*))
    cdef const unsigned char** pks = <const unsigned char**>malloc(max(1, n) * sizeof(void*))
    cdef unsigned long long* lens = <unsigned long long*>malloc(max(1, n) * sizeof(unsigned long long))
    if sigs == NULL or msgs == NULL or pks == NULL or lens == NULL:
        free(sigs)
        free(msgs)
        free(pks)
        free(lens)
        raise MemoryError()
    try:
        for i in range(n):
            sig, msg, pk = items[i]
            if len(sig) != 64 or len(pk) != 32:
                raise ValueError("Ed25519 needs 64-byte signatures and 32-byte keys")
            sigs[i] = <const unsigned char*>PyBytes_AS_STRING(sig)
            msgs[i] = <const unsigned char*>PyBytes_AS_STRING(msg)
            lens[i] = PyBytes_GET_SIZE(msg)
            pks[i] = <const unsigned char*>PyBytes_AS_STRING(pk)
        with nogil:
            for i in range(n):
                if _ed_verify(sigs[i], msgs[i], lens[i], pks[i]) == 0:
                    ok += 1
        return ok
    finally:
        free(sigs)
        free(msgs)
        free(pks)
        free(lens)
