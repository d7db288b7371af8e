"""Dashboards and alerting rules, proven against a real Prometheus.

The generated app runs under gunicorn (3 workers, multiprocess metrics) with a
real redis-server, prometheus-redis-exporter and Prometheus (Debian packages
``prometheus`` and ``prometheus-redis-exporter``), all on loopback. Prometheus
gets the project's own compose scrape config with the targets moved to
loopback, a 1 s scrape interval, the target labels the Prometheus Operator
adds in Kubernetes (namespace, pod, container), and the project's alerting
rules. Traffic includes 404s and FAILURE_RATE 500s. Then every expression of
every dashboard panel and every alert must return data (tests/promql_check.py).

kube-state-metrics and cAdvisor only exist in a cluster: a small fixture
exporter serves ``kube_pod_status_ready`` and ``container_*`` series for the
app's pod with the labels those exporters use, so the Kubernetes panels'
joins are evaluated too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import promql_check
import pytest
import yaml

from helpers import free_port, require_tool, run, wait_until

pytestmark = pytest.mark.slow

NAMESPACE = "observability-test"
STABLE_VERSION = "0.1.0"
CANARY_VERSION = "0.2.0"
RATE_INTERVAL = "20s"
STARTUP_TIMEOUT = 60


def chart_dir(project: Path) -> Path:
    return project / "charts" / project.name


def dashboards(project: Path) -> dict[str, dict[str, Any]]:
    files = sorted((chart_dir(project) / "dashboards").glob("*.json"))
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in files}


def alert_rules(project: Path) -> dict[str, Any]:
    return yaml.safe_load((chart_dir(project) / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))


def http(url: str, data: bytes | None = None, method: str = "GET") -> int:
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# --- a fixture exporter for the series only a cluster has --------------------------


def kubernetes_series(pods: list[str], started: float) -> str:
    """kube-state-metrics and cAdvisor series of the app pods, named and labelled as upstream."""
    cpu = 0.05 * (time.monotonic() - started)
    lines = ["# TYPE kube_pod_status_ready gauge"]
    for pod in pods:
        lines += [
            f'kube_pod_status_ready{{namespace="{NAMESPACE}",pod="{pod}",condition="{condition}"}} {value}'
            for condition, value in (("true", 1), ("false", 0), ("unknown", 0))
        ]
    lines.append("# TYPE container_memory_working_set_bytes gauge")
    lines += [
        f'container_memory_working_set_bytes{{namespace="{NAMESPACE}",pod="{pod}",container="app"}} 73400320'
        for pod in pods
    ]
    lines.append("# TYPE container_cpu_usage_seconds_total counter")
    lines += [
        f'container_cpu_usage_seconds_total{{namespace="{NAMESPACE}",pod="{pod}",container="app"}} {cpu:.3f}'
        for pod in pods
    ]
    return "\n".join(lines) + "\n"


def serve_kubernetes_series(pods: list[str]) -> ThreadingHTTPServer:
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = kubernetes_series(pods, started).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- the stack --------------------------------------------------------------------


@dataclass
class Stack:
    project: Path
    prometheus_url: str
    app_urls: dict[str, str]

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read())
        if body.get("status") != "success":
            raise promql_check.QueryError(body.get("error", body))
        return body["data"]["result"]


def loaded_rules(stack: Stack) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/rules", timeout=5) as response:
        return [rule for group in json.loads(response.read())["data"]["groups"] for rule in group["rules"]]


def scrape_config(
    project: Path, apps: dict[str, str], exporter: str, kubernetes: str, rules: Path
) -> dict[str, Any]:
    """The project's compose Prometheus config, pointed at loopback and scraping every second."""
    config = yaml.safe_load(
        (project / "monitoring" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    slug = project.name
    targets = {
        slug: [(address, pod, "app") for pod, address in apps.items()],
        f"{slug}-redis": [(exporter, f"{slug}-redis-0", "metrics")],
    }
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets), f"compose scrape jobs {sorted(jobs)} are not {sorted(targets)}"
    for name, job_targets in targets.items():
        (static,) = jobs[name]["static_configs"]
        # One target per pod, with the target labels a ServiceMonitor adds in Kubernetes.
        jobs[name]["static_configs"] = [
            {
                "targets": [address],
                "labels": {
                    **static.get("labels", {}),
                    "namespace": NAMESPACE,
                    "pod": pod,
                    "container": container,
                },
            }
            for address, pod, container in job_targets
        ]
    config["scrape_configs"].append(
        {
            "job_name": "kube-state-metrics",
            "honor_labels": True,
            "static_configs": [{"targets": [kubernetes]}],
        }
    )
    return config


class Processes:
    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], **kwargs) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [str(part) for part in cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
        self.started.append((name, process))
        return process

    def check_running(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                log = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"{name} exited with {process.returncode}:\n{log}", pytrace=False)

    def stop_all(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _name, process in reversed(self.started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def drive_traffic(app_urls: list[str], stop: threading.Event) -> None:
    """Counter reads and writes, 404s, and whatever FAILURE_RATE turns into 500s."""
    while not stop.is_set():
        for app_url in app_urls:
            http(app_url + "/")
            http(app_url + "/api/counter")
            http(app_url + "/api/counter", data=b'{"by": 2}', method="POST")
            http(app_url + "/no-such-page")
        stop.wait(0.02)


@pytest.fixture(scope="module")
def stack(baked, generated_venv, tmp_path_factory) -> Iterator[Stack]:
    prometheus = require_tool("prometheus", "apt-get install prometheus (scripts/install-system-packages.sh)")
    exporter = require_tool(
        "prometheus-redis-exporter",
        "apt-get install prometheus-redis-exporter (scripts/install-system-packages.sh)",
    )
    redis_server = require_tool("redis-server", "apt-get install redis-server")
    project = baked("defaults")
    work = tmp_path_factory.mktemp("observability")
    processes = Processes(work)
    ports = {name: free_port() for name in ("redis", "exporter", "prometheus")}
    # Two "pods": the stable version and a canary, as with the chart's Istio canary.
    pods = {
        f"{project.name}-7d9f8b6c5d-x2x7q": STABLE_VERSION,
        f"{project.name}-canary-5c6d7f8b9-q8w4z": CANARY_VERSION,
    }
    app_ports = {pod: free_port() for pod in pods}
    app_urls = {pod: f"http://127.0.0.1:{port}" for pod, port in app_ports.items()}
    kubernetes = serve_kubernetes_series(list(pods))
    stop_traffic = threading.Event()
    traffic = threading.Thread(target=drive_traffic, args=(list(app_urls.values()), stop_traffic))
    try:
        processes.start(
            "redis",
            [
                redis_server,
                "--port",
                ports["redis"],
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        )
        for pod, version in pods.items():
            app_env = {
                **os.environ,
                "PYTHONPATH": str(project / "src"),
                "REDIS_HOST": "127.0.0.1",
                "REDIS_PORT": str(ports["redis"]),
                "PROMETHEUS_MULTIPROC_DIR": str(work / f"metrics-{pod}"),
                "APP_VERSION": version,
                "GUNICORN_WORKERS": "3",
                "FAILURE_RATE": "0.25",
                "LOG_LEVEL": "WARNING",
            }
            # The command line's --bind wins over gunicorn.conf.py's 0.0.0.0: loopback only.
            processes.start(
                f"gunicorn-{pod}",
                [
                    generated_venv / "bin" / "gunicorn",
                    "-c",
                    "gunicorn.conf.py",
                    "--bind",
                    f"127.0.0.1:{app_ports[pod]}",
                ],
                cwd=project,
                env=app_env,
            )
        processes.start(
            "redis-exporter",
            [
                exporter,
                "-redis.addr",
                f"redis://127.0.0.1:{ports['redis']}",
                "-web.listen-address",
                f"127.0.0.1:{ports['exporter']}",
            ],
        )
        config = scrape_config(
            project,
            apps={pod: f"127.0.0.1:{port}" for pod, port in app_ports.items()},
            exporter=f"127.0.0.1:{ports['exporter']}",
            kubernetes=f"127.0.0.1:{kubernetes.server_address[1]}",
            rules=chart_dir(project) / "prometheus" / "alerts.yml",
        )
        (work / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        processes.start(
            "prometheus",
            [
                prometheus,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
        )

        def apps_ready() -> bool:
            processes.check_running()
            return all(http(url + "/health/ready") == 200 for url in app_urls.values())

        wait_until("both app instances to be ready", apps_ready)
        traffic.start()
        result = Stack(project, f"http://127.0.0.1:{ports['prometheus']}", app_urls)

        def enough_samples() -> bool:
            processes.check_running()
            scraped = result.query("min(count_over_time(up[1m])) >= 15") and result.query("min(up) == 1")
            pending = [
                rule for rule in loaded_rules(result) if rule.get("lastEvaluation", "").startswith("0001")
            ]
            return bool(scraped) and not pending

        wait_until("Prometheus to scrape every target 15 times and evaluate the rules", enough_samples)
        yield result
    finally:
        stop_traffic.set()
        if traffic.is_alive():
            traffic.join(timeout=10)
        processes.stop_all()
        kubernetes.shutdown()
        kubernetes.server_close()


# --- static checks -------------------------------------------------------------------


def test_dashboards_are_importable_grafana_json(baked):
    boards = dashboards(baked("defaults"))
    assert sorted(boards) == ["app.json", "redis.json"]
    problems = [
        p for name, board in boards.items() for p in promql_check.dashboard_structure_problems(name, board)
    ]
    assert problems == []
    assert len({board["uid"] for board in boards.values()}) == len(boards), "dashboard uids collide"


def test_structure_check_catches_hard_coded_datasource_and_duplicate_ids(baked):
    board = json.loads(json.dumps(dashboards(baked("defaults"))["app.json"]))
    board["panels"][1]["id"] = board["panels"][0]["id"]
    board["panels"][2]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "my-prometheus"}
    del board["schemaVersion"]
    problems = "\n".join(promql_check.dashboard_structure_problems("app.json", board))
    assert "not unique" in problems and "hard-coded" in problems and "schemaVersion" in problems


def test_expression_parsing():
    expr = (
        'sum by (job, le) (rate(flask_http_request_duration_seconds_bucket{job="x", status=~"5.."}[5m]))'
        ' / on (job) group_left (version) app_info > 0.5 or absent(up{job="x"}) unless time() < 3'
    )
    assert promql_check.selectors(expr) == [
        'flask_http_request_duration_seconds_bucket{job="x", status=~"5.."}',
        "app_info",
        'up{job="x"}',
    ]
    assert promql_check.boolify(expr).count(" bool ") == 2
    assert promql_check.boolify("a >= bool 1") == "a >= bool 1"
    assert promql_check.boolify('up{job!="a"} != 0') == 'up{job!="a"} != bool 0'
    assert (
        promql_check.substitute(
            'x{a=~"$ns", b="${job}"}[$__rate_interval]', {"ns": ".*", "job": "j", "__rate_interval": "1m"}
        )
        == 'x{a=~".*", b="j"}[1m]'
    )
    assert promql_check.legend_labels("{{version}} {{ status }}") == {"version", "status"}


def test_alert_rules_pass_promtool_check_and_unit_tests(baked):
    promtool = require_tool("promtool", "apt-get install prometheus (scripts/install-system-packages.sh)")
    project = baked("defaults")
    run([promtool, "check", "rules", chart_dir(project) / "prometheus" / "alerts.yml"])
    result = run([promtool, "test", "rules", "monitoring/prometheus/alerts.test.yml"], cwd=project)
    assert "SUCCESS" in result.stdout
    tests = yaml.safe_load(
        (project / "monitoring" / "prometheus" / "alerts.test.yml").read_text(encoding="utf-8")
    )
    cases = [case for test in tests["tests"] for case in test["alert_rule_test"]]
    alerts = {rule["alert"] for group in alert_rules(project)["groups"] for rule in group["rules"]}
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert firing == alerts, "every alert needs a case where it fires"
    assert silent == alerts, "every alert needs a case where it stays silent"


def test_promtool_test_fails_on_a_wrong_threshold(baked, tmp_path):
    """The unit tests would notice a rule that no longer fires when it should."""
    promtool = require_tool("promtool", "apt-get install prometheus")
    project = baked("defaults")
    broken = tmp_path / "project"
    (broken / "monitoring" / "prometheus").mkdir(parents=True)
    (broken / "charts" / project.name / "prometheus").mkdir(parents=True)
    rules = (chart_dir(project) / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    (broken / "charts" / project.name / "prometheus" / "alerts.yml").write_text(
        rules.replace("> 0.05", "> 0.5")
    )
    test_file = broken / "monitoring" / "prometheus" / "alerts.test.yml"
    test_file.write_text(
        (project / "monitoring" / "prometheus" / "alerts.test.yml").read_text(encoding="utf-8")
    )
    result = run([promtool, "test", "rules", test_file], check=False)
    assert result.returncode != 0 and "CounterHighErrorRatio" in result.stdout + result.stderr


def test_chart_ships_the_same_dashboards_and_rules(baked):
    """One source: the chart's ConfigMap and PrometheusRule carry the files compose mounts."""
    helm = require_tool("helm", "run scripts/install-tools.sh")
    project = baked("defaults")
    rendered = run(
        [
            helm,
            "template",
            project.name,
            chart_dir(project),
            "--set",
            "metrics.enabled=true",
            "--set",
            "metrics.grafanaDashboards.enabled=true",
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--api-versions",
            "monitoring.coreos.com/v1",
        ]
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    (configmap,) = [
        o for o in objects if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]
    ]
    assert {name: json.loads(text) for name, text in configmap["data"].items()} == dashboards(project)
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    assert rule["spec"] == alert_rules(project)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    compose = yaml.safe_load((project / "compose.yaml").read_text(encoding="utf-8"))
    mounted = {
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
    }
    assert f"./charts/{project.name}/dashboards" in mounted
    assert f"./charts/{project.name}/prometheus/alerts.yml" in mounted
    monitors = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "ServiceMonitor"}
    assert monitors[project.name]["jobLabel"] == "app.kubernetes.io/name"
    relabel = monitors[f"{project.name}-redis"]["endpoints"][0]["relabelings"]
    assert relabel == [{"targetLabel": "job", "replacement": f"{project.name}-redis"}], (
        "alerts expect this job"
    )


# --- against the running stack ----------------------------------------------------------


def test_every_dashboard_query_returns_data(stack):
    problems = []
    for name, board in dashboards(stack.project).items():
        problems += promql_check.dashboard_problems(stack.query, name, board, RATE_INTERVAL)
    assert problems == [], "\n".join(problems)


def test_every_alert_expression_returns_data(stack):
    problems = promql_check.rule_problems(stack.query, "alerts.yml", alert_rules(stack.project))
    assert problems == [], "\n".join(problems)
    # Prometheus itself loaded the project's rules file and evaluates it without errors.
    health = {rule["name"]: (rule["health"], rule.get("lastError", "")) for rule in loaded_rules(stack)}
    expected = {rule["alert"] for group in alert_rules(stack.project)["groups"] for rule in group["rules"]}
    assert set(health) == expected
    assert all(state == ("ok", "") for state in health.values()), health


def test_panels_split_stable_and_canary_by_version(stack):
    board = dashboards(stack.project)["app.json"]
    variables, _ = promql_check.resolve_variables(stack.query, board, RATE_INTERVAL)
    for panel in promql_check.panels(board):
        for target in panel["targets"]:
            if "version" in promql_check.legend_labels(target.get("legendFormat", "")):
                result = stack.query(promql_check.substitute(target["expr"], variables))
                versions = {series["metric"]["version"] for series in result}
                assert versions == {STABLE_VERSION, CANARY_VERSION}, f"{panel['title']}: {versions}"


def test_failure_rate_makes_the_error_ratio_alert_condition_true(stack):
    """FAILURE_RATE=0.25 is far above the 5% threshold: the unmodified expression returns the job."""
    (rule,) = [
        r
        for g in alert_rules(stack.project)["groups"]
        for r in g["rules"]
        if r["alert"] == "CounterHighErrorRatio"
    ]
    result = stack.query(rule["expr"])
    assert [series["metric"]["job"] for series in result] == [stack.project.name]
    assert float(result[0]["value"][1]) > 0.05


@pytest.mark.parametrize(
    ("case", "expr", "legend"),
    [
        ("metric typo", 'sum(rate(flask_http_request_totl{job="$job"}[$__rate_interval]))', ""),
        (
            "label value typo",
            'sum(rate(flask_http_request_total{job="$job", status=~"6.."}[$__rate_interval]))',
            "",
        ),
        ("label name typo", 'sum(rate(flask_http_request_total{jbo="$job"}[$__rate_interval]))', ""),
        ("grouping typo", "sum by (verison) (app_info)", "{{version}}"),
        (
            "join typo",
            "sum by (version) (up * on (job, instnce) group_left (version) app_info)",
            "{{version}}",
        ),
        ("typo hidden in or/absent", 'up{job="$job"} or absent(app_inf)', ""),
        ("syntax error", "sum(rate(app_info[5m])", ""),
    ],
)
def test_checker_catches_typos(stack, case, expr, legend):
    expr = promql_check.substitute(expr, {"job": stack.project.name, "__rate_interval": RATE_INTERVAL})
    problems = promql_check.expression_problems(stack.query, case, expr, promql_check.legend_labels(legend))
    assert problems, f"{case}: {expr} passed the checker"
    # ...while the correct spelling passes.
    assert (
        promql_check.expression_problems(
            stack.query,
            "control",
            'sum by (version) (app_info{job="' + stack.project.name + '"})',
            {"version"},
        )
        == []
    )
