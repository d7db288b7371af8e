"""Benchmark the generated service against the course's baseline, bare Flask and Redis itself.

Bakes the default project and serves it exactly as its production config says
(``gunicorn -c gunicorn.conf.py``) against a ``redis-server`` on loopback, then
drives ``GET /`` with wrk at several connection counts. In the same run, for
comparison on the same machine:

* baseline: bench/baseline_app.py (module-level Redis client, INCR) under ``flask run``;
* bare: bench/bare_app.py (Flask "hello", no Redis) under the generated gunicorn.conf.py;
* minimal counter: the baseline's code under the generated gunicorn.conf.py, the least
  any counter does per request (one INCR) on the same server: generated/minimal is the
  cost of the generated features, minimal/bare the cost of Redis itself;
* storage ceiling: ``redis-benchmark -t incr``.

Also measured: cold start to ready, image size and layers above the base (when
a Docker engine answers), the time to bake + validate one variant and the
whole variant matrix, and a workers x threads sweep of the generated server.
Prints everything, writes bench/results/<time>.json (and latest.json) and
regenerates docs/benchmarks.md.

Usage: make bench [BENCH_ARGS='--duration 5 --no-image']; bench/run.py --help lists the options.
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
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = BENCH_DIR.parent
sys.path.insert(0, str(TEMPLATE_DIR / "tests"))

from helpers import bake, find_tool, free_port, generated_venv_for  # noqa: E402
from variants import DEFAULTS, VARIANTS  # noqa: E402

CONNECTIONS = (8, 32, 128)
TARGET_CONNECTIONS = 32
# Targets from the benchmark issue, checked at TARGET_CONNECTIONS.
TARGET_VS_BASELINE = 4.0
TARGET_VS_BARE = 0.8
TARGET_P99_MS = 50.0
# workers x threads tried for the generated server (at TARGET_CONNECTIONS).
REDIS_BENCHMARK_REQUESTS = 100_000
SWEEP = ((1, 4), (2, 1), (2, 2), (2, 4), (2, 8), (3, 2), (4, 1))
STANDIN_PYTHON_IMAGE = "counter-template-standin/python:3.11-bookworm"
BENCH_IMAGE = "counter-template-bench:latest"
RESULTS_DIR = BENCH_DIR / "results"
DOCS_FILE = TEMPLATE_DIR / "docs" / "benchmarks.md"
INSTALL_HINT = "scripts/install-system-packages.sh installs it (Debian/Ubuntu)"


class BenchError(RuntimeError):
    """A step that cannot run; the message says why and what to do."""


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        raise BenchError(f"{name} not found; {INSTALL_HINT}")
    return path


def http_status(url: str, timeout: float = 2) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def command_output(cmd: Sequence[str], **kwargs: Any) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    return (result.stdout + result.stderr).strip()


# ---------------------------------------------------------------------------
# Processes: every one started here is stopped (its whole process group) on exit.
# ---------------------------------------------------------------------------


class Server:
    def __init__(self, name: str, cmd: Sequence[str], cwd: Path, env: dict[str, str], logs: Path):
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            list(cmd), cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_for(self, url: str, timeout: float = 30) -> float:
        """Seconds from process start until ``url`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited ({self.process.returncode}); log: {self.log_path}")
            with contextlib.suppress(OSError):
                if http_status(url, timeout=1) == 200:
                    return time.perf_counter() - self.started
            time.sleep(0.01)
        raise BenchError(f"{self.name} did not answer {url} within {timeout:.0f}s; log: {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


@contextlib.contextmanager
def running(*args: Any, **kwargs: Any) -> Iterator[Server]:
    server = Server(*args, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def quiet_output(log_path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (and the hooks' it starts) to ``log_path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


# ---------------------------------------------------------------------------
# Load and measurements
# ---------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children (gunicorn's workers), from /proc."""
    ticks = 0
    for process in [pid, *_children(pid)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def run_wrk(url: str, connections: int, duration: float) -> dict[str, Any]:
    threads = min(2, connections)
    # The timeout bounds every request: a stuck server shows up as errors, not as a hang.
    cmd = [
        tool("wrk"),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "5s",
        "--latency",
        url,
    ]
    output = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise BenchError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "connections": connections,
        "requests_per_second": float(rps.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "requests": int(total.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
    }


def run_redis_benchmark(port: int, connections: int, requests: int) -> dict[str, Any]:
    cmd = [tool("redis-benchmark"), "-h", "127.0.0.1", "-p", str(port), "-t", "incr"]
    cmd += ["-c", str(connections), "-n", str(requests), "--csv"]
    output = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [line.replace('"', "").split(",") for line in output.splitlines() if line.strip()]
    header, values = rows[0], next(row for row in rows[1:] if row[0] == "INCR")
    fields = dict(zip(header, values, strict=False))
    return {
        "connections": connections,
        "requests_per_second": float(fields["rps"]),
        "p50_ms": float(fields["p50_latency_ms"]),
        "p99_ms": float(fields["p99_latency_ms"]),
    }


def start_redis(directory: Path, logs: Path) -> tuple[Server, int]:
    port = free_port()
    config = directory / "redis.conf"
    config.write_text(
        f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir {directory}\n', encoding="utf-8"
    )
    server = Server("redis-server", [tool("redis-server"), str(config)], directory, dict(os.environ), logs)
    deadline = time.monotonic() + 15
    cli = tool("redis-cli")
    while command_output([cli, "-p", str(port), "ping"]) != "PONG":
        if time.monotonic() > deadline or server.process.poll() is not None:
            server.stop()
            raise BenchError(f"redis-server did not start; log: {server.log_path}")
        time.sleep(0.05)
    return server, port


class Apps:
    """Commands and environments for the three servers under test."""

    def __init__(self, project: Path, venv: Path, redis_port: int, work: Path, overrides: dict[str, str]):
        self.project, self.venv, self.redis_port, self.work = project, venv, redis_port, work
        self.overrides = overrides

    def _env(self, port: int, **extra: str) -> dict[str, str]:
        env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
        env.update(PORT=str(port), REDIS_HOST="127.0.0.1", REDIS_PORT=str(self.redis_port))
        env.update(
            PROMETHEUS_MULTIPROC_DIR=str(self.work / f"metrics-{port}"), PYTHONPATH=str(self.project / "src")
        )
        env.update(self.overrides)
        env.update(extra)
        return env

    def generated(self, port: int, **extra: str) -> tuple[list[str], Path, dict[str, str]]:
        cmd = [str(self.venv / "bin" / "gunicorn"), "-c", "gunicorn.conf.py"]
        return cmd, self.project, self._env(port, **extra)

    def bare(self, port: int) -> tuple[list[str], Path, dict[str, str]]:
        return self._same_gunicorn(port, "bare_app:app")

    def minimal(self, port: int) -> tuple[list[str], Path, dict[str, str]]:
        return self._same_gunicorn(port, "baseline_app:app")

    def _same_gunicorn(self, port: int, wsgi_app: str) -> tuple[list[str], Path, dict[str, str]]:
        # The generated gunicorn.conf.py, only the WSGI app differs (the command line wins over wsgi_app).
        cmd = [str(self.venv / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", wsgi_app]
        env = self._env(port)
        env["PYTHONPATH"] = f"{self.project / 'src'}{os.pathsep}{BENCH_DIR}"
        return cmd, self.project, env

    def baseline(self, port: int) -> tuple[list[str], Path, dict[str, str]]:
        cmd = [str(self.venv / "bin" / "flask"), "--app", "baseline_app", "run", "--host", "127.0.0.1"]
        cmd += ["--port", str(port)]
        env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
        env.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(self.redis_port))
        return cmd, BENCH_DIR, env


def measure_throughput(
    apps: Apps, logs: Path, duration: float, connections: Sequence[int], repeat: int
) -> dict[str, list]:
    """wrk on each server in turn, ``repeat`` rounds; per cell the run with the median req/s.

    Rotating through the servers spreads drift on a busy machine over all of them.
    """
    factories = {
        "generated": apps.generated,
        "baseline": apps.baseline,
        "minimal": apps.minimal,
        "bare": apps.bare,
    }
    ports = {name: free_port() for name in factories}
    runs: dict[tuple[str, int], list[dict]] = {}
    servers: dict[str, Server] = {}
    with contextlib.ExitStack() as stack:
        for name, port in ports.items():
            servers[name] = stack.enter_context(running(name, *factories[name](port), logs=logs))
            servers[name].wait_for(f"http://127.0.0.1:{port}/")
        for port in ports.values():
            run_wrk(f"http://127.0.0.1:{port}/", TARGET_CONNECTIONS, min(duration, 3))  # warm-up
        for round_number in range(1, repeat + 1):
            for count in connections:
                for name, port in ports.items():
                    # CPU per request barely moves with other load on the machine, unlike req/s.
                    cpu_before = cpu_seconds(servers[name].process.pid)
                    result = run_wrk(f"http://127.0.0.1:{port}/", count, duration)
                    cpu_used = cpu_seconds(servers[name].process.pid) - cpu_before
                    result["server_cpu_us_per_request"] = cpu_used / max(result["requests"], 1) * 1e6
                    runs.setdefault((name, count), []).append(result)
                    log(
                        f"round {round_number}/{repeat} {name:9s} c={count:<3d} "
                        f"{result['requests_per_second']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms"
                        f"  p99 {result['p99_ms']:6.1f} ms"
                    )
    results: dict[str, list] = {name: [] for name in ports}
    for (name, _count), cell in runs.items():
        ranked = sorted(cell, key=lambda run: run["requests_per_second"])
        median = dict(ranked[len(ranked) // 2])
        median["all_requests_per_second"] = [run["requests_per_second"] for run in cell]
        median["server_cpu_us_per_request"] = statistics.median(
            run["server_cpu_us_per_request"] for run in cell
        )
        results[name].append(median)
    return results


def measure_sweep(apps: Apps, logs: Path, duration: float, combos: Sequence[tuple[int, int]]) -> list[dict]:
    rows = []
    for workers, threads in combos:
        port = free_port()
        extra = {"GUNICORN_WORKERS": str(workers), "GUNICORN_THREADS": str(threads)}
        with running(f"sweep-{workers}x{threads}", *apps.generated(port, **extra), logs=logs) as server:
            server.wait_for(f"http://127.0.0.1:{port}/health/ready")
            url = f"http://127.0.0.1:{port}/"
            run_wrk(url, TARGET_CONNECTIONS, min(duration, 3))
            result = run_wrk(url, TARGET_CONNECTIONS, duration)
        rows.append({"workers": workers, "threads": threads, **result})
        rps, p99 = result["requests_per_second"], result["p99_ms"]
        log(f"sweep {workers}x{threads}: {rps:.0f} req/s, p99 {p99:.1f} ms")
    return rows


def measure_cold_start(apps: Apps, logs: Path, runs: int = 3) -> dict[str, Any]:
    seconds = []
    for attempt in range(runs):
        port = free_port()
        with running(f"cold-start-{attempt}", *apps.generated(port), logs=logs) as server:
            seconds.append(server.wait_for(f"http://127.0.0.1:{port}/health/ready"))
    return {"median_s": statistics.median(seconds), "runs_s": seconds}


def generated_settings(apps: Apps) -> dict[str, Any]:
    """The gunicorn/Redis settings the generated server ran with, as its own config module sees them."""
    package = next(path.parent.name for path in (apps.project / "src").glob("*/config.py"))
    names = (
        "gunicorn_workers",
        "gunicorn_threads",
        "gunicorn_keepalive",
        "redis_max_connections",
        "log_level",
    )
    code = (
        f"import json; from {package}.config import load_settings; s = load_settings(); "
        f"print(json.dumps({{name: getattr(s, name) for name in {names!r}}}))"
    )
    _, cwd, env = apps.generated(free_port())
    python = str(apps.venv / "bin" / "python")
    output = subprocess.run(
        [python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(output.stdout)


# ---------------------------------------------------------------------------
# Bake / validate timings and the container image
# ---------------------------------------------------------------------------


def timed_bake(output: Path, logs: Path, validate: str, answers: dict[str, Any]) -> tuple[float, str | None]:
    """Seconds to bake (and validate) one variant; the error text when it failed."""
    started = time.perf_counter()
    try:
        with quiet_output(logs / "bakes.log"):
            bake(output, validate=validate, **answers)
    except Exception as error:  # a failed bake is a result here, reported with its reason
        return time.perf_counter() - started, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return time.perf_counter() - started, None


def measure_bakes(work: Path, logs: Path, matrix: bool) -> dict[str, Any]:
    missing = [name for name in ("helm", "kubeconform") if find_tool(name) is None]
    validate = "off" if missing else "strict"
    shown = f"off ({', '.join(missing)} missing)" if missing else validate
    result: dict[str, Any] = {"validation": shown}
    seconds, _ = timed_bake(work / "bake-only", logs, "off", {})
    result["bake_default_s"] = seconds
    seconds, error = timed_bake(work / "bake-validate", logs, validate, {})
    result["bake_validate_default_s"] = seconds
    result["bake_validate_default_error"] = error
    log(f"bake {result['bake_default_s']:.1f}s, bake + validate ({validate}) {seconds:.1f}s")
    if matrix:
        started, failures = time.perf_counter(), {}
        for index, (name, answers) in enumerate(VARIANTS.items()):
            _, error = timed_bake(work / f"matrix-{index}", logs, validate, answers)
            if error:
                failures[name] = error
        result["matrix"] = {
            "variants": len(VARIANTS),
            "seconds": time.perf_counter() - started,
            "validation": validate,
            "failures": failures,
        }
        log(f"matrix: {len(VARIANTS)} variants in {result['matrix']['seconds']:.1f}s")
    return result


def docker_engine() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    ok = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False).returncode == 0
    return docker if ok else None


def image_inspect(docker: str, image: str) -> dict[str, Any] | None:
    result = subprocess.run([docker, "image", "inspect", image], capture_output=True, text=True, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def measure_image(project: Path, logs: Path) -> dict[str, Any]:
    docker = docker_engine()
    if docker is None:
        return {"status": "n/a (no engine)"}
    versions = DEFAULTS["python_version"]
    official = f"python:{versions[0] if isinstance(versions, list) else versions}-slim"
    base = os.environ.get("PYTHON_IMAGE") or (
        STANDIN_PYTHON_IMAGE if image_inspect(docker, STANDIN_PYTHON_IMAGE) else official
    )
    if image_inspect(docker, base) is None:
        pulled = subprocess.run([docker, "pull", base], capture_output=True, timeout=600, check=False)
        if pulled.returncode != 0:
            return {"status": f"n/a (base image {base} neither local nor pullable; set PYTHON_IMAGE)"}
    previous = image_inspect(docker, BENCH_IMAGE)
    started = time.perf_counter()
    with open(logs / "image-build.log", "wb") as build_log:
        built = subprocess.run(
            [docker, "build", "--build-arg", f"PYTHON_IMAGE={base}", "-t", BENCH_IMAGE, str(project)],
            stdout=build_log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            timeout=1800,
            check=False,
        )
    build_seconds = time.perf_counter() - started
    if built.returncode != 0:
        return {"status": f"build failed; log: {logs / 'image-build.log'}"}
    image, base_info = image_inspect(docker, BENCH_IMAGE), image_inspect(docker, base)
    if previous and previous["Id"] != image["Id"]:
        # The image of the previous run lost its tag: drop it instead of leaving it dangling.
        subprocess.run([docker, "image", "rm", previous["Id"]], capture_output=True, check=False)
    return {
        "status": "ok",
        "image": BENCH_IMAGE,
        "base": base,
        "size_mb": image["Size"] / 1e6,
        "base_size_mb": base_info["Size"] / 1e6,
        "above_base_mb": (image["Size"] - base_info["Size"]) / 1e6,
        "layers_above_base": len(image["RootFS"]["Layers"]) - len(base_info["RootFS"]["Layers"]),
        "build_s": build_seconds,
    }


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def at(rows: list[dict], connections: int) -> dict:
    return next(row for row in rows if row["connections"] == connections)


def ratios(throughput: dict[str, list]) -> list[dict[str, Any]]:
    out = []
    for row in throughput["generated"]:
        count = row["connections"]
        rps = {name: at(rows, count)["requests_per_second"] for name, rows in throughput.items()}
        out.append(
            {
                "connections": count,
                "vs_baseline": rps["generated"] / rps["baseline"],
                "vs_bare": rps["generated"] / rps["bare"],
                "vs_minimal": rps["generated"] / rps["minimal"],
                "minimal_vs_bare": rps["minimal"] / rps["bare"],
            }
        )
    return out


def target_checks(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    rows = {row["connections"]: row for row in result["ratios"]}
    if TARGET_CONNECTIONS not in rows:
        return []
    ratio = rows[TARGET_CONNECTIONS]
    p99 = at(result["throughput"]["generated"], TARGET_CONNECTIONS)["p99_ms"]
    vs_baseline, vs_bare = ratio["vs_baseline"], ratio["vs_bare"]
    return [
        (
            f"generated >= {TARGET_VS_BASELINE:g}x baseline req/s",
            f"{vs_baseline:.2f}x",
            vs_baseline >= TARGET_VS_BASELINE,
        ),
        (
            f"generated >= {TARGET_VS_BARE:.0%} of bare Flask req/s",
            f"{vs_bare:.0%}",
            vs_bare >= TARGET_VS_BARE,
        ),
        (f"generated p99 <= {TARGET_P99_MS:g} ms", f"{p99:.1f} ms", p99 <= TARGET_P99_MS),
    ]


def floor_note(result: dict[str, Any]) -> list[str]:
    """What the least possible counter reaches in the same run: the ceiling for the targets."""
    throughput = result["throughput"]
    minimal = at(throughput["minimal"], TARGET_CONNECTIONS)["requests_per_second"]
    baseline = at(throughput["baseline"], TARGET_CONNECTIONS)["requests_per_second"]
    bare = at(throughput["bare"], TARGET_CONNECTIONS)["requests_per_second"]
    return [
        "The minimal counter is the baseline's own few lines (one INCR per request; no logs,",
        "metrics or error handling) under the same gunicorn settings: about the most a Flask",
        f"counter can do on this server. At {TARGET_CONNECTIONS} connections it reached",
        f"{minimal / bare:.0%} of bare Flask and {minimal / baseline:.2f}x the baseline. Targets",
        "above those figures cannot be met by trimming the generated service; they need",
        "another comparison (for example, a share of the minimal counter).",
        "",
    ]


def throughput_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| Server | Connections | Requests/s | p50 (ms) | p99 (ms) | Errors | Server CPU/request (us) "
        "| Every round (req/s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    labels = {
        "generated": "generated (gunicorn.conf.py)",
        "baseline": "baseline (`flask run`)",
        "minimal": "minimal counter (baseline code, same gunicorn)",
        "bare": "bare Flask (same gunicorn)",
    }
    for name, label in labels.items():
        for row in result["throughput"][name]:
            errors = row["non_2xx"] + row["socket_errors"]
            rounds = ", ".join(f"{value:.0f}" for value in row.get("all_requests_per_second", []))
            lines.append(
                f"| {label} | {row['connections']} | {row['requests_per_second']:.0f} | "
                f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {errors} | "
                f"{row['server_cpu_us_per_request']:.0f} | {rounds} |"
            )
    for row in result["redis_benchmark"]:
        lines.append(
            f"| `redis-benchmark -t incr` | {row['connections']} | {row['requests_per_second']:.0f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | - | - | |"
        )
    return lines


def other_figures(result: dict[str, Any]) -> list[tuple[str, str]]:
    image, bakes, cold = result["image"], result["bakes"], result["cold_start"]
    if image["status"] == "ok":
        image_size = f"{image['size_mb']:.0f} MB ({image['above_base_mb']:.0f} MB above `{image['base']}`)"
        layers = str(image["layers_above_base"])
    else:
        image_size = layers = image["status"]
    figures = [
        (
            "Cold start to ready (process start -> `/health/ready` 200)",
            f"{cold['median_s']:.2f} s (median of {len(cold['runs_s'])})",
        ),
        ("Image size", image_size),
        ("Image layers above the base", layers),
        ("Bake the default project", f"{bakes['bake_default_s']:.1f} s"),
    ]
    validated = f"{bakes['bake_validate_default_s']:.1f} s (validation {bakes['validation']})"
    if bakes.get("bake_validate_default_error"):
        validated += f", failed: {bakes['bake_validate_default_error']}"
    figures.append(("Bake + validate the default project", validated))
    matrix = bakes.get("matrix")
    if matrix:
        text = f"{matrix['seconds']:.0f} s for {matrix['variants']} variants"
        text += f" (validation {matrix['validation']})"
        if matrix["failures"]:
            text += f", {len(matrix['failures'])} failed: {', '.join(matrix['failures'])}"
        figures.append(("Bake + validate the whole matrix (tests/variants.py)", text))
    return figures


def print_report(result: dict[str, Any]) -> None:
    print()
    print("\n".join(throughput_table(result)))
    print()
    for row in result["ratios"]:
        print(
            f"c={row['connections']:<3d} generated/baseline {row['vs_baseline']:.2f}x   "
            f"generated/bare {row['vs_bare']:.0%}   generated/minimal {row['vs_minimal']:.0%}   "
            f"minimal/bare {row['minimal_vs_bare']:.0%}"
        )
    print()
    for name, value, met in target_checks(result):
        print(f"target {name}: {value} {'met' if met else 'MISSED'}")
    print()
    for name, value in other_figures(result):
        print(f"{name}: {value}")
    if result.get("sweep"):
        print()
        for row in result["sweep"]:
            print(
                f"sweep {row['workers']} workers x {row['threads']} threads: "
                f"{row['requests_per_second']:.0f} req/s, p99 {row['p99_ms']:.1f} ms"
            )


WHY_DEFAULTS = """\
## Why the generated defaults are what they are

- **`reuse_port = True`** (gunicorn.conf.py): every worker gets its own listening socket and
  the kernel spreads new connections over them. With one shared socket, the worker that
  wakes first accepts a burst of keep-alive connections alone; while tuning, `ss -tnp` showed
  splits such as 31/1 and 30/2 of wrk's 32 connections over two workers (10/22 to 17/15 with
  `reuse_port`), and runs swung between full and half throughput. Needs gunicorn >= 24.
- **No gunicorn access log** (`accesslog = None` plus a logger class without `access()`): the
  app already writes one JSON line per request with the correlation id; with `logconfig_dict`
  set, gunicorn would still build every access line and then drop it, about 5% of a worker's
  CPU in a py-spy profile under wrk.
- **`GUNICORN_WORKERS=2`**: a pod usually gets one or two cores and `os.cpu_count()` in a
  container reports the node's cores, so the default is fixed; Kubernetes scales by adding
  pods. A worker costs about 25 MB (PSS), so 2 fits the chart's 256 MiB limit with room.
  The sweep above shows more workers do not buy more throughput on two cores.
- **`GUNICORN_THREADS=4`** (gthread): a request waits for Redis part of the time and threads
  overlap that wait. The sweep puts 2, 4 and 8 threads within the run-to-run noise of a
  shared two-core machine, p99 included, so the default stays at 4: enough to overlap the
  Redis waits and a few slow clients, few enough to keep contention for the GIL low.
- **`GUNICORN_KEEPALIVE=5`**: clients and proxies reuse connections; reconnecting per request
  costs more than the request. 5 s is below the usual 60 s idle timeout of load balancers,
  so the server closes idle connections first, cleanly.
- **`REDIS_MAX_CONNECTIONS=20`** per worker: a request holds a connection only for its INCR,
  so `threads` connections are in use at most, plus the readiness probe's own pool of 2;
  20 never blocks and stays far below Redis' `maxclients`.
- **Redis timeouts are not retried**: redis-py nests its connect and first-PING retries, so
  retrying timeouts held requests for up to 9x `REDIS_SOCKET_TIMEOUT` against a paused
  Redis; connection errors (a restarting Redis) are still retried with backoff.

## Why the generated service stays below bare Flask

It does per request what bare Flask does not: one Redis round trip for INCR, a JSON
request log line with a correlation id, Prometheus request and counter metrics written to
multiprocess files, the `X-App-Version`/`X-Request-ID` headers and JSON error handling.
Server CPU/request above puts a number on it. In a py-spy profile of one worker under wrk
(samples holding the GIL), gunicorn's own request handling was about 40% and Flask 60%;
inside Flask, INCR (socket round trip, pool checkout) about 14%, the request log line 9%,
the Prometheus hooks 5%, correlation id and headers 4%. Removing any of these would remove
a feature; what was removed is work nobody used (the dropped access-log lines, repeated
context-local lookups). The minimal counter's row shows the rest: Redis alone, one INCR
per request, already costs about a quarter to a half of bare Flask's throughput here.
"""


def write_docs(result: dict[str, Any], path: Path) -> None:
    machine, settings = result["machine"], result["settings"]
    lines = [
        "# Benchmarks",
        "",
        "Regenerated by `make bench` (`bench/run.py`); do not edit by hand. The load generator,",
        "Redis and the servers share one machine, so absolute numbers depend on it and on what",
        "else runs there; the ratios from one run are the figures to compare.",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['system']}",
        f"- Python {machine['python']}, {machine['redis']}, {machine['wrk']}",
        f"- Load average (1 min) before / after the throughput runs: {result['load_average_before']:.1f}"
        f" / {result['load_average_after']:.1f} (the machine's other work competes for the cores)",
        f"- Load: `wrk` on `GET /`, {result['duration_s']:g} s per run, 2 threads, loopback only;"
        f" {result['repeat']} rounds rotating through the servers, the median round per cell is shown",
        f"- Generated server settings: {settings['gunicorn_workers']} workers x "
        f"{settings['gunicorn_threads']} threads (gthread), keep-alive {settings['gunicorn_keepalive']} s, "
        f"Redis pool {settings['redis_max_connections']} per worker, LOG_LEVEL={settings['log_level']} "
        "(one JSON line per request), Prometheus multiprocess metrics on",
        "",
        "## Throughput and latency",
        "",
        "Server CPU/request is the CPU time of the server's processes (all gunicorn workers) per",
        "completed request: unlike requests/s it hardly depends on what else the machine does.",
        "",
        *throughput_table(result),
        "",
        "| Connections | generated / baseline | generated / bare Flask | generated / minimal counter "
        "| minimal counter / bare Flask |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {row['connections']} | {row['vs_baseline']:.2f}x | {row['vs_bare']:.0%} | "
            f"{row['vs_minimal']:.0%} | {row['minimal_vs_bare']:.0%} |"
            for row in result["ratios"]
        ),
        "",
        f"Targets at {TARGET_CONNECTIONS} connections:",
        "",
        "| Target | Measured | |",
        "| --- | ---: | --- |",
        *(f"| {name} | {value} | {'met' if ok else 'missed'} |" for name, value, ok in target_checks(result)),
        "",
        *floor_note(result),
        "## Start-up, image and template",
        "",
        "| Figure | Value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in other_figures(result)),
        "",
    ]
    if result.get("sweep"):
        lines += [
            f"## Workers x threads ({TARGET_CONNECTIONS} connections, generated server)",
            "",
            "| Workers | Threads | Requests/s | p50 (ms) | p99 (ms) |",
            "| ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {row['workers']} | {row['threads']} | {row['requests_per_second']:.0f} | "
                f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
                for row in result["sweep"]
            ),
            "",
        ]
    lines += [WHY_DEFAULTS]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def machine_info(venv: Path) -> dict[str, Any]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    wrk_version = command_output([tool("wrk"), "-v"]).splitlines()[0]
    return {
        "cores": os.cpu_count(),
        "cpu": re.sub(r"\s+", " ", cpu),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis": command_output([tool("redis-server"), "--version"]).split(" sha=")[0],
        "wrk": " ".join(wrk_version.split()[:2]),
        "packages": command_output([str(venv / "bin" / "pip"), "list", "--format=freeze"]).split(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds per server and connection count; the median counts (3)"
    )
    parser.add_argument(
        "--connections",
        default=",".join(map(str, CONNECTIONS)),
        help=f"comma-separated connection counts (default {','.join(map(str, CONNECTIONS))})",
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip the workers x threads sweep")
    parser.add_argument("--no-image", action="store_true", help="skip the image build and size")
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
        help="environment for the generated server, e.g. --set GUNICORN_THREADS=8 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        args.connections = sorted({int(part) for part in args.connections.split(",")})
    except ValueError:
        parser.error(f"--connections={args.connections!r} is not allowed: must be integers joined by commas")
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
        with quiet_output(logs / "bakes.log"):
            project = bake(work / "project", validate="off")
        log("generated venv (created on first use)")
        venv = generated_venv_for(project)
        redis_server, redis_port = start_redis(work, logs)
        try:
            apps = Apps(project, venv, redis_port, work, args.overrides)
            result: dict[str, Any] = {
                "date": started.strftime("%Y-%m-%d %H:%M UTC"),
                "duration_s": args.duration,
                "repeat": args.repeat,
                "machine": machine_info(venv),
                "settings": generated_settings(apps),
                "overrides": args.overrides,
            }
            log(f"wrk, {args.duration:g}s per run, connections {args.connections}")
            result["load_average_before"] = os.getloadavg()[0]
            result["throughput"] = measure_throughput(
                apps, logs, args.duration, args.connections, args.repeat
            )
            result["load_average_after"] = os.getloadavg()[0]
            result["ratios"] = ratios(result["throughput"])
            result["redis_benchmark"] = [
                run_redis_benchmark(redis_port, count, REDIS_BENCHMARK_REQUESTS) for count in args.connections
            ]
            result["cold_start"] = measure_cold_start(apps, logs)
            result["sweep"] = [] if args.no_sweep else measure_sweep(apps, logs, args.duration, SWEEP)
        finally:
            redis_server.stop()
        skipped = {"status": "skipped (--no-image)"}
        result["image"] = skipped if args.no_image else measure_image(project, logs)
        result["bakes"] = measure_bakes(work, logs, matrix=not args.no_matrix)
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
