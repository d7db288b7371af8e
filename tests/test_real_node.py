"""Run baked projects on the local cluster's real node and check what the pods really do.

`make node-up` (scripts/kube-cluster.sh node-up, scripts/real-node.sh) adds a node whose pods
run: a kubelet with its own containerd, runc, Debian's CNI plugins and CoreDNS. It carries the
label and taint counter-template.local/real-node=true, so only these tests, whose values select
and tolerate it, put pods there; the scheduling tests keep the simulated nodes.

The project goes through its own documented sequence: `make build` (with the offline stand-in
base image), its image and the Redis stand-ins imported into the node's containerd (no
registry), `make secret` from an env file, `make deploy` with the Secret as Redis' password.
Then the pods are Ready by their real probes, the ClusterIP Service answers from this host
through kube-proxy, `make port-forward` and `kubectl logs` reach the pod through the kubelet,
the app's readiness tells a wrong password apart, and Redis' data outlives its pod.

Every test has its own namespace and they run on the "cluster" xdist worker. Without a real
node they skip with the reason (fail under COUNTER_TEMPLATE_STRICT).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_containers import (
    STANDIN_BUSYBOX_IMAGE,
    STANDIN_PYTHON_IMAGE,
    STANDIN_REDIS_EXPORTER_IMAGE,
    STANDIN_REDIS_IMAGE,
)

from helpers import SEEN_COUNT, free_port, make, missing, require_tool, run, wait_until
from kube_cluster import CLUSTER_SCRIPT, RELEASE, Cluster, release_volumes

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]

NODE = "real-node"
NODE_LABEL = "counter-template.local/real-node"
# The node's CoreDNS: a host process at the node's address (scripts/real-node.sh NODE_IP, the
# kubelet's clusterDNS), no kube-dns pod, so NetworkPolicies admit it by address.
NODE_DNS = "198.18.0.1/32"
SECRET = f"{RELEASE}-redis"  # make secret's SECRET_NAME
IMAGE_REPOSITORY, IMAGE_TAG = RELEASE, "real-node"


def image_variable(variable: str, standin: str) -> str:
    return os.environ.get(variable) or standin


# What puts a pod on the real node: its label, and the toleration of its taint.
PLACEMENT = {
    "nodeSelector": {NODE_LABEL: "true"},
    "tolerations": [{"key": NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
}


def image_values(image: str) -> dict[str, str]:
    repository, tag = image.rsplit(":", 1)
    return {"repository": repository, "tag": tag}


def on_real_node(redis_image: str, exporter_image: str, test_image: str) -> dict[str, Any]:
    """Chart values that place every pod on the real node, with the images imported there."""
    return {
        **PLACEMENT,
        "tests": {"image": image_values(test_image)},
        "networkPolicy": {"app": {"dnsIpBlocks": [NODE_DNS]}},
        "redis": {
            **PLACEMENT,
            "image": image_values(redis_image),
            "metrics": {"image": image_values(exporter_image)},
            "persistence": {"storageClass": NODE},  # local volumes on the node (scripts/real-node.sh)
            "auth": {"existingSecret": SECRET},  # the password `make secret` wrote
        },
    }


@dataclass
class RealNode:
    cluster: Cluster
    docker: str
    python_image: str
    redis_image: str
    exporter_image: str
    test_image: str  # the chart's `helm test` pod (busybox)

    def load(self, project: Path) -> None:
        """Build the project's image and load it and the stand-ins into the node (no registry);
        free the node's volumes for its Redis."""
        image = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
        make(project, "build", f"IMAGE={image}", f"PYTHON_IMAGE={self.python_image}", timeout=900)
        self.import_images(image, self.redis_image, self.exporter_image, self.test_image)
        # 8 volumes, more tests: each deploy empties and releases what earlier tests' claims left.
        recycle_volumes(self.cluster)
        release_volumes(self.cluster, "--selector", f"{NODE_LABEL}=true")

    def import_images(self, *images: str) -> None:
        """docker save | the node's containerd (kube-cluster.sh node-import): no registry involved."""
        run(
            [
                "bash",
                "-o",
                "pipefail",
                "-c",
                'docker save "${@:2}" | "$1" node-import',
                "-",
                CLUSTER_SCRIPT,
                *images,
            ],
            env={"PATH": f"{Path(self.docker).parent}:{os.environ['PATH']}"},
            timeout=300,
        )

    def deploy(
        self,
        project: Path,
        namespace: str,
        tmp_path: Path,
        password: str,
        values: dict[str, Any] | None = None,
    ) -> None:
        """The project's documented sequence: build, load, secret, deploy.

        ``values``: more chart values (top-level keys replace on_real_node's).
        """
        self.load(project)
        env_file = tmp_path / "real-node.env"
        env_file.write_text(f"REDIS_PASSWORD={password}\n")
        values_file = tmp_path / "real-node-values.yaml"
        values_file.write_text(
            yaml.safe_dump(
                {**on_real_node(self.redis_image, self.exporter_image, self.test_image), **(values or {})}
            )
        )
        kubectl = f"KUBECTL={self.cluster.bin_dir / 'kubectl'}"
        make(
            project, "secret", f"NAMESPACE={namespace}", kubectl, f"ENV_FILE={env_file}", env=self.cluster.env
        )
        self.make_deploy(project, namespace, values_file, IMAGE_TAG)

    def make_deploy(self, project: Path, namespace: str, values_file: Path, tag: str) -> None:
        """`make deploy` (helm upgrade --install --atomic --wait) of image tag ``tag``."""
        make(
            project,
            "deploy",
            f"NAMESPACE={namespace}",
            f"KUBECTL={self.cluster.bin_dir / 'kubectl'}",
            f"HELM={self.cluster.helm_binary}",
            f"REGISTRY_IMAGE={IMAGE_REPOSITORY}",
            f"TAG={tag}",
            "HELM_TIMEOUT=3m",
            f"ARGS=--values {values_file}",
            env=self.cluster.env,
            timeout=300,
        )

    def service_url(self, namespace: str) -> str:
        """The app Service's ClusterIP URL, once kube-proxy routes it (until its rules for the
        new endpoints are synced, it rejects: connection refused)."""
        service = self.cluster.get("service", RELEASE, "--namespace", namespace)
        url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"
        wait_until(
            "kube-proxy to route the app Service",
            lambda: get(f"{url}/health/ready")[0] == 200,
            timeout=30,
        )
        return url


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> RealNode:
    node = cluster.kubectl("get", "node", NODE, "--output", "json", check=False)
    if node.returncode != 0:
        missing(f"the local cluster has no real node ({node.stderr.strip()}); `make node-up` adds one")
    ready = [c for c in json.loads(node.stdout)["status"]["conditions"] if c["type"] == "Ready"]
    if not ready or ready[0]["status"] != "True":
        pytest.fail(f"node {NODE} is not Ready: {ready}", pytrace=False)
    docker = require_tool("docker", "scripts/docker-engine.sh installs and starts it")
    real = RealNode(
        cluster,
        docker,
        image_variable("PYTHON_IMAGE", STANDIN_PYTHON_IMAGE),
        image_variable("REDIS_IMAGE", STANDIN_REDIS_IMAGE),
        image_variable("REDIS_EXPORTER_IMAGE", STANDIN_REDIS_EXPORTER_IMAGE),
        image_variable("BUSYBOX_IMAGE", STANDIN_BUSYBOX_IMAGE),
    )
    for image in (real.python_image, real.redis_image, real.exporter_image, real.test_image):
        if run([docker, "image", "inspect", image], check=False).returncode != 0:
            missing(f'no local image {image}; `eval "$(scripts/base-images.sh)"` builds the stand-ins')
    return real


