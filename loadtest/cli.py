"""``python -m loadtest`` (``make loadtest``): one command from nothing to a verdict.

Starts the service on the embedded defaults (a fresh data folder, a free loopback port)
unless ``--target URL`` is given, builds the payload pool, runs Locust headless (one
process, or a master and ``--workers`` workers on this machine), then writes into
``--out``: ``report.html``, ``stats_stats.csv``, ``stats_stats_history.csv`` (and
Locust's other CSVs), ``pool.json``, ``extras.json``, ``summary.json`` and ``plot.png``.

Exit codes: 0 every service level held; 1 a service level failed; 2 the run could not
be made (service did not start, pool refused, Locust crashed).

``--ceiling`` measures the framework's own ceiling instead: ``/healthz`` back to back,
then access checks back to back, same users and duration; writes ``ceiling.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from authz.localserver import ServerStartError, free_port, serve_process
from loadtest import pool as pool_mod
from loadtest import report
from loadtest.errors import LoadtestError, ServiceError
from loadtest.profiles import PROFILES
from loadtest.scale import endpoint_rates, pool_size, users_at

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
STATS_PREFIX = "stats"


@contextmanager
def service(
    data_dir: Path, startup_s: float = 120.0, attempts: int = 3
) -> Iterator[tuple[str, str, int]]:
    """Run ``consentgate serve`` on the embedded chain in ``data_dir`` (wiped first) on a
    free loopback port (:func:`authz.localserver.serve_process`); yields ``(base_url,
    registrar_token, pid)``; SIGTERM on exit.

    Raises :class:`ServiceError` ``service_start_failed`` (with the server log's tail)
    when no attempt answers /healthz within ``startup_s`` seconds."""
    try:
        with serve_process(data_dir, startup_s=startup_s, attempts=attempts) as server:
            yield server.base_url, server.registrar_token, server.pid
    except ServerStartError as exc:
        raise ServiceError(exc.detail, code="service_start_failed") from None


def _process_cpu(pid: int | None) -> float:
    """User+system CPU seconds of a live process (NaN when unknown)."""
    if pid is None:
        return float("nan")
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return float("nan")
    return float(t.user + t.system)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def locust_commands(args: argparse.Namespace, host: str, out: Path, skip: str) -> list[list[str]]:
    """The command lines to run: one local runner, or a master then ``workers`` workers
    (Locust's own distributed mode over a free loopback port)."""
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host]
    common = [
        "--pool", str(out / "pool.json"),
        "--shape", args.shape,
        "--scale", str(args.scale),
        "--duration", str(args.duration),
        "--skip-classes", skip,
        "--partitions", str(max(1, args.workers)),
        "--loglevel", "WARNING",
    ]  # fmt: skip
    # Locust's master sends its custom options to the workers, which overwrite their own:
    # every process gets the same ones (--partitions included).
    if args.probe:
        common += ["--probe", args.probe, "--probe-users", str(args.probe_users)]
    head = [
        "--headless",
        "--csv", str(out / STATS_PREFIX),
        "--csv-full-history",
        "--html", str(out / "report.html"),
        "--extras-out", str(out / "extras.json"),
        "--only-summary",
    ]  # fmt: skip
    if args.workers <= 0:
        return [base + common + head]
    port = free_port()
    master = base + common + head
    master += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
    master += ["--expect-workers", str(args.workers), "--expect-workers-max-wait", "60"]
    worker = base + common + ["--worker", "--master-host", "127.0.0.1"]
    worker += ["--master-port", str(port)]
    return [master] + [worker] * args.workers


@dataclass
class CpuSampler:
    """Samples (monotonic s, generator CPU s, server CPU s) every ``period`` seconds."""

    pids: list[int]
    server_pid: int | None
    samples: list[tuple[float, float, float]] = field(default_factory=list)

    def sample(self) -> None:
        gen = sum(_process_cpu(pid) for pid in self.pids)
        srv = _process_cpu(self.server_pid)
        if gen == gen:  # NaN once a process has exited
            self.samples.append((time.monotonic(), gen, srv))

    def steady(self) -> dict[str, float | None]:
        """CPU as % of one core over the middle of the run (40 %-95 % of the sampled
        time), which leaves out Locust's start-up imports and its report writing."""
        if len(self.samples) < 4:
            return {"generator": None, "server": None}
        t0, t1 = self.samples[0][0], self.samples[-1][0]
        window = [x for x in self.samples if t0 + 0.4 * (t1 - t0) <= x[0] <= t0 + 0.95 * (t1 - t0)]
        if len(window) < 2:
            return {"generator": None, "server": None}
        (a, g0, s0), (b, g1, s1) = window[0], window[-1]
        srv = report.cpu_percent(s1 - s0, b - a)
        return {
            "generator": round(report.cpu_percent(g1 - g0, b - a), 1),
            "server": None if srv != srv else round(srv, 1),
        }


def run_locust(
    cmds: list[list[str]], out: Path, timeout_s: float, server_pid: int | None = None
) -> tuple[int, float, float, CpuSampler]:
    """Run the Locust processes to completion; returns (master's exit code, wall seconds,
    CPU seconds of all Locust processes, the CPU samples). Raises :class:`LoadtestError`
    ``locust_hung`` on a timeout."""
    cpu0, t0 = _children_cpu(), time.monotonic()
    logs = [(out / f"locust-{i}.log").open("wb") for i in range(len(cmds))]
    procs = [
        subprocess.Popen(c, stdout=log, stderr=subprocess.STDOUT)
        for c, log in zip(cmds, logs, strict=True)
    ]
    sampler = CpuSampler([p.pid for p in procs], server_pid)
    try:
        while procs[0].poll() is None:
            if time.monotonic() - t0 > timeout_s:
                raise LoadtestError(
                    f"Locust did not finish in {timeout_s:.0f} s", code="locust_hung"
                )
            sampler.sample()
            time.sleep(0.5)
        rc = procs[0].returncode
        for p in procs[1:]:
            p.wait(30)
    except subprocess.TimeoutExpired as exc:
        raise LoadtestError("a Locust worker did not stop", code="locust_hung") from exc
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    return rc, time.monotonic() - t0, _children_cpu() - cpu0, sampler


def parser() -> argparse.ArgumentParser:
    """The command line (``make loadtest`` passes SHAPE, SCALE, DURATION, WORKERS, TARGET)."""
    p = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="", help="service URL; default: start one here")
    p.add_argument(
        "--registrar-token",
        default=os.environ.get("CONSENTGATE_REGISTRAR_TOKEN", ""),
        help="with --target (default: $CONSENTGATE_REGISTRAR_TOKEN)",
    )
    p.add_argument("--shape", choices=sorted(PROFILES), default="soak")
    p.add_argument("--scale", type=float, default=0.01, help="fraction of national peak")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    p.add_argument("--workers", type=int, default=0, help="Locust workers (0 = one process)")
    p.add_argument("--out", type=Path, default=Path("loadtest/out"))
    p.add_argument("--sl", action="append", default=[], help="service level NAME=VALUE")
    p.add_argument("--ceiling", action="store_true", help="measure /healthz vs access checks")
    p.add_argument("--probe-users", type=int, default=20, help="users of each ceiling probe")
    p.add_argument(
        "--pool-only",
        action="store_true",
        help="with --target: only write OUT/pool.json (for Locust run by hand on several machines)",
    )
    p.set_defaults(probe="")
    return p


