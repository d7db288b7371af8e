"""Deploy baked projects into a real control plane and check what it does with them.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as plain
processes (scripts/kube-cluster.sh, `make cluster-up`); KWOK simulates four
nodes (node-0..2 in zone-a, node-3 alone in zone-b), so pods are scheduled,
counted by controllers and marked Ready, but no container runs.

The scheduler has two extra profiles that work against the rule under test
(scripts/kube-scheduler-config.yaml): "bin-packing" piles pods onto one node,
"spreading" keeps them off busy nodes. Each scheduling test picks the profile
that would defeat the chart's rule, so it passes only when the rule does the
work; with the chart's affinity blocks removed those tests fail.

Every test uses its own namespace; they share one cluster and run one after
another on a single xdist worker (the "cluster" group).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import run, wait_until
from kube_cluster import CRDS, RELEASE, Cluster

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]


def wait_for(probe, what: str, timeout: float = 60):
    return wait_until(what, probe, timeout=timeout, interval=0.5)


# --- make deploy / make undeploy --------------------------------------------------


def release_objects(cluster: Cluster, namespace: str) -> list[str]:
    """Every namespaced object labelled as part of the release, as kind/name."""
    kinds = cluster.kubectl(
        "api-resources", "--verbs=list", "--namespaced", "--output", "name"
    ).stdout.split()
    listed = cluster.get(
        ",".join(k for k in kinds if k not in ("events", "events.events.k8s.io")),
        "--namespace",
        namespace,
        "--selector",
        f"app.kubernetes.io/instance={RELEASE}",
    )
    return sorted(f"{item['kind']}/{item['metadata']['name']}" for item in listed["items"])


@pytest.mark.parametrize(
    ("variant", "expected_kinds"),
    [
        (
            "defaults",
            {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"},
        ),
        (
            "all-on",
            {
                "Deployment",
                "Ingress",
                "VirtualService",
                "DestinationRule",
                "ServiceMonitor",
                "PrometheusRule",
            },
        ),
    ],
)
def test_make_deploy_installs_and_make_undeploy_removes(baked, cluster, namespace, variant, expected_kinds):
    project = baked(variant)
    cluster.make(project, "deploy", namespace)  # helm upgrade --install --atomic --wait

    status = json.loads(cluster.helm("status", RELEASE, "-n", namespace, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    deployed = {line.split("/")[0] for line in release_objects(cluster, namespace)}
    # The API server accepted every kind the chart rendered, the CRD-backed ones included.
    assert expected_kinds <= deployed, deployed
    for deployment in cluster.get("deployments", "-n", namespace)["items"]:
        assert deployment["status"].get("readyReplicas", 0) >= 1, deployment["metadata"]["name"]
    assert all(
        pod["spec"].get("nodeName")
        for pod in cluster.pods(namespace, f"app.kubernetes.io/instance={RELEASE}")
    )

    # `helm test` creates the test pod; on simulated nodes nothing executes, so the
    # pod stays Running and helm gives up. Proven here: the hook object and its check.
    tested = cluster.helm("test", RELEASE, "-n", namespace, "--timeout", "5s", check=False)
    assert tested.returncode != 0 and "timed out" in tested.stderr
    (test_pod,) = cluster.pods(namespace, "app.kubernetes.io/component=test")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["command"][-1].endswith("/health/ready")

    cluster.make(project, "undeploy", namespace)
    # Only the Redis data stays, as `make help` and the guide say. Controllers delete
    # the ReplicaSets, pods and endpoint slices after helm returns.
    wait_for(
        lambda: release_objects(cluster, namespace) == [f"PersistentVolumeClaim/data-{RELEASE}-redis-0"],
        "everything of the release but the Redis claim gone",
    )


def secret_refs(pod_template: dict[str, Any]) -> set[str]:
    """Names of the Secrets a pod template's containers read variables from."""
    return {
        variable["valueFrom"]["secretKeyRef"]["name"]
        for container in pod_template["spec"]["containers"]
        for variable in container.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    }


