"""Where a request's CPU goes: a py-spy profile of a server under wrk, by layer.

`make profile` bakes the default project, serves it (default: the generated app under
its gunicorn.conf.py, as `make bench` does), loads it with wrk and samples every worker
with py-spy. Only samples of threads holding the GIL count (`--gil`): that is the
Python CPU, not time spent waiting for Redis or a socket. Each sample is charged to the
innermost frame that belongs to a layer below (the first match from the leaf up), so
"redis-py" is the client's own Python work, and "gunicorn" is the server's HTTP parsing,
response writing and worker loop outside the WSGI call.

Usage: bench/cpu_profile.py [--server generated|granian|minimal|bare|peer] [--connections 32]
       [--seconds 20] [--stacks FILE (also keep py-spy's raw collapsed stacks)]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import measure
from measure import BenchError, log, tool
from run import Apps

from helpers import bake, free_port, generated_venv_for

# (layer, pattern on a py-spy frame "function (file:line)"), innermost match wins.
LAYERS = (
    ("redis-py (INCR round trip, client side)", r"\(redis/"),
    ("JSON request log line", r"\(logging/|/logs\.py|orjson"),
    ("metrics (prometheus_client)", r"prometheus_client|prometheus_flask_exporter|/metrics\.py"),
    ("werkzeug (environ, request, response)", r"\(werkzeug/"),
    ("flask (dispatch, hooks, context)", r"\(flask/"),
    ("the app's own code", r"flask_counter/|baseline_app|bare_app|fastapi_app"),
    ("gunicorn (HTTP parse, write, worker loop)", r"\(gunicorn/"),
    ("uvicorn / starlette / fastapi / asyncio", r"\((uvicorn|starlette|fastapi|asyncio|anyio)/"),
)
OTHER = "other (threading, selectors, stdlib)"
STACK_LINE = re.compile(r"(.+) (\d+)")  # collapsed stack: frames joined by ";", then the count
INSIDE_WSGI = re.compile(r"Flask\.__call__|Flask\.wsgi_app")


def layer_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for layer, pattern in LAYERS:
            if re.search(pattern, frame):
                return layer
    return OTHER


def summarise(stacks: str) -> tuple[int, float, Counter[str]]:
    """Samples, the share inside the Flask app's WSGI call, and samples per layer."""
    layers: Counter[str] = Counter()
    total = inside = 0
    for line in stacks.splitlines():
        sample = STACK_LINE.fullmatch(line)
        if not sample:  # a line py-spy cut off when it stopped
            continue
        stack, samples = sample.group(1), int(sample.group(2))
        total += samples
        frames = stack.split(";")
        layers[layer_of(frames)] += samples
        if INSIDE_WSGI.search(stack):
            inside += samples
    if not total:
        raise BenchError("py-spy recorded no samples holding the GIL: is the server under load?")
    return total, inside / total, layers


def profile(apps: Apps, server: str, connections: int, seconds: float) -> tuple[str, dict]:
    py_spy = str(apps.venv / "bin" / "py-spy")  # comes with the bench venv
    stacks = apps.work / "stacks.txt"  # py-spy prints its progress on stdout
    target = apps.factories()[server](free_port())
    with measure.running(target):
        target.wait_for("/")
        result: dict = {}
        # wrk outlasts py-spy on both ends, so every sample is taken under load.
        loader = threading.Thread(
            target=lambda: result.update(measure.run_wrk(target.url, connections, seconds + 4))
        )
        loader.start()
        time.sleep(2)
        recorded = subprocess.run(
            [py_spy, "record", "--pid", str(target.master()), "--subprocesses", "--gil",
             "--nonblocking", "--rate", "200", "--duration", str(int(seconds)),
             "--format", "raw", "--output", str(stacks)],
            capture_output=True, text=True, timeout=seconds + 60, check=False,
        )  # fmt: skip
        loader.join()
    if recorded.returncode != 0:
        raise BenchError(f"py-spy failed: {(recorded.stdout + recorded.stderr).strip()[-500:]}")
    return stacks.read_text(encoding="utf-8"), result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server", default="generated", help="one of make bench's servers (default generated)"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20, help="sampling time (default 20)")
    parser.add_argument("--stacks", type=Path, help="also write py-spy's collapsed stacks here")
    args = parser.parse_args(argv)
    for name in ("wrk", "redis-server", "redis-cli"):
        tool(name)
    with tempfile.TemporaryDirectory(prefix="counter-profile-") as temp:
        work = Path(temp)
        logs = work / "logs"
        logs.mkdir()
        with measure.quiet_output(logs / "bake.log"):
            project = bake(work / "project", validate="off")
        venv = generated_venv_for(project, extra=measure.BENCH_REQUIREMENTS)
        redis_server, redis_port = measure.start_redis(work, logs)
        try:
            apps = Apps(project, venv, redis_port, work, logs, image=None)
            if args.server not in apps.factories():
                parser.error(f"--server={args.server!r} is not allowed: one of {', '.join(apps.factories())}")
            log(f"profiling {args.server} at {args.connections} connections for {args.seconds:g} s")
            stacks, load = profile(apps, args.server, args.connections, args.seconds)
        finally:
            redis_server.stop()
    if args.stacks:
        args.stacks.write_text(stacks, encoding="utf-8")
    total, inside, layers = summarise(stacks)
    rate = load.get("requests_per_second", 0)
    print(f"\n{args.server}: {rate:.0f} req/s at {args.connections} connections;")
    print(f"{total} samples holding the GIL; inside the Flask app's WSGI call: {inside:.0%}\n")
    print("| Layer (innermost frame) | Share of the Python CPU |\n| --- | ---: |")
    for layer, samples in layers.most_common():
        print(f"| {layer} | {samples / total:.0%} |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"profile: {error}", file=sys.stderr)
        sys.exit(1)
