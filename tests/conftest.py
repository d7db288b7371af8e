"""Fixtures shared by the template tests: baked variants and the generated projects' venv."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import TEMPLATE_DIR, run
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


def _generated_requirements(project: Path) -> list[str]:
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return sorted(meta["dependencies"] + meta.get("optional-dependencies", {}).get("dev", []))


@pytest.fixture(scope="session")
def generated_venv(baked) -> Path:
    """A venv with the generated project's runtime + dev dependencies (not the project itself).

    Projects run from source with PYTHONPATH=src, so one venv serves every
    variant. It is cached under .cache/ keyed by the dependency list, and
    created under a file lock because xdist workers ask for it at once.
    """
    requirements = _generated_requirements(baked("defaults"))
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    cache = TEMPLATE_DIR / ".cache"
    cache.mkdir(exist_ok=True)
    venv = cache / f"generated-venv-{digest}"
    with open(cache / "generated-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "ready").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            run([venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", *requirements])
            (venv / "ready").write_text("\n".join(requirements))
    return venv


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