def recycle_volumes(cluster: Cluster) -> None:
    """Empty the real node's volumes no claim holds, so each Redis starts with no data.

    The volumes are directories on this host (local PersistentVolumes, Retain);
    release_volumes then makes the Released ones bindable again.
    """
    for volume in cluster.get("persistentvolumes", "--selector", f"{NODE_LABEL}=true")["items"]:
        if volume["status"].get("phase") != "Bound":
            path = Path(volume["spec"]["local"]["path"])
            for entry in path.iterdir():
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def get(url: str) -> tuple[int, str]:
    """Status and body of one GET (an HTTP error status is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def count(url: str) -> int:
    """GET / once: the count the page shows."""
    status, body = get(f"{url}/")
    assert status == 200, (status, body)
    seen = SEEN_COUNT.search(body)
    assert seen, f"no count in the page: {body!r}"
    return int(seen.group(1))


@contextmanager
def port_forward(project: Path, namespace: str, cluster: Cluster) -> Iterator[str]:
    """`make port-forward` on a free loopback port, running until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "-C",
            project,
            "port-forward",
            f"NAMESPACE={namespace}",
            f"KUBECTL={cluster.bin_dir / 'kubectl'}",
            f"LOCAL_PORT={port}",
        ],
        env={**os.environ, **cluster.env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # make and its kubectl stop together
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            "make port-forward to answer", lambda: process.poll() is None and get(f"{url}/health/live")
        )
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_default_project_runs_on_the_real_node(baked, cluster, real_node, namespace, tmp_path):
    project = baked("defaults")
    real_node.deploy(project, namespace, tmp_path, secrets.token_urlsafe(24))

    # make deploy waited (--atomic --wait) for every pod to be Ready by its own probes.
    pods = cluster.get("pods", "--namespace", namespace)["items"]
    components = {pod["metadata"]["labels"]["app.kubernetes.io/component"] for pod in pods}
    assert components == {"app", "redis"}, components
    for pod in pods:
        name = pod["metadata"]["name"]
        assert pod["spec"]["nodeName"] == NODE, name
        assert pod["status"]["phase"] == "Running", name
        for container in pod["status"]["containerStatuses"]:
            assert container["ready"] and container["restartCount"] == 0, (name, container)

    # Through the ClusterIP Service from this host: kube-proxy, a pod, the password, Redis.
    url = real_node.service_url(namespace)
    assert [count(url) for _ in range(3)] == [1, 2, 3]

    # The project's own `make port-forward` (API server -> kubelet -> pod), on loopback.
    with port_forward(project, namespace, real_node.cluster) as local:
        assert count(local) == 4

    # From a pod, by the Service's DNS name (CoreDNS, then kube-proxy on the node).
    pages = client_pod(
        real_node, namespace, f"http://{RELEASE}.{namespace}.svc.cluster.local/", "/", "/", "/metrics"
    )
    assert [int(SEEN_COUNT.search(page).group(1)) for page in pages[:2]] == [5, 6], pages[:2]
    assert 'flask_http_request_total{method="GET",status="200"}' in pages[2], pages[2][:500]

    # kubectl logs goes through the API server to the kubelet; the app logs JSON lines.
    logs = cluster.kubectl("logs", "--namespace", namespace, f"deployment/{RELEASE}", "--container", "app")
    records = [json.loads(line) for line in logs.stdout.splitlines() if line.strip()]
    assert records, "no log lines"
    assert any("GET" in json.dumps(record) for record in records), records[-5:]

    # The chart's own `helm test` pod (wget /health/ready by the Service's short name) succeeds.
    assert_helm_test_passes(cluster, namespace)


