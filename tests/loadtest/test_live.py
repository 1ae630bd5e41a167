"""The load suite against a live service: the smoke (driver starts the service itself)
and Locust's distributed mode (a master and two workers against a given --target).

Service levels are not asserted here (timing on a shared machine); the smoke asserts
what cannot drift: requests were made, none failed, and every output file exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest import cli

pytestmark = pytest.mark.slow

OUTPUTS = (
    "report.html",
    "stats_stats.csv",
    "stats_stats_history.csv",
    "summary.json",
    "plot.png",
    "pool.json",
)


def load_summary(out: Path) -> dict[str, Any]:
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    return json.loads((out / "summary.json").read_text())  # type: ignore[no-any-return]


def assert_clean(s: dict[str, Any]) -> None:
    assert s["totals"]["requests"] > 0
    assert s["totals"]["failures"] == 0, s["endpoints"]
    assert s["totals"]["responses_5xx"] == 0
    assert s["endpoints"]["POST /v1/access-checks"]["requests"] > 0
    assert [x["name"] for x in s["service_levels"]] == [
        "access_check_p99_ms",
        "grant_p99_ms",
        "failure_ratio",
        "responses_5xx",
    ]
    gate = s["endpoints"].get("POST /v1/gate/validations")
    assert gate or "404" in s["skipped"].get("Gate", ""), s["skipped"]


def test_smoke_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["--duration", "15", "--scale", "0.01", "--out", str(tmp_path)])
    assert rc in (0, 1), capsys.readouterr().err  # 2: the run could not be made
    s = load_summary(tmp_path)
    assert_clean(s)
    assert rc == (0 if s["passed"] else 1)
    assert s["run"]["shape"] == "soak" and s["run"]["workers"] == 0
    # the dominant call dominates, as the scale model says
    top = max(s["endpoints"], key=lambda k: s["endpoints"][k]["requests"])
    assert top == "POST /v1/access-checks"
    assert s["run"]["generator"]["cpu_s"] > 0


def test_distributed_master_aggregates_two_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with cli.service(tmp_path / "service") as (url, token, _pid):
        out = tmp_path / "out"
        args = ["--target", url, "--registrar-token", token, "--workers", "2"]
        rc = cli.main([*args, "--duration", "8", "--scale", "0.01", "--out", str(out)])
    assert rc in (0, 1), capsys.readouterr().err
    s = load_summary(out)
    assert_clean(s)
    workers = s["workers"]
    assert len(workers) == 2, workers
    assert all(n > 0 for n in workers.values()), workers
    assert sum(workers.values()) == s["totals"]["requests"]
    assert s["run"]["generator"]["processes"] == 3
