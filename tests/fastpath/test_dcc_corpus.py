"""The public EU DCC corpus (shared/testdata/dcc): every readable case, both implementations."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fastpath.errors import QRImageError, TrustListError
from fastpath.tokens.qr import read_qr_texts
from fastpath.tokens.trust import TrustList, key_from_certificate, parse_time

from . import dcc_corpus
from .conftest import IMPLS

CASES, SKIPPED = dcc_corpus.load()


def _trust(case: dcc_corpus.Case) -> TrustList:
    cert = case.doc["TESTCTX"].get("CERTIFICATE")
    try:
        return TrustList([key_from_certificate(base64.b64decode(cert))]) if cert else TrustList()
    except (TrustListError, ValueError):
        return TrustList()


def _run(impl: Any, case: dcc_corpus.Case) -> Any:
    at = None
    if "EXPECTEDEXPIRATIONCHECK" in case.expected:
        at = parse_time(case.doc["TESTCTX"]["VALIDATIONCLOCK"])
    return impl.Verifier(_trust(case), profile="dcc").verify(case.doc["PREFIX"], at)


def test_corpus_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs every readable case on every implementation; prints ran/passed/skipped."""
    failures = []
    passed = 0
    for case in CASES:
        results = {name: _run(module, case) for name, module in IMPLS.items()}
        first = next(iter(results.values()))
        problems = dcc_corpus.judge(case, first.stage)
        for name, result in results.items():
            if result.as_dict() != first.as_dict():
                problems.append(f"{name} disagrees: {result.as_dict()} vs {first.as_dict()}")
        if problems:
            failures.append((case.name, problems))
        else:
            passed += 1
    with capsys.disabled():
        print(
            f"\nDCC corpus: {len(CASES) + len(SKIPPED)} files, ran {len(CASES)}, "
            f"passed {passed}, skipped {len(SKIPPED)} on {sorted(IMPLS)}"
        )
        for name, why in SKIPPED:
            print(f"  skipped {name}: {why}")
    assert failures == []
    assert len(CASES) >= 90


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(impl: Any, case: dcc_corpus.Case) -> None:
    result = _run(impl, case)
    assert dcc_corpus.judge(case, result.stage) == [], result.as_dict()
    if result.valid:
        assert result.kid is not None and len(result.kid) == 16
        assert "-260" in result.claims


PICTURES = [c for c in CASES if "EXPECTEDPICTUREDECODE" in c.expected and c.doc.get("2DCODE")]


@pytest.mark.parametrize("case", PICTURES, ids=[c.name for c in PICTURES])
def test_corpus_picture_decodes_to_prefix(case: dcc_corpus.Case) -> None:
    try:
        texts = read_qr_texts(base64.b64decode(case.doc["2DCODE"]))
    except QRImageError:
        texts = []
    if case.expected["EXPECTEDPICTUREDECODE"]:
        assert case.doc["PREFIX"] in texts
    else:
        assert case.doc["PREFIX"] not in texts
