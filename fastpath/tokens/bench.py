"""Throughput of the token verifiers against the raw library rates, in one process.

Every figure is verifications per second (best of ``repeat`` rounds): per CPU-second of
this process for single-threaded runs (``*_wall`` twins give wall-clock rates), per
wall-clock second for the two-thread runs. Ratios compare figures measured in the same
run on the same machine (DESIGN.md "Performance stance").
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fastpath.threads import on_threads
from fastpath.tokens import cbor, codes, implementations
from fastpath.tokens.base45 import b45decode, b45encode
from fastpath.tokens.common import sig_structure
from fastpath.tokens.issue import DeviceKey, HC1Signer, IssuerKey, issue_device_cert, sign1
from fastpath.tokens.trust import TrustList

CHUNK = 64  # codes per verify_batch call


def _race(
    runs: dict[str, Callable[[], int]], repeat: int, wall: tuple[str, ...] = ()
) -> dict[str, float]:
    """Best rate (items per second) of each run over ``repeat`` rounds.

    The runs alternate within each round, so that paired figures are taken under the
    same machine load. Single-threaded runs are timed in CPU seconds of this process
    (``time.process_time``: other processes on the shared machine do not count); the
    runs named in ``wall`` (the multi-threaded ones) and ``<name>_wall`` twins of the
    others are timed on the wall clock.
    """
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, run in runs.items():
            cpu0, wall0 = time.process_time(), time.perf_counter()
            count = run()
            cpu, elapsed = time.process_time() - cpu0, time.perf_counter() - wall0
            if name in wall:
                rates = {name: count / elapsed}
            else:
                rates = {name: count / max(cpu, 1e-9), f"{name}_wall": count / elapsed}
            for key, rate in rates.items():
                best[key] = max(best.get(key, 0.0), rate)
    return best


def _parts(cose: bytes) -> tuple[bytes, bytes, bytes]:
    """(Sig_structure, signature, payload) of COSE_Sign1 bytes."""
    prot, _unprot, payload, sig = cbor.decode(cose, cose_top=True)
    return sig_structure(prot, payload), sig, payload


def sc1_fixture(count: int, now: int) -> tuple[TrustList, list[str], DeviceKey]:
    """``count`` fresh SC1 codes of one card (one device certificate: warm scans)."""
    issuer = IssuerKey.generate()
    device = DeviceKey.generate()
    cert = issue_device_cert(
        issuer, device.public, os.urandom(32), 1, iat=now - 60, exp=now + 86400
    )
    qrs = []
    for _ in range(count):
        claims = {
            codes.CLAIM_EXP: now + 60,
            codes.CLAIM_IAT: now,
            codes.CLAIM_CTI: os.urandom(16),
            codes.CLAIM_SC1_DEVICE_CERT: cert,
        }
        cose = sign1(claims, device.sign, protected={1: codes.ALG_EDDSA})
        qrs.append(codes.PREFIX_SC1 + b45encode(cose))
    return TrustList([issuer.trust_key()]), qrs, device


def hc1_fixture(count: int, now: int) -> tuple[HC1Signer, list[str]]:
    """``count`` distinct ES256 HC1 codes of one document signer, valid at ``now``."""
    signer = HC1Signer.generate("ES256")
    body = {"ver": "1.3.0", "nam": {"fn": "Mustermann", "gn": "Erika"}, "dob": "1964-08-12"}
    qrs = []
    for i in range(count):
        claims = {1: "XX", codes.CLAIM_IAT: now - i, codes.CLAIM_EXP: now + 86400, -260: {1: body}}
        qrs.append(codes.PREFIX_HC1 + b45encode(zlib.compress(signer.sign_cose(claims), 9)))
    return signer, qrs


def _batched(verifier: Any, qrs: list[str], at: float) -> int:
    ok = 0
    for i in range(0, len(qrs), CHUNK):
        ok += sum(r.valid for r in verifier.verify_batch(qrs[i : i + CHUNK], at))
    if ok != len(qrs):
        raise RuntimeError(f"benchmark codes failed to verify ({ok}/{len(qrs)})")
    return len(qrs)


def _two_threads(make: Callable[[], Any], qrs: list[str], at: float) -> int:
    verifier = make()
    return on_threads(lambda half: _batched(verifier, half, at), [qrs[0::2], qrs[1::2]])


def run(count: int = 1000, repeat: int = 5) -> dict[str, Any]:
    """Measure every figure of ``consentgate token bench`` (see the module docstring)."""
    impls = implementations()
    fast = impls.get("compiled")
    if fast is None:
        raise RuntimeError("the compiled module fastpath._tokens is not built")
    ref = impls["reference"]
    now = int(time.time())
    trust, sc1, device = sc1_fixture(count, now)

    def sc1_fast() -> int:
        verifier = fast.Verifier(trust)
        return _batched(verifier, sc1, now)

    # each run's first code caches the device certificate; the rest are warm scans
    out: dict[str, Any] = {"count": count, "implementation_default": fast.IMPLEMENTATION}
    raw_items = ed25519_items(sc1, device)
    out.update(
        _race(
            {
                "sc1_fast_per_s": lambda: _batched(fast.Verifier(trust), sc1, now),
                "ed25519_raw_per_s": lambda: fast.raw_ed25519_verify(raw_items),
                "sc1_fast_2threads_per_s": lambda: _two_threads(
                    lambda: fast.Verifier(trust), sc1, now
                ),
                # what two cores give this process right now (the machine is shared)
                "ed25519_raw_2threads_per_s": lambda: _raw_two_threads(fast, raw_items),
            },
            repeat,
            wall=("sc1_fast_2threads_per_s", "ed25519_raw_2threads_per_s"),
        )
    )
    small = sc1[: max(50, count // 8)]
    out.update(_race({"sc1_reference_per_s": lambda: _batched(ref.Verifier(trust), small, now)}, 1))
    signer, hc1 = hc1_fixture(count, now)
    hc1_trust = TrustList([signer.trust_key()])
    key = cwt_key(signer)
    p256 = p256_items(signer, hc1)
    public = signer.private.public_key()
    out.update(
        _race(
            {
                "hc1_fast_per_s": lambda: _batched(
                    fast.Verifier(hc1_trust, profile="dcc"), hc1, now
                ),
                "hc1_cwt_per_s": lambda: cwt_pipeline(key, hc1),
                "p256_raw_per_s": lambda: p256_raw(public, p256),
                "hc1_fast_2threads_per_s": lambda: _two_threads(
                    lambda: fast.Verifier(hc1_trust, profile="dcc"), hc1, now
                ),
            },
            repeat,
            wall=("hc1_fast_2threads_per_s",),
        )
    )
    # ES256 through libcrypto's function pointers without the GIL (else cryptography)
    out["openssl_without_gil"] = bool(getattr(fast, "OPENSSL_WITHOUT_GIL", False))
    out["sc1_vs_raw"] = round(out["sc1_fast_per_s"] / out["ed25519_raw_per_s"], 3)
    # wall clock against wall clock: two threads must finish the same work sooner
    out["threads2_vs_1"] = round(out["sc1_fast_2threads_per_s"] / out["sc1_fast_per_s_wall"], 3)
    out["hc1_vs_cwt"] = round(out["hc1_fast_per_s"] / out["hc1_cwt_per_s"], 3)
    out["hc1_vs_raw"] = round(out["hc1_fast_per_s"] / out["p256_raw_per_s"], 3)
    # the ceiling this machine gives two threads right now (it is shared)
    out["raw_threads2_vs_1"] = round(
        out["ed25519_raw_2threads_per_s"] / out["ed25519_raw_per_s_wall"], 3
    )
    # how close two verifier threads come to two raw libsodium threads, same moment
    out["threads2_vs_raw_threads2"] = round(
        out["sc1_fast_2threads_per_s"] / out["ed25519_raw_2threads_per_s"], 3
    )
    out["sc1_fast_vs_reference"] = round(out["sc1_fast_per_s"] / out["sc1_reference_per_s"], 3)
    out["cpu_count"] = os.cpu_count()
    for key, value in out.items():
        if "_per_s" in key:
            out[key] = round(value, 1)
    return out


def _raw_two_threads(fast: Any, items: list[tuple[bytes, bytes, bytes]]) -> int:
    def work(half: list[tuple[bytes, bytes, bytes]]) -> int:
        fast.raw_ed25519_verify(half)
        return len(half)

    return on_threads(work, [items[0::2], items[1::2]])


def cwt_key(signer: HC1Signer) -> Any:
    """python-cwt's COSEKey for the signer's public key."""
    import cwt

    pem = signer.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cwt.COSEKey.from_pem(pem, alg="ES256", kid=signer.kid)


def cwt_pipeline(key: Any, qrs: list[str]) -> int:
    """The public-library pipeline: ``base45`` package, zlib, python-cwt decode+verify
    (python-cwt also checks exp/nbf against the real clock)."""
    import base45
    import cwt

    for qr in qrs:
        cwt.decode(zlib.decompress(base45.b45decode(qr[4:])), keys=[key])
    return len(qrs)


def p256_items(signer: HC1Signer, qrs: list[str]) -> list[tuple[bytes, bytes]]:
    """(DER signature, Sig_structure) of each HC1 code: the raw baseline's inputs."""
    items = []
    for qr in qrs:
        message, signature, _ = _parts(zlib.decompress(b45decode(qr[4:])))
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        items.append((encode_dss_signature(r, s), message))
    return items


def p256_raw(public: Any, items: list[tuple[bytes, bytes]]) -> int:
    """OpenSSL ECDSA P-256/SHA-256 verify alone (``cryptography``) on the same messages."""
    algorithm = ec.ECDSA(hashes.SHA256())
    for der, message in items:
        public.verify(der, message, algorithm)
    return len(items)


def ed25519_items(qrs: list[str], device: DeviceKey) -> list[tuple[bytes, bytes, bytes]]:
    """(signature, Sig_structure, device key) of each SC1 code: the raw baseline's inputs."""
    items = []
    for qr in qrs:
        message, signature, _ = _parts(b45decode(qr[4:]))
        items.append((signature, message, device.public))
    return items
