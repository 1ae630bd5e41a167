"""From Locust's CSV output to ``summary.json``, service levels and a PNG plot.

Inputs are what ``locust --csv PREFIX --csv-full-history`` writes (``PREFIX_stats.csv``,
``PREFIX_stats_history.csv``) plus the extras JSON of :mod:`loadtest.locustfile`
(status-code counts, per-worker totals, counters). Latencies are milliseconds (Locust's
own percentiles, which it rounds to two significant digits above 100 ms); rates are
requests per second over the run.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtest.errors import ReportError

ACCESS_CHECKS = "POST /v1/access-checks"
GRANTS = "POST /v1/consents"
AGGREGATED = "Aggregated"
STATS_COLUMNS = frozenset(
    {"Type", "Name", "Request Count", "Failure Count", "Requests/s", "50%", "95%", "99%"}
)


@dataclass(frozen=True)
class ServiceLevels:
    """Service-level thresholds (issue 6 defaults): access checks p99 <= 50 ms, grants
    accepted p99 <= 200 ms, failure ratio < 0.1 %, zero 5xx."""

    access_check_p99_ms: float = 50.0
    grant_p99_ms: float = 200.0
    max_failure_ratio: float = 0.001
    max_5xx: int = 0

    @classmethod
    def parse(cls, pairs: list[str]) -> ServiceLevels:
        """Defaults overridden by ``name=value`` pairs; raises ValueError on an unknown
        name or a non-number."""
        values: dict[str, Any] = asdict(cls())
        for pair in pairs:
            name, _, text = pair.partition("=")
            if name not in values:
                raise ValueError(f"unknown service level {name!r}; known: {sorted(values)}")
            values[name] = type(values[name])(float(text))
        return cls(**values)


def _num(row: dict[str, str], key: str) -> float:
    text = (row.get(key) or "").strip()
    if text in ("", "N/A"):
        return 0.0
    return float(text)


def read_stats(path: Path) -> dict[str, dict[str, float]]:
    """Per endpoint (``"METHOD name"``, plus ``"Aggregated"``): requests, failures, rps,
    p50_ms, p95_ms, p99_ms, failure_ratio. Raises :class:`ReportError` when the file is
    missing or lacks Locust's columns."""
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = set(reader.fieldnames or ())
    except OSError as exc:
        raise ReportError(f"no Locust stats at {path}: {exc}", code="report_missing") from exc
    missing = sorted(STATS_COLUMNS - columns)
    if missing:
        raise ReportError(f"{path} lacks columns {missing}", code="report_missing")
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        name = row["Name"] if row["Name"] == AGGREGATED else f"{row['Type']} {row['Name']}"
        requests, failures = int(_num(row, "Request Count")), int(_num(row, "Failure Count"))
        out[name] = {
            "requests": requests,
            "failures": failures,
            "rps": round(_num(row, "Requests/s"), 3),
            "p50_ms": _num(row, "50%"),
            "p95_ms": _num(row, "95%"),
            "p99_ms": _num(row, "99%"),
            "failure_ratio": failures / requests if requests else 0.0,
        }
    if AGGREGATED not in out:
        raise ReportError(f"{path} has no Aggregated row", code="report_missing")
    return out


def read_history(path: Path) -> list[dict[str, float]]:
    """The Aggregated rows of the stats history: ``t`` (s from the first row), users,
    rps (requests completed since the previous row / seconds between them; Locust's own
    ``Requests/s`` column is a 10-s moving average that lags a spike), p50_ms, p95_ms,
    p99_ms (Locust's current-window percentiles). Raises :class:`ReportError` when
    missing."""
    try:
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("Name") == AGGREGATED]
    except OSError as exc:
        raise ReportError(f"no Locust history at {path}: {exc}", code="report_missing") from exc
    if not rows:
        return []
    t0 = _num(rows[0], "Timestamp")
    out = []
    prev_t, prev_n = t0, _num(rows[0], "Total Request Count")
    for r in rows:
        t, n = _num(r, "Timestamp"), _num(r, "Total Request Count")
        out.append(
            {
                "t": t - t0,
                "users": _num(r, "User Count"),
                "rps": (n - prev_n) / (t - prev_t) if t > prev_t else 0.0,
                "p50_ms": _num(r, "50%"),
                "p95_ms": _num(r, "95%"),
                "p99_ms": _num(r, "99%"),
            }
        )
        prev_t, prev_n = t, n
    return out


