"""make bench's own logic: the target checks, the exactness check (against real Redis) and the
profile's attribution of samples to layers."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import TEMPLATE_DIR, free_port, require_tool

sys.path.insert(0, str(TEMPLATE_DIR / "bench"))

import cpu_profile
import measure
import report


def result_with(cpu: dict[str, float], exact: bool = True, image: bool = True) -> dict:
    """A results document with one row per server at the target connection count."""
    servers = {}
    for name, value in cpu.items():
        row = {
            "connections": report.TARGET_CONNECTIONS,
            "server_cpu_us_per_request": value,
            "requests_per_second": 10_000 / value,
            "p99_ms": value / 20,
        }
        servers[name] = {"rows": [row], "exactness": {"exact": exact or name != "minimal"}}
    if not image:
        del servers["image"]
    return {"servers": servers}


CPU = {
    "image": 300.0,
    "generated": 310.0,
    "peer": 250.0,
    "baseline": 1300.0,
    "minimal": 260.0,
    "granian": 200.0,
    "minimal-granian": 150.0,
}


def checks(result: dict) -> dict[str, tuple[str, bool]]:
    return {name: (value, met) for name, value, met in report.target_checks(result)}


def test_targets_are_ratios_of_the_headline_against_the_peer_baseline_and_minimal():
    found = checks(result_with(CPU))
    assert found["CPU/request <= 1.5x the peer's"] == ("1.20x", True)
    assert found["goal: CPU/request <= 1x the peer's"] == ("1.20x", False)
    assert found["req/s >= 4x the baseline's"] == ("4.33x", True)
    # p99 15 ms against the peer's 12.5 ms: within 50 ms, but worse than the peer.
    assert found["p99 <= the peer's (12.5 ms) and <= 50 ms"] == ("15.0 ms", False)
    assert found["no lost or doubled increments (every counting server)"] == ("all exact", True)
    features = "generated <= 1.25x the minimal counter's CPU/request"
    assert found[f"{features} (gunicorn)"] == ("1.19x", True)
    assert found[f"{features} (granian)"] == ("1.33x", False)


def test_without_an_image_the_venv_server_is_the_headline_and_inexact_servers_are_named():
    found = checks(result_with(CPU, exact=False, image=False))
    assert found["CPU/request <= 1.5x the peer's"] == ("1.24x", True)
    assert found["no lost or doubled increments (every counting server)"] == ("minimal", False)


class Counting(http.server.BaseHTTPRequestHandler):
    """GET / INCRs a real Redis key ``increments`` times and reports the last count."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the servers under test
    redis_port = 0
    increments = 1

    def do_GET(self) -> None:
        for _ in range(self.increments):
            count = measure.redis_cli(self.redis_port, "INCR", "hits")
        # The generated app's wording: the first reply says "1 time."
        body = f"I have been seen {count} time{'' if count == '1' else 's'}.\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.mark.parametrize(("increments", "exact"), [(1, True), (2, False)])
def test_exactness_catches_a_server_that_counts_twice(tmp_path: Path, increments: int, exact: bool):
    redis_port = free_port()
    redis = subprocess.Popen(
        [require_tool("redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    handler = type("Handler", (Counting,), {"redis_port": redis_port, "increments": increments})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        measure.wait_redis(redis_port)
        target = measure.Target(
            "fake", server.server_port, master=lambda: 0, cpu=lambda: 0.0, stop=lambda: None
        )
        found = measure.exactness(target, redis_port, "hits", requests=40, threads=4)
    finally:
        server.shutdown()
        redis.kill()
        redis.wait()
    assert found["exact"] is exact
    assert found["redis_delta"] == 40 * increments
    assert found["failed"] == 0


def test_a_sample_is_charged_to_its_innermost_layer_and_cut_lines_are_skipped():
    gunicorn = "ThreadWorker.handle_request (gunicorn/workers/gthread.py:771)"
    flask = "Flask.__call__ (flask/app.py:1536);Flask.full_dispatch_request (flask/app.py:920)"
    redis = "CounterStore.increment (flask_counter/store.py:154);read_response (redis/connection.py:1407)"
    stacks = "\n".join(
        [
            f"process 1:x;{gunicorn};{flask};{redis} 6",  # redis-py, though gunicorn and flask are outer
            f"process 1:x;{gunicorn};{flask} 3",
            f"process 1:x;{gunicorn} 1",
            f"process 1:x;{gunicorn};Flask.__call__ (",  # cut off by py-spy's stop: no count
        ]
    )
    total, inside, layers = cpu_profile.summarise(stacks)
    assert total == 10
    assert inside == 0.9
    assert layers == {
        "redis-py (INCR round trip, client side)": 6,
        "flask (dispatch, hooks, context)": 3,
        "gunicorn (HTTP parse, write, worker loop)": 1,
    }
