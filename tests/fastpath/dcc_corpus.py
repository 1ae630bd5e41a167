"""Loader for the public EU DCC test corpus in shared/testdata/dcc (see its README)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.paths import TESTDATA

CORPUS = TESTDATA / "dcc"

# corpus expectation key -> the verifier stages it covers
STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "EXPECTEDUNPREFIX": ("prefix",),
    "EXPECTEDB45DECODE": ("base45",),
    "EXPECTEDCOMPRESSION": ("zlib",),
    "EXPECTEDDECODE": ("cose",),
    "EXPECTEDVERIFY": ("kid", "signature"),
    "EXPECTEDEXPIRATIONCHECK": ("time",),
}


@dataclass
class Case:
    name: str
    doc: dict[str, Any]
    expected: dict[str, bool]  # only the keys in STAGE_KEYS plus EXPECTEDPICTUREDECODE


def load() -> tuple[list[Case], list[tuple[str, str]]]:
    """All cases whose expectations can be read, and (name, why) for the skipped ones."""
    cases: list[Case] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(CORPUS.rglob("*.json")):
        name = str(path.relative_to(CORPUS))
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            skipped.append((name, f"unreadable JSON: {exc}"))
            continue
        raw = doc.get("EXPECTEDRESULTS") if isinstance(doc, dict) else None
        if not isinstance(raw, dict):
            skipped.append((name, "EXPECTEDRESULTS missing or not an object"))
            continue
        expected = {
            k: v
            for k, v in raw.items()
            if (k in STAGE_KEYS or k == "EXPECTEDPICTUREDECODE") and isinstance(v, bool)
        }
        if not expected:
            skipped.append((name, "no expectation for a stage the verifier owns"))
            continue
        ctx = doc.get("TESTCTX")
        if not isinstance(ctx, dict) or not isinstance(doc.get("PREFIX"), str):
            skipped.append((name, "TESTCTX or PREFIX missing"))
            continue
        cases.append(Case(name, doc, expected))
    return cases, skipped


def judge(case: Case, stage: str) -> list[str]:
    """Problems with a result's failing ``stage`` ("ok" when valid) against the case.

    An expectation ``true`` needs every stage it covers to pass (the pipeline got past
    them); ``false`` needs the pipeline to stop at one of its stages, or earlier at a
    stage that no expectation of the case asserts to pass.
    """
    from fastpath.tokens.codes import STAGES

    order = {name: i for i, name in enumerate(STAGES)}
    failed_at = len(STAGES) if stage == "ok" else order[stage]
    asserted_ok = {
        s for key, ok in case.expected.items() if ok and key in STAGE_KEYS for s in STAGE_KEYS[key]
    }
    problems = []
    for key, ok in case.expected.items():
        if key not in STAGE_KEYS:
            continue
        covered = [order[s] for s in STAGE_KEYS[key]]
        if ok and failed_at <= max(covered):
            problems.append(f"{key}=true but failed at {stage}")
        if not ok:
            earlier_ok = failed_at < min(covered) and stage not in asserted_ok
            if not (min(covered) <= failed_at <= max(covered) or earlier_ok):
                problems.append(f"{key}=false but stopped at {stage}")
    return problems
