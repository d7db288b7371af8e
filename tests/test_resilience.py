"""Exact counts under load, and faults injected into real processes.

The default project runs as production runs it (``gunicorn -c gunicorn.conf.py``,
several gthread workers) against real ``redis-server`` processes on loopback,
which the tests kill, pause, restart, drop connections of and misconfigure.
Every process a test starts belongs to the ``lab`` fixture, which kills what is
still running at the end (a paused Redis is resumed first).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import free_port, require_tool

pytestmark = pytest.mark.slow

WORKERS = 3
THREADS = 4
RECOVERY_SECONDS = 2.0
# Slack for a busy CI machine on top of the waits the service is configured for.
SLACK_SECONDS = 1.0


# ---------------------------------------------------------------------------
# A minimal Redis client (the template's venv has no redis-py) and HTTP helpers
# ---------------------------------------------------------------------------


class RedisReplyError(Exception):
    pass


def _read_reply(stream) -> Any:
    line = stream.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisReplyError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        return [_read_reply(stream) for _ in range(int(rest))]
    raise RedisReplyError(f"unexpected reply {line!r}")


def redis_call(port: int, *command: str, password: str | None = None, timeout: float = 5) -> Any:
    """Send one command (after AUTH when ``password``) and return its reply."""
    commands = ([("AUTH", password)] if password else []) + [command]
    payload = b"".join(
        f"*{len(parts)}\r\n".encode() + b"".join(f"${len(p.encode())}\r\n{p}\r\n".encode() for p in parts)
        for parts in commands
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        stream = sock.makefile("rb")
        replies = [_read_reply(stream) for _ in commands]
    return replies[-1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    base_port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Reply:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", base_port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, dict(response.headers), response.read(), time.monotonic() - started)
    finally:
        connection.close()


def raw_exchange(port: int, data: bytes, timeout: float = 10) -> Reply:
    """Send raw bytes (malformed HTTP) and read the answer until the server closes."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1."), f"no HTTP answer to {data[:80]!r}: {answer[:200]!r}"
    headers = dict(line.split(": ", 1) for line in lines if ": " in line)
    return Reply(int(status_line.split()[1]), headers, body, time.monotonic() - started)


def increment_calls(count: int) -> list[tuple[str, str, bytes | None, int]]:
    """Half ``GET /``, half ``POST /api/counter`` by 1-3: (method, path, body, amount)."""
    calls = []
    for index in range(count):
        if index % 2:
            amount = index % 3 + 1
            calls.append(("POST", "/api/counter", json.dumps({"by": amount}).encode(), amount))
        else:
            calls.append(("GET", "/", None, 1))
    return calls


def fire(port: int, calls, threads: int = 16) -> list[tuple[int, Reply | Exception]]:
    """Run ``calls`` concurrently; returns (amount, reply or the client-side exception)."""

    def one(item):
        method, path, body, amount = item
        headers = {"Content-Type": "application/json"} if body else {}
        try:
            return amount, call(port, method, path, body, headers)
        except OSError as error:
            return amount, error

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, calls))


# ---------------------------------------------------------------------------
# The processes: redis-server and the generated gunicorn
# ---------------------------------------------------------------------------


