"""Fixtures shared by the template tests: baked variants and the generated projects' venv."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kube_cluster
from helpers import generated_venv_for
from variants import VARIANTS

# The matrix tests run helm/kubeconform themselves; the post-gen validation is
# exercised on purpose by the tests that set this variable explicitly.
os.environ.setdefault("COUNTER_TEMPLATE_VALIDATE", "off")


@pytest.fixture(scope="session")
def baked(cookies_session) -> Callable[[str], Path]:
    """Bake a variant from tests/variants.py once per test session (per xdist worker)."""
    projects: dict[str, Path] = {}

    def bake_variant(name: str) -> Path:
        if name not in projects:
            result = cookies_session.bake(extra_context=VARIANTS[name])
            if result.exit_code != 0:
                pytest.fail(f"baking {name!r} failed: {result.exception!r}", pytrace=False)
            projects[name] = Path(result.project_path)
        return projects[name]

    return bake_variant


@pytest.fixture(scope="session")
def generated_venv(baked) -> Path:
    """The shared venv with the generated project's dependencies (helpers.generated_venv_for)."""
    return generated_venv_for(baked("defaults"))


@pytest.fixture(scope="session")
def cluster() -> kube_cluster.Cluster:
    """The running local cluster: COUNTER_TEMPLATE_KUBECONFIG (CI), else the one `make cluster-up` started."""
    return kube_cluster.connect()


@pytest.fixture
def namespace(cluster: kube_cluster.Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted afterwards (its pods go with it)."""
    readable = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:48].rstrip("-")
    name = f"t-{readable}-{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:6]}"
    cluster.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true")
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_terminal_summary(terminalreporter):
    """Show the container image sizes (test_containers.py) at the end of every run, xdist included."""
    sizes = [
        value
        for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
        if report.when == "call"
        for name, value in report.user_properties
        if name == "image-size"
    ]
    if sizes:
        terminalreporter.section("container image sizes")
        for line in sorted(sizes):
            terminalreporter.write_line(line)
