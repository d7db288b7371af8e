"""The local Kubernetes cluster of scripts/kube-cluster.sh, as the cluster tests use it.

tests/conftest.py turns this into the `cluster` and `namespace` fixtures, shared by
tests/test_cluster.py (simulated nodes) and tests/test_real_node.py (the real node).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import TEMPLATE_DIR, make, missing, require_tool, run

CLUSTER_SCRIPT = TEMPLATE_DIR / "scripts" / "kube-cluster.sh"
RELEASE = "flask-counter"  # the default slug: make deploy's RELEASE and the chart's fullname
APP = "app.kubernetes.io/component=app"
HELM_TIMEOUT = "2m"
CRDS = (
    "virtualservices.networking.istio.io",
    "destinationrules.networking.istio.io",
    "servicemonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
)


@dataclass
class Cluster:
    kubeconfig: str
    bin_dir: Path
    helm_binary: str

    @property
    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": self.kubeconfig}

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run([self.bin_dir / "kubectl", *args], env=self.env, check=check, input=input, timeout=180)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.helm_binary, *args], env=self.env, check=check, timeout=180)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "--output", "json", *args).stdout)

    def make(self, project: Path, target: str, namespace: str, *helm_args: str):
        """The generated project's own Makefile target, pointed at this cluster."""
        return make(
            project,
            target,
            f"NAMESPACE={namespace}",
            f"HELM={self.helm_binary}",
            f"KUBECTL={self.bin_dir / 'kubectl'}",
            f"HELM_TIMEOUT={HELM_TIMEOUT}",
            f"ARGS={' '.join(helm_args)}",
            env=self.env,
            timeout=300,
        )

    def pods(self, namespace: str, selector: str = APP) -> list[dict[str, Any]]:
        return self.get("pods", "--namespace", namespace, "--selector", selector)["items"]

    def placement(self, namespace: str, selector: str = APP) -> Counter[str]:
        """Running pods per node (pods on their way out not counted)."""
        return Counter(
            pod["spec"]["nodeName"]
            for pod in self.pods(namespace, selector)
            if pod["status"].get("phase") == "Running" and "deletionTimestamp" not in pod["metadata"]
        )

    def node_zones(self) -> dict[str, str]:
        """The simulated nodes' zones (a real node, tainted and zoneless, takes none of these pods)."""
        return {
            node["metadata"]["name"]: node["metadata"]["labels"]["topology.kubernetes.io/zone"]
            for node in self.get("nodes", "--selector", "type=kwok")["items"]
        }


def connect() -> Cluster:
    """The running local cluster: COUNTER_TEMPLATE_KUBECONFIG (CI), else the one `make cluster-up` started."""
    kubeconfig = os.environ.get("COUNTER_TEMPLATE_KUBECONFIG", "")
    if not kubeconfig:
        found = run([CLUSTER_SCRIPT, "kubeconfig"], check=False)
        if found.returncode != 0:
            missing(f"no local Kubernetes cluster ({found.stderr.strip()}); `make cluster-up` starts one")
        kubeconfig = found.stdout.strip()
    bin_dir = Path(run([CLUSTER_SCRIPT, "bin-dir"]).stdout.strip())
    cluster = Cluster(kubeconfig, bin_dir, require_tool("helm", "run scripts/install-tools.sh"))
    absent = cluster.kubectl("get", "crd", *CRDS, check=False)
    if absent.returncode != 0:  # e.g. a killed run inside without_crds
        pytest.fail(
            f"the cluster lacks CRDs ({absent.stderr.strip()}); `make cluster-up` adds them", pytrace=False
        )
    release_volumes(cluster)
    return cluster


def release_volumes(cluster: Cluster, *selector: str) -> None:
    """Make the volumes earlier runs' deleted claims left behind (Released) bindable again.

    Each Redis install binds one of the cluster's pre-made volumes and they are kept
    (Retain), so a cluster reused for several test runs would run out of them.
    ``selector``: kubectl arguments that narrow the volumes (``--selector``, ...).
    A merge patch that nulls claimRef is idempotent: every xdist worker runs this when it
    connects, and a JSON-patch "remove" of a claimRef another worker already dropped is
    rejected as invalid.
    """
    for volume in cluster.get("persistentvolumes", *selector)["items"]:
        if volume["status"].get("phase") == "Released":
            cluster.kubectl(
                "patch",
                "persistentvolume",
                volume["metadata"]["name"],
                "--type=merge",
                "-p",
                '{"spec": {"claimRef": null}}',
            )
