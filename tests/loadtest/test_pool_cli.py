"""Pool files and partitions, and the Locust command lines of the driver."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtest import cli, pool
from loadtest.errors import PoolError


def test_partitions_are_disjoint_and_cover() -> None:
    items = list(range(10))
    parts = [pool.partition(items, i, 3) for i in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert pool.partition(items, 0, 1) == items


def test_pool_round_trips_and_refuses_garbage(tmp_path: Path) -> None:
    p = pool.Pool("http://127.0.0.1:1", 27560, 1.5, "tok", citizens=["0xabc"], grants=[{"a": "b"}])
    pool.save(p, tmp_path / "pool.json")
    assert pool.load(tmp_path / "pool.json") == p
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PoolError) as info:
        pool.load(tmp_path / "bad.json")
    assert info.value.code == "pool_unreadable"


def test_random_address_shape() -> None:
    a, b = pool.random_address(), pool.random_address()
    assert re.fullmatch(r"0x[0-9a-f]{40}", a) and a != b


def opt(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_single_process_command(tmp_path: Path) -> None:
    args = cli.parser().parse_args(["--scale", "0.02", "--duration", "15", "--shape", "spike"])
    (cmd,) = cli.locust_commands(args, "http://h:1", tmp_path, "Gate")
    assert cmd[1:3] == ["-m", "locust"]
    assert "--headless" in cmd and "--csv-full-history" in cmd and "--master" not in cmd
    assert opt(cmd, "--shape") == "spike"
    assert opt(cmd, "--scale") == "0.02"
    assert opt(cmd, "--duration") == "15.0"
    assert opt(cmd, "--skip-classes") == "Gate"
    assert opt(cmd, "--csv") == str(tmp_path / "stats")
    assert opt(cmd, "--html") == str(tmp_path / "report.html")


def test_distributed_commands(tmp_path: Path) -> None:
    args = cli.parser().parse_args(["--workers", "2"])
    master, w1, w2 = cli.locust_commands(args, "http://h:1", tmp_path, "")
    assert "--master" in master and opt(master, "--expect-workers") == "2"
    assert w1 == w2 and "--worker" in w1 and "--headless" not in w1
    assert opt(w1, "--master-port") == opt(master, "--master-bind-port")
    assert opt(w1, "--partitions") == opt(master, "--partitions") == "2"  # master's win
    assert opt(w1, "--pool") == opt(master, "--pool")


def test_driver_defaults_are_the_smoke() -> None:
    a = cli.parser().parse_args([])
    assert (a.shape, a.scale, a.duration, a.workers, a.target) == ("soak", 0.01, 60.0, 0, "")


def test_steady_cpu_leaves_out_start_up_and_shutdown() -> None:
    s = cli.CpuSampler([], None)
    # 2 s of start-up burning a whole core, then 25 % of a core, server at 50 %
    s.samples = [(t, min(t, 2.0) + max(0.0, t - 2.0) * 0.25, t * 0.5) for t in range(11)]
    assert s.steady() == {"generator": 25.0, "server": 50.0}
    assert cli.CpuSampler([], None).steady() == {"generator": None, "server": None}


def gate_builder(status: int) -> pool._Builder:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == pool.GATE_PATH
        return httpx.Response(status, json={"code": "x"})

    client = httpx.Client(base_url="http://svc", transport=httpx.MockTransport(answer))
    return pool._Builder(client, "http://svc", "tok")


def test_gate_pool_skips_when_issue_5_is_absent() -> None:
    g = pool.gate_pool(gate_builder(404), [], 1, 100, 60.0)
    assert g == {
        "available": False,
        "reason": "/v1/gate/validations answers 404 (issue 5 not deployed)",
    }


def test_gate_pool_skips_without_the_issuance_api(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "fastpath.tokens.issue", None)  # import fails
    g = pool.gate_pool(gate_builder(401), [], 1, 100, 60.0)
    assert g["available"] is False
    assert g["reason"].startswith("fastpath token issuance API missing")


def test_pool_only_and_target_need_their_companions(tmp_path: Path) -> None:
    assert cli.main(["--pool-only", "--out", str(tmp_path)]) == 2
    assert (
        cli.main(
            ["--target", "http://127.0.0.1:9", "--registrar-token", "", "--out", str(tmp_path)]
        )
        == 2
    )


def test_signed_siwe_verifies_for_the_service_host() -> None:
    from datetime import UTC, datetime

    from eth_account import Account

    from authz import siwe

    key = Account.create()
    signed = pool.signed_siwe("http://127.0.0.1:8123/", 27560, key, "n0nce1234567")
    assert signed["address"] == key.address
    used: list[str] = []
    msg = siwe.verify_message(
        signed["message"],
        signed["signature"],
        domain="127.0.0.1:8123",
        uri_prefix="http://127.0.0.1:8123/",
        chain_id=27560,
        now=datetime.now(UTC),
        consume_nonce=lambda n: used.append(n) is None,
    )
    assert msg.address == key.address
    assert used == ["n0nce1234567"]


def test_gate_pool_enrolls_devices_and_spreads_codes_over_the_run() -> None:
    """Issue-5 contract as the pool reads it: gates registered, one device per citizen,
    SC1 codes signed offline in CODE_BUCKET_S buckets of iat."""
    import httpx
    from eth_account import Account

    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.url.path == pool.GATE_PATH:
            return httpx.Response(401, json={"code": "invalid_gate_key"})
        if request.url.path == "/v1/gates":
            return httpx.Response(201, json={"gate_id": f"gate_{len(calls)}", "api_key": "cgg_x"})
        if request.url.path == "/v1/auth/siwe/nonce":
            return httpx.Response(200, json={"nonce": "abcdefgh12345678"})
        if request.url.path == "/v1/auth/siwe":
            return httpx.Response(200, json={"token": "cgs_t"})
        assert request.url.path == "/v1/devices"
        assert request.headers["authorization"] == "Bearer cgs_t"
        return httpx.Response(201, json={"device_certificate": "d2" * 40})

    client = httpx.Client(base_url="http://svc", transport=httpx.MockTransport(answer))
    b = pool._Builder(client, "http://svc", "tok")
    g = pool.gate_pool(b, [Account.create(), Account.create()], 27560, 100, 75.0)
    assert g["available"] is True
    assert [x["gate_id"] for x in g["gates"]] == ["gate_2", "gate_3"]
    assert calls.count("POST /v1/devices") == 2
    assert len(g["codes"]) == 3  # buckets at +0, +30, +60 s cover a 75-s run
    assert {len(bucket) for bucket in g["codes"]} == {33}
    assert all(code.startswith("SC1:") for bucket in g["codes"] for code in bucket)
    assert len({code for bucket in g["codes"] for code in bucket}) == 99  # fresh cti each


def test_service_start_is_retried_on_a_new_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from authz import localserver
    from loadtest.errors import ServiceError

    tries: list[int] = []

    def start(data_dir: Path, env: dict[str, str], startup_s: float) -> localserver.LocalServer:
        tries.append(1)
        if len(tries) < 3:
            raise localserver.ServerStartError("port taken")
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        return localserver.LocalServer("http://127.0.0.1:1", "tok", proc, data_dir)

    monkeypatch.setattr(localserver, "_start", start)
    with cli.service(tmp_path / "svc") as (url, token, pid):
        assert (url, token, len(tries)) == ("http://127.0.0.1:1", "tok", 3)
    import psutil

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    tries.clear()
    with pytest.raises(ServiceError), cli.service(tmp_path / "svc2", attempts=2):
        pass
    assert len(tries) == 2
