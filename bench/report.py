"""Reporting for bench/run.py: the tables, the ratios against the targets, docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGET_CONNECTIONS = 32
# Targets of the benchmark issue ("Performance, redefined"), checked at TARGET_CONNECTIONS.
TARGET_CPU_VS_PEER = 1.5
GOAL_CPU_VS_PEER = 1.0
TARGET_VS_BASELINE = 4.0
TARGET_P99_MS = 50.0
TARGET_FEATURES_COST = 1.25
CPU = "server_cpu_us_per_request"

LABELS = {
    "image": "generated, its container image",
    "generated": "generated, `gunicorn -c gunicorn.conf.py` (venv)",
    "granian": "generated under granian (WSGI)",
    "peer": "peer: FastAPI + uvicorn, `redis.asyncio`",
    "minimal": "minimal counter, same gunicorn",
    "minimal-granian": "minimal counter, granian",
    "bare": "bare Flask, same gunicorn",
    "baseline": "baseline (`flask run`)",
}


def header(*columns: str, align: str) -> list[str]:
    """A markdown table's head; ``align`` has one letter per column: l(eft) or r(ight)."""
    marks = {"l": "---", "r": "---:"}
    return ["| " + " | ".join(columns) + " |", "| " + " | ".join(marks[side] for side in align) + " |"]


def at(rows: list[dict], connections: int) -> dict:
    return next(row for row in rows if row["connections"] == connections)


def headline(result: dict[str, Any]) -> str:
    """The generated service as its container serves it, or its venv twin without an engine."""
    return "image" if "image" in result["servers"] else "generated"


def cell(result: dict[str, Any], name: str) -> dict[str, Any]:
    return at(result["servers"][name]["rows"], TARGET_CONNECTIONS)


