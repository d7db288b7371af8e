"""Measuring for bench/run.py: the servers under test, load, CPU, memory, exactness.

Every process or container started here is stopped on exit. All load goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from helpers import SEEN_COUNT, find_tool, free_port  # noqa: E402

INSTALL_HINT = "scripts/install-system-packages.sh installs it (Debian/Ubuntu)"
# What the bench venv adds to the generated project's own dependencies: the other
# servers, and py-spy for bench/cpu_profile.py.
BENCH_REQUIREMENTS = ("fastapi>=0.110,<1", "uvicorn[standard]>=0.30,<1", "granian>=2.5,<3", "py-spy>=0.4,<1")
WORKERS = 2  # every server under comparison, unless a sweep says otherwise


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
# /proc and cgroups: CPU and memory of a process tree or a container
# ---------------------------------------------------------------------------


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (server masters and their workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = _parent(int(entry.name))
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU of ``pids``, from /proc (exited processes no longer count)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages split among the processes sharing them."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def memory(master: int) -> dict[str, float]:
    """The whole server (master + workers) and its largest worker, PSS in MB."""
    tree = process_tree(master)
    sizes = {pid: pss_mb(pid) for pid in tree}
    workers = [size for pid, size in sizes.items() if pid != master]
    return {"server_mb": sum(sizes.values()), "worker_mb": max(workers) if workers else sizes[master]}


def cgroup_cpu_seconds(pid: int) -> float:
    """CPU of the cgroup ``pid`` is in (a container: every process in it), v1 or v2."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            stat = Path(f"/sys/fs/cgroup{path}/cpu.stat")
            if stat.exists():
                usage = re.search(r"^usage_usec (\d+)", stat.read_text(), re.M)
                return int(usage.group(1)) / 1e6
        elif "cpuacct" in controllers.split(","):
            for mount in (controllers, "cpuacct", "cpu,cpuacct"):
                usage = Path(f"/sys/fs/cgroup/{mount}{path}/cpuacct.usage")
                if usage.exists():
                    return int(usage.read_text()) / 1e9
    raise BenchError(f"no CPU accounting found for the cgroup of pid {pid}")


# ---------------------------------------------------------------------------
# The servers under test
# ---------------------------------------------------------------------------


