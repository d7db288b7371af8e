"""The Helm chart and the k8s/ manifests of every variant: lint, schemas, cross-references.

Tools: helm (Helm 3), helm4 (Helm 4) and kubeconform, built by
scripts/install-tools.sh. Schemas: KUBECONFORM_SCHEMA_LOCATION and
CRD_SCHEMA_LOCATION as in the generated scripts/validate_k8s.py (online
defaults; CI points them at the offline cache and the shared CRD schemas).
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import io
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import k8s_contracts
import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from fake_kube_api import FakeKubeApi

from helpers import TEMPLATE_DIR, bake, find_tool, require_tool, run
from variants import DEFAULTS, VARIANTS

pytestmark = pytest.mark.slow

HELMS = {
    "helm3": ("helm", "scripts/install-tools.sh"),
    "helm4": ("helm4", "scripts/install-tools.sh (Helm 4 is built unless --no-helm4)"),
}
VALUES_SETS = ("defaults", "all-features", "external-redis", "minimal")
KUBERNETES_VERSION = DEFAULTS["kubernetes_version"]
# The APIs the chart's capability gates ask for (as the generated validate_k8s.py announces them).
CRD_API_VERSIONS = ("monitoring.coreos.com/v1", "networking.istio.io/v1")


@functools.cache
def answers(variant: str) -> dict[str, Any]:
    """The answers a no-input bake of the variant uses, defaults rendered as cookiecutter renders them."""
    sys.path.insert(0, str(TEMPLATE_DIR))  # cookiecutter.json's _extensions live there
    try:
        context = generate_context(TEMPLATE_DIR / "cookiecutter.json", extra_context=VARIANTS[variant])
        return dict(prompt_for_config(context, no_input=True))
    finally:
        sys.path.remove(str(TEMPLATE_DIR))


def chart_dir(project: Path) -> Path:
    (chart,) = (project / "charts").iterdir()
    return chart


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module while being built
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def values_args(chart: Path, values_set: str) -> list[str]:
    return [] if values_set == "defaults" else ["--values", str(chart / "ci" / f"{values_set}-values.yaml")]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            deep_merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


def effective_values(chart: Path, values_set: str) -> dict[str, Any]:
    values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8"))
    if values_set != "defaults":
        values = deep_merge(
            values, yaml.safe_load((chart / "ci" / f"{values_set}-values.yaml").read_text(encoding="utf-8"))
        )
    return values


def documented_external_secrets(values: dict[str, Any]) -> dict[str, list[str]]:
    """Secrets the user creates before installing, as the values document them."""
    auth = values["redis"]["auth"] if values["redis"]["enabled"] else values["externalRedis"]["auth"]
    if auth["enabled"] and auth["existingSecret"]:
        return {auth["existingSecret"]: [auth["existingSecretPasswordKey"]]}
    return {}


def render(helm: str, chart: Path, *args: str, release: str | None = None) -> list[dict[str, Any]]:
    result = run(
        [
            helm,
            "template",
            release or chart.name,
            chart,
            "--kube-version",
            KUBERNETES_VERSION,
            *(arg for api in CRD_API_VERSIONS for arg in ("--api-versions", api)),
            *args,
        ]
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kustomization_objects(project: Path) -> list[dict[str, Any]]:
    """The objects `kubectl apply -k k8s/` creates (resources listed in kustomization.yaml)."""
    k8s = project / "k8s"
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text(encoding="utf-8"))
    objects = []
    for resource in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((k8s / resource).read_text(encoding="utf-8")) if doc]
    return objects


@pytest.fixture(params=list(HELMS))
def helm(request) -> str:
    name, installer = HELMS[request.param]
    return require_tool(name, f"run {installer}")


@pytest.fixture
def kubeconform() -> str:
    return require_tool("kubeconform", "run scripts/install-tools.sh")


# --- validation as `make validate` / the post-gen hook run it -------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_validate_k8s_passes(baked, variant, helm, kubeconform):
    """helm lint --strict, helm template | kubeconform -strict, k8s/ | kubeconform for every value set."""
    project = baked(variant)
    validator = load_module(project / "scripts" / "validate_k8s.py", f"validate_k8s_{os.getpid()}")
    env = {**os.environ, "HELM": helm, "KUBECONFORM": kubeconform}
    report = validator.run_checks(project, env=env)
    out = io.StringIO()
    validator.print_report(report, out=out)
    assert not report.missing, validator.missing_tools_message(report.missing)
    assert not report.failed, out.getvalue()
    # defaults + 3 value sets, lint and kubeconform each, plus k8s/ files (and the kustomize build).
    assert len(report.checks) >= 2 * len(VALUES_SETS) + 1, out.getvalue()


def test_validate_k8s_reports_schema_errors(baked, kubeconform, tmp_path):
    """kubeconform -strict really rejects an unknown field, and its own message is reported."""
    project = baked("defaults")
    broken = tmp_path / "project"
    run(["cp", "-r", project, broken])
    deployment = broken / "k8s" / "deployment.yaml"
    deployment.write_text(
        deployment.read_text().replace("revisionHistoryLimit: 5", "revisionHistoryLimit: 5\n  replica: 3")
    )
    validator = load_module(broken / "scripts" / "validate_k8s.py", f"validate_k8s_broken_{os.getpid()}")
    report = validator.run_checks(
        broken, env={**os.environ, "KUBECONFORM": kubeconform, "HELM": "/nonexistent/helm"}
    )
    assert report.missing == ["helm"]
    messages = "\n".join(check.output for check in report.failed)
    assert "additional properties 'replica' not allowed" in messages, messages


# --- cross-resource contracts ---------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_chart_contracts(baked, variant, values_set):
    helm = require_tool("helm", "run scripts/install-tools.sh")
    chart = chart_dir(baked(variant))
    objects = render(helm, chart, *values_args(chart, values_set))
    external = documented_external_secrets(effective_values(chart, values_set))
    problems = k8s_contracts.all_problems(objects, external)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("variant", VARIANTS)
def test_manifest_contracts(baked, variant):
    project = baked(variant)
    objects = kustomization_objects(project)
    example = yaml.safe_load((project / "k8s" / "secret.example.yaml").read_text(encoding="utf-8"))
    external = {example["metadata"]["name"]: list(example["stringData"])}
    problems = k8s_contracts.all_problems(objects, external)
    assert not problems, "\n".join(problems)
    listed = set(yaml.safe_load((project / "k8s" / "kustomization.yaml").read_text())["resources"])
    assert "secret.example.yaml" not in listed, "the example Secret must never be applied"
    on_disk = {p.name for p in (project / "k8s").glob("*.yaml")} - {
        "kustomization.yaml",
        "secret.example.yaml",
    }
    assert listed <= on_disk


@pytest.mark.parametrize("variant", VARIANTS)
def test_answers_reach_chart_and_manifests(baked, variant):
    """The template answers set the chart defaults and the plain manifests alike."""
    helm = require_tool("helm", "run scripts/install-tools.sh")
    answer = answers(variant)
    project = baked(variant)
    chart = chart_dir(project)
    assert chart.name == answer["project_slug"]
    for objects in (render(helm, chart), kustomization_objects(project)):
        kinds = {obj["kind"] for obj in objects}
        assert ("HorizontalPodAutoscaler" in kinds) == answer["enable_hpa"]
        assert ("Ingress" in kinds) == answer["enable_ingress"]
        assert ("StatefulSet" in kinds) == (answer["redis_mode"] == "statefulset")
        config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
        if answer["redis_mode"] == "external":
            assert config["REDIS_HOST"] == answer["external_redis_host"]
        assert config["PORT"] == str(answer["app_port"])
        app = next(o for o in objects if o["kind"] == "Deployment")
        container = app["spec"]["template"]["spec"]["containers"][0]
        assert container["image"].startswith(answer["image_repository"] + ":")
        assert container["ports"][0]["containerPort"] == int(answer["app_port"])
        affinity = app["spec"]["template"]["spec"].get("affinity") or {}
        assert ("podAffinity" in affinity) == (
            answer["enable_pod_affinity"] and answer["redis_mode"] == "statefulset"
        )
        assert ("podAntiAffinity" in affinity) == answer["enable_pod_anti_affinity"]
        annotations = app["spec"]["template"]["metadata"].get("annotations") or {}
        assert (annotations.get("prometheus.io/scrape") == "true") == answer["enable_metrics"]
        for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
            target = hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
            assert target == int(answer["hpa_cpu_target"])
        for ingress in (o for o in objects if o["kind"] == "Ingress"):
            assert ingress["spec"]["ingressClassName"] == "nginx"
            assert ingress["spec"]["rules"][0]["host"] == answer["ingress_host"]
    chart_objects = render(helm, chart)
    chart_kinds = {obj["kind"] for obj in chart_objects}
    assert ("ServiceMonitor" in chart_kinds) == (
        answer["enable_metrics"] and answer["enable_service_monitor"]
    )
    # The answer drives the PrometheusRule's default too (tests/test_observability.py checks its content).
    assert ("PrometheusRule" in chart_kinds) == (
        answer["enable_metrics"] and answer["enable_service_monitor"]
    )
    dashboards = [
        o
        for o in chart_objects
        if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]
    ]
    assert bool(dashboards) == (answer["enable_metrics"] and answer["enable_grafana_dashboards"])
    for configmap in dashboards:
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        for text in configmap["data"].values():
            json.loads(text)
    services = [o for o in chart_objects if o["kind"] == "VirtualService"]
    assert bool(services) == answer["enable_istio"]
    for service in services:
        weights = [d["weight"] for d in service["spec"]["http"][0]["route"]]
        assert weights == [100 - int(answer["canary_weight"]), int(answer["canary_weight"])]
    # The plain manifests and the chart configure the app through the same keys.
    manifest_keys = set(next(o for o in kustomization_objects(project) if o["kind"] == "ConfigMap")["data"])
    chart_keys = set(next(o for o in chart_objects if o["kind"] == "ConfigMap")["data"])
    assert manifest_keys <= chart_keys


def test_custom_resources_follow_cluster_capabilities(baked):
    """CRD-backed kinds render only when the cluster serves their API, or when forced."""
    helm = require_tool("helm", "run scripts/install-tools.sh")
    chart = chart_dir(baked("istio+service-monitor"))

    def kinds(*args: str) -> set[str]:
        result = run([helm, "template", "rel", chart, "--kube-version", KUBERNETES_VERSION, *args])
        return {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}

    gated = {
        "ServiceMonitor": ("monitoring.coreos.com/v1", "metrics.serviceMonitor.force=true"),
        "PrometheusRule": ("monitoring.coreos.com/v1", "metrics.prometheusRule.force=true"),
        "VirtualService": ("networking.istio.io/v1", "istio.force=true"),
        "DestinationRule": ("networking.istio.io/v1", "istio.force=true"),
    }
    assert not kinds() & set(gated)
    for kind, (api, force) in gated.items():
        assert kind in kinds("--api-versions", api), kind
        assert kind in kinds("--set", force), kind
    # Without the API the canary Deployment is still there: only routing is gated.
    assert "Deployment" in kinds()


# --- values.schema.json ---------------------------------------------------------

BAD_VALUES = {
    "canary-weight-above-100": (
        ["istio.canary.weight=101"],
        "at '/istio/canary/weight': maximum: got 101, want 100",
    ),
    "canary-weight-negative": (
        ["istio.canary.weight=-1"],
        "at '/istio/canary/weight': minimum: got -1, want 0",
    ),
    "cpu-target-zero": (
        ["autoscaling.targetCPUUtilizationPercentage=0"],
        "at '/autoscaling/targetCPUUtilizationPercentage': minimum: got 0, want 1",
    ),
    "negative-replicas": (["replicaCount=-1"], "at '/replicaCount': minimum: got -1, want 0"),
    "negative-canary-replicas": (
        ["istio.canary.replicaCount=-2"],
        "at '/istio/canary/replicaCount': minimum: got -2, want 0",
    ),
    "min-above-max-replicas": (
        ["autoscaling.minReplicas=5", "autoscaling.maxReplicas=3"],
        "at '/autoscaling/maxReplicas': minimum: got 3, want 5",
    ),
    "min-replicas-below-ha": (
        ["autoscaling.minReplicas=1"],
        "at '/autoscaling/minReplicas': minimum: got 1, want 2",
    ),
    "unknown-anti-affinity-mode": (
        ["scheduling.podAntiAffinity.mode=sometimes"],
        "at '/scheduling/podAntiAffinity/mode': value must be one of 'preferred', 'required'",
    ),
    "root-uid": (
        ["podSecurityContext.runAsUser=0"],
        "at '/podSecurityContext/runAsUser': minimum: got 0, want 10,000",
    ),
    "wrong-type": (["replicaCount=two"], "at '/replicaCount': got string, want integer"),
    "unknown-value": (["replicas=3"], "additional properties 'replicas' not allowed"),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_schema_rejects_bad_values(baked, helm, case):
    settings, message = BAD_VALUES[case]
    chart = chart_dir(baked("defaults"))
    set_args = [arg for setting in settings for arg in ("--set", setting)]
    for command in ([helm, "template", "rel", chart], [helm, "lint", "--strict", chart]):
        result = run([*command, *set_args], check=False)
        assert result.returncode != 0, f"{' '.join(map(str, command))} accepted {settings}"
        assert message in result.stdout + result.stderr, result.stdout + result.stderr


def test_template_helper_explains_min_above_max(baked, helm):
    """The same rule, checked in _helpers.tpl too, names both values in one sentence."""
    chart = chart_dir(baked("defaults"))
    result = run(
        [
            helm,
            "template",
            "rel",
            chart,
            "--skip-schema-validation",
            "--set",
            "autoscaling.minReplicas=5",
            "--set",
            "autoscaling.maxReplicas=3",
        ],
        check=False,
    )
    assert result.returncode != 0
    assert (
        "autoscaling.minReplicas=5 is not allowed: must not exceed autoscaling.maxReplicas=3" in result.stderr
    )


def test_grace_period_must_outlast_the_prestop_sleep_and_gunicorns_drain(baked, helm):
    """SIGKILL comes terminationGracePeriodSeconds after the stop: a shorter one cuts requests off."""
    chart = chart_dir(baked("defaults"))
    too_short = ["--set", "terminationGracePeriodSeconds=25", "--set", "preStopSleepSeconds=10"]
    result = run([helm, "template", "rel", chart, *too_short], check=False)
    assert result.returncode != 0
    assert (
        "terminationGracePeriodSeconds=25 is not allowed: must exceed preStopSleepSeconds"
        " + gunicorn.gracefulTimeout = 30" in result.stderr
    ), result.stderr
    deployment = next(doc for doc in render(helm, chart) if doc["kind"] == "Deployment")
    app = deployment["spec"]["template"]["spec"]["containers"][0]
    assert app["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]


def test_schema_has_only_local_refs():
    schema_path = next(
        (TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "charts").glob("*/values.schema.json")
    )
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(json.loads(schema_path.read_text(encoding="utf-8")))
    assert refs and all(ref.startswith("#/") for ref in refs), [r for r in refs if not r.startswith("#/")]


def test_every_value_is_documented(baked):
    """Each leaf of values.yaml has a `## @param` line, and the chart README lists it."""
    chart = chart_dir(baked("defaults"))
    values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8"))
    text = (chart / "values.yaml").read_text(encoding="utf-8")
    readme = (chart / "README.md").read_text(encoding="utf-8")

    def leaves(node: Any, prefix: str = "") -> Iterator[str]:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from leaves(value, f"{prefix}{key}.")
        else:
            yield prefix[:-1]

    params = {line.split()[2] for line in text.splitlines() if line.strip().startswith("## @param ")}
    keys = set(leaves(values))
    assert keys - params == set(), "values without ## @param"
    assert params - keys == set(), "## @param for values that do not exist"
    assert [key for key in sorted(keys) if f"`{key}`" not in readme] == [], (
        "values missing from the chart README"
    )


# --- Redis' probes, run against a server that is still loading --------------------


class FakeRedis:
    """Answers every command but AUTH with ``reply`` (a RESP line), as a loading Redis does."""

    def __init__(self) -> None:
        self.reply = b"-LOADING Redis is loading the dataset in memory\r\n"
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection, connection.makefile("rb") as stream:
                while header := stream.readline():
                    words = []
                    for _ in range(int(header[1:])):
                        stream.readline()  # $<length>
                        words.append(stream.readline().strip().upper())
                    connection.sendall(b"+OK\r\n" if words[0] == b"AUTH" else self.reply)

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone leaves it listening
        self.server.close()


def test_redis_liveness_survives_a_long_load_and_readiness_waits_for_it(baked):
    """Run the rendered probe commands: a loading Redis is alive but not ready, PONG is both."""
    helm = require_tool("helm", "run scripts/install-tools.sh")
    require_tool("redis-cli", "scripts/install-system-packages.sh installs redis-tools")
    fake = FakeRedis()
    try:
        chart = chart_dir(baked("defaults"))
        (redis,) = [
            o for o in render(helm, chart, "--set", f"redis.port={fake.port}") if o["kind"] == "StatefulSet"
        ]
        container = next(c for c in redis["spec"]["template"]["spec"]["containers"] if c["name"] == "redis")

        def passes(probe: str) -> bool:
            command = container[probe]["exec"]["command"]
            return run(command, env={"REDISCLI_AUTH": "secret"}, check=False, timeout=20).returncode == 0

        assert passes("startupProbe") and passes("livenessProbe")
        assert not passes("readinessProbe")
        fake.reply = b"+PONG\r\n"
        assert passes("startupProbe") and passes("livenessProbe") and passes("readinessProbe")
    finally:
        fake.close()
    # Nothing answers: neither alive nor ready.
    assert not passes("livenessProbe") and not passes("readinessProbe")


# --- the generated Redis password survives upgrades --------------------------------


def secret_password(objects: list[dict[str, Any]], name: str) -> str:
    secret = next(o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == name)
    return base64.b64decode(secret["data"]["redis-password"]).decode()


def test_redis_password_survives_upgrade(baked, helm, tmp_path):
    """`lookup` keeps the password of the live Secret; only a first install generates one.

    `helm template` cannot reach a cluster, so `lookup` returns nothing there.
    With --dry-run=server Helm runs `lookup` against the kubeconfig's cluster,
    here a fake API server (tests/fake_kube_api.py) that serves the Secret of
    the first render back to the second - the real Helm code path, offline.
    """
    chart = chart_dir(baked("defaults"))
    name = f"rel-{chart.name}-redis"
    api = FakeKubeApi()
    with api.running():
        kubeconfig = api.kubeconfig(tmp_path)

        def password(*args: str) -> str:
            return secret_password(
                render(
                    helm,
                    chart,
                    "--namespace",
                    "ns",
                    "--dry-run=server",
                    "--disable-openapi-validation",
                    "--kubeconfig",
                    str(kubeconfig),
                    *args,
                    release="rel",
                ),
                name,
            )

        first = password()
        assert f"/api/v1/namespaces/ns/secrets/{name}" in [p.split("?")[0] for p in api.requests]
        assert len(first) == 32
        assert password() != first, "without a live Secret every install generates a new password"
        api.put_secret(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": name, "namespace": "ns"},
                "data": {"redis-password": base64.b64encode(first.encode()).decode()},
            }
        )
        assert password("--is-upgrade") == first
        assert password("--is-upgrade", "--set", "image.tag=9.9.9") == first
        # An explicit password wins over the live one.
        assert password("--is-upgrade", "--set", "redis.auth.password=chosen") == "chosen"


def test_existing_secret_is_used_and_not_rendered(baked):
    helm = require_tool("helm", "run scripts/install-tools.sh")
    chart = chart_dir(baked("defaults"))
    objects = render(
        helm,
        chart,
        "--set",
        "redis.auth.existingSecret=my-redis",
        "--set",
        "redis.auth.existingSecretPasswordKey=pw",
    )
    assert not [o for o in objects if o["kind"] == "Secret"]
    refs = [
        env["valueFrom"]["secretKeyRef"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
        for c in o["spec"]["template"]["spec"]["containers"]
        for env in c.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    ]
    assert refs and all(ref == {"name": "my-redis", "key": "pw"} for ref in refs)
    assert not k8s_contracts.all_problems(objects, {"my-redis": ["pw"]})


# --- offline schema cache ---------------------------------------------------------


def test_schema_cache_matches_kubeconform_layout(kubeconform, tmp_path):
    """build-schemas.py writes standalone files where kubeconform looks for them."""
    result = run(
        [sys.executable, TEMPLATE_DIR / "scripts" / "build-schemas.py", "--output", tmp_path / "schemas"]
    )
    cache = Path(result.stdout.strip())
    deployment = json.loads(
        (cache / f"v{KUBERNETES_VERSION}-standalone-strict" / "deployment-apps-v1.json").read_text()
    )
    assert "/api/_definitions.json" not in json.dumps(deployment)
    assert deployment["additionalProperties"] is False
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
        "spec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
        "    spec: {containers: [{name: c, image: i, bogus: 1}]}\n"
    )
    checked = run(
        [
            kubeconform,
            "-strict",
            "-debug",
            "-kubernetes-version",
            KUBERNETES_VERSION,
            "-schema-location",
            cache,
            manifest,
        ],
        check=False,
    )
    output = checked.stdout + checked.stderr
    assert f"v{KUBERNETES_VERSION}-standalone-strict/deployment-apps-v1.json" in output
    assert "additional properties 'bogus' not allowed" in output


# --- post-generation validation policy (hooks/k8s_validation.py) ------------------


def without_tools(monkeypatch, tmp_path) -> None:
    """Hide helm, kubeconform and kustomize/kubectl from the hook."""
    for name in ("HELM", "KUBECONFORM", "KUSTOMIZE", "K8S_TOOLS_DIR"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("COUNTER_TEMPLATE_CACHE", str(empty))
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + "/usr/bin:/bin")
    if find_tool("helm") and Path(find_tool("helm")).parent == Path("/usr/bin"):
        pytest.skip("helm is installed system-wide; cannot hide it")


def test_bake_without_tools_warns_and_succeeds(tmp_path, monkeypatch, capfd):
    without_tools(monkeypatch, tmp_path)
    project = bake(tmp_path / "out", validate="warn")
    assert (project / "charts").is_dir()
    err = capfd.readouterr().err
    assert err.count("WARNING: Kubernetes validation incomplete") == 1, err
    assert "go install helm.sh/helm/v3/cmd/helm@" in err


def test_bake_without_tools_fails_when_strict(tmp_path, monkeypatch, capfd):
    without_tools(monkeypatch, tmp_path)
    with pytest.raises(FailedHookException):
        bake(tmp_path / "out", validate="strict")
    assert "ERROR: Kubernetes validation failed: helm and kubeconform not found" in capfd.readouterr().err
    assert not (tmp_path / "out" / "flask-counter").exists()


def test_bake_with_tools_validates_when_strict(tmp_path, capfd, kubeconform):
    require_tool("helm", "run scripts/install-tools.sh")
    project = bake(tmp_path / "out", validate="strict")
    assert (project / "charts").is_dir()
    assert "Kubernetes validation: all" in capfd.readouterr().err


def test_bake_fails_when_strict_and_invalid(tmp_path, kubeconform, monkeypatch, capfd):
    """A failed check fails a strict bake and shows kubeconform's own message."""
    require_tool("helm", "run scripts/install-tools.sh")
    # A Kubernetes version without a schema makes every resource fail - the
    # cheapest real validation failure that needs no template change.
    (tmp_path / "no-schemas").mkdir()
    monkeypatch.setenv("KUBECONFORM_SCHEMA_LOCATION", str(tmp_path / "no-schemas"))
    with pytest.raises(FailedHookException):
        bake(tmp_path / "out", validate="strict")
    err = capfd.readouterr().err
    assert "ERROR: Kubernetes validation found problems" in err
    assert "could not find schema for Deployment" in err