def target_checks(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    main = headline(result)
    generated, peer, baseline = cell(result, main), cell(result, "peer"), cell(result, "baseline")
    vs_peer = generated[CPU] / peer[CPU]
    vs_baseline = generated["requests_per_second"] / baseline["requests_per_second"]
    p99, peer_p99 = generated["p99_ms"], peer["p99_ms"]
    inexact = [
        name for name, found in result["servers"].items() if not found.get("exactness", {"exact": 1})["exact"]
    ]
    checks = [
        (
            f"CPU/request <= {TARGET_CPU_VS_PEER:g}x the peer's",
            f"{vs_peer:.2f}x",
            vs_peer <= TARGET_CPU_VS_PEER,
        ),
        (
            f"goal: CPU/request <= {GOAL_CPU_VS_PEER:g}x the peer's",
            f"{vs_peer:.2f}x",
            vs_peer <= GOAL_CPU_VS_PEER,
        ),
        (
            f"req/s >= {TARGET_VS_BASELINE:g}x the baseline's",
            f"{vs_baseline:.2f}x",
            vs_baseline >= TARGET_VS_BASELINE,
        ),
        (
            f"p99 <= the peer's ({peer_p99:.1f} ms) and <= {TARGET_P99_MS:g} ms",
            f"{p99:.1f} ms",
            p99 <= peer_p99 and p99 <= TARGET_P99_MS,
        ),
        (
            "no lost or doubled increments (every counting server)",
            ", ".join(inexact) or "all exact",
            not inexact,
        ),
    ]
    for generated_name, minimal_name, server in (
        ("generated", "minimal", "gunicorn"),
        ("granian", "minimal-granian", "granian"),
    ):
        ratio = cell(result, generated_name)[CPU] / cell(result, minimal_name)[CPU]
        checks.append(
            (
                f"generated <= {TARGET_FEATURES_COST:g}x the minimal counter's CPU/request ({server})",
                f"{ratio:.2f}x",
                ratio <= TARGET_FEATURES_COST,
            )
        )
    return checks


def throughput_table(result: dict[str, Any]) -> list[str]:
    lines = header(
        "Server",
        "Connections",
        "Requests/s",
        "p50 (ms)",
        "p99 (ms)",
        "Errors",
        "Server CPU/request (us)",
        "Every round (req/s)",
        align="lrrrrrrl",
    )
    for name, label in LABELS.items():
        for row in result["servers"].get(name, {}).get("rows", []):
            errors = row["non_2xx"] + row["socket_errors"]
            rounds = ", ".join(f"{value:.0f}" for value in row.get("all_requests_per_second", []))
            lines.append(
                f"| {label} | {row['connections']} | {row['requests_per_second']:.0f} | "
                f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {errors} | "
                f"{row[CPU]:.0f} | {rounds} |"
            )
    for row in result["redis_benchmark"]:
        lines.append(
            f"| `redis-benchmark -t incr` | {row['connections']} | {row['requests_per_second']:.0f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | - | - | |"
        )
    return lines


def ratio_table(result: dict[str, Any]) -> list[str]:
    """CPU/request of each server against the peer's and the generated one's, at every connection count."""
    main = headline(result)
    peer_rows = result["servers"]["peer"]["rows"]
    counts = ", ".join(str(row["connections"]) for row in peer_rows)
    lines = header(
        "Server",
        f"CPU/request vs peer ({counts} connections)",
        f"req/s vs baseline at {TARGET_CONNECTIONS}",
        align="lrr",
    )
    baseline_rps = cell(result, "baseline")["requests_per_second"]
    for name, label in LABELS.items():
        if name not in result["servers"]:
            continue
        rows = result["servers"][name]["rows"]
        cpu = " / ".join(f"{row[CPU] / at(peer_rows, row['connections'])[CPU]:.2f}x" for row in rows)
        rps = cell(result, name)["requests_per_second"] / baseline_rps
        marker = " (headline)" if name == main else ""
        lines.append(f"| {label}{marker} | {cpu} | {rps:.2f}x |")
    return lines


def inprocess_table(result: dict[str, Any]) -> list[str]:
    """The app's own CPU per request against what it costs under each server: the rest is the server's."""
    lines = header(
        "App",
        "In-process CPU/request (us)",
        f"Under gunicorn ({TARGET_CONNECTIONS} conn.)",
        "Under granian",
        "Server's share under gunicorn / granian",
        align="lrrrr",
    )
    for name, (gunicorn, granian) in (
        ("generated", ("generated", "granian")),
        ("minimal", ("minimal", "minimal-granian")),
    ):
        own = result.get("inprocess", {}).get(name)
        if not own:
            continue
        app = own["cpu_us_per_call"]
        under = [cell(result, server)[CPU] for server in (gunicorn, granian)]
        shares = " / ".join(f"{1 - app / value:.0%}" for value in under)
        lines.append(f"| {name} | {app:.0f} | {under[0]:.0f} | {under[1]:.0f} | {shares} |")
    return lines


def inprocess_section(result: dict[str, Any]) -> list[str]:
    return [
        "## Where the CPU goes: the app alone against the app under a server",
        "",
        "`bench/inprocess.py` calls the Flask app's WSGI callable in a loop (real Redis, the log",
        "line written to /dev/null): the app's own CPU per request, without any server.",
        "",
        *inprocess_table(result),
        "",
    ]


def memory_table(result: dict[str, Any]) -> list[str]:
    lines = header(
        "Server",
        "Whole server at rest (MB)",
        "One worker at rest (MB)",
        "Whole server under load (MB)",
        "One worker under load (MB)",
        align="lrrrr",
    )
    for name, label in LABELS.items():
        found = result["servers"].get(name)
        if not found:
            continue
        rest, busy = found["memory_at_rest"], found.get("memory_under_load") or {}
        lines.append(
            f"| {label} | {rest['server_mb']:.0f} | {rest['worker_mb']:.0f} | "
            f"{busy.get('server_mb', 0):.0f} | {busy.get('worker_mb', 0):.0f} |"
        )
    return lines


def exactness_lines(result: dict[str, Any]) -> list[str]:
    lines = header(
        "Server", "Requests", "Failed", "Redis counted", "Counts seen twice", "Exact", align="lrrrrl"
    )
    for name, label in LABELS.items():
        check = result["servers"].get(name, {}).get("exactness")
        if check:
            lines.append(
                f"| {label} | {check['requests']} | {check['failed']} | {check['redis_delta']} | "
                f"{check['repeated_counts']} | {'yes' if check['exact'] else 'NO'} |"
            )
    return lines


def sweep_table(result: dict[str, Any]) -> list[str]:
    lines = header(
        "Server",
        "Workers",
        "Threads",
        "Requests/s",
        "p99 (ms)",
        "CPU/request (us)",
        "Whole server under load (MB)",
        align="lrrrrrr",
    )
    for row in result["sweep"]:
        busy = row.get("memory_under_load") or {}
        lines.append(
            f"| {row['server']} | {row['workers']} | {row['threads'] or '-'} | "
            f"{row['requests_per_second']:.0f} | {row['p99_ms']:.1f} | {row[CPU]:.0f} | "
            f"{busy.get('server_mb', 0):.0f} |"
        )
    return lines


def other_figures(result: dict[str, Any]) -> list[tuple[str, str]]:
    image, bakes = result["image"], result["bakes"]
    figures = [
        (
            f"Cold start to ready: {LABELS[name]}",
            f"{found['median_s']:.2f} s (median of {len(found['runs_s'])})",
        )
        for name, found in result["cold_start"].items()
    ]
    if image["status"] == "ok":
        figures.append(
            (
                "Image size",
                f"{image['size_mb']:.0f} MB ({image['above_base_mb']:.0f} MB above `{image['base']}`)",
            )
        )
        figures.append(("Image layers above the base", str(image["layers_above_base"])))
    else:
        figures.append(("Image", image["status"]))
    figures.append(("Bake the default project", f"{bakes['bake_default_s']:.1f} s"))
    validated = f"{bakes['bake_validate_default_s']:.1f} s (validation {bakes['validation']})"
    if bakes.get("bake_validate_default_error"):
        validated += f", failed: {bakes['bake_validate_default_error']}"
    figures.append(("Bake + validate the default project", validated))
    matrix = bakes.get("matrix")
    if matrix:
        text = (
            f"{matrix['seconds']:.0f} s for {matrix['variants']} variants (validation {matrix['validation']})"
        )
        if matrix["failures"]:
            text += f", {len(matrix['failures'])} failed: {', '.join(matrix['failures'])}"
        figures.append(("Bake + validate the whole matrix (tests/variants.py)", text))
    return figures


def print_report(result: dict[str, Any]) -> None:
    for block in (
        throughput_table(result),
        ratio_table(result),
        memory_table(result),
        exactness_lines(result),
    ):
        print()
        print("\n".join(block))
    if result.get("sweep"):
        print()
        print("\n".join(sweep_table(result)))
    print()
    print(f"targets at {TARGET_CONNECTIONS} connections, for {LABELS[headline(result)]}:")
    for name, value, met in target_checks(result):
        print(f"target {name}: {value} {'met' if met else 'MISSED'}")
    print()
    for name, value in other_figures(result):
        print(f"{name}: {value}")


def write_docs(result: dict[str, Any], path: Path) -> None:
    machine, settings = result["machine"], result["settings"]
    main = headline(result)
    lines = [
        "# Benchmarks",
        "",
        "Regenerated by `make bench` (`bench/run.py` measures, `bench/report.py` writes this); do not",
        "edit by hand. The load generator, Redis and the servers share one machine, so absolute",
        "numbers depend on it and on what else runs there; CPU per request and the ratios from one",
        "run are the figures to compare.",
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
        "(one JSON line per request), Prometheus multiprocess metrics, correlation ids",
        "- The image runs as built (`docker run --read-only --network host`; only the bind address is",
        "  loopback, via `GUNICORN_CMD_ARGS`); its CPU is the container cgroup's. Every other server's",
        "  CPU is the sum over its processes from /proc. granian, uvicorn and gunicorn run 2 workers.",
        "",
        f"## Targets ({TARGET_CONNECTIONS} connections, {LABELS[main]})",
        "",
        *header("Target", "Measured", "", align="lrl"),
        *(f"| {name} | {value} | {'met' if ok else 'missed'} |" for name, value, ok in target_checks(result)),
        "",
        "## Throughput, latency and CPU per request",
        "",
        "Server CPU/request is the CPU time of the server's processes per completed request:",
        "unlike requests/s it hardly depends on what else the machine does.",
        "",
        *throughput_table(result),
        "",
        *ratio_table(result),
        "",
        *(inprocess_section(result) if result.get("inprocess") else []),
        "## Memory (PSS: shared pages split among the processes sharing them)",
        "",
        "At rest: after a 2 s warm-up, idle. Under load: sampled halfway through the run with the most",
        "connections. One worker: the largest process below the server's master.",
        "",
        *memory_table(result),
        "",
        "## Exactness",
        "",
        "Before the load runs, 2,000 `GET /` over 16 keep-alive connections per counting server: every",
        "count in the replies must be distinct and Redis must have gone up by exactly 2,000.",
        "",
        *exactness_lines(result),
        "",
    ]
    if result.get("sweep"):
        lines += [
            f"## Workers ({TARGET_CONNECTIONS} connections; generated from the venv)",
            "",
            *sweep_table(result),
            "",
        ]
    lines += [
        "## Start-up, image and template",
        "",
        *header("Figure", "Value", align="ll"),
        *(f"| {name} | {value} |" for name, value in other_figures(result)),
        "",
        (Path(__file__).parent / "why.md").read_text(encoding="utf-8"),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