def count_5xx(status_codes: dict[str, int]) -> int:
    """Responses with a 5xx status in a ``{"503": n, ...}`` count."""
    return sum(n for code, n in status_codes.items() if code.isdigit() and 500 <= int(code) < 600)


def evaluate(
    endpoints: dict[str, dict[str, float]], status_codes: dict[str, int], levels: ServiceLevels
) -> list[dict[str, Any]]:
    """Each service level as ``{"name", "threshold", "value", "held", "unit"}``.

    ``held`` is None (not measured) for a latency level whose endpoint had no requests in
    the run; a None never fails the run.
    """
    total = endpoints[AGGREGATED]

    def latency(name: str, endpoint: str, limit: float) -> dict[str, Any]:
        e = endpoints.get(endpoint)
        if not e or not e["requests"]:
            return {"name": name, "threshold": limit, "value": None, "held": None, "unit": "ms"}
        return {
            "name": name,
            "threshold": limit,
            "value": e["p99_ms"],
            "held": e["p99_ms"] <= limit,
            "unit": "ms",
        }

    fives = count_5xx(status_codes)
    return [
        latency("access_check_p99_ms", ACCESS_CHECKS, levels.access_check_p99_ms),
        latency("grant_p99_ms", GRANTS, levels.grant_p99_ms),
        {
            "name": "failure_ratio",
            "threshold": levels.max_failure_ratio,
            "value": total["failure_ratio"],
            "held": total["failure_ratio"] < levels.max_failure_ratio,
            "unit": "ratio",
        },
        {
            "name": "responses_5xx",
            "threshold": levels.max_5xx,
            "value": fives,
            "held": fives <= levels.max_5xx,
            "unit": "responses",
        },
    ]


def summarize(
    stats_csv: Path,
    extras: dict[str, Any],
    levels: ServiceLevels,
    run: dict[str, Any],
) -> dict[str, Any]:
    """The ``summary.json`` document.

    Shape: ``{"run": run, "endpoints": {name: {requests, failures, rps, p50_ms, p95_ms,
    p99_ms, failure_ratio}}, "totals": {same + status_codes, responses_5xx},
    "service_levels": [...], "passed": bool, "workers", "counters", "skipped"}``.
    A run that made no request does not pass, whatever the levels say.
    """
    stats = read_stats(stats_csv)
    status = {str(k): int(v) for k, v in extras.get("status_codes", {}).items()}
    totals: dict[str, Any] = dict(stats.pop(AGGREGATED))
    totals["status_codes"] = status
    totals["responses_5xx"] = count_5xx(status)
    endpoints = dict(sorted(stats.items()))
    slo = evaluate({**endpoints, AGGREGATED: totals}, status, levels)
    return {
        "run": run,
        "endpoints": endpoints,
        "totals": totals,
        "service_levels": slo,
        "passed": totals["requests"] > 0 and all(s["held"] is not False for s in slo),
        "workers": extras.get("workers", {}),
        "counters": extras.get("counters", {}),
        "skipped": extras.get("skipped", {}),
    }


def plot(history: list[dict[str, float]], path: Path, title: str) -> None:
    """A PNG with throughput (req/s, and users) on top and p50/p95/p99 latency (ms)
    below, over run time (s). Raises :class:`ReportError` with no history rows."""
    if not history:
        raise ReportError("no stats history rows to plot", code="report_missing")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [h["t"] for h in history]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6), dpi=100)
    top.plot(t, [h["rps"] for h in history], label="requests/s", color="tab:blue")
    top.set_ylabel("requests/s")
    users = top.twinx()
    users.plot(t, [h["users"] for h in history], label="users", color="tab:gray", ls="--")
    users.set_ylabel("users")
    top.legend(loc="upper left")
    for key, color in (("p50_ms", "tab:green"), ("p95_ms", "tab:orange"), ("p99_ms", "tab:red")):
        bottom.plot(t, [h[key] for h in history], label=key.replace("_ms", ""), color=color)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("run time (s)")
    bottom.legend(loc="upper left")
    top.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def cpu_percent(cpu_seconds: float, wall_seconds: float) -> float:
    """CPU use as a percentage of one core (100 = one core busy the whole time)."""
    return (
        0.0 if wall_seconds <= 0 or math.isnan(cpu_seconds) else 100.0 * cpu_seconds / wall_seconds
    )
