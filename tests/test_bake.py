"""Every variant bakes into a clean, parseable, lint-free project whose own tests pass."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from helpers import VENV_BIN, require_tool, run
from variants import VARIANTS

# Jinja that escaped rendering: a cookiecutter variable, or a block/comment tag.
# Helm's own `{{ ... }}` is fine in chart templates and dashboards, so only
# Jinja-only syntax counts.
JINJA_ARTEFACT = re.compile(r"cookiecutter\.|\{%-?\s|\s-?%\}|\{#\s|\s#\}")
HELM_TEMPLATE_DIR = re.compile(r"(^|/)charts/[^/]+/templates/")


def project_files(project: Path) -> list[Path]:
    return [p for p in sorted(project.rglob("*")) if p.is_file() and ".git" not in p.parts]


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_template_artefacts_remain(baked, variant):
    project = baked(variant)
    offenders = []
    for path in project_files(project):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if JINJA_ARTEFACT.search(line):
                offenders.append(f"{path.relative_to(project)}:{number}: {line.strip()}")
    assert not offenders, "template syntax left in the generated project:\n" + "\n".join(offenders)


@pytest.mark.parametrize("variant", VARIANTS)
def test_structured_files_parse(baked, variant):
    project = baked(variant)
    checked = 0
    for path in project_files(project):
        relative = path.relative_to(project).as_posix()
        text = (
            path.read_text(encoding="utf-8") if path.suffix in {".json", ".toml", ".yaml", ".yml"} else None
        )
        if text is None:
            continue
        if path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif not HELM_TEMPLATE_DIR.search(relative):  # Helm templates are Go templates, not YAML yet
            list(yaml.safe_load_all(text))
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("variant", VARIANTS)
def test_ruff_passes(baked, variant):
    project = baked(variant)
    ruff = VENV_BIN / "ruff"
    run([ruff, "check", "--no-cache", "."], cwd=project)
    run([ruff, "format", "--check", "--no-cache", "."], cwd=project)


def test_free_text_answers_survive_escaping(baked):
    from variants import ODD_NAMES

    project = baked("odd-names")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["description"] == ODD_NAMES["description"]
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert readme.splitlines()[0].startswith("# Z")


GENERATED_TEST_VARIANTS = ["defaults", "odd-names", "app_port=8080", "enable_metrics=false", "all-on"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", GENERATED_TEST_VARIANTS)
def test_generated_project_tests_pass(baked, generated_venv, variant):
    """The generated project's own suite, integration tests against a real redis-server included."""
    require_tool("redis-server", "apt-get install redis-server")
    project = baked(variant)
    result = run(
        [generated_venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=project,
        env={
            "PYTHONPATH": str(project / "src"),
            "TEST_REQUIRE_REDIS": "1",
            "PATH": f"{generated_venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        },
    )
    assert re.search(r"\d+ passed", result.stdout), result.stdout[-2000:]
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout[-2000:]
