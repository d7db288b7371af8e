"""Benchmark the generated service against what a user would pick instead, per request.

Bakes the default project and serves it exactly as its container does: the image
built from its Dockerfile, run read-only on the host network, its CPU read from the
container's cgroup (and the same ``gunicorn -c gunicorn.conf.py`` from a venv). In
the same run, on the same machine and the same loopback ``redis-server``:

* peer: bench/fastapi_app.py, a minimal FastAPI counter (``redis.asyncio``) under
  uvicorn with httptools + uvloop, the usual pick for a new service;
* baseline: bench/baseline_app.py (module-level Redis client, INCR) under ``flask run``;
* minimal counter: the baseline's code under the generated gunicorn.conf.py, the least a
  Flask counter does on that server; generated/minimal is the cost of the features;
* granian: the generated app and the minimal counter under granian's WSGI server,
  the candidate replacement for gunicorn;
* bare: bench/bare_app.py (Flask "hello", no Redis) under the generated gunicorn.conf.py;
* storage ceiling: ``redis-benchmark -t incr``.

For each: req/s, p50/p99 and server CPU per request at several connection counts,
memory (PSS) at rest and under load, exactness (no lost or doubled increments);
then the Flask apps' own CPU per request without a server (bench/inprocess.py), a
workers sweep, cold start to ready, image size, bake/validate timings.
Prints everything with the ratios against the targets (bench/report.py), writes
bench/results/<time>.json (and latest.json) and regenerates docs/benchmarks.md.

Usage: make bench [BENCH_ARGS='--duration 3 --no-image']; bench/run.py --help lists the options.
Environment: PYTHON_IMAGE (base image for the image build; scripts/base-images.sh
prints stand-ins), KUBECONFORM_SCHEMA_LOCATION / CRD_SCHEMA_LOCATION (offline
schemas for the validation timings), COUNTER_TEMPLATE_CACHE (tool cache).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import measure
from measure import BENCH_DIR, BenchError, Target, log, running, tool
from report import TARGET_CONNECTIONS, print_report, write_docs

from helpers import bake, free_port, generated_venv_for
from variants import DEFAULTS

CONNECTIONS = (8, 32, 128)
REDIS_BENCHMARK_REQUESTS = 100_000
# (workers, threads) of the generated gunicorn, at TARGET_CONNECTIONS; the peer gets the same workers.
SWEEP = ((1, 4), (2, 2), (2, 4), (2, 8), (4, 4))
GRANIAN_THREADS = 4
STANDIN_PYTHON_IMAGE = "counter-template-standin/python:3.11-bookworm"
BENCH_IMAGE = "counter-template-bench:latest"
RESULTS_DIR = BENCH_DIR / "results"
DOCS_FILE = BENCH_DIR.parent / "docs" / "benchmarks.md"


class Apps:
    """How each server under test starts: one factory per name, each takes a free port."""

    def __init__(self, project: Path, venv: Path, redis_port: int, work: Path, logs: Path, image: str | None):
        self.project, self.venv, self.redis_port, self.work, self.logs = project, venv, redis_port, work, logs
        self.image = image
        self.docker = measure.docker_engine() if image else None
        self.overrides: dict[str, str] = {}
        self.counter_key = f"{project.name}:hits"

    def factories(self) -> dict[str, Callable[[int], Target]]:
        found = {
            "generated": self.generated,
            "image": self.container,
            "granian": self.granian,
            "peer": self.peer,
            "minimal": self.minimal,
            "minimal-granian": self.minimal_granian,
            "bare": self.bare,
            "baseline": self.baseline,
        }
        if not self.image:
            del found["image"]
        return found

    def key(self, name: str) -> str | None:
        """The Redis key a server counts in (None: it does not count)."""
        if name == "bare":
            return None
        return self.counter_key if name in ("generated", "image", "granian") else "hits"

    def _env(self, port: int, pythonpath: Sequence[Path], **extra: str) -> dict[str, str]:
        env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
        metrics = self.work / f"metrics-{port}"
        metrics.mkdir(exist_ok=True)  # gunicorn.conf.py creates its own; granian needs one ready
        env.update(PORT=str(port), REDIS_HOST="127.0.0.1", REDIS_PORT=str(self.redis_port))
        env.update(PROMETHEUS_MULTIPROC_DIR=str(metrics), PYTHONPATH=os.pathsep.join(map(str, pythonpath)))
        env.update(self.overrides)
        env.update(extra)
        return env

    def _start(
        self, name: str, port: int, cmd: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> Target:
        return measure.start_process(name, cmd, cwd or self.project, env, self.logs, port)

    def _bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def generated(self, port: int, **extra: str) -> Target:
        env = self._env(port, [self.project / "src"], **extra)
        return self._start("generated", port, [self._bin("gunicorn"), "-c", "gunicorn.conf.py"], env)

    def container(self, port: int) -> Target:
        env = {"PORT": str(port), "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.redis_port)}
        # Host network: only the bind address differs from the image's own command (loopback only).
        env["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{port}"
        return measure.start_container(
            "image", self.docker, self.image, {**env, **self.overrides}, self.logs, port
        )

    def _gunicorn_app(self, name: str, port: int, wsgi_app: str) -> Target:
        # The generated gunicorn.conf.py, only the WSGI app differs (the command line wins over wsgi_app).
        env = self._env(port, [self.project / "src", BENCH_DIR])
        return self._start(name, port, [self._bin("gunicorn"), "-c", "gunicorn.conf.py", wsgi_app], env)

    def minimal(self, port: int) -> Target:
        return self._gunicorn_app("minimal", port, "baseline_app:app")

    def bare(self, port: int) -> Target:
        return self._gunicorn_app("bare", port, "bare_app:app")

    def _granian(self, name: str, port: int, wsgi_app: str) -> Target:
        cmd = [self._bin("granian"), "--interface", "wsgi", "--workers", str(measure.WORKERS)]
        # The generated gunicorn's concurrency (4 threads a worker). granian's default (up to
        # 256 threads) ran more requests at once than REDIS_MAX_CONNECTIONS: 503s at 128 connections.
        cmd += ["--blocking-threads", str(GRANIAN_THREADS)]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-ws", "--respawn-failed-workers", wsgi_app]
        return self._start(name, port, cmd, self._env(port, [self.project / "src", BENCH_DIR]))

    def granian(self, port: int) -> Target:
        return self._granian("granian", port, f"{self.package}.wsgi:app")

    def minimal_granian(self, port: int) -> Target:
        return self._granian("minimal-granian", port, "baseline_app:app")

    def peer(self, port: int, workers: int = measure.WORKERS) -> Target:
        cmd = [self._bin("uvicorn"), "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
        return self._start("peer", port, [*cmd, "fastapi_app:app"], self._env(port, [BENCH_DIR]), BENCH_DIR)

    def baseline(self, port: int) -> Target:
        cmd = [self._bin("flask"), "--app", "baseline_app", "run", "--host", "127.0.0.1", "--port", str(port)]
        return self._start("baseline", port, cmd, self._env(port, [BENCH_DIR]), BENCH_DIR)

    @property
    def package(self) -> str:
        return next(path.parent.name for path in (self.project / "src").glob("*/wsgi.py"))


def measure_servers(apps: Apps, duration: float, connections: Sequence[int], repeat: int) -> dict[str, Any]:
    """wrk on each server in turn, ``repeat`` rounds; per cell the round with the median req/s.

    Rotating through the servers spreads drift on a busy machine over all of them.
    Before the rounds: an exactness check and memory at rest per server.
    """
    factories = apps.factories()
    runs: dict[tuple[str, int], list[dict]] = {}
    found: dict[str, dict[str, Any]] = {name: {} for name in factories}
    with contextlib.ExitStack() as stack:
        targets = {
            name: stack.enter_context(running(factory(free_port()))) for name, factory in factories.items()
        }
        for name, target in targets.items():
            target.wait_for("/")
            key = apps.key(name)
            # Before any wrk run: requests wrk leaves in flight when it stops still count.
            if key:
                found[name]["exactness"] = measure.exactness(target, apps.redis_port, key)
                log(f"{name}: exactness {found[name]['exactness']}")
            measure.run_wrk(target.url, TARGET_CONNECTIONS, 2)  # warm-up
            found[name]["memory_at_rest"] = measure.memory(target.master())
        for round_number in range(1, repeat + 1):
            for count in connections:
                for name, target in targets.items():
                    sample = round_number == 1 and count == max(connections)
                    result = measure.load(target, count, duration, sample_memory=sample)
                    if sample:
                        found[name]["memory_under_load"] = result.pop("memory_under_load")
                    runs.setdefault((name, count), []).append(result)
                    log(
                        f"round {round_number}/{repeat} {name:15s} c={count:<3d} "
                        f"{result['requests_per_second']:7.0f} req/s  p99 {result['p99_ms']:6.1f} ms  "
                        f"{result['server_cpu_us_per_request']:5.0f} us CPU/request"
                    )
    for name in factories:
        found[name]["rows"] = []
        for count in connections:
            cell = runs[(name, count)]
            ranked = sorted(cell, key=lambda run: run["requests_per_second"])
            median = dict(ranked[len(ranked) // 2])
            median["all_requests_per_second"] = [run["requests_per_second"] for run in cell]
            median["server_cpu_us_per_request"] = statistics.median(
                run["server_cpu_us_per_request"] for run in cell
            )
            found[name]["rows"].append(median)
    return found


def measure_sweep(apps: Apps, duration: float) -> list[dict]:
    """Workers (and threads) of the generated gunicorn, and the peer with the same workers."""
    rows = []
    peers: dict[int, dict] = {}
    for workers, threads in SWEEP:
        extra = {"GUNICORN_WORKERS": str(workers), "GUNICORN_THREADS": str(threads)}
        targets = [("generated", lambda port, e=extra: apps.generated(port, **e))]
        if workers not in peers:
            targets.append(("peer", lambda port, w=workers: apps.peer(port, workers=w)))
        for name, factory in targets:
            with running(factory(free_port())) as target:
                target.wait_for("/")
                measure.run_wrk(target.url, TARGET_CONNECTIONS, 2)
                result = measure.load(target, TARGET_CONNECTIONS, duration, sample_memory=True)
            row = {"server": name, "workers": workers, "threads": threads if name == "generated" else None}
            rows.append({**row, **result})
            if name == "peer":
                peers[workers] = result
            log(
                f"sweep {name} {workers} workers{f' x {threads} threads' if name == 'generated' else ''}: "
                f"{result['requests_per_second']:.0f} req/s, p99 {result['p99_ms']:.1f} ms, "
                f"{result['server_cpu_us_per_request']:.0f} us CPU/request"
            )
    return rows


def measure_inprocess(apps: Apps) -> dict[str, Any]:
    """Each Flask app's CPU per request called in-process (bench/inprocess.py): no server at all."""
    found = {}
    for name, wsgi_app in (("generated", f"{apps.package}.wsgi:app"), ("minimal", "baseline_app:app")):
        env = apps._env(free_port(), [apps.project / "src", BENCH_DIR])
        output = subprocess.run(
            [apps._bin("python"), str(BENCH_DIR / "inprocess.py"), wsgi_app],
            cwd=apps.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        found[name] = json.loads(output.stdout)
        log(f"in-process {name}: {found[name]['cpu_us_per_call']:.0f} us CPU/request")
    return found


def measure_cold_start(apps: Apps, runs: int = 3) -> dict[str, Any]:
    """Process (or container) start until /health/ready (the peer: /) answers 200."""
    found = {}
    starts = {"generated": (apps.generated, "/health/ready"), "granian": (apps.granian, "/health/ready")}
    starts["peer"] = (apps.peer, "/")
    if apps.image:
        starts["image"] = (apps.container, "/health/ready")
    for name, (factory, path) in starts.items():
        seconds = []
        for _ in range(runs):
            with running(factory(free_port())) as target:
                seconds.append(target.wait_for(path))
        found[name] = measure.median_of(seconds)
    return found


def generated_settings(apps: Apps) -> dict[str, Any]:
    """The gunicorn/Redis settings the generated server ran with, as its own config module sees them."""
    names = (
        "gunicorn_workers",
        "gunicorn_threads",
        "gunicorn_keepalive",
        "redis_max_connections",
        "log_level",
    )
    code = (
        f"import json; from {apps.package}.config import load_settings; s = load_settings(); "
        f"print(json.dumps({{name: getattr(s, name) for name in {names!r}}}))"
    )
    env = {"PYTHONPATH": str(apps.project / "src"), **apps.overrides}
    output = subprocess.run(
        [apps._bin("python"), "-c", code],
        cwd=apps.project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(output.stdout)


def machine_info(venv: Path) -> dict[str, Any]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    wrk_version = measure.command_output([tool("wrk"), "-v"]).splitlines()[0]
    return {
        "cores": os.cpu_count(),
        "cpu": re.sub(r"\s+", " ", cpu),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis": measure.command_output([tool("redis-server"), "--version"]).split(" sha=")[0],
        "wrk": " ".join(wrk_version.split()[:2]),
        "packages": measure.command_output([str(venv / "bin" / "pip"), "list", "--format=freeze"]).split(),
    }


def prepare_image(project: Path, logs: Path) -> dict[str, Any]:
    docker = measure.docker_engine()
    if docker is None:
        return {"status": "n/a (no engine)"}
    versions = DEFAULTS["python_version"]
    official = f"python:{versions[0] if isinstance(versions, list) else versions}-slim"
    base = os.environ.get("PYTHON_IMAGE") or (
        STANDIN_PYTHON_IMAGE if measure.image_inspect(docker, STANDIN_PYTHON_IMAGE) else official
    )
    log(f"building the image from {base}")
    return measure.build_image(docker, project, base, BENCH_IMAGE, logs)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=4, help="seconds per wrk run (default 4)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="rounds per server and connection count; the median counts (2)"
    )
    parser.add_argument(
        "--connections",
        default=",".join(map(str, CONNECTIONS)),
        help=f"comma-separated connection counts (default {','.join(map(str, CONNECTIONS))})",
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip the workers sweep")
    parser.add_argument("--no-image", action="store_true", help="skip the image (build, size and its server)")
    parser.add_argument("--no-matrix", action="store_true", help="skip baking the whole variant matrix")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: print and rewrite docs/benchmarks.md from a saved results file",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the generated servers, e.g. --set GUNICORN_THREADS=8 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        args.connections = sorted({int(part) for part in args.connections.split(",")})
    except ValueError:
        parser.error(f"--connections={args.connections!r} is not allowed: must be integers joined by commas")
    if TARGET_CONNECTIONS not in args.connections:
        parser.error(f"--connections={args.connections!r} is not allowed: must include {TARGET_CONNECTIONS}")
    if not 1 <= args.repeat <= 20:
        parser.error(f"--repeat={args.repeat} is not allowed: must be an integer from 1 to 20")
    if args.duration <= 0 or args.duration > 600:
        parser.error(f"--duration={args.duration:g} is not allowed: must be above 0 and at most 600 seconds")
    bad = [item for item in args.set if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", item)]
    if bad:
        parser.error(f"--set={bad[0]!r} is not allowed: must be NAME=VALUE with an upper-case variable name")
    args.overrides = dict(item.split("=", 1) for item in args.set)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        try:
            result = json.loads(args.report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise BenchError(f"--report={str(args.report)!r} is not allowed: {error}") from None
        print_report(result)
        write_docs(result, DOCS_FILE)
        print(f"report: {DOCS_FILE}")
        return 0
    for name in ("wrk", "redis-server", "redis-cli", "redis-benchmark"):
        tool(name)
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="counter-bench-") as temp:
        work = Path(temp)
        logs = RESULTS_DIR / "logs"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True)
        log(f"baking the default project into {work}")
        with measure.quiet_output(logs / "bakes.log"):
            project = bake(work / "project", validate="off")
        log("bench venv: the generated project's dependencies + uvicorn, FastAPI, granian (cached)")
        venv = generated_venv_for(project, extra=measure.BENCH_REQUIREMENTS)
        image = {"status": "skipped (--no-image)"} if args.no_image else prepare_image(project, logs)
        redis_server, redis_port = measure.start_redis(work, logs)
        try:
            apps = Apps(
                project, venv, redis_port, work, logs, BENCH_IMAGE if image["status"] == "ok" else None
            )
            apps.overrides = args.overrides
            result: dict[str, Any] = {
                "date": started.strftime("%Y-%m-%d %H:%M UTC"),
                "duration_s": args.duration,
                "repeat": args.repeat,
                "machine": machine_info(venv),
                "settings": generated_settings(apps),
                "overrides": args.overrides,
                "image": image,
            }
            log(f"wrk, {args.duration:g}s per run, connections {args.connections}")
            result["load_average_before"] = os.getloadavg()[0]
            result["servers"] = measure_servers(apps, args.duration, args.connections, args.repeat)
            result["load_average_after"] = os.getloadavg()[0]
            result["redis_benchmark"] = [
                measure.run_redis_benchmark(redis_port, count, REDIS_BENCHMARK_REQUESTS)
                for count in args.connections
            ]
            result["inprocess"] = measure_inprocess(apps)
            result["cold_start"] = measure_cold_start(apps)
            result["sweep"] = [] if args.no_sweep else measure_sweep(apps, args.duration)
        finally:
            redis_server.stop()
        result["bakes"] = measure.measure_bakes(work, logs, matrix=not args.no_matrix)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    for name in (f"{stamp}.json", "latest.json"):
        (RESULTS_DIR / name).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_report(result)
    print(f"\nresults: {RESULTS_DIR / f'{stamp}.json'}")
    if not args.no_docs and not args.overrides:
        write_docs(result, DOCS_FILE)
        print(f"report: {DOCS_FILE}")
    elif args.overrides:
        print("docs/benchmarks.md left as it is: --set changed the generated defaults")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