def test_make_secret_then_make_deploy_as_the_guide_says(baked, cluster, namespace):
    """docs/appendix.md's order: the release uses the Secret `make secret` wrote, never its own."""
    project = baked("defaults")
    password = re.search(r"^REDIS_PASSWORD=(.+)$", (project / ".env").read_text(), re.MULTILINE).group(1)
    cluster.make(project, "secret", namespace)
    deployed = cluster.make(project, "deploy", namespace)
    assert f"Redis password from the Secret {RELEASE}-redis (made by make secret)" in deployed.stdout

    secret = cluster.get("secret", f"{RELEASE}-redis", "-n", namespace)
    assert base64.b64decode(secret["data"]["redis-password"]).decode() == password
    assert "meta.helm.sh/release-name" not in secret["metadata"].get("annotations", {})
    (redis,) = cluster.get("statefulsets", "-n", namespace)["items"]
    (app,) = cluster.get("deployments", "-n", namespace)["items"]
    for workload in (redis, app):
        assert secret_refs(workload["spec"]["template"]) == {f"{RELEASE}-redis"}
    # A second deploy (an upgrade) keeps to it as well.
    assert "made by make secret" in cluster.make(project, "deploy", namespace).stdout


# --- scheduling ---------------------------------------------------------------------


def test_required_anti_affinity_puts_replicas_on_distinct_nodes(baked, cluster, namespace):
    project = baked("defaults")
    cluster.make(
        project,
        "deploy",
        namespace,
        "--set scheduling.schedulerName=bin-packing",  # would put all replicas on one node
        "--set scheduling.podAntiAffinity.mode=required",
        "--set autoscaling.enabled=false --set replicaCount=3",
    )
    placement = cluster.placement(namespace)
    assert sum(placement.values()) == 3 and max(placement.values()) == 1, placement

    # One replica more than there are nodes: the extra one stays Pending rather than share.
    nodes = len(cluster.node_zones())
    cluster.kubectl("scale", "deployment", RELEASE, "-n", namespace, f"--replicas={nodes + 1}")

    def unschedulable() -> list[dict]:
        return [
            pod
            for pod in cluster.pods(namespace)
            if any(
                c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
                for c in pod["status"].get("conditions", [])
            )
        ]

    (pending,) = wait_for(unschedulable, "a replica left Pending by the required anti-affinity")
    assert (
        "anti-affinity"
        in next(c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")["message"]
    )

    # The scheduled ones may still be on their way to Running (KWOK marks them).
    def all_running() -> Counter[str] | None:
        placed = cluster.placement(namespace)
        return placed if sum(placed.values()) == nodes else None

    placement = wait_for(all_running, f"{nodes} replicas running")
    assert max(placement.values()) == 1, placement


def test_preferred_anti_affinity_spreads_as_far_as_possible(baked, cluster, namespace):
    nodes = len(cluster.node_zones())
    cluster.make(
        baked("defaults"),
        "deploy",
        namespace,
        "--set scheduling.schedulerName=bin-packing",
        "--set scheduling.podAntiAffinity.mode=preferred",
        f"--set autoscaling.enabled=false --set replicaCount={2 * nodes}",
    )
    placement = cluster.placement(namespace)
    # Twice as many replicas as nodes: every node gets two, none more.
    assert sorted(placement.values()) == [2] * nodes, placement


def test_topology_spread_balances_zones(baked, cluster, namespace):
    cluster.make(
        baked("enable_pod_anti_affinity=false"),
        "deploy",
        namespace,
        "--set scheduling.schedulerName=bin-packing",
        "--set scheduling.topologySpread.enabled=true",
        "--set scheduling.topologySpread.whenUnsatisfiable=DoNotSchedule",
        "--set autoscaling.enabled=false --set replicaCount=4",
    )
    zones = cluster.node_zones()
    per_zone = Counter()
    for node, count in cluster.placement(namespace).items():
        per_zone[zones[node]] += count
    # zone-b is a single node and zone-a three: spreading by zone gives 2 + 2.
    assert per_zone == {"zone-a": 2, "zone-b": 2}, per_zone


def test_pod_affinity_joins_the_redis_node(baked, cluster, namespace):
    cluster.make(
        baked("enable_pod_anti_affinity=false"),
        "deploy",
        namespace,
        "--set scheduling.schedulerName=spreading",  # would keep app pods off the busy Redis node
        "--set autoscaling.enabled=false --set replicaCount=3",
    )
    (redis_node,) = cluster.placement(namespace, "app.kubernetes.io/component=redis")
    # On a first install app pods may be scheduled before the Redis pod exists, and a
    # preference has nothing to follow yet. Pods scheduled after it (a restart, an
    # upgrade, a rescheduled pod) join its node.
    cluster.kubectl("rollout", "restart", f"deployment/{RELEASE}", "-n", namespace)
    cluster.kubectl("rollout", "status", f"deployment/{RELEASE}", "-n", namespace, "--timeout=90s")
    wait_for(lambda: sum(cluster.placement(namespace).values()) == 3, "the old pods gone")
    assert cluster.placement(namespace) == {redis_node: 3}


def test_affinity_toggles_off_leave_no_affinity_terms(baked, cluster, namespace):
    cluster.make(baked("all-off"), "deploy", namespace)
    for deployment in cluster.get("deployments", "-n", namespace)["items"]:
        spec = deployment["spec"]["template"]["spec"]
        assert "affinity" not in spec and "topologySpreadConstraints" not in spec


# --- high availability --------------------------------------------------------------


def evict(cluster: Cluster, namespace: str, pod: str) -> subprocess.CompletedProcess[str]:
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": namespace},
    }
    return cluster.kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
        "-f",
        "-",
        input=json.dumps(eviction),
        check=False,
    )


