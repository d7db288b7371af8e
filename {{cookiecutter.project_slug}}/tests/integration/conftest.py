"""Integration fixtures: a real Redis server.

REDIS_URL, when set, names the server to use (each test works on its own random
key). Otherwise a ``redis-server`` binary on PATH is started on a free port with
a throw-away directory, no persistence and a password, like a production Redis.
With neither, the tests that need Redis skip, unless TEST_REQUIRE_REDIS=1 (CI),
where they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_required() -> bool:
    return os.environ.get("TEST_REQUIRE_REDIS", "").lower() in {"1", "true", "yes"}


def _wait_for_redis(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"redis-server exited: {log.read_text(errors='replace')}", pytrace=False)
        try:
            client.ping()
            return
        except redis.RedisError:
            time.sleep(0.1)
    pytest.fail(f"redis-server did not answer PING: {log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL", "").strip()
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        reason = (
            "no Redis for the integration tests: set REDIS_URL or put redis-server on PATH "
            "(Debian/Ubuntu: apt-get install redis-server)"
        )
        if _redis_required():
            pytest.fail(f"{reason}; TEST_REQUIRE_REDIS=1 forbids skipping", pytrace=False)
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("redis")
    log = directory / "redis.log"
    port = free_port()
    password = uuid.uuid4().hex
    # The password goes in a config file, not on the command line where ps shows it.
    config = directory / "redis.conf"
    config.write_text(
        f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\n'
        f"dir {directory}\nlogfile {log}\nrequirepass {password}\n",
        encoding="utf-8",
    )
    process = subprocess.Popen([binary, str(config)])
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    try:
        _wait_for_redis(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def counter_key(redis_url: str) -> Iterator[str]:
    """A key of its own, so a shared Redis (REDIS_URL) is never disturbed."""
    key = f"test:{uuid.uuid4().hex}"
    yield key
    redis.Redis.from_url(redis_url).delete(key)
