"""The offline gate agent: sync checked against the anchored digest, offline work on the
last good lists, report upload, and the ``consentgate gate run`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from authz.cli import app as cli
from authz.gate_agent import GateAgent, GateAgentError, SyncRefused
from authz.models import AuditEvent
from tests.authz.conftest import BASE_URL, Env
from tests.gates.conftest import enroll, register_gate


class Tampering:
    """An HTTP client in the middle: flips one bit of every status list it relays."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get(self, url: str) -> httpx.Response:
        resp = self.inner.get(url)
        if "/v1/status-lists/" not in url:
            return resp
        doc = resp.json()
        from fastpath.tokens import StatusList

        status = StatusList.decode(doc["encodedList"])
        status.set(5)
        doc["encodedList"] = status.encode()
        return httpx.Response(200, json=doc)


class Offline:
    """No network at all."""

    def get(self, url: str) -> httpx.Response:
        raise httpx.ConnectError("network is down")

    def post(self, url: str, **_: Any) -> httpx.Response:
        raise httpx.ConnectError("network is down")


def _agent(env: Env, state: Path, http: Any = None, clock: Any = None) -> GateAgent:
    gate = register_gate(env)
    kwargs = {"clock": clock} if clock else {}
    return GateAgent(
        BASE_URL, gate["gate_id"], gate["api_key"], state, http=http or env.client, **kwargs
    )


def test_lost_card_refused_by_an_offline_gate_after_sync(env: Env, tmp_path: Path) -> None:
    lost, other = enroll(env), enroll(env)
    agent = _agent(env, tmp_path)
    meta = agent.sync()
    assert meta["source"] == "service" and meta["keys"] >= 1
    assert [r["valid"] for r in agent.validate([lost.code(), other.code()])] == [True, True]
    resp = env.client.post(
        "/v1/revocations",
        headers=env.registrar,
        json={"subject": lost.key.address, "reason": "lost"},
    )
    assert resp.status_code == 201
    assert agent.sync()["epoch"] == resp.json()["epoch"] == meta["epoch"] + 1
    refused, passed = agent.validate([lost.code(), other.code()])
    assert (refused["stage"], refused["reason"]) == ("revocation", "revoked")
    assert passed["valid"] is True


def test_tampered_status_list_is_refused_and_the_last_good_kept(env: Env, tmp_path: Path) -> None:
    phone = enroll(env)
    agent = _agent(env, tmp_path)
    good = agent.sync()
    env.client.post(
        "/v1/revocations",
        headers=env.registrar,
        json={"subject": phone.key.address, "reason": "lost"},
    )
    agent.http = Tampering(env.client)  # type: ignore[assignment]
    with pytest.raises(SyncRefused) as refused:
        agent.sync()
    assert refused.value.code == "digest_mismatch"
    assert agent.meta() == good  # still the last good epoch
    assert agent.validate([phone.code()])[0]["valid"] is True  # revocation not yet known
    agent.http = env.client
    agent.sync()
    assert agent.validate([phone.code()])[0]["reason"] == "revoked"


def test_offline_gate_keeps_working_and_says_how_old_its_lists_are(
    env: Env, tmp_path: Path
) -> None:
    phone = enroll(env)
    now = [1_000.0]
    agent = _agent(env, tmp_path, clock=lambda: now[0])
    agent.sync()
    agent.http = Offline()  # type: ignore[assignment]
    now[0] += 3600
    with pytest.raises(GateAgentError) as down:
        agent.sync()
    assert down.value.code == "sync_unreachable"
    assert agent.age_s() == 3600
    assert "synced 3600 s ago" in agent.describe(online=False) and "OFFLINE" in agent.describe(
        False
    )
    import time

    assert agent.validate([phone.code()], at=time.time())[0]["valid"] is True
    assert agent.upload() == 0  # offline: the reports stay queued
    agent.http = env.client
    assert agent.upload() == 1
    with env.svc.db.sessions() as s:
        event = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.kind == "gate_reports")
            .order_by(AuditEvent.seq.desc())
        ).first()
    assert event is not None and event.event["gate_id"] == agent.gate_id
    assert [r["valid"] for r in event.event["scans"]] == [True]


def test_uploads_in_batches(env: Env, tmp_path: Path) -> None:
    phone = enroll(env)
    agent = _agent(env, tmp_path)
    agent.sync()
    agent.validate([phone.code() for _ in range(7)])
    assert agent.upload(batch=3) == 7
    assert agent.upload() == 0


