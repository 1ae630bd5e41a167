"""Fixtures for the field tests: one embedded-chain service per module (see
tests/authz/conftest.py), gates and citizens with enrolled phones, a private Redis."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from eth_account import Account

from fastpath.tokens.issue import DeviceKey, sign_sc1
from tests.authz.conftest import Env, open_env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = open_env(tmp_path_factory.mktemp("field"))
    yield e
    e.svc.close()


@dataclass
class Phone:
    """A citizen's phone: card key, device key and its certificate."""

    key: Any
    device: DeviceKey
    cert: bytes
    enrollment: dict[str, Any]

    def code(self, at: float | None = None) -> str:
        return sign_sc1(self.device, self.cert, iat=int(time.time() if at is None else at))


def enroll(env: Env, key: Any | None = None) -> Phone:
    key = key or Account.create()
    device = DeviceKey.generate()
    resp = env.client.post(
        "/v1/devices", headers=env.sign_in(key), json={"device_public_key": device.public.hex()}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    cert = base64.urlsafe_b64decode(
        body["device_certificate"] + "=" * (-len(body["device_certificate"]) % 4)
    )
    return Phone(key, device, cert, body)


def register_gate(env: Env, name: str = "Gate A") -> dict[str, Any]:
    resp = env.client.post(
        "/v1/gates",
        headers=env.registrar,
        json={"name": name, "location": "Line 1, People's Square"},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    body["headers"] = {"Authorization": f"Bearer {body['api_key']}"}
    return body


def validate(
    env: Env, gate: dict[str, Any], qrs: list[str], at: float | None = None
) -> dict[str, Any]:
    now = time.time() if at is None else at
    resp = env.client.post(
        "/v1/gate/validations",
        headers=gate["headers"],
        json={"gate_id": gate["gate_id"], "scans": [{"qr": q, "scanned_at": now} for q in qrs]},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own on 127.0.0.1 (no persistence), restartable."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