def build_pool(args: argparse.Namespace, out: Path, host: str, token: str) -> pool_mod.Pool:
    """Build the payload pool sized for the run's shape, scale, duration and workers, and
    write it to ``out/pool.json``."""
    load_s = PROFILES[args.shape].load_seconds(args.duration)
    size = pool_size(args.scale, load_s, max(1, args.workers))
    p = pool_mod.build_pool(host, token, size, run_seconds=args.duration)
    pool_mod.save(p, out / "pool.json")
    return p


def run(
    args: argparse.Namespace, out: Path, host: str, token: str, server_pid: int | None
) -> dict[str, Any]:
    """Build the pool, run Locust, and write summary.json and plot.png into ``out``."""
    load_s = PROFILES[args.shape].load_seconds(args.duration)
    t0 = time.monotonic()
    p = build_pool(args, out, host, token)
    pool_s = time.monotonic() - t0
    skip = "" if p.gate.get("available") else "Gate"
    if skip:
        print(f"loadtest: Gate users skipped: {p.gate.get('reason')}", file=sys.stderr)
    server_cpu0 = _process_cpu(server_pid)
    cmds = locust_commands(args, host, out, skip)
    rc, wall, cpu, sampler = run_locust(cmds, out, args.duration + 180, server_pid)
    steady = sampler.steady()
    server_cpu = _process_cpu(server_pid) - server_cpu0
    if rc not in (0, 1):
        raise LoadtestError(f"Locust exited {rc}; see {out}/locust-0.log", code="locust_failed")
    extras_path = out / "extras.json"
    extras = orjson.loads(extras_path.read_bytes()) if extras_path.exists() else {}
    if skip:
        extras.setdefault("skipped", {})["Gate"] = str(p.gate.get("reason"))
    mean = load_s / args.duration if args.duration else 0.0
    run_info = {
        "shape": args.shape,
        "scale": args.scale,
        "duration_s": args.duration,
        "workers": args.workers,
        "target": host,
        "probe": args.probe or None,
        "users_at_full_shape": users_at(args.scale) + 1,
        "model_rps": {k: round(v * mean, 4) for k, v in endpoint_rates(args.scale).items()},
        "pool": {
            "build_s": round(pool_s, 2),
            "grants": len(p.grants),
            "withdrawals": len(p.withdrawals),
            "sign_ins": len(p.sign_ins),
            "gate": {"available": bool(p.gate.get("available")), "reason": p.gate.get("reason")},
        },
        "generator": {
            "processes": len(cmds),
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "cpu_percent_of_one_core": round(report.cpu_percent(cpu, wall), 1),
            "steady_cpu_percent_of_one_core": steady["generator"],
        },
        "server": {
            "cpu_s": None if server_cpu != server_cpu else round(server_cpu, 2),
            "cpu_percent_of_one_core": None
            if server_cpu != server_cpu
            else round(report.cpu_percent(server_cpu, wall), 1),
            "steady_cpu_percent_of_one_core": steady["server"],
        },
    }
    summary = report.summarize(
        out / f"{STATS_PREFIX}_stats.csv", extras, report.ServiceLevels.parse(args.sl), run_info
    )
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    history = report.read_history(out / f"{STATS_PREFIX}_stats_history.csv")
    if history:
        title = f"consentgate {args.probe or args.shape} at scale {args.scale}"
        report.plot(history, out / "plot.png", title)
    return summary


