"""Fixtures shared by the template tests: baked variants and the generated projects' venv."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

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