def test_cli_run_validates_stdin_offline(env: Env, tmp_path: Path) -> None:
    phone = enroll(env)
    agent = _agent(env, tmp_path)
    agent.sync()
    codes = [phone.code(), "SC1:not-a-code", ""]
    code = codes[0]
    result = CliRunner().invoke(
        cli,
        ["gate", "run", "--offline", "--state", str(tmp_path), "--gate-id", agent.gate_id],
        input="\n".join([*codes, code]) + "\n",
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"valid')]
    assert [(r["valid"], r["stage"]) for r in lines] == [
        (True, "ok"),
        (False, "base45"),
        (False, "replay"),
    ]
    assert "synced 0 s ago" in result.stderr or "synced 1 s ago" in result.stderr


def test_local_http_port(env: Env, tmp_path: Path) -> None:
    import threading

    phone = enroll(env)
    agent = _agent(env, tmp_path)
    agent.sync()
    server = agent.serve(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/scan"
        code = phone.code()
        first = httpx.post(url, content=code).json()
        second = httpx.post(url, content=code).json()
        assert (first["valid"], second["reason"]) == (True, "replayed")
        assert httpx.post(url.replace("/scan", "/other"), content=code).status_code == 404
        assert httpx.post(url, content=b"x" * 20000).status_code == 413
        for declared in (b"abc", b"-1", None):  # would have hung or dropped the connection
            assert _raw_post(server.server_port, declared) == 411
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _raw_post(port: int, content_length: bytes | None) -> int:
    """POST /scan with a hand-written Content-Length header; returns the status code."""
    import socket

    head = b"POST /scan HTTP/1.1\r\nHost: gate\r\n"
    if content_length is not None:
        head += b"Content-Length: " + content_length + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"\r\nx")
        return int(sock.recv(64).split()[1])


class Trickle:
    """A pipe fed one piece at a time: ``read1`` returns the next piece, and records how
    many result lines the agent had already written (and flushed) when it was asked."""

    def __init__(self, pieces: list[bytes], out: Flushed) -> None:
        self.pieces, self.out = list(pieces), out
        self.seen: list[int] = []

    def read1(self, size: int = -1) -> bytes:
        self.seen.append(self.out.flushed_lines())
        return self.pieces.pop(0) if self.pieces else b""


class Flushed:
    """An output that keeps only what was flushed, as a reader on a pipe would see it."""

    def __init__(self) -> None:
        self.buffer, self.flushed = b"", b""

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:
        self.flushed += self.buffer
        self.buffer = b""

    def flushed_lines(self) -> int:
        assert self.flushed.endswith(b"\n") or not self.flushed  # never a partial line
        return self.flushed.count(b"\n")


def test_stream_answers_each_code_as_it_arrives_and_keeps_the_last_line(
    env: Env, tmp_path: Path
) -> None:
    phones = [enroll(env) for _ in range(3)]
    agent = _agent(env, tmp_path)
    agent.sync()
    a, b, c = (p.code().encode() for p in phones)
    out = Flushed()
    # a code split across reads, CRLF and CR line ends, a blank line, and a last code
    # without a line end before EOF
    source = Trickle([a[:10], a[10:] + b"\r\n", b"\r\n" + b + b"\r", c], out)
    assert agent.run_stream(source, out) == 3  # type: ignore[arg-type]
    assert source.seen == [0, 0, 1, 2, 2]  # each answer was out before the next read
    lines = [json.loads(line) for line in out.flushed.splitlines()]
    assert [r["valid"] for r in lines] == [True, True, True]
    assert out.buffer == b""
    ctis = [r["claims"]["cti"] for r in lines]
    queued = [json.loads(line) for line in (tmp_path / "reports.jsonl").read_bytes().splitlines()]
    assert [r["cti"] for r in queued] == ctis and len(set(ctis)) == 3


def test_stream_takes_a_whole_pipe_per_batch_and_refuses_undecodable_bytes(
    env: Env, tmp_path: Path
) -> None:
    import io

    phones = [enroll(env) for _ in range(3)]
    agent = _agent(env, tmp_path)
    agent.sync()
    codes = [phones[i % 3].code() for i in range(300)]
    data = ("\n".join(codes) + "\n").encode() + b"SC1:\xff\xfe\n"
    reads: list[int] = []

    class Pipe(io.BufferedReader):
        def read1(self, size: int = -1) -> bytes:
            reads.append(size)
            return super().read1(size)

    out = io.BytesIO()
    assert agent.run_stream(Pipe(io.BytesIO(data)), out) == 301
    assert len(reads) <= 4  # ~135 kB in 64 KiB reads, not a read per line
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    indexes = [p.enrollment["status_index"] for p in phones]
    assert [r["claims"]["status_index"] for r in results[:300]] == [
        indexes[i % 3] for i in range(300)
    ]
    assert all(r["valid"] for r in results[:300])
    assert (results[300]["valid"], results[300]["stage"]) == (False, "base45")


def test_gate_command_starts_without_typer_pydantic_or_the_service(tmp_path: Path) -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from authz.cli import main\n"
        "try:\n"
        "    main(['gate', 'run', '--offline', '--state', sys.argv[1]])\n"
        "except SystemExit as done:\n"
        "    heavy = {'typer', 'pydantic', 'fastapi', 'sqlalchemy', 'web3', 'httpx'}\n"
        "    print(done.code, sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[0] == "2 []"  # never synced: exit 2, nothing heavy loaded
    assert "no synced lists" in done.stderr


def test_gate_command_reads_options_from_the_environment(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = enroll(env)
    agent = _agent(env, tmp_path)
    agent.sync()
    monkeypatch.setenv("CONSENTGATE_GATE_STATE", str(tmp_path))
    monkeypatch.setenv("CONSENTGATE_GATE_ID", agent.gate_id)
    monkeypatch.setenv("CONSENTGATE_GATE_URL", "")  # empty counts as unset
    codes = tmp_path / "codes.txt"
    codes.write_text(phone.code())  # no final newline
    result = CliRunner().invoke(cli, ["gate", "run", "--offline", "--file", str(codes)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["valid"] is True
    assert json.loads(result.stderr.splitlines()[-1])["validated"] == 1
    missing = CliRunner().invoke(cli, ["gate", "run", "--offline", "--file", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    bad = CliRunner().invoke(cli, ["gate", "run", "--port", "many"])
    assert bad.exit_code == 2 and "invalid int value" in bad.stderr


def test_keep_freed_heap_is_set_where_glibc_is() -> None:
    import platform

    from authz.gate_cli import keep_freed_heap

    assert keep_freed_heap() is (platform.libc_ver()[0] == "glibc")


def test_run_stops_cleanly_when_its_reader_goes_away(env: Env, tmp_path: Path) -> None:
    import subprocess
    import sys

    phone = enroll(env)
    agent = _agent(env, tmp_path)
    agent.sync()
    codes = tmp_path / "codes.txt"
    codes.write_text("".join(phone.code() + "\n" for _ in range(1500)))  # ~0.5 MB out
    cmd = [sys.executable, "-m", "authz.cli", "gate", "run", "--offline", "--state"]
    with codes.open("rb") as source:
        proc = subprocess.Popen(
            [*cmd, str(tmp_path)], stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stderr is not None
        first = json.loads(proc.stdout.readline())
        proc.stdout.close()  # like `| head -1`
        err = proc.stderr.read().decode()
        assert proc.wait(60) == 1
    assert first["valid"] is True
    assert "output closed by its reader" in err and "Traceback" not in err


def test_run_says_why_when_its_output_cannot_be_written(env: Env, tmp_path: Path) -> None:
    import subprocess
    import sys

    phone = enroll(env)
    agent = _agent(env, tmp_path)
    agent.sync()
    codes = tmp_path / "codes.txt"
    codes.write_text("".join(phone.code() + "\n" for _ in range(200)))
    cmd = [sys.executable, "-m", "authz.cli", "gate", "run", "--offline", "--state"]
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [*cmd, str(tmp_path), "--file", str(codes)], stdout=full, stderr=subprocess.PIPE
        )
    err = done.stderr.decode()
    assert done.returncode == 1
    assert "cannot write results: No space left on device" in err and "Traceback" not in err


def test_stdout_is_buffered_even_when_python_runs_unbuffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    from authz.gate_cli import binary_stdout

    with open(tmp_path / "out", "wb", buffering=0) as raw:  # what -u makes stdout.buffer
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, write_through=True))  # type: ignore[arg-type]
        out = binary_stdout()
        assert isinstance(out, io.BufferedWriter) and out.fileno() == raw.fileno()
        out.write(b"x" * 100_000)
        out.flush()
        del out  # does not close the shared descriptor
        raw.write(b"\n")
    assert (tmp_path / "out").read_bytes() == b"x" * 100_000 + b"\n"