def print_summary(summary: dict[str, Any], out: Path) -> None:
    """A short human-readable table on stdout."""
    print(
        f"{'endpoint':44} {'requests':>9} {'rps':>8} {'p50':>6} {'p95':>6} {'p99':>6} {'fail':>6}"
    )
    rows = {**summary["endpoints"], "total": summary["totals"]}
    for name, e in rows.items():
        print(
            f"{name:44} {e['requests']:>9} {e['rps']:>8.2f} {e['p50_ms']:>6.0f} "
            f"{e['p95_ms']:>6.0f} {e['p99_ms']:>6.0f} {e['failure_ratio']:>6.2%}"
        )
    for s in summary["service_levels"]:
        verdict = {True: "held", False: "FAILED", None: "not measured"}[s["held"]]
        print(f"service level {s['name']}: {s['value']} (limit {s['threshold']}) {verdict}")
    gen = summary["run"]["generator"]
    print(
        f"generator CPU: {gen['cpu_s']} s = {gen['cpu_percent_of_one_core']} % of one core "
        f"({gen['steady_cpu_percent_of_one_core']} % in the steady middle of the run)"
    )
    print(
        f"report: {out / 'report.html'}  summary: {out / 'summary.json'}  plot: {out / 'plot.png'}"
    )


def ceiling(args: argparse.Namespace, out: Path, host: str, token: str, pid: int | None) -> int:
    """Run the two probes one after the other; writes ``ceiling.json`` with both rates and
    their ratio; exit 0 when access checks reach >= 50 % of /healthz (issue 6 target)."""
    result: dict[str, Any] = {"users": args.probe_users, "duration_s": args.duration}
    for probe, key in (("HealthzProbe", "healthz"), ("AccessCheckProbe", "access_checks")):
        args.probe = probe
        sub = out / key
        sub.mkdir(parents=True, exist_ok=True)
        s = run(args, sub, host, token, pid)
        result[key] = {
            "rps": s["totals"]["rps"],
            "p50_ms": s["totals"]["p50_ms"],
            "p99_ms": s["totals"]["p99_ms"],
            "failures": s["totals"]["failures"],
            "generator_cpu_percent": s["run"]["generator"]["steady_cpu_percent_of_one_core"],
            "server_cpu_percent": s["run"]["server"]["steady_cpu_percent_of_one_core"],
        }
    h = result["healthz"]["rps"]
    result["ratio"] = round(result["access_checks"]["rps"] / h, 3) if h else None
    (out / "ceiling.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0 if result["ratio"] is not None and result["ratio"] >= 0.5 else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (see the module docstring)."""
    args = parser().parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.pool_only and not args.target:
        print(
            "loadtest: --pool-only needs --target (a pool is bound to its service)", file=sys.stderr
        )
        return 2
    try:
        if args.target:
            if not args.registrar_token:
                print("loadtest: --target needs --registrar-token", file=sys.stderr)
                return 2
            ctx: Any = _given(args.target, args.registrar_token)
        else:
            ctx = service(out / "service-data")
        with ctx as (host, token, pid):
            if args.ceiling:
                return ceiling(args, out, host, token, pid)
            if args.pool_only:
                build_pool(args, out, host, token)
                print(f"loadtest: pool written to {out / 'pool.json'}")
                return 0
            summary = run(args, out, host, token, pid)
    except LoadtestError as exc:
        print(f"loadtest: {exc} [{exc.code}]", file=sys.stderr)
        return 2
    print_summary(summary, out)
    return 0 if summary["passed"] else 1


@contextmanager
def _given(url: str, token: str) -> Iterator[tuple[str, str, int | None]]:
    yield url.rstrip("/"), token, None
