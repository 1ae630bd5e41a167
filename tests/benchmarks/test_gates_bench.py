"""Issue 5 targets in one run (``python -m authz.gate_bench`` prints the full figures).

A small run here checks the measurement itself: every code is valid on every path (the
service over real HTTP, the agent reading stdin), and each rate is a positive number.
The ratios are reported, not asserted (no timing asserts on a shared machine).
"""

from __future__ import annotations

from authz.gate_bench import measure


def test_gate_targets_measure(capsys: object) -> None:
    figures = measure(n=2000, batch=100, rounds=1)
    assert figures["agent_valid_last_round"] == 2000
    assert figures["codes"] == 2000
    for key in ("fast_path_scans_per_s", "http_scans_per_s", "agent_stdin_scans_per_s"):
        assert figures[key] > 0, figures
    print(figures)
