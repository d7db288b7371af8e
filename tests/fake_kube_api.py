"""A tiny stand-in for the Kubernetes API: just enough for Helm's `lookup` of a Secret.

`helm template` never talks to a cluster, so `lookup` returns nothing there.
With ``--dry-run=server`` Helm does run `lookup` against the cluster in the
kubeconfig, while everything else stays client-side. Pointing that kubeconfig
at this server lets a test render the chart as an install (no Secret yet) and
as an upgrade (the Secret from the first render exists) without a cluster:
the real Helm code path, with the cluster's answers under the test's control.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# group/version -> (kind, plural) of every kind the chart renders: Helm 4 maps
# each rendered object to its REST resource before a server-side dry run.
RESOURCES = {
    "v1": [
        ("Secret", "secrets"),
        ("ConfigMap", "configmaps"),
        ("Service", "services"),
        ("ServiceAccount", "serviceaccounts"),
        ("Pod", "pods"),
    ],
    "apps/v1": [("Deployment", "deployments"), ("StatefulSet", "statefulsets")],
    "autoscaling/v2": [("HorizontalPodAutoscaler", "horizontalpodautoscalers")],
    "networking.k8s.io/v1": [("Ingress", "ingresses"), ("NetworkPolicy", "networkpolicies")],
    "policy/v1": [("PodDisruptionBudget", "poddisruptionbudgets")],
}
VERBS = ["get", "list", "create", "update", "patch", "delete", "watch"]


def resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind, "verbs": VERBS}
            for kind, plural in RESOURCES[group_version]
        ],
    }


def group_list() -> dict[str, Any]:
    groups = []
    for group_version in RESOURCES:
        if "/" in group_version:
            group, version = group_version.split("/")
            entry = {"groupVersion": group_version, "version": version}
            groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


SECRET_PATH = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/secrets/(?P<name>[^/?]+)$")


class FakeKubeApi:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    def put_secret(self, secret: dict[str, Any]) -> None:
        metadata = secret["metadata"]
        self.secrets[(metadata.get("namespace", "default"), metadata["name"])] = secret

    def _answer(self, path: str) -> tuple[int, dict[str, Any]]:
        path = path.split("?", 1)[0]
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            return 200, group_list()
        group_version = path.removeprefix("/apis/").removeprefix("/api/")
        if path.startswith(("/api/", "/apis/")) and group_version in RESOURCES:
            return 200, resource_list(group_version)
        if path == "/version":
            return 200, {"major": "1", "minor": "34", "gitVersion": "v1.34.0"}
        match = SECRET_PATH.match(path)
        if match and (match["namespace"], match["name"]) in self.secrets:
            return 200, self.secrets[(match["namespace"], match["name"])]
        return 404, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "NotFound",
            "code": 404,
            "message": f"{path} not found",
        }

    def kubeconfig(self, directory: Path) -> Path:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://{host}:{port}"}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}
            ],
        }
        path = directory / "kubeconfig.json"  # JSON is valid kubeconfig YAML
        path.write_text(json.dumps(config), encoding="utf-8")
        path.chmod(0o600)
        return path

    @contextmanager
    def running(self) -> Iterator[FakeKubeApi]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.requests.append(self.path)
                status, body = api._answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()