def test_unreachable_kubernetes_schemas_are_one_line_and_no_downloads(
    tmp_path, kubeconform, monkeypatch, capfd
):
    """Offline, kubeconform's online default cannot be read: one failed check that names the
    variable and `make schemas`, helm lint still runs, and no per-object download errors."""
    require_tool("helm", "run scripts/install-tools.sh")
    # .invalid never resolves (RFC 2606), on any machine: the offline case, online too.
    monkeypatch.setenv("KUBECONFORM_SCHEMA_LOCATION", "https://schemas.invalid/{{ .ResourceKind }}.json")
    project = bake(tmp_path / "out", validate="warn")
    assert (project / "charts").is_dir()
    err = capfd.readouterr().err
    assert err.count("FAIL Kubernetes schemas") == 1, err
    assert "KUBECONFORM_SCHEMA_LOCATION=https://schemas.invalid/" in err
    assert "`make schemas`" in err
    assert "ok   helm lint --strict (defaults)" in err, err
    assert "FAIL helm lint" not in err and "kubeconform chart" not in err, err
    assert "failed downloading" not in err


def test_unreachable_crd_schemas_leave_out_only_the_crd_kinds(tmp_path, kubeconform, monkeypatch, capfd):
    """The Kubernetes schemas are there, the CRD ones are not: every Kubernetes object is still
    checked, and the CRD-backed kinds are named once instead of failing one by one."""
    require_tool("helm", "run scripts/install-tools.sh")
    monkeypatch.setenv("CRD_SCHEMA_LOCATION", "https://crds.invalid/")
    project = bake(tmp_path / "out", validate="warn")
    validator = load_module(project / "scripts" / "validate_k8s.py", f"validate_k8s_crd_{os.getpid()}")
    report = validator.run_checks(project)
    (failed,) = report.failed
    assert failed.name == "CRD schemas"
    assert "ServiceMonitor, PrometheusRule, VirtualService, DestinationRule were not checked" in failed.output
    assert "CRD_SCHEMA_LOCATION=https://crds.invalid/" in failed.command
    kubeconform_runs = [check for check in report.checks if check.name.startswith("kubeconform")]
    assert len(kubeconform_runs) >= 5 and all(check.ok for check in kubeconform_runs)
    assert all("-skip ServiceMonitor" in check.command for check in kubeconform_runs)
    assert capfd.readouterr().err.count("FAIL CRD schemas") == 1


def test_validation_mode_is_checked(tmp_path):
    sys.path.insert(0, str(TEMPLATE_DIR))
    try:
        from hooks import k8s_validation
    finally:
        sys.path.remove(str(TEMPLATE_DIR))
    with pytest.raises(k8s_validation.InvalidMode, match="COUNTER_TEMPLATE_VALIDATE='loud' is not allowed"):
        k8s_validation.mode_from_env({"COUNTER_TEMPLATE_VALIDATE": "loud"})
    assert k8s_validation.mode_from_env({}) == "warn"
    assert k8s_validation.validate_project(tmp_path, mode="off") is True
