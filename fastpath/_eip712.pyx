# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Compiled EIP-712 digests, strict secp256k1 recovery and Merkle trees.

Same API and results as the references in :mod:`fastpath.eip712` and
:mod:`fastpath.merkle`. No cryptography is written here: keccak-256 is pycryptodome's C
code (``Crypto.Hash._keccak``, the original Keccak padding 0x01, not SHA-3's 0x06) and
recovery is the libsecp256k1 bundled with coincurve (``ecdsa_recoverable_signature_
parse_compact``, ``ecdsa_recover``, ``ec_pubkey_serialize``), both called through C
function pointers taken from the wheels' shared objects. Messages are read with the GIL
held (dictionary lookups, UTF-8 buffers); hashing and recovery run with it released,
once per batch.
"""

import ctypes
import importlib.util
from collections.abc import Mapping

from coincurve._libsecp256k1 import ffi as _secp_ffi
from coincurve._libsecp256k1 import lib as _secp_lib
from coincurve.context import GLOBAL_CONTEXT as _SECP_CONTEXT

from authz.typed_data import EIP712_DOMAIN_FIELDS, GRANT_FIELDS, WITHDRAWAL_FIELDS

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_CheckExact
from cpython.list cimport PyList_Check
from cpython.long cimport PyLong_AsUnsignedLongLong, PyLong_Check
from cpython.object cimport PyObject
from cpython.pythread cimport (
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
    WAIT_LOCK,
)
from cpython.tuple cimport PyTuple_Check
from cpython.unicode cimport PyUnicode_Check, PyUnicode_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

IMPLEMENTATION = "compiled"

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    void* PyUnicode_DATA(object o)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL
    bint PyBool_Check(object o)

DEF DEPTH = 32
DEF WORD = 32

# ---- keccak-256: pycryptodome's C functions ----------------------------------------------

ctypedef int (*keccak_init_t)(void** state, size_t capacity_bytes, uint8_t rounds) noexcept nogil
ctypedef int (*keccak_destroy_t)(void* state) noexcept nogil
ctypedef int (*keccak_absorb_t)(void* state, const uint8_t* data, size_t length) noexcept nogil
ctypedef int (*keccak_digest_t)(void* state, uint8_t* digest, size_t length,
                                uint8_t padding) noexcept nogil
ctypedef int (*keccak_reset_t)(void* state) noexcept nogil

cdef keccak_init_t _k_init = NULL
cdef keccak_destroy_t _k_destroy = NULL
cdef keccak_absorb_t _k_absorb = NULL
cdef keccak_digest_t _k_digest = NULL
cdef keccak_reset_t _k_reset = NULL

DEF KECCAK_PADDING = 0x01  # original Keccak (Ethereum); SHA3-256 would be 0x06
DEF KECCAK_CAPACITY = 64   # bytes: 2 x 256-bit output
DEF KECCAK_ROUNDS = 24


cdef uintptr_t _c_symbol(object lib, str name) except 0:
    return <uintptr_t>ctypes.cast(getattr(lib, name), ctypes.c_void_p).value


def _load_keccak():
    global _k_init, _k_destroy, _k_absorb, _k_digest, _k_reset
    spec = importlib.util.find_spec("Crypto.Hash._keccak")
    if spec is None or spec.origin is None:
        raise ImportError("pycryptodome's Crypto.Hash._keccak is not installed")
    lib = ctypes.CDLL(spec.origin)
    _k_init = <keccak_init_t>_c_symbol(lib, "keccak_init")
    _k_destroy = <keccak_destroy_t>_c_symbol(lib, "keccak_destroy")
    _k_absorb = <keccak_absorb_t>_c_symbol(lib, "keccak_absorb")
    _k_digest = <keccak_digest_t>_c_symbol(lib, "keccak_digest")
    _k_reset = <keccak_reset_t>_c_symbol(lib, "keccak_reset")


_load_keccak()


cdef void* new_state() except NULL:
    cdef void* st = NULL
    if _k_init(&st, KECCAK_CAPACITY, KECCAK_ROUNDS) != 0 or st == NULL:
        raise MemoryError("keccak_init failed")
    return st


cdef inline void kh(void* st, const uint8_t* data, size_t n, uint8_t* out) noexcept nogil:
    """out[0:32] = keccak256(data[0:n]) (the state is reset first)."""
    _k_reset(st)
    if n:
        _k_absorb(st, data, n)
    _k_digest(st, out, 32, KECCAK_PADDING)


cdef inline void node_c(void* st, const uint8_t* left, const uint8_t* right,
                        uint8_t* out) noexcept nogil:
    cdef uint8_t buf[65]
    buf[0] = 0x01
    memcpy(buf + 1, left, 32)
    memcpy(buf + 33, right, 32)
    kh(st, buf, 65, out)


cdef class _State:
    """Owns one keccak state (freed with the object)."""
    cdef void* st

    def __cinit__(self):
        self.st = new_state()

    def __dealloc__(self):
        if self.st != NULL:
            _k_destroy(self.st)


def keccak256(data) -> bytes:
    """keccak-256 of a bytes-like object (32 bytes)."""
    cdef const uint8_t[::1] view = data
    cdef uint8_t out[32]
    cdef _State s = _State()
    cdef Py_ssize_t n = view.shape[0]
    with nogil:
        kh(s.st, &view[0] if n else <const uint8_t*>out, n, out)
    return PyBytes_FromStringAndSize(<char*>out, 32)


# ---- errors (looked up lazily: fastpath.eip712 imports this module) ----------------------


cdef object _typed_error(str message):
    from fastpath.eip712 import TypedDataError

    return TypedDataError(message)


cdef object _field_error(object field, str why):
    return _typed_error(f"field {field!r}: {why}")


cdef object _merkle_error(str message):
    from fastpath.merkle import MerkleError

    return MerkleError(message)


# ---- typed-data fields ---------------------------------------------------------------------

cdef enum Kind:
    K_ADDRESS = 0
    K_STRING = 1
    K_STRINGS = 2
    K_BOOL = 3
    K_U64 = 4
    K_U256 = 5
    K_B32 = 6

cdef dict _KINDS = {
    "address": K_ADDRESS,
    "string": K_STRING,
    "string[]": K_STRINGS,
    "bool": K_BOOL,
    "uint64": K_U64,
    "uint256": K_U256,
    "bytes32": K_B32,
}

cdef signed char _HEXVAL[256]


def _init_hex():
    cdef int i
    for i in range(256):
        _HEXVAL[i] = -1
    for i, ch in enumerate("0123456789abcdef"):
        _HEXVAL[ord(ch)] = i
    for i, ch in enumerate("ABCDEF"):
        _HEXVAL[ord(ch)] = 10 + i


_init_hex()

cdef const char* _LOWER_HEX = b"0123456789abcdef"


cdef void checksum_c(void* st, const uint8_t* addr20, char* out42) noexcept nogil:
    """EIP-55: out42 = "0x" + hex(addr20), letters upper-cased where the nibble of
    keccak256(lowercase hex) is >= 8."""
    cdef char lower[40]
    cdef uint8_t h[32]
    cdef int i, nibble
    cdef char c
    for i in range(20):
        lower[2 * i] = _LOWER_HEX[addr20[i] >> 4]
        lower[2 * i + 1] = _LOWER_HEX[addr20[i] & 15]
    kh(st, <const uint8_t*>lower, 40, h)
    out42[0] = c'0'
    out42[1] = c'x'
    for i in range(40):
        c = lower[i]
        nibble = (h[i >> 1] >> 4) if (i & 1) == 0 else (h[i >> 1] & 15)
        if c >= c'a' and nibble >= 8:
            c = c - 32
        out42[2 + i] = c


cdef int parse_hex_str(object value, Py_ssize_t nbytes, uint8_t* out, int* mixed) noexcept:
    """'0x' + 2*nbytes hex digits -> out; 0 when well-formed. mixed: upper and lower letters."""
    cdef const char* p
    cdef Py_ssize_t i
    cdef int hi, lo
    cdef bint upper = False, lower = False
    cdef unsigned char c
    if not PyUnicode_Check(value) or PyUnicode_GET_LENGTH(value) != 2 + 2 * nbytes:
        return 1
    if not PyUnicode_IS_ASCII(value):
        return 1
    p = <const char*>PyUnicode_DATA(value)
    if p[0] != c'0' or p[1] != c'x':
        return 1
    for i in range(2, 2 + 2 * nbytes):
        c = <unsigned char>p[i]
        if _HEXVAL[c] < 0:
            return 1
        if c >= c'a':
            lower = True
        elif c >= c'A':
            upper = True
    for i in range(nbytes):
        hi = _HEXVAL[<unsigned char>p[2 + 2 * i]]
        lo = _HEXVAL[<unsigned char>p[3 + 2 * i]]
        out[i] = <uint8_t>((hi << 4) | lo)
    mixed[0] = upper and lower
    return 0


cdef int parse_decimal(object value, uint8_t* out32) noexcept:
    """ASCII decimal digits (1..78) -> 32-byte big-endian; 1 malformed, 2 > 2^256 - 1."""
    cdef const char* p
    cdef Py_ssize_t n, i, k
    cdef uint64_t limbs[8]  # little-endian 32-bit limbs, each held in 64 bits
    cdef uint64_t acc
    if not PyUnicode_IS_ASCII(value):
        return 1
    n = PyUnicode_GET_LENGTH(value)
    if n < 1 or n > 78:
        return 1
    p = <const char*>PyUnicode_DATA(value)
    memset(limbs, 0, sizeof(limbs))
    for i in range(n):
        if p[i] < c'0' or p[i] > c'9':
            return 1
        acc = <uint64_t>(p[i] - c'0')
        for k in range(8):
            acc += limbs[k] * 10
            limbs[k] = acc & 0xFFFFFFFF
            acc >>= 32
        if acc:
            return 2
    for k in range(8):
        for i in range(4):
            out32[31 - 4 * k - i] = <uint8_t>(limbs[k] >> (8 * i))
    return 0


cdef class _Spec:
    """A flat struct type: typehash, field names and kinds, from a FIELDS list."""
    cdef bytes typehash
    cdef tuple names
    cdef int kinds[32]
    cdef Py_ssize_t nfields
    cdef Py_ssize_t width  # encodeData length: 32 * (1 + nfields)

    def __init__(self, str name, list fields):
        if len(fields) > 32:
            raise ImportError(f"{name}: too many fields for the compiled encoder")
        for i, f in enumerate(fields):
            if f["type"] not in _KINDS:
                raise ImportError(f"{name}.{f['name']}: type {f['type']} has no compiled encoder")
            self.kinds[i] = _KINDS[f["type"]]
        self.names = tuple(f["name"] for f in fields)
        self.nfields = len(fields)
        self.width = WORD * (1 + self.nfields)
        type_string = f"{name}({','.join(f['type'] + ' ' + f['name'] for f in fields)})"
        self.typehash = keccak256(type_string.encode())


cdef _Spec _GRANT = _Spec("Grant", GRANT_FIELDS)
cdef _Spec _WITHDRAWAL = _Spec("Withdrawal", WITHDRAWAL_FIELDS)
cdef _Spec _DOMAIN = _Spec("EIP712Domain", EIP712_DOMAIN_FIELDS)
GRANT_TYPEHASH = _GRANT.typehash
WITHDRAWAL_TYPEHASH = _WITHDRAWAL.typehash
DOMAIN_TYPEHASH = _DOMAIN.typehash


cdef struct Seg:
    const char* ptr
    Py_ssize_t length

cdef struct Job:
    Py_ssize_t slot    # byte offset in the encoding buffer of the 32-byte hash
    Py_ssize_t start   # first segment
    Py_ssize_t count   # segments
    int array          # 1: keccak of the concatenated element hashes (string[])


cdef class _Batch:
    """The C buffers of one struct-hash batch (freed with the object)."""
    cdef uint8_t* enc
    cdef Seg* segs
    cdef Py_ssize_t nsegs, capsegs
    cdef Job* jobs
    cdef Py_ssize_t njobs, capjobs
    cdef list keep  # the str objects whose UTF-8 buffers the segments point into
    cdef _State state  # for EIP-55 checks while parsing
    cdef char checked[42]  # the last mixed-case address found valid (a batch repeats them)

    def __cinit__(self):
        self.keep = []
        self.state = _State()
        memset(self.checked, 0, 42)

    def __dealloc__(self):
        free(self.enc)
        free(self.segs)
        free(self.jobs)

    cdef int add_seg(self, object text) except -1:
        cdef Py_ssize_t n
        cdef const char* p = NULL
        cdef Seg* grown
        if self.nsegs == self.capsegs:
            self.capsegs = 64 if self.capsegs == 0 else 2 * self.capsegs
            grown = <Seg*>realloc(self.segs, self.capsegs * sizeof(Seg))
            if grown == NULL:
                raise MemoryError()
            self.segs = grown
        p = PyUnicode_AsUTF8AndSize(text, &n)
        self.keep.append(text)
        self.segs[self.nsegs].ptr = p
        self.segs[self.nsegs].length = n
        self.nsegs += 1
        return 0

    cdef int add_job(self, Py_ssize_t slot, Py_ssize_t start, int array) except -1:
        cdef Job* grown
        if self.njobs == self.capjobs:
            self.capjobs = 32 if self.capjobs == 0 else 2 * self.capjobs
            grown = <Job*>realloc(self.jobs, self.capjobs * sizeof(Job))
            if grown == NULL:
                raise MemoryError()
            self.jobs = grown
        self.jobs[self.njobs].slot = slot
        self.jobs[self.njobs].start = start
        self.jobs[self.njobs].count = self.nsegs - start
        self.jobs[self.njobs].array = array
        self.njobs += 1
        return 0


cdef int put_text(_Batch b, object value, object field) except -1:
    if not PyUnicode_Check(value):
        raise _field_error(field, "string expected")
    try:
        b.add_seg(value)
    except UnicodeEncodeError:
        raise _field_error(field, "string is not encodable as UTF-8") from None
    return 0


cdef int put_field(_Batch b, int kind, object value, object field, Py_ssize_t slot) except -1:
    cdef uint8_t* out = b.enc + slot
    cdef uint8_t tmp[20]
    cdef char check[42]
    cdef int mixed = 0, rc
    cdef Py_ssize_t start
    cdef unsigned long long small
    cdef const char* p
    memset(out, 0, 32)
    if kind == K_ADDRESS:
        if parse_hex_str(value, 20, out + 12, &mixed):
            raise _field_error(field, "address must be '0x' + 40 hex digits")
        p = <const char*>PyUnicode_DATA(value)
        if mixed and memcmp(p, b.checked, 42) != 0:
            checksum_c(b.state.st, out + 12, check)
            if memcmp(p, check, 42) != 0:
                raise _field_error(field, "mixed-case address with a bad EIP-55 checksum")
            memcpy(b.checked, check, 42)
    elif kind == K_STRING:
        start = b.nsegs
        put_text(b, value, field)
        b.add_job(slot, start, 0)
    elif kind == K_STRINGS:
        if not (PyList_Check(value) or PyTuple_Check(value)):
            raise _field_error(field, "array of strings expected")
        start = b.nsegs
        for item in value:
            put_text(b, item, field)
        b.add_job(slot, start, 1)
    elif kind == K_BOOL:
        if value is True:
            out[31] = 1
        elif value is not False:
            raise _field_error(field, "bool expected")
    elif kind == K_U64 or kind == K_U256:
        if PyUnicode_Check(value):
            rc = parse_decimal(value, out)
            if rc == 1:
                raise _field_error(field, "uint as a string must be 1 to 78 ASCII decimal digits")
            if rc == 2 or (kind == K_U64 and any_nonzero(out, 24)):
                raise _field_error(field, f"out of range for uint{64 if kind == K_U64 else 256}")
        elif PyLong_Check(value) and not PyBool_Check(value):
            try:
                if kind == K_U64:
                    small = PyLong_AsUnsignedLongLong(value)
                    for rc in range(8):
                        out[31 - rc] = <uint8_t>(small >> (8 * rc))
                else:
                    memcpy(out, PyBytes_AS_STRING(int.to_bytes(value, 32, "big")), 32)
            except OverflowError:
                raise _field_error(
                    field, f"out of range for uint{64 if kind == K_U64 else 256}"
                ) from None
        else:
            raise _field_error(field, "uint must be an int or a decimal string")
    elif kind == K_B32:
        if PyBytes_Check(value):
            if PyBytes_GET_SIZE(value) != 32:
                raise _field_error(field, "bytes32 must be 32 bytes")
            memcpy(out, PyBytes_AS_STRING(value), 32)
        elif parse_hex_str(value, 32, out, &mixed):
            raise _field_error(field, "bytes32 must be '0x' + 64 hex digits or 32 bytes")
    return 0


cdef inline bint any_nonzero(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if p[i]:
            return True
    return False


cdef object _lookup(object message, object name):
    """message[name], or raise the 'missing' error (dicts without a Python-level call)."""
    cdef PyObject* found
    if PyDict_CheckExact(message):
        found = PyDict_GetItemWithError(message, name)
        if found == NULL:
            raise _field_error(name, "missing")
        return <object>found
    if name not in message:
        raise _field_error(name, "missing")
    return message[name]


cdef list _hash_structs(_Spec spec, object messages, object domain_separator):
    """hashStruct of each message; with a domain separator, the EIP-712 digests."""
    cdef list items = list(messages)
    cdef Py_ssize_t n = len(items), i, f, j, k, w = spec.width
    cdef _Batch b = _Batch()
    cdef _State s1 = _State(), s2 = _State()
    cdef uint8_t ds[32]
    cdef uint8_t buf[66]
    cdef uint8_t h[32]
    cdef uint8_t* out
    cdef bint wrap = domain_separator is not None
    cdef Job* job
    cdef Seg* seg
    if wrap:
        if not PyBytes_Check(domain_separator) or PyBytes_GET_SIZE(domain_separator) != 32:
            raise _typed_error("domain_separator must be 32 bytes")
        memcpy(ds, PyBytes_AS_STRING(domain_separator), 32)
    b.enc = <uint8_t*>malloc(max(n, 1) * (w + 32))
    if b.enc == NULL:
        raise MemoryError()
    out = b.enc + n * w
    for i in range(n):
        message = items[i]
        if not PyDict_CheckExact(message) and not isinstance(message, Mapping):
            raise _typed_error(f"a message must be a mapping, got {type(message).__name__}")
        memcpy(b.enc + i * w, PyBytes_AS_STRING(spec.typehash), 32)
        for f in range(spec.nfields):
            name = spec.names[f]
            put_field(b, spec.kinds[f], _lookup(message, name), name, i * w + WORD * (1 + f))
    with nogil:
        for j in range(b.njobs):
            job = &b.jobs[j]
            if not job.array:
                seg = &b.segs[job.start]
                kh(s1.st, <const uint8_t*>seg.ptr, seg.length, b.enc + job.slot)
            else:
                _k_reset(s2.st)
                for k in range(job.start, job.start + job.count):
                    seg = &b.segs[k]
                    kh(s1.st, <const uint8_t*>seg.ptr, seg.length, h)
                    _k_absorb(s2.st, h, 32)
                _k_digest(s2.st, b.enc + job.slot, 32, KECCAK_PADDING)
        buf[0] = 0x19
        buf[1] = 0x01
        memcpy(buf + 2, ds, 32)
        for i in range(n):
            kh(s1.st, b.enc + i * w, w, out + 32 * i)
            if wrap:
                memcpy(buf + 34, out + 32 * i, 32)
                kh(s1.st, buf, 66, out + 32 * i)
    return [PyBytes_FromStringAndSize(<char*>out + 32 * i, 32) for i in range(n)]


def grant_struct_hashes(messages) -> list:
    """hashStruct(Grant) of each message (see fastpath.eip712)."""
    return _hash_structs(_GRANT, messages, None)


def withdrawal_struct_hashes(messages) -> list:
    """hashStruct(Withdrawal) of each message (see fastpath.eip712)."""
    return _hash_structs(_WITHDRAWAL, messages, None)


def grant_digests(domain_separator, messages) -> list:
    """EIP-712 digests of Grant messages (see fastpath.eip712)."""
    return _hash_structs(_GRANT, messages, domain_separator)


def withdrawal_digests(domain_separator, messages) -> list:
    """EIP-712 digests of Withdrawal messages (see fastpath.eip712)."""
    return _hash_structs(_WITHDRAWAL, messages, domain_separator)


def domain_separator(chain_id, verifying_contract, name="consentgate", version="1") -> bytes:
    """hashStruct(EIP712Domain) (see fastpath.eip712)."""
    domain = {
        "name": name,
        "version": version,
        "chainId": chain_id,
        "verifyingContract": verifying_contract,
    }
    return _hash_structs(_DOMAIN, [domain], None)[0]


def typed_digest(domain_separator, struct_hash) -> bytes:
    """keccak256(0x1901 || domain_separator || struct_hash)."""
    cdef uint8_t buf[66]
    cdef uint8_t out[32]
    cdef _State s = _State()
    if not PyBytes_Check(domain_separator) or PyBytes_GET_SIZE(domain_separator) != 32:
        raise _typed_error("domain_separator must be 32 bytes")
    if not PyBytes_Check(struct_hash) or PyBytes_GET_SIZE(struct_hash) != 32:
        raise _typed_error("struct_hash must be 32 bytes")
    buf[0] = 0x19
    buf[1] = 0x01
    memcpy(buf + 2, PyBytes_AS_STRING(domain_separator), 32)
    memcpy(buf + 34, PyBytes_AS_STRING(struct_hash), 32)
    kh(s.st, buf, 66, out)
    return PyBytes_FromStringAndSize(<char*>out, 32)


# ---- secp256k1 recovery: libsecp256k1 from coincurve ----------------------------------------

ctypedef int (*parse_compact_t)(const void* ctx, uint8_t* sig, const uint8_t* input64,
                                int recid) noexcept nogil
ctypedef int (*recover_t)(const void* ctx, uint8_t* pubkey, const uint8_t* sig,
                          const uint8_t* msghash32) noexcept nogil
ctypedef int (*serialize_t)(const void* ctx, uint8_t* output, size_t* outputlen,
                            const uint8_t* pubkey, unsigned int flags) noexcept nogil

cdef parse_compact_t _parse_compact = NULL
cdef recover_t _recover = NULL
cdef serialize_t _serialize = NULL
cdef const void* _ctx = NULL
cdef unsigned int _UNCOMPRESSED = 0


cdef uintptr_t _cffi_address(object pointer) except 0:
    return <uintptr_t>int(_secp_ffi.cast("uintptr_t", pointer))


def _load_secp256k1():
    global _parse_compact, _recover, _serialize, _ctx, _UNCOMPRESSED
    _parse_compact = <parse_compact_t>_cffi_address(
        _secp_ffi.addressof(_secp_lib, "secp256k1_ecdsa_recoverable_signature_parse_compact")
    )
    _recover = <recover_t>_cffi_address(_secp_ffi.addressof(_secp_lib, "secp256k1_ecdsa_recover"))
    _serialize = <serialize_t>_cffi_address(
        _secp_ffi.addressof(_secp_lib, "secp256k1_ec_pubkey_serialize")
    )
    # coincurve's global context lives as long as the interpreter (module global)
    _ctx = <const void*>_cffi_address(_SECP_CONTEXT.ctx)
    _UNCOMPRESSED = _secp_lib.SECP256K1_EC_UNCOMPRESSED
    if _secp_ffi.sizeof("secp256k1_ecdsa_recoverable_signature") != 65:
        raise ImportError("unexpected libsecp256k1 recoverable signature size")
    if _secp_ffi.sizeof("secp256k1_pubkey") != 64:
        raise ImportError("unexpected libsecp256k1 public key size")


_load_secp256k1()

# the curve order n and n // 2, big-endian
cdef bytes _N = (0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141).to_bytes(32, "big")
cdef bytes _HALF_N = (0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2).to_bytes(32, "big")


cdef int recover_c(void* st, const uint8_t* digest, const uint8_t* sig, const uint8_t* n32,
                   const uint8_t* half32, char* out42) noexcept nogil:
    """Strict recovery of one signature into a checksum address; 1 on success."""
    cdef uint8_t rsig[65]
    cdef uint8_t pub[64]
    cdef uint8_t ser[65]
    cdef uint8_t h[32]
    cdef size_t serlen = 65
    cdef int v = sig[64]
    if v != 27 and v != 28:
        return 0
    if not any_nonzero(sig, 32) or memcmp(sig, n32, 32) >= 0:
        return 0
    if not any_nonzero(sig + 32, 32) or memcmp(sig + 32, half32, 32) > 0:
        return 0
    if not _parse_compact(_ctx, rsig, sig, v - 27):
        return 0
    if not _recover(_ctx, pub, rsig, digest):
        return 0
    if not _serialize(_ctx, ser, &serlen, pub, _UNCOMPRESSED) or serlen != 65:
        return 0
    kh(st, ser + 1, 64, h)
    checksum_c(st, h + 12, out42)
    return 1


cdef int hex_signature(object value, uint8_t* out65) noexcept:
    """A hex str ('0x' optional) of exactly 65 bytes -> out65; 0 when it is one."""
    cdef const char* p
    cdef Py_ssize_t n, off = 0, i
    cdef int hi, lo
    if not PyUnicode_IS_ASCII(value):
        return 1
    p = <const char*>PyUnicode_DATA(value)
    n = PyUnicode_GET_LENGTH(value)
    if n >= 2 and p[0] == c'0' and p[1] == c'x':
        off = 2
    if n - off != 130:
        return 1
    for i in range(65):
        hi = _HEXVAL[<unsigned char>p[off + 2 * i]]
        lo = _HEXVAL[<unsigned char>p[off + 2 * i + 1]]
        if hi < 0 or lo < 0:
            return 1
        out65[i] = <uint8_t>((hi << 4) | lo)
    return 0


def recover_signers(digests, signatures) -> list:
    """Checksum address (or None) of each (digest, signature) (see fastpath.eip712)."""
    cdef list ds = list(digests)
    cdef list sigs = list(signatures)
    cdef Py_ssize_t n = len(ds), i
    cdef uint8_t* dbuf
    cdef uint8_t* sbuf
    cdef uint8_t* ok
    cdef char* addrs
    cdef _State s
    cdef const uint8_t* n32 = <const uint8_t*>PyBytes_AS_STRING(_N)
    cdef const uint8_t* half32 = <const uint8_t*>PyBytes_AS_STRING(_HALF_N)
    if n != len(sigs):
        raise _typed_error(f"{n} digests but {len(sigs)} signatures")
    s = _State()
    dbuf = <uint8_t*>malloc(max(n, 1) * (32 + 65 + 1 + 42))
    if dbuf == NULL:
        raise MemoryError()
    sbuf = dbuf + 32 * n
    ok = sbuf + 65 * n
    addrs = <char*>(ok + n)
    try:
        for i in range(n):
            d = ds[i]
            if not PyBytes_Check(d) or PyBytes_GET_SIZE(d) != 32:
                raise _typed_error("a digest must be 32 bytes")
            memcpy(dbuf + 32 * i, PyBytes_AS_STRING(d), 32)
            sig = sigs[i]
            if PyBytes_Check(sig):
                ok[i] = PyBytes_GET_SIZE(sig) == 65
                if ok[i]:
                    memcpy(sbuf + 65 * i, PyBytes_AS_STRING(sig), 65)
            elif PyUnicode_Check(sig):
                ok[i] = hex_signature(sig, sbuf + 65 * i) == 0
            else:
                raise _typed_error(
                    f"a signature must be bytes or a hex str, got {type(sig).__name__}"
                )
        with nogil:
            for i in range(n):
                if ok[i]:
                    ok[i] = recover_c(s.st, dbuf + 32 * i, sbuf + 65 * i, n32, half32,
                                      addrs + 42 * i)
        return [
            PyUnicode_FromStringAndSize(addrs + 42 * i, 42) if ok[i] else None
            for i in range(n)
        ]
    finally:
        free(dbuf)


def raw_recover(digests, signatures) -> int:
    """Bench baseline helper: libsecp256k1 recoveries alone (parse + recover), no checks,
    no address; returns how many recovered. Signatures are 65 bytes r || s || v."""
    cdef list ds = list(digests)
    cdef list sigs = list(signatures)
    cdef Py_ssize_t n = len(ds), i
    cdef int good = 0
    cdef uint8_t rsig[65]
    cdef uint8_t pub[64]
    for i in range(n):
        d = ds[i]
        sig = sigs[i]
        if not PyBytes_Check(d) or PyBytes_GET_SIZE(d) != 32:
            raise _typed_error("a digest must be 32 bytes")
        if not PyBytes_Check(sig) or PyBytes_GET_SIZE(sig) != 65:
            raise _typed_error("raw_recover takes 65-byte signatures")
        if _parse_compact(_ctx, rsig, <const uint8_t*>PyBytes_AS_STRING(sig),
                          (<const uint8_t*>PyBytes_AS_STRING(sig))[64] - 27):
            good += _recover(_ctx, pub, rsig, <const uint8_t*>PyBytes_AS_STRING(d))
    return good


# ---- Merkle trees (docs/anchoring.md) ------------------------------------------------------

cdef uint8_t _ZERO[(DEPTH + 1) * 32]


def _init_zero():
    cdef _State s = _State()
    cdef int k
    memset(_ZERO, 0, 32)
    for k in range(DEPTH):
        node_c(s.st, _ZERO + 32 * k, _ZERO + 32 * k, _ZERO + 32 * (k + 1))


_init_zero()
def _zero_hashes():
    cdef int k
    return tuple([PyBytes_FromStringAndSize(<char*>_ZERO + 32 * k, 32) for k in range(DEPTH + 1)])


ZERO_HASHES = _zero_hashes()
cdef uint64_t CAPACITY = (<uint64_t>1) << DEPTH
cdef bytes STATE_MAGIC = b"CGMT\x01"


def leaf_hash(data) -> bytes:
    """H(0x00 || data) for a bytes-like data."""
    cdef const uint8_t[::1] view = data
    cdef Py_ssize_t n = view.shape[0]
    cdef uint8_t prefix = 0
    cdef uint8_t out[32]
    cdef _State s = _State()
    with nogil:
        _k_reset(s.st)
        _k_absorb(s.st, &prefix, 1)
        if n:
            _k_absorb(s.st, &view[0], n)
        _k_digest(s.st, out, 32, KECCAK_PADDING)
    return PyBytes_FromStringAndSize(<char*>out, 32)


cdef const uint8_t* _hash32(object value, str what) except NULL:
    if not PyBytes_Check(value) or PyBytes_GET_SIZE(value) != 32:
        raise _merkle_error(f"{what} must be 32 bytes")
    return <const uint8_t*>PyBytes_AS_STRING(value)


def node_hash(left, right) -> bytes:
    """H(0x01 || left || right); both 32 bytes."""
    cdef uint8_t out[32]
    cdef _State s = _State()
    node_c(s.st, _hash32(left, "left"), _hash32(right, "right"), out)
    return PyBytes_FromStringAndSize(<char*>out, 32)


def verify_proof(root, leaf, index, proof) -> bool:
    """Whether proof (32 siblings) places leaf at index under root; False if malformed."""
    cdef uint8_t run[32]
    cdef uint64_t i
    cdef int k
    cdef _State s
    if not PyLong_Check(index) or PyBool_Check(index) or not 0 <= index < CAPACITY:
        return False
    if not PyBytes_Check(root) or not PyBytes_Check(leaf) or len(proof) != DEPTH:
        return False
    if PyBytes_GET_SIZE(root) != 32 or PyBytes_GET_SIZE(leaf) != 32:
        return False
    i = index
    s = _State()
    memcpy(run, PyBytes_AS_STRING(leaf), 32)
    for k in range(DEPTH):
        sibling = proof[k]
        if not PyBytes_Check(sibling) or PyBytes_GET_SIZE(sibling) != 32:
            return False
        if (i >> k) & 1:
            node_c(s.st, <const uint8_t*>PyBytes_AS_STRING(sibling), run, run)
        else:
            node_c(s.st, run, <const uint8_t*>PyBytes_AS_STRING(sibling), run)
    return memcmp(run, PyBytes_AS_STRING(root), 32) == 0


cdef class IncrementalTree:
    """Append-only depth-32 tree (see fastpath.merkle); lv[k] holds the complete nodes
    of height k (size >> k of them), the right edge is recomputed on demand."""

    IMPLEMENTATION = "compiled"

    cdef uint8_t* lv[DEPTH + 1]
    cdef uint64_t cap[DEPTH + 1]
    cdef uint64_t n
    cdef uint8_t edge[(DEPTH + 1) * 32]
    cdef bint has_edge[DEPTH + 1]
    cdef bint edges_valid
    cdef void* st
    cdef PyThread_type_lock lock

    def __cinit__(self, *args, **kwargs):
        self.st = new_state()
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError()

    def __init__(self, leaves=()):
        self.extend(leaves)

    def __dealloc__(self):
        cdef int k
        for k in range(DEPTH + 1):
            free(self.lv[k])
        if self.st != NULL:
            _k_destroy(self.st)
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    cdef inline void _acquire(self) noexcept:
        with nogil:
            PyThread_acquire_lock(self.lock, WAIT_LOCK)

    cdef inline void _release(self) noexcept:
        PyThread_release_lock(self.lock)

    cdef int _reserve(self, uint64_t total) noexcept nogil:
        """Room for ``total`` leaves at every level; -1 when out of memory."""
        cdef int k
        cdef uint64_t need, cap
        cdef uint8_t* grown
        for k in range(DEPTH + 1):
            need = total >> k
            if need <= self.cap[k]:
                continue
            cap = self.cap[k] * 2 if self.cap[k] * 2 > need else need
            if cap < 16:
                cap = 16
            grown = <uint8_t*>realloc(self.lv[k], cap * 32)
            if grown == NULL:
                return -1
            self.lv[k] = grown
            self.cap[k] = cap
        return 0

    cdef void _append(self, const uint8_t* leaf) noexcept nogil:
        """Append one leaf (room reserved by the caller)."""
        cdef uint64_t j = self.n
        cdef int k = 0
        memcpy(self.lv[0] + 32 * j, leaf, 32)
        while j & 1:
            node_c(self.st, self.lv[k] + 32 * (j - 1), self.lv[k] + 32 * j,
                   self.lv[k + 1] + 32 * (j >> 1))
            j >>= 1
            k += 1
        self.n += 1
        self.edges_valid = False

    cdef void _edges(self) noexcept nogil:
        cdef int k
        cdef uint64_t j
        cdef const uint8_t* right
        if self.edges_valid:
            return
        self.has_edge[0] = False
        for k in range(DEPTH):
            j = self.n >> k
            if j & 1:
                right = &self.edge[32 * k] if self.has_edge[k] else &_ZERO[32 * k]
                node_c(self.st, self.lv[k] + 32 * (j - 1), right, self.edge + 32 * (k + 1))
                self.has_edge[k + 1] = True
            elif self.has_edge[k]:
                node_c(self.st, self.edge + 32 * k, _ZERO + 32 * k, self.edge + 32 * (k + 1))
                self.has_edge[k + 1] = True
            else:
                self.has_edge[k + 1] = False
        self.edges_valid = True

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self.n

    def __len__(self):
        return self.n

    def append(self, leaf) -> int:
        """Append a 32-byte leaf hash; return its index."""
        cdef const uint8_t* p = _hash32(leaf, "a leaf")
        cdef uint64_t index
        self._acquire()
        try:
            index = self.n
            if index >= CAPACITY:
                raise _merkle_error("the tree is full (2^32 leaves)")
            if self._reserve(index + 1) < 0:
                raise MemoryError()
            self._append(p)
            return index
        finally:
            self._release()

    def extend(self, leaves) -> None:
        """Append each leaf in order (all checked first); hashes with the GIL released."""
        cdef list items = list(leaves)
        cdef Py_ssize_t m = len(items), i
        cdef uint8_t* buf
        cdef int rc = 0
        buf = <uint8_t*>malloc(max(m, 1) * 32)
        if buf == NULL:
            raise MemoryError()
        try:
            for i in range(m):
                memcpy(buf + 32 * i, _hash32(items[i], "a leaf"), 32)
            self._acquire()
            try:
                if self.n + m > CAPACITY:
                    raise _merkle_error("the tree is full (2^32 leaves)")
                with nogil:
                    rc = self._reserve(self.n + m)
                    if rc == 0:
                        for i in range(m):
                            self._append(buf + 32 * i)
                if rc < 0:
                    raise MemoryError()
            finally:
                self._release()
        finally:
            free(buf)

    cdef uint64_t _index(self, object index) except? 0:
        if not PyLong_Check(index) or PyBool_Check(index) or not 0 <= index < self.n:
            raise _merkle_error(f"index {index!r} out of range (size {self.n})")
        return index

    def leaf(self, index) -> bytes:
        """The leaf hash at index."""
        self._acquire()
        try:
            return PyBytes_FromStringAndSize(<char*>self.lv[0] + 32 * self._index(index), 32)
        finally:
            self._release()

    def update(self, index, leaf) -> None:
        """Replace leaf index (the status tree's words change)."""
        cdef uint64_t j
        cdef int k = 0
        cdef const uint8_t* p
        self._acquire()
        try:
            j = self._index(index)
            p = _hash32(leaf, "a leaf")
            memcpy(self.lv[0] + 32 * j, p, 32)
            while (j | 1) < (self.n >> k):
                node_c(self.st, self.lv[k] + 32 * (j & ~(<uint64_t>1)),
                       self.lv[k] + 32 * (j | 1), self.lv[k + 1] + 32 * (j >> 1))
                j >>= 1
                k += 1
            self.edges_valid = False
        finally:
            self._release()

    def root(self) -> bytes:
        """The root over all 2^32 slots (32 bytes)."""
        self._acquire()
        try:
            if self.n == CAPACITY:
                return PyBytes_FromStringAndSize(<char*>self.lv[DEPTH], 32)
            self._edges()
            if self.has_edge[DEPTH]:
                return PyBytes_FromStringAndSize(<char*>self.edge + 32 * DEPTH, 32)
            return PyBytes_FromStringAndSize(<char*>_ZERO + 32 * DEPTH, 32)
        finally:
            self._release()

    def proof(self, index) -> list:
        """The 32 sibling hashes of leaf index, leaf level first."""
        return self.proofs([index])[0]

    def proofs(self, indexes) -> list:
        """proof() of each index (the right edge is computed once)."""
        cdef list wanted = list(indexes)
        cdef list out = []
        cdef list path
        cdef uint64_t i, sib
        cdef int k
        cdef const uint8_t* node
        self._acquire()
        try:
            for index in wanted:
                self._index(index)
            self._edges()
            for index in wanted:
                i = index
                path = []
                for k in range(DEPTH):
                    sib = (i >> k) ^ 1
                    if sib < (self.n >> k):
                        node = self.lv[k] + 32 * sib
                    elif sib == (self.n >> k) and self.has_edge[k]:
                        node = self.edge + 32 * k
                    else:
                        node = _ZERO + 32 * k
                    path.append(PyBytes_FromStringAndSize(<const char*>node, 32))
                out.append(path)
            return out
        finally:
            self._release()

    def to_bytes(self) -> bytes:
        """Persistable state: magic, depth, size (8 bytes big-endian), leaves."""
        self._acquire()
        try:
            return (STATE_MAGIC + bytes([DEPTH]) + (<object>self.n).to_bytes(8, "big")
                    + PyBytes_FromStringAndSize(<char*>self.lv[0], 32 * self.n))
        finally:
            self._release()

    @classmethod
    def from_bytes(cls, state) -> IncrementalTree:
        """Rebuild a tree from to_bytes()."""
        cdef Py_ssize_t head = len(STATE_MAGIC) + 9
        if not PyBytes_Check(state) or state[: len(STATE_MAGIC)] != STATE_MAGIC:
            raise _merkle_error("not a serialized consentgate Merkle tree")
        if len(state) < head or state[len(STATE_MAGIC)] != DEPTH:
            raise _merkle_error("serialized tree: bad header")
        n = int.from_bytes(state[len(STATE_MAGIC) + 1 : head], "big")
        if n > CAPACITY or len(state) != head + 32 * n:
            raise _merkle_error("serialized tree: size does not match the leaves")
        return cls([state[head + 32 * i : head + 32 * i + 32] for i in range(n)])
