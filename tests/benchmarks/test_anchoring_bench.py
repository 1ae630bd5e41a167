"""Issue 4 measurements in one small run each (``consentgate bench anchoring|checks``
print the full figures).

The runs here check the measurements themselves: every grant posted is anchored, every
phase timed the checks it says, and each figure is a positive number. Ratios are
reported, not asserted (no timing asserts on a shared machine).
"""

from __future__ import annotations

import pytest

from authz.bench import anchoring, checks_under_anchoring


def test_bench_anchoring_measures_every_grant_anchored() -> None:
    out = anchoring(grants=60, chain="embedded", baseline_sample=3, batch=25)
    assert (out["grants"], out["accepted"], out["anchored"]) == (60, 60, 60)
    for key in ("baseline_grants_per_s", "grants_per_s", "ratio", "accept_p50_ms"):
        assert out[key] > 0, out
    assert out["accept_p99_ms"] >= out["accept_p50_ms"]
    print(out)


def test_bench_checks_times_both_phases() -> None:
    out = checks_under_anchoring(grants=300, checks=20)
    assert out["loader_ok"] is True
    assert out["busy_checks"] >= 1 and out["busy_seconds"] > 0
    for key in ("idle_p50_ms", "idle_p99_ms", "busy_p50_ms", "busy_p99_ms", "p99_ratio"):
        assert out[key] > 0, out
    assert out["idle_p99_ms"] >= out["idle_p50_ms"]
    # the idle p99 is taken over both idle phases, bracketing the busy one
    phases = (out["idle_before_p99_ms"], out["idle_after_p99_ms"])
    assert min(phases) > 0
    assert min(phases) <= out["idle_p99_ms"] <= max(phases), out
    print(out)


def test_a_failed_bench_is_one_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A JSON-RPC chain without a relayer key: the service refuses to start, and the
    bench says so with the service's own words and exit code 1."""
    from typer.testing import CliRunner

    from authz.cli import app

    monkeypatch.delenv("CONSENTGATE_RELAYER_KEY", raising=False)
    out = CliRunner().invoke(
        app, ["bench", "checks", "--grants", "1", "--checks", "10", "--chain", "http://127.0.0.1:1"]
    )
    assert out.exit_code == 1, out.output
    assert out.output.startswith("consentgate: bench checks failed: the service did not start")
    # the last start attempt's log lines only, not one copy per attempt
    assert out.output.count("needs a relayer key") == 1, out.output
    assert "Traceback" not in out.output
    # bench anchoring opens the chain in this process: a ChainError, same one line
    anchoring_out = CliRunner().invoke(
        app, ["bench", "anchoring", "--grants", "5", "--chain", "http://127.0.0.1:1"]
    )
    assert anchoring_out.exit_code == 1, anchoring_out.output
    assert anchoring_out.output == (
        "consentgate: bench anchoring failed: a JSON-RPC chain needs a relayer key "
        "(0x-hex private key)\n"
    )


def test_demo_and_bench_grants_against_no_server_say_so_in_one_line() -> None:
    from typer.testing import CliRunner

    from authz.cli import app
    from authz.localserver import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for args, what in (
        (["demo", "--url", url, "--token", "t"], "demo"),
        (["bench", "grants", "--url", url, "--token", "t"], "bench grants"),
    ):
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 1, out.output
        assert out.output.startswith(f"consentgate: {what} failed: "), out.output
        assert f"{url}/" in out.output and "Traceback" not in out.output