def assert_helm_test_passes(cluster: Cluster, namespace: str) -> None:
    tested = cluster.helm("test", RELEASE, "--namespace", namespace, "--timeout", "2m", check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Phase: Succeeded" in " ".join(tested.stdout.split()), tested.stdout


# One JSON string per line: each body, whole. The first request retries a refused
# connection for a while: the NetworkPolicy engine admits a new pod a moment after it starts.
CLIENT = """
import json, sys, time, urllib.request
base = sys.argv[1].rstrip("/")
for attempt in range(30):
    try:
        urllib.request.urlopen(base + "/health/live", timeout=5).read()
        break
    except OSError:
        time.sleep(1)
for path in sys.argv[2:]:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        print(json.dumps(response.read().decode()))
"""


def client_pod(real_node: RealNode, namespace: str, base_url: str, *paths: str) -> list[str]:
    """GET base_url + each path from a pod on the real node (the app's image has Python): the bodies.

    The pod carries the labels of the chart's `helm test` pod, a client the chart lets in.
    """
    name = f"client-{secrets.token_hex(3)}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": RELEASE,
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "test",
            },
        },
        "spec": {
            **PLACEMENT,
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "containers": [
                {
                    "name": "client",
                    "image": f"{IMAGE_REPOSITORY}:{IMAGE_TAG}",
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", CLIENT, base_url, *paths],
                }
            ],
        },
    }
    cluster = real_node.cluster
    cluster.kubectl("apply", "--filename", "-", input=json.dumps(pod))

    def finished() -> str | None:
        phase = cluster.get("pod", name, "--namespace", namespace)["status"].get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until("the client pod to finish", finished, timeout=90, interval=1)
    output = cluster.kubectl("logs", "--namespace", namespace, name).stdout
    assert phase == "Succeeded", output
    return [json.loads(line) for line in output.splitlines()]


