"""summary.json, service levels and the plot, from Locust-format CSV files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from loadtest import report
from loadtest.errors import ReportError

HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
HISTORY_HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,"
    "99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,"
    "Total Median Response Time,Total Average Response Time,Total Min Response Time,"
    "Total Max Response Time,Total Average Content Size"
)


def row(kind: str, name: str, n: int, fails: int, rps: float, p50: int, p95: int, p99: int) -> str:
    return (
        f"{kind},{name},{n},{fails},{p50},{p50 + 1}.0,1,{p99 + 5},120,{rps},0.0,"
        f"{p50},{p50},{p50},{p50},{p95},{p95},{p99},{p99},{p99},{p99},{p99 + 5}"
    )


def write_stats(path: Path, grant_p99: int = 180, grant_fails: int = 0) -> Path:
    lines = [
        HEADER,
        row("POST", "/v1/access-checks", 9000, 0, 150.0, 12, 30, 45),
        row("POST", "/v1/consents", 100, grant_fails, 1.67, 90, 150, grant_p99),
        row("GET", "/v1/subjects/[address]/consents", 900, 0, 15.0, 20, 40, 60),
        row("", "Aggregated", 10000, grant_fails, 166.67, 13, 35, 90),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_stats_keys_by_method_and_name(tmp_path: Path) -> None:
    stats = report.read_stats(write_stats(tmp_path / "s.csv"))
    assert stats["POST /v1/access-checks"] == {
        "requests": 9000,
        "failures": 0,
        "rps": 150.0,
        "p50_ms": 12.0,
        "p95_ms": 30.0,
        "p99_ms": 45.0,
        "failure_ratio": 0.0,
    }
    assert stats["Aggregated"]["requests"] == 10000
    assert set(stats) == {
        "POST /v1/access-checks",
        "POST /v1/consents",
        "GET /v1/subjects/[address]/consents",
        "Aggregated",
    }


def test_summary_passes_when_every_level_holds(tmp_path: Path) -> None:
    extras = {"status_codes": {"200": 9900, "201": 100}, "workers": {"w1": 6000, "w2": 4000}}
    s = report.summarize(write_stats(tmp_path / "s.csv"), extras, report.ServiceLevels(), {"x": 1})
    assert s["passed"] is True
    assert [(x["name"], x["value"], x["held"]) for x in s["service_levels"]] == [
        ("access_check_p99_ms", 45.0, True),
        ("grant_p99_ms", 180.0, True),
        ("failure_ratio", 0.0, True),
        ("responses_5xx", 0, True),
    ]
    assert s["totals"]["requests"] == 10000
    assert s["totals"]["status_codes"] == {"200": 9900, "201": 100}
    assert "Aggregated" not in s["endpoints"]
    assert s["workers"] == {"w1": 6000, "w2": 4000}
    assert s["run"] == {"x": 1}


def test_summary_fails_on_slow_grants_failures_and_5xx(tmp_path: Path) -> None:
    stats = write_stats(tmp_path / "s.csv", grant_p99=250, grant_fails=20)
    extras = {"status_codes": {"200": 9980, "503": 3, "connection_error": 17}}
    s = report.summarize(stats, extras, report.ServiceLevels(), {})
    held = {x["name"]: x["held"] for x in s["service_levels"]}
    assert held == {
        "access_check_p99_ms": True,
        "grant_p99_ms": False,
        "failure_ratio": False,  # 20 / 10000 = 0.2 % >= 0.1 %
        "responses_5xx": False,
    }
    assert s["totals"]["responses_5xx"] == 3
    assert s["passed"] is False


def test_unmeasured_level_does_not_fail(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "\n".join(
            [
                HEADER,
                row("POST", "/v1/access-checks", 10, 0, 1.0, 5, 9, 9),
                row("", "Aggregated", 10, 0, 1.0, 5, 9, 9),
            ]
        )
    )
    s = report.summarize(path, {}, report.ServiceLevels(), {})
    grant = next(x for x in s["service_levels"] if x["name"] == "grant_p99_ms")
    assert grant == {
        "name": "grant_p99_ms",
        "threshold": 200.0,
        "value": None,
        "held": None,
        "unit": "ms",
    }
    assert s["passed"] is True


def test_a_run_without_requests_does_not_pass(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(HEADER + "\n,Aggregated,0,0,0,0.0,0,0,0,0.0,0.0" + ",N/A" * 11 + "\n")
    s = report.summarize(path, {}, report.ServiceLevels(), {})
    assert s["totals"]["requests"] == 0
    assert [x["held"] for x in s["service_levels"]] == [None, None, True, True]
    assert s["passed"] is False


def test_service_levels_are_configurable() -> None:
    levels = report.ServiceLevels.parse(["access_check_p99_ms=20", "max_5xx=2"])
    assert levels == report.ServiceLevels(access_check_p99_ms=20.0, max_5xx=2)
    with pytest.raises(ValueError, match="unknown service level 'p42'"):
        report.ServiceLevels.parse(["p42=1"])


def test_missing_or_malformed_stats_raise(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as info:
        report.read_stats(tmp_path / "absent.csv")
    assert info.value.code == "report_missing"
    (tmp_path / "bad.csv").write_text("Type,Name\nPOST,/x\n")
    with pytest.raises(ReportError, match="lacks columns"):
        report.read_stats(tmp_path / "bad.csv")


def test_history_and_plot(tmp_path: Path) -> None:
    hist = tmp_path / "h.csv"
    lines = [HISTORY_HEADER]
    for i in range(5):
        pct = f"{5 + i},0,0,0,0,{9 + i},0,{12 + i},0,0,0"
        total = 25 * i * i  # completed requests so far: 0, 25, 100, 225, 400
        lines.append(f"{1000 + i},{2 * i},,Aggregated,{10.0 * i},0.0,{pct},{total},0,0,0,0,0,0")
        lines.append(
            f"{1000 + i},{2 * i},POST,/v1/access-checks,1.0,0.0,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,0"
        )
    hist.write_text("\n".join(lines) + "\n")
    h = report.read_history(hist)
    assert [x["t"] for x in h] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [x["rps"] for x in h] == [0.0, 25.0, 75.0, 125.0, 175.0]
    assert h[4] == {
        "t": 4.0,
        "users": 8.0,
        "rps": 175.0,
        "p50_ms": 9.0,
        "p95_ms": 13.0,
        "p99_ms": 16.0,
    }
    png = tmp_path / "plot.png"
    report.plot(h, png, "test")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (900, 600)
    with pytest.raises(ReportError):
        report.plot([], png, "empty")


def test_5xx_count_and_cpu_percent() -> None:
    assert report.count_5xx({"500": 2, "502": 1, "404": 7, "connection_error": 3}) == 3
    assert report.cpu_percent(3.0, 12.0) == 25.0
    assert report.cpu_percent(1.0, 0.0) == 0.0