def test_hpa_keeps_the_minimum_replicas(baked, cluster, namespace):
    cluster.make(baked("defaults"), "deploy", namespace)
    (hpa,) = cluster.get("hpa", "-n", namespace)["items"]
    minimum = hpa["spec"]["minReplicas"]
    assert minimum >= 2
    # The chart leaves spec.replicas to the HPA; its controller raises it to the minimum.
    wait_for(
        lambda: cluster.get("deployment", RELEASE, "-n", namespace)["status"].get("readyReplicas") == minimum,
        f"the HPA scaling {RELEASE} to minReplicas={minimum}",
    )


def test_pdb_blocks_an_eviction_below_the_minimum(baked, cluster, namespace):
    project = baked("defaults")
    common = "--set autoscaling.enabled=false --set replicaCount=2"
    cluster.make(project, "deploy", namespace, common, "--set podDisruptionBudget.minAvailable=2")
    wait_for(
        lambda: cluster.get("pdb", RELEASE, "-n", namespace)["status"].get("currentHealthy") == 2,
        "the disruption controller counting 2 healthy pods",
    )
    victim = cluster.pods(namespace)[0]["metadata"]["name"]
    blocked = evict(cluster, namespace, victim)
    assert blocked.returncode != 0 and "disruption budget" in blocked.stderr, blocked.stderr

    # The same eviction passes once the budget allows one pod down: the PDB decides.
    cluster.make(project, "deploy", namespace, common, "--set podDisruptionBudget.minAvailable=1")
    wait_for(
        lambda: cluster.get("pdb", RELEASE, "-n", namespace)["status"].get("disruptionsAllowed") == 1,
        "the PDB allowing one disruption",
    )
    allowed = evict(cluster, namespace, victim)
    assert allowed.returncode == 0, allowed.stderr


# --- upgrades -----------------------------------------------------------------------


def redis_password(cluster: Cluster, namespace: str) -> str:
    secret = cluster.get("secret", f"{RELEASE}-redis", "-n", namespace)
    return base64.b64decode(secret["data"]["redis-password"]).decode()


def pod_template(cluster: Cluster, namespace: str) -> tuple[str, str]:
    deployment = cluster.get("deployment", RELEASE, "-n", namespace)
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    return annotations["checksum/config"], deployment["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"
    ]


def test_upgrade_keeps_the_password_and_rolls_out_config_changes(baked, cluster, namespace):
    project = baked("defaults")
    cluster.make(project, "deploy", namespace)
    password = redis_password(cluster, namespace)
    checksum, revision = pod_template(cluster, namespace)
    assert len(password) >= 16

    # A value outside the ConfigMap: same password (lookup on the real server), no rollout.
    cluster.make(project, "deploy", namespace, "--set autoscaling.maxReplicas=7")
    assert redis_password(cluster, namespace) == password
    assert pod_template(cluster, namespace) == (checksum, revision)

    # A ConfigMap change: new checksum, so a new ReplicaSet rolls the pods.
    cluster.make(project, "deploy", namespace, "--set app.logLevel=DEBUG")
    assert redis_password(cluster, namespace) == password
    new_checksum, new_revision = pod_template(cluster, namespace)
    assert new_checksum != checksum and int(new_revision) == int(revision) + 1
    config = cluster.get("configmap", RELEASE, "-n", namespace)
    assert config["data"]["LOG_LEVEL"] == "DEBUG"