def test_a_wrong_redis_password_makes_the_app_unready_not_crash(
    baked, cluster, real_node, namespace, tmp_path
):
    """The app reads the Secret's password: change it under a running Redis and the app says why."""
    project = baked("defaults")
    real_node.deploy(project, namespace, tmp_path, secrets.token_urlsafe(24))
    # A new password in the Secret; Redis keeps the one it started with, the app restarts with the new.
    (tmp_path / "real-node.env").write_text(f"REDIS_PASSWORD={secrets.token_urlsafe(24)}\n")
    make(
        project,
        "secret",
        f"NAMESPACE={namespace}",
        f"KUBECTL={cluster.bin_dir / 'kubectl'}",
        f"ENV_FILE={tmp_path / 'real-node.env'}",
        env=cluster.env,
    )
    cluster.kubectl("rollout", "restart", f"deployment/{RELEASE}", "--namespace", namespace)

    def new_pods_running() -> list[dict[str, Any]] | None:
        pods = [
            pod
            for pod in cluster.pods(namespace)
            if pod["metadata"].get("annotations", {}).get("kubectl.kubernetes.io/restartedAt")
            and pod["status"].get("phase") == "Running"
        ]
        return pods or None

    pod = wait_until("a restarted app pod running", new_pods_running, timeout=90, interval=1)[0]
    name = pod["metadata"]["name"]
    # From this host straight to the pod's address on the node's bridge (198.18.1.0/24).
    url = f"http://{pod['status']['podIP']}:{pod['spec']['containers'][0]['ports'][0]['containerPort']}"
    _, body = wait_until(
        "readiness to report the auth failure",
        lambda: (answer := get(f"{url}/health/ready"))[0] == 503 and answer,
        timeout=60,
        interval=1,
    )
    assert "authentication" in json.loads(body)["reason"], body

    # Unready, not dead: /health/live does not need Redis, so after three liveness
    # periods (failureThreshold 3 x 10 s) the kubelet has still not restarted it.
    time.sleep(31)
    status_now = cluster.get("pod", name, "--namespace", namespace)["status"]
    app = next(c for c in status_now["containerStatuses"] if c["name"] == "app")
    assert app["restartCount"] == 0 and not app["ready"], app
    assert get(f"{url}/health/ready")[0] == 503


def test_the_count_survives_the_redis_pod(baked, cluster, real_node, namespace, tmp_path):
    """Redis keeps its data on the claim's volume: a new Redis pod continues the count."""
    project = baked("defaults")
    real_node.deploy(project, namespace, tmp_path, secrets.token_urlsafe(24))
    url = real_node.service_url(namespace)
    assert [count(url) for _ in range(3)] == [1, 2, 3]

    redis = f"{RELEASE}-redis-0"
    old_uid = cluster.get("pod", redis, "--namespace", namespace)["metadata"]["uid"]
    cluster.kubectl("delete", "pod", redis, "--namespace", namespace, "--wait=true")
    cluster.kubectl(
        "rollout", "status", f"statefulset/{RELEASE}-redis", "--namespace", namespace, "--timeout=120s"
    )
    assert cluster.get("pod", redis, "--namespace", namespace)["metadata"]["uid"] != old_uid
    # The app reconnects on its own (unready, out of the Service, until then).
    wait_until("the app to reach the new Redis", lambda: get(f"{url}/health/ready")[0] == 200, timeout=60)
    assert count(url) == 4


def test_all_features_project_runs_and_passes_helm_test(baked, cluster, real_node, namespace, tmp_path):
    """Every toggle on: HPA, PDB, affinity, metrics sidecar, ServiceMonitor, dashboards and the
    Istio canary (a second Deployment; its VirtualService is stored, not acted on: no Istio here)."""
    project = baked("all-on")
    canary = {"istio": {"canary": {"image": {"tag": IMAGE_TAG}}}}
    real_node.deploy(project, namespace, tmp_path, secrets.token_urlsafe(24), values=canary)

    pods = cluster.get(
        "pods", "--namespace", namespace, "--selector", f"app.kubernetes.io/instance={RELEASE}"
    )
    tracks = set()
    for pod in pods["items"]:
        name, labels = pod["metadata"]["name"], pod["metadata"]["labels"]
        assert pod["spec"]["nodeName"] == NODE and pod["status"]["phase"] == "Running", name
        assert all(c["ready"] for c in pod["status"]["containerStatuses"]), (name, pod["status"])
        if labels["app.kubernetes.io/component"] == "app":
            tracks.add(labels["version"])
    assert tracks == {"v1", "v2"}, tracks
    # Both tracks serve the one Service and count in the one Redis.
    url = real_node.service_url(namespace)
    assert [count(url) for _ in range(3)] == [1, 2, 3]
    assert_helm_test_passes(cluster, namespace)


