"""A real `redis-server` (Debian's `redis-server` package) on a free port, password-protected, no persistence.

Import the fixture into a test module: ``from tests.redis_server import redis_server_fixture``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from extproc.local.llama_server import free_port

REDIS_PASSWORD = "redis-pass-0c4f19e2"  # distinctive, so leaks are easy to spot
STARTUP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RedisServer:
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)


@pytest.fixture(scope="session", name="redis_server")
def redis_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: apt-get install -y redis-server"
    workdir = tmp_path_factory.mktemp("redis")
    server = RedisServer(free_port(), workdir / "redis.log")
    command = [binary, "--port", str(server.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--requirepass", REDIS_PASSWORD, "--dir", str(workdir), "--logfile", str(server.log_path)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_ping(server, process)
        yield server
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_ping(server: RedisServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with server.client() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
    raise TimeoutError(f"redis-server not answering PING after {STARTUP_TIMEOUT}s")
