"""The production server: real gunicorn with several workers, real Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
REQUESTS = 40
WORKERS = 2


def server_env(**overrides: str) -> dict[str, str]:
    # Only what the test sets: a CONFIG_FILE or REDIS_* from the shell must not leak in.
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "PYTHONPATH", "HOME", "LANG"}}
    env.update(overrides)
    return env


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def wait_until_serving(base: str, process: subprocess.Popen[bytes], stdout: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited early:\n{stdout.read_text()}", pytrace=False)
        booted = stdout.read_text().count("Booting worker")
        try:
            if booted >= WORKERS and http_get(f"{base}/health/live")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not start serving:\n{stdout.read_text()}", pytrace=False)


def test_gunicorn_workers_share_metrics_log_json_and_stop_cleanly(redis_url, counter_key, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / "metrics"
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = server_env(
        PORT=str(port),
        GUNICORN_WORKERS=str(WORKERS),
        # One thread per worker: concurrent requests must spread over both workers.
        GUNICORN_THREADS="1",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        REDIS_URL=redis_url,
        COUNTER_KEY=counter_key,
        APP_VERSION="1.2.3-test",
    )
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(GUNICORN, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=err)
    try:
        wait_until_serving(base, process, stdout)
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = [status for status, _, _ in pool.map(http_get, [f"{base}/"] * REQUESTS)]
        assert statuses == [200] * REQUESTS

        status, headers, _ = http_get(f"{base}/api/counter", {"X-Request-ID": "it-123"})
        assert status == 200
        assert headers["X-Request-ID"] == "it-123"
        assert headers["X-App-Version"] == "1.2.3-test"

        # Whichever worker answers the scrape, it reports the totals of all workers.
        for _ in range(4):
            _, _, text = http_get(f"{base}/metrics")
            assert metric_sum(text, "app_counter_increments_total") == REQUESTS
            assert metric_sum(text, "flask_http_request_total", method="GET") == REQUESTS + 1
            histogram = "flask_http_request_duration_seconds_count"
            assert metric_sum(text, histogram, endpoint="counter.index") == REQUESTS
            assert metric_sum(text, "app_info", version="1.2.3-test") >= 1
        worker_pids = {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}
        assert len(worker_pids) >= 2, "the requests did not reach both workers"
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
    assert returncode == 0

    out_lines = [json.loads(line) for line in stdout.read_text().splitlines() if line.strip()]
    err_lines = [json.loads(line) for line in stderr.read_text().splitlines() if line.strip()]
    assert all(entry["level"] in {"DEBUG", "INFO"} for entry in out_lines)
    assert all(entry["level"] not in {"DEBUG", "INFO"} for entry in err_lines)
    requests = [entry for entry in out_lines if entry.get("path") == "/api/counter"]
    assert requests[0]["correlation_id"] == "it-123"
    assert requests[0]["status"] == 200
    assert "duration_ms" in requests[0]
    assert len([entry for entry in out_lines if entry.get("path") == "/"]) == REQUESTS
    assert any("Booting worker" in entry["msg"] for entry in out_lines)
    # No gunicorn access log next to the app's request log.
    assert not any(entry["logger"] == "gunicorn.access" for entry in out_lines)


def test_gunicorn_stops_with_one_line_on_invalid_setting(tmp_path):
    env = server_env(REDIS_PORT="abc", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    result = subprocess.run(
        GUNICORN, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "configuration error: REDIS_PORT='abc' is not allowed: must be an integer from 1 to 65535"
    ]


def test_wsgi_import_stops_with_one_line_on_invalid_setting():
    env = server_env(LOG_LEVEL="loud")
    result = subprocess.run(
        [sys.executable, "-c", "import {{ cookiecutter.package_name }}.wsgi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "configuration error: LOG_LEVEL='loud' is not allowed: "
        "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    ]