def test_a_configmap_change_rolls_the_pods_to_the_new_greeting(
    baked, cluster, real_node, namespace, tmp_path
):
    """The Deployment carries the ConfigMap's checksum: a new greeting is a rollout, then served."""
    project = baked("defaults")
    real_node.deploy(project, namespace, tmp_path, secrets.token_urlsafe(24))
    url = real_node.service_url(namespace)
    assert "Hello from Flask Counter!" in get(f"{url}/")[1]

    def serving() -> set[str]:  # app pods not on their way out
        return {
            p["metadata"]["name"] for p in cluster.pods(namespace) if "deletionTimestamp" not in p["metadata"]
        }

    before = serving()

    values_file = tmp_path / "real-node-values.yaml"  # deploy's values, plus the new greeting
    values = yaml.safe_load(values_file.read_text())
    values_file.write_text(yaml.safe_dump({**values, "app": {"greeting": "Hej from the new ConfigMap"}}))
    real_node.make_deploy(project, namespace, values_file, IMAGE_TAG)  # --wait: the rollout is done

    # The old pods drain (preStop sleep, gunicorn's graceful stop) after the rollout is done.
    after = wait_until(
        "only pods of the new ReplicaSet", lambda: (now := serving()) and not now & before and now
    )
    assert after, before
    assert cluster.get("configmap", RELEASE, "--namespace", namespace)["data"]["GREETING"] == (
        "Hej from the new ConfigMap"
    )
    status, page = get(f"{real_node.service_url(namespace)}/")
    assert status == 200 and "Hej from the new ConfigMap" in page and "Hello from" not in page, page


def test_the_plain_manifests_run_as_their_readme_says(baked, cluster, real_node, namespace, tmp_path):
    """k8s/README.md's sequence: the Secret from the command line, `kubectl apply -k k8s/`,
    rollout status. The one addition is a kustomize overlay that puts the pods on the real node
    with the images imported there (no registry) and the node's local volumes."""
    project = baked("defaults")
    real_node.load(project)
    kubectl = str(cluster.bin_dir / "kubectl")

    overlay = tmp_path / "overlay"
    overlay.mkdir()
    manifests = yaml.safe_load((project / "k8s" / "kustomization.yaml").read_text())
    app_image = next(entry["name"] for entry in manifests["images"])
    redis = image_values(real_node.redis_image)

    def placed(kind: str) -> str:  # a strategic-merge patch: PLACEMENT in the pod template
        return yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": kind,
                "metadata": {"name": "any"},
                "spec": {"template": {"spec": PLACEMENT}},
            }
        )

    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(project / "k8s", overlay)],
                "images": [
                    {"name": app_image, "newName": IMAGE_REPOSITORY, "newTag": IMAGE_TAG},
                    {"name": "redis", "newName": redis["repository"], "newTag": redis["tag"]},
                ],
                "patches": [
                    {"target": {"kind": "Deployment"}, "patch": placed("Deployment")},
                    {"target": {"kind": "StatefulSet"}, "patch": placed("StatefulSet")},
                    # The node's DNS server is a host process, no kube-dns pod: its address
                    # joins the DNS rule, as the policy's comment says.
                    {
                        "target": {"kind": "NetworkPolicy", "name": RELEASE},
                        "patch": json.dumps(
                            [
                                {
                                    "op": "add",
                                    "path": "/spec/egress/0/to/-",
                                    "value": {"ipBlock": {"cidr": NODE_DNS}},
                                }
                            ]
                        ),
                    },
                    {
                        "target": {"kind": "StatefulSet"},
                        "patch": json.dumps(
                            [
                                {
                                    "op": "add",
                                    "path": "/spec/volumeClaimTemplates/0/spec/storageClassName",
                                    "value": NODE,
                                }
                            ]
                        ),
                    },
                ],
            }
        )
    )
    slug = RELEASE
    env = {**os.environ, **cluster.env}
    commands = [
        f"{kubectl} --namespace {namespace} create secret generic {slug}-redis"
        f' --from-literal=redis-password="$(openssl rand -hex 24)"'
        f" --dry-run=client -o yaml | {kubectl} apply -f -",
        f"{kubectl} apply --namespace {namespace} -k {overlay}",
        f"{kubectl} --namespace {namespace} rollout status deployment/{slug} --timeout=180s",
        f"{kubectl} --namespace {namespace} rollout status statefulset/{slug}-redis --timeout=180s",
    ]
    for command in commands:
        run(["bash", "-o", "pipefail", "-c", command], env=env, timeout=240)

    url = real_node.service_url(namespace)
    assert [count(url) for _ in range(3)] == [1, 2, 3]