@dataclass
class Target:
    """One running server: where it answers and how to read its CPU and memory."""

    name: str
    port: int
    master: Callable[[], int]
    cpu: Callable[[], float]
    stop: Callable[[], None]
    started: float = field(default_factory=time.perf_counter)
    log_path: Path | None = None
    alive: Callable[[], bool] = lambda: True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait_for(self, path: str, timeout: float = 60) -> float:
        """Seconds from start until ``path`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchError(f"{self.name} exited; log: {self.log_path}")
            with contextlib.suppress(OSError):
                if http_status(f"http://127.0.0.1:{self.port}{path}", timeout=1) == 200:
                    return time.perf_counter() - self.started
            time.sleep(0.01)
        raise BenchError(f"{self.name} did not answer {path} within {timeout:.0f}s; log: {self.log_path}")


def start_process(
    name: str, cmd: Sequence[str], cwd: Path, env: dict[str, str], logs: Path, port: int
) -> Target:
    log_path = logs / f"{name}.log"
    sink = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
    process = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
    )

    def stop() -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        sink.close()

    return Target(
        name,
        port,
        master=lambda: process.pid,
        cpu=lambda: cpu_seconds(process_tree(process.pid)),
        stop=stop,
        log_path=log_path,
        alive=lambda: process.poll() is None,
    )


def start_container(name: str, docker: str, image: str, env: dict[str, str], logs: Path, port: int) -> Target:
    """The image as built, on the host network (no NAT in the path), read-only like in Kubernetes."""
    container = f"counter-bench-{name}-{port}"
    cmd = [docker, "run", "--detach", "--rm", "--name", container, "--network", "host"]
    cmd += ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
    for key, value in env.items():
        cmd += ["--env", f"{key}={value}"]
    started = time.perf_counter()
    result = subprocess.run([*cmd, image], capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise BenchError(f"docker run {image} failed: {result.stderr.strip()[:300]}")
    pid = int(command_output([docker, "inspect", "--format", "{{.State.Pid}}", container]))
    log_path = logs / f"{name}.log"

    def stop() -> None:
        with open(log_path, "ab") as sink:
            subprocess.run([docker, "logs", container], stdout=sink, stderr=sink, check=False, timeout=60)
        subprocess.run([docker, "stop", "--time", "20", container], capture_output=True, check=False)

    def alive() -> bool:
        return command_output([docker, "inspect", "--format", "{{.State.Running}}", container]) == "true"

    return Target(
        name,
        port,
        master=lambda: pid,
        cpu=lambda: cgroup_cpu_seconds(pid),
        stop=stop,
        started=started,
        log_path=log_path,
        alive=alive,
    )


@contextlib.contextmanager
def running(target: Target) -> Iterator[Target]:
    try:
        yield target
    finally:
        target.stop()


def start_redis(directory: Path, logs: Path) -> tuple[Target, int]:
    port = free_port()
    config = directory / "redis.conf"
    config.write_text(
        f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir {directory}\n', encoding="utf-8"
    )
    server = start_process(
        "redis-server", [tool("redis-server"), str(config)], directory, dict(os.environ), logs, port
    )
    try:
        wait_redis(port, server.alive)
    except BenchError:
        server.stop()
        raise BenchError(f"redis-server did not start; log: {server.log_path}") from None
    return server, port


def wait_redis(port: int, alive: Callable[[], bool] = lambda: True, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while redis_cli(port, "ping") != "PONG":
        if time.monotonic() > deadline or not alive():
            raise BenchError(f"redis-server on port {port} does not answer")
        time.sleep(0.05)


def redis_cli(port: int, *command: str) -> str:
    return command_output([tool("redis-cli"), "-p", str(port), *command])


# ---------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------

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


def load(target: Target, connections: int, duration: float, sample_memory: bool = False) -> dict[str, Any]:
    """wrk against ``target``, with its CPU per request (and its memory mid-run when asked)."""
    samples: list[dict[str, float]] = []
    sampler = None
    if sample_memory:
        sampler = threading.Timer(duration / 2, lambda: samples.append(memory(target.master())))
        sampler.start()
    cpu_before = target.cpu()
    result = run_wrk(target.url, connections, duration)
    result["server_cpu_us_per_request"] = (target.cpu() - cpu_before) / max(result["requests"], 1) * 1e6
    if sampler:
        sampler.join()
        result["memory_under_load"] = samples[0] if samples else None
    return result


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


def exactness(
    target: Target, redis_port: int, key: str, requests: int = 2000, threads: int = 16
) -> dict[str, Any]:
    """``requests`` GETs of / over keep-alive connections: every count seen once, Redis up by exactly that."""
    before = int(redis_cli(redis_port, "GET", key) or 0)

    def worker(share: int) -> list[int | None]:
        counts: list[int | None] = []
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
        try:
            for _ in range(share):
                connection.request("GET", "/")
                reply = connection.getresponse()
                found = SEEN_COUNT.search(reply.read().decode())
                counts.append(int(found.group(1)) if reply.status == 200 and found else None)
        finally:
            connection.close()
        return counts

    shares = [requests // threads + (index < requests % threads) for index in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        counts = [count for part in pool.map(worker, shares) for count in part]
    answered = [count for count in counts if count is not None]
    delta = int(redis_cli(redis_port, "GET", key) or 0) - before
    return {
        "requests": requests,
        "failed": len(counts) - len(answered),
        "redis_delta": delta,
        "repeated_counts": len(answered) - len(set(answered)),
        "exact": delta == requests == len(set(answered)),
    }


# ---------------------------------------------------------------------------
# The container image
# ---------------------------------------------------------------------------


def docker_engine() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    ok = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False).returncode == 0
    return docker if ok else None


def image_inspect(docker: str, image: str) -> dict[str, Any] | None:
    result = subprocess.run([docker, "image", "inspect", image], capture_output=True, text=True, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def build_image(docker: str, project: Path, base: str, image: str, logs: Path) -> dict[str, Any]:
    """``docker build`` of the generated project (legacy builder); sizes against ``base``."""
    if image_inspect(docker, base) is None:
        pulled = subprocess.run([docker, "pull", base], capture_output=True, timeout=600, check=False)
        if pulled.returncode != 0:
            return {"status": f"n/a (base image {base} neither local nor pullable; set PYTHON_IMAGE)"}
    previous = image_inspect(docker, image)
    started = time.perf_counter()
    with open(logs / "image-build.log", "wb") as build_log:
        built = subprocess.run(
            [docker, "build", "--build-arg", f"PYTHON_IMAGE={base}", "-t", image, str(project)],
            stdout=build_log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            timeout=1800,
            check=False,
        )
    build_seconds = time.perf_counter() - started
    if built.returncode != 0:
        return {"status": f"build failed; log: {logs / 'image-build.log'}"}
    info, base_info = image_inspect(docker, image), image_inspect(docker, base)
    if previous and previous["Id"] != info["Id"]:
        # The image of the previous run lost its tag: drop it instead of leaving it dangling.
        subprocess.run([docker, "image", "rm", previous["Id"]], capture_output=True, check=False)
    return {
        "status": "ok",
        "image": image,
        "base": base,
        "size_mb": info["Size"] / 1e6,
        "base_size_mb": base_info["Size"] / 1e6,
        "above_base_mb": (info["Size"] - base_info["Size"]) / 1e6,
        "layers_above_base": len(info["RootFS"]["Layers"]) - len(base_info["RootFS"]["Layers"]),
        "build_s": build_seconds,
    }


def median_of(runs: Sequence[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(runs), "runs_s": list(runs)}


# ---------------------------------------------------------------------------
# Bake / validate timings
# ---------------------------------------------------------------------------


def timed_bake(output: Path, logs: Path, validate: str, answers: dict[str, Any]) -> tuple[float, str | None]:
    """Seconds to bake (and validate) one variant; the error text when it failed."""
    from helpers import bake

    started = time.perf_counter()
    try:
        with quiet_output(logs / "bakes.log"):
            bake(output, validate=validate, **answers)
    except Exception as error:  # a failed bake is a result here, reported with its reason
        return time.perf_counter() - started, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return time.perf_counter() - started, None


def measure_bakes(work: Path, logs: Path, matrix: bool) -> dict[str, Any]:
    from variants import VARIANTS

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