# --- plain manifests and custom resources -------------------------------------------


def test_plain_manifests_apply_as_the_readme_says(baked, cluster):
    """k8s/README.md's deploy block, run as written with this cluster's kubectl."""
    project = baked("defaults")
    readme = (project / "k8s" / "README.md").read_text(encoding="utf-8")
    lines = re.search(r"## Deploy\s+```bash\n(.*?)```", readme, re.DOTALL).group(1).splitlines()
    namespace = re.search(r"kubectl create namespace (\S+)", lines[0]).group(1)
    apply = next(i for i, line in enumerate(lines) if line.startswith("kubectl apply --namespace"))
    env = {**cluster.env, "PATH": f"{cluster.bin_dir}:{os.environ['PATH']}"}

    def bash(script_lines: list[str]) -> str:
        return run(["bash", "-euo", "pipefail", "-c", "\n".join(script_lines)], cwd=project, env=env).stdout

    cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true")
    try:
        # Namespace and Secret as documented, then a server-side dry run of the
        # manifests: admission and schema checks of the API server, nothing stored.
        dry_run = bash([*lines[:apply], lines[apply] + " --dry-run=server"])
        assert "(server dry run)" in dry_run
        assert not cluster.get("deployments", "-n", namespace)["items"]
        assert set(cluster.get("secret", f"{RELEASE}-redis", "-n", namespace)["data"]) == {"redis-password"}
        # Then for real, up to the rollout the README waits for.
        bash(lines[apply:])
        wait_for(
            lambda: (
                cluster.get("statefulset", f"{RELEASE}-redis", "-n", namespace)["status"].get("readyReplicas")
                == 1
            ),
            "the Redis StatefulSet ready (its claim bound to a volume of the default StorageClass)",
        )
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def without_crds(cluster: Cluster) -> Iterator[None]:
    """Remove the Istio and Prometheus Operator CRDs for one test, then put them back."""
    items = cluster.get("crd", *CRDS)["items"]
    cluster.kubectl("delete", "crd", *CRDS, "--wait=true")
    wait_for(lambda: "networking.istio.io" not in cluster.kubectl("api-versions").stdout, "CRDs gone")
    try:
        yield
    finally:
        for item in items:
            item["metadata"] = {"name": item["metadata"]["name"]}
            item.pop("status", None)
        crds = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        cluster.kubectl("apply", "--server-side", "-f", "-", input=crds)
        cluster.kubectl("wait", "--for=condition=Established", "crd", *CRDS, "--timeout=60s")


def test_without_crds_the_chart_leaves_custom_resources_out(baked, cluster, namespace, without_crds):
    cluster.make(baked("all-on"), "deploy", namespace)
    manifest = cluster.helm("get", "manifest", RELEASE, "-n", namespace).stdout
    kinds = set(re.findall(r"^kind: (\w+)", manifest, re.MULTILINE))
    assert not kinds & {"VirtualService", "DestinationRule", "ServiceMonitor", "PrometheusRule"}, kinds
    # The canary Deployment is still there; only the routing needs Istio.
    assert {"Deployment", "StatefulSet"} <= kinds
    notes = cluster.helm("get", "notes", RELEASE, "-n", namespace).stdout
    assert "no networking.istio.io/v1 API" in notes and "no monitoring.coreos.com/v1 API" in notes


def test_crds_validate_custom_resources(cluster, namespace):
    """The CRDs carry the schemas, so the API server rejects a malformed object."""
    route = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"hosts": ["app"], "http": [{"retries": {"attempts": "three"}}]},
    }
    rejected = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(route), check=False)
    assert rejected.returncode != 0 and "attempts" in rejected.stderr, rejected.stderr
    route["spec"]["http"][0]["retries"]["attempts"] = 3
    cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(route))