@dataclass
class Redis:
    binary: str
    directory: Path
    port: int
    password: str | None = None
    appendonly: bool = False
    appendfsync: str = "everysec"
    process: subprocess.Popen | None = None
    paused: bool = False

    def start(self) -> Redis:
        config = self.directory / "redis.conf"
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.directory}",
            'save ""',
            f"appendonly {'yes' if self.appendonly else 'no'}",
            f"appendfsync {self.appendfsync}",
            f"logfile {self.directory / 'redis.log'}",
        ]
        if self.password:
            # In the config file, not on the command line where ps would show it.
            lines.append(f"requirepass {self.password}")
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process = subprocess.Popen([self.binary, str(config)], start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                redis_call(self.port, "PING", password=self.password, timeout=1)
                return self
            except (OSError, RedisReplyError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    pytest.fail(f"redis-server did not start: {self.log()}", pytrace=False)
                time.sleep(0.05)

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def call(self, *command: str) -> Any:
        return redis_call(self.port, *command, password=self.password)

    def kill(self) -> None:
        self._signal_and_wait(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: Redis shuts down cleanly, flushing the append-only file."""
        self._signal_and_wait(signal.SIGTERM)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def _signal_and_wait(self, signum: int) -> None:
        if self.paused:
            self.resume()
        if self.process.poll() is None:
            self.process.send_signal(signum)
        self.process.wait(timeout=15)


@dataclass
class App:
    process: subprocess.Popen
    port: int
    stdout: Path
    stderr: Path
    env: dict[str, str] = field(repr=False)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return call(self.port, "GET", path, **kwargs)

    def post(self, path: str, payload: Any = None) -> Reply:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body else {}
        return call(self.port, "POST", path, body, headers)

    def records(self, stream: str = "stderr") -> list[dict[str, Any]]:
        text = (self.stdout if stream == "stdout" else self.stderr).read_text(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def all_logs(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def wait_until(self, path: str, status: int, timeout: float) -> float:
        """Poll ``path`` until it answers ``status``; returns the seconds it took."""
        started = time.monotonic()
        while True:
            try:
                if self.get(path, timeout=timeout).status == status:
                    return time.monotonic() - started
            except OSError:
                pass
            if time.monotonic() - started > timeout:
                pytest.fail(f"{path} did not answer {status} within {timeout:g}s", pytrace=False)
            time.sleep(0.02)


class Lab:
    """Starts Redis servers and generated apps; kills whatever is left at the end."""

    def __init__(self, project: Path, venv: Path, tmp_path: Path):
        self.project, self.venv, self.tmp_path = project, venv, tmp_path
        self.redis_binary = require_tool("redis-server", "apt-get install redis-server")
        self.servers: list[Redis] = []
        self.apps: list[App] = []
        self.counter_key = f"{project.name}:hits"

    def redis(self, **options: Any) -> Redis:
        directory = self.tmp_path / f"redis-{len(self.servers)}"
        directory.mkdir()
        server = Redis(self.redis_binary, directory, free_port(), **options)
        self.servers.append(server)
        return server.start()

    def app(self, redis: Redis, workers: int = WORKERS, threads: int = THREADS, **settings: str) -> App:
        port = free_port()
        name = f"app-{len(self.apps)}"
        env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
        env.update(
            PYTHONPATH=str(self.project / "src"),
            PORT=str(port),
            REDIS_HOST="127.0.0.1",
            REDIS_PORT=str(redis.port),
            GUNICORN_WORKERS=str(workers),
            GUNICORN_THREADS=str(threads),
            PROMETHEUS_MULTIPROC_DIR=str(self.tmp_path / f"{name}-metrics"),
        )
        if redis.password:
            env["REDIS_PASSWORD"] = redis.password
        env.update(settings)
        stdout, stderr = self.tmp_path / f"{name}.out", self.tmp_path / f"{name}.err"
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            process = subprocess.Popen(
                [str(self.venv / "bin" / "gunicorn"), "-c", "gunicorn.conf.py"],
                cwd=self.project,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        app = App(process, port, stdout, stderr, env)
        self.apps.append(app)
        deadline = time.monotonic() + 30
        while app.all_logs().count("Booting worker") < workers or not self._live(app):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{app.all_logs()[-3000:]}", pytrace=False)
            time.sleep(0.05)
        return app

    @staticmethod
    def _live(app: App) -> bool:
        try:
            return app.get("/health/live", timeout=2).status == 200
        except OSError:
            return False

    def count(self, redis: Redis) -> int:
        return int(redis.call("GET", self.counter_key) or 0)

    def cleanup(self) -> None:
        for app in self.apps:
            if app.process.poll() is None:
                os.killpg(app.process.pid, signal.SIGKILL)
                app.process.wait()
        for server in self.servers:
            if server.process and server.process.poll() is None:
                if server.paused:
                    server.resume()
                server.process.kill()
                server.process.wait()


@pytest.fixture
def lab(baked, generated_venv, tmp_path) -> Iterator[Lab]:
    laboratory = Lab(baked("defaults"), generated_venv, tmp_path)
    try:
        yield laboratory
    finally:
        laboratory.cleanup()


class Background:
    """Keeps requests going in threads until stopped; collects the statuses (or client errors)."""

    def __init__(self, action: Callable[[], Reply], threads: int = 4):
        self.action, self.stop_event = action, threading.Event()
        self.statuses: list[int | str] = []
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.statuses.append(self.action().status)
            except OSError as error:
                self.statuses.append(type(error).__name__)

    def __enter__(self) -> Background:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)


def assert_no_error_logs(app: App) -> None:
    bad = [r for r in app.records("stderr") if r.get("level") in {"ERROR", "CRITICAL"}]
    assert not bad, f"logged at ERROR: {bad[:3]}"
    assert "Traceback" not in app.all_logs()


# ---------------------------------------------------------------------------
# Exactness
# ---------------------------------------------------------------------------


def test_concurrent_requests_count_exactly(lab):
    redis = lab.redis()
    app = lab.app(redis)
    calls = increment_calls(600)
    results = fire(app.port, calls, threads=24)

    failed = [reply for _, reply in results if not isinstance(reply, Reply) or reply.status != 200]
    assert not failed, f"{len(failed)} requests failed, e.g. {failed[:3]}"
    assert lab.count(redis) == sum(amount for amount, _ in results)
    # INCR hands out every value once: a repeated count would mean a lost update.
    pairs = zip(calls, results, strict=True)
    seen = [int(reply.body.split()[-2]) for (method, *_), (_, reply) in pairs if method == "GET"]
    assert len(seen) == 300
    assert len(set(seen)) == len(seen)


def test_connections_dropped_between_requests_are_replaced_without_double_counting(lab):
    redis = lab.redis()
    app = lab.app(redis)
    expected, killed = 0, 0
    for _wave in range(5):
        results = fire(app.port, increment_calls(60))
        assert all(isinstance(r, Reply) and r.status == 200 for _, r in results), results
        expected += sum(amount for amount, _ in results)
        # Every pooled connection of every worker dies while idle; the next request's
        # connection is re-established before INCR is sent, so nothing fails or repeats.
        killed += redis.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert killed >= 5
    assert lab.count(redis) == expected


def test_connections_killed_mid_request_never_double_count(lab):
    redis = lab.redis()
    app = lab.app(redis)
    app.get("/")
    stop, kills = threading.Event(), []

    def killer() -> None:
        while not stop.is_set():
            kills.append(redis.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        results = fire(app.port, increment_calls(500))
    finally:
        stop.set()
        thread.join(timeout=10)

    statuses = {reply.status if isinstance(reply, Reply) else type(reply).__name__ for _, reply in results}
    assert statuses <= {200, 503}, statuses
    succeeded = sum(amount for amount, reply in results if reply.status == 200)
    # A 503 after the connection died mid-INCR is ambiguous: Redis may have
    # executed it. It is never retried, so it counts at most once.
    ambiguous = sum(amount for amount, reply in results if reply.status == 503)
    counted = lab.count(redis) - 1  # minus the warm-up GET
    assert sum(kills) > 0
    assert succeeded > 0
    assert succeeded <= counted <= succeeded + ambiguous, (succeeded, counted, ambiguous)
    assert app.get("/").status == 200


# ---------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------


def test_redis_killed_during_load_gives_503_then_recovers_without_restart(lab):
    redis = lab.redis()
    app = lab.app(redis)
    assert app.get("/").status == 200
    with Background(lambda: app.get("/")) as load:
        time.sleep(0.3)
        redis.kill()
        time.sleep(0.3)

        for method, path in (("GET", "/"), ("POST", "/api/counter"), ("GET", "/api/counter")):
            reply = call(app.port, method, path)
            assert reply.status == 503, (method, path, reply)
            assert reply.headers["Content-Type"] == "application/json"
            assert reply.json()["error"] == "redis_unavailable"
            assert reply.headers.get("Retry-After") == "1"
        live = app.get("/health/live")
        assert live.status == 200 and live.seconds < 1
        ready = app.get("/health/ready")
        assert ready.status == 503 and ready.json()["status"] == "unavailable"

        redis.start()
        assert app.wait_until("/", 200, timeout=RECOVERY_SECONDS) <= RECOVERY_SECONDS
        assert app.get("/health/ready").status == 200
    assert app.process.poll() is None, "the app restarted or died"
    assert set(load.statuses) <= {200, 503}, set(load.statuses)
    assert 503 in load.statuses and load.statuses[-1] == 200


@pytest.mark.parametrize(
    ("how", "appendfsync"),
    [("graceful-restart", "everysec"), ("crash", "always")],
)
def test_append_only_redis_keeps_the_count_across_restarts(lab, how, appendfsync):
    redis = lab.redis(appendonly=True, appendfsync=appendfsync)
    app = lab.app(redis)
    results = fire(app.port, increment_calls(80))
    assert all(reply.status == 200 for _, reply in results)
    expected = sum(amount for amount, _ in results)

    # SIGTERM flushes the append-only file; with appendfsync always every
    # acknowledged INCR is on disk before its reply, so even SIGKILL keeps it.
    redis.stop() if how == "graceful-restart" else redis.kill()
    redis.start()

    app.wait_until("/api/counter", 200, timeout=RECOVERY_SECONDS)
    assert app.get("/api/counter").json() == {"count": expected}
    assert app.get("/").body.decode().endswith(f"seen {expected + 1} times.\n")


def test_slow_redis_times_out_at_the_socket_timeout_and_the_app_stays_live(lab):
    socket_timeout = 0.5
    redis = lab.redis()
    app = lab.app(redis, REDIS_SOCKET_TIMEOUT=str(socket_timeout), REDIS_CONNECT_TIMEOUT=str(socket_timeout))
    fire(app.port, increment_calls(30))  # pooled connections in every worker
    redis.pause()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            slow = [pool.submit(app.get, "/", timeout=30) for _ in range(4)]
            live = [app.get("/health/live", timeout=5) for _ in range(5)]
            ready = app.get("/health/ready", timeout=5)
            replies = [future.result() for future in slow]
    finally:
        redis.resume()

    # One socket timeout, whether the request found a pooled connection (INCR
    # waits) or opened a new one (its handshake waits): timeouts are not retried.
    for reply in replies:
        assert reply.status == 503 and reply.json()["error"] == "redis_unavailable"
        assert socket_timeout * 0.9 <= reply.seconds <= socket_timeout + SLACK_SECONDS, reply.seconds
    assert all(reply.status == 200 and reply.seconds < 1 for reply in live), [r.seconds for r in live]
    assert ready.status == 503 and ready.seconds < 1.5
    app.wait_until("/", 200, timeout=RECOVERY_SECONDS)


def test_wrong_redis_password_is_reported_without_echoing_it(lab):
    right, wrong = f"right-{uuid.uuid4().hex}", f"wrong-{uuid.uuid4().hex}"
    redis = lab.redis(password=right)
    app = lab.app(redis, REDIS_PASSWORD=wrong)

    ready = app.get("/health/ready")
    assert ready.status == 503
    assert "authentication" in ready.json()["reason"]
    counter = app.get("/")
    assert counter.status == 503 and counter.json()["error"] == "redis_unavailable"
    for secret in (right, wrong):
        assert secret not in ready.body.decode() + counter.body.decode()
        assert secret not in app.all_logs()
    errors = [r for r in app.records("stderr") if r.get("level") == "ERROR"]
    assert any("authentication failed" in r["msg"] for r in errors), errors


def test_sigterm_lets_in_flight_requests_finish_and_exits_0(lab):
    graceful_timeout = 10
    redis = lab.redis()
    app = lab.app(redis, workers=2, REDIS_SOCKET_TIMEOUT="8", GUNICORN_GRACEFUL_TIMEOUT=str(graceful_timeout))
    fire(app.port, increment_calls(20))
    before = lab.count(redis)
    # Paused Redis keeps the requests in flight (waiting for INCR) while SIGTERM arrives.
    redis.pause()
    with ThreadPoolExecutor(max_workers=6) as pool:
        in_flight = [pool.submit(app.get, "/", timeout=30) for _ in range(6)]
        time.sleep(0.5)
        app.process.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        time.sleep(0.5)
        redis.resume()
        replies = [future.result() for future in in_flight]
    returncode = app.process.wait(timeout=graceful_timeout + 5)

    assert [reply.status for reply in replies] == [200] * 6
    assert returncode == 0
    assert time.monotonic() - terminated < graceful_timeout
    assert lab.count(redis) == before + 6
    with pytest.raises(OSError):
        app.get("/health/live", timeout=2)


def test_bad_requests_get_4xx_and_never_a_500_or_an_error_log(lab):
    redis = lab.redis()
    app = lab.app(redis)
    json_body = {"Content-Type": "application/json"}
    hostile = {
        "X-Request-ID": "<script>alert(1)</script>\u00e9",
        "X-Correlation-ID": "x" * 5000,
        "X-Forwarded-For": "999.999.999.999, ::zz",
        "User-Agent": "() { :; }; /bin/sh -c 'echo pwned'",
        "Host": "evil.example:99999",
    }
    cases = [
        ("GET", "/nope", None, {}, 404),
        ("GET", "/%ff%fe/../../etc/passwd", None, {}, 404),
        ("GET", "/health/live/../../admin", None, hostile, 404),
        ("PUT", "/", None, {}, 405),
        ("PATCH", "/api/counter", None, {}, 405),
        ("BREW", "/", None, {}, 405),
        ("POST", "/health/ready", None, {}, 405),
        ("DELETE", "/api/counter", None, hostile, 403),
        ("POST", "/api/counter", b"{not json", json_body, 400),
        ("POST", "/api/counter", b'{"by": "1; DROP TABLE"}', json_body, 400),
        ("POST", "/api/counter", b'{"by": 1e999}', json_body, 400),
        ("POST", "/api/counter", b'{"by": 1, "__proto__": {}}', json_body, 400),
        ("POST", "/api/counter", b"\xff\xfe\x00garbage", json_body, 400),
        ("POST", "/api/counter", b"by=2", {"Content-Type": "text/plain"}, 415),
        ("POST", "/api/counter", b'{"by": 1, "pad": "' + b"x" * 200_000 + b'"}', json_body, 413),
    ]
    for method, path, body, headers, expected in cases:
        reply = call(app.port, method, path, body, headers)
        assert reply.status == expected, (method, path, reply.status, reply.body[:200])
        assert reply.headers["Content-Type"] == "application/json", (method, path)
        assert reply.json()["status"] == expected

    # Hostile but well-formed headers on a good request: served, nothing echoed.
    reply = call(app.port, "GET", "/api/counter", None, hostile)
    assert reply.status == 200
    assert reply.headers["X-Request-ID"] not in (hostile["X-Request-ID"], hostile["X-Correlation-ID"])

    # Malformed HTTP never reaches the app: the server answers 4xx itself, with the
    # app's JSON error body, and logs at most a warning.
    malformed = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nNo-Colon-Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/counter HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /api/counter HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Null: a\x00b\r\n\r\n",
    ]
    for data in malformed:
        reply = raw_exchange(app.port, data)
        assert 400 <= reply.status < 500, (data[:60], reply)
        assert reply.headers["Content-Type"] == "application/json", (data[:60], reply)
        assert reply.json()["status"] == reply.status

    assert app.get("/health/ready").status == 200
    assert lab.count(redis) == 0, "a rejected request changed the counter"
    assert_no_error_logs(app)
