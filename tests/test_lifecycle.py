"""The generated repository's lifecycle, through the real command-line tools.

- First commit: ``init_git`` makes one clean commit on ``main``; without a git
  identity or without git the bake still succeeds and says so.
- Updates: ``cruft create`` -> template commit B -> ``cruft update`` round trip
  (real git, real cruft); ``make template-check``.
- Non-interactive use: ``--no-input key=value``, ``--config-file examples/*.yaml``,
  ``--replay``.
- Habits: pre-commit configs, yamllint over every variant, the recorded template version.

Every command runs as a user whose home is a temporary directory (own git
identity, no ~/.cookiecutterrc, replay files inside), so the real user's
~/.cookiecutter_replay and git configuration are never read or written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from helpers import TEMPLATE_DIR, VENV_BIN, require_tool, run, tool_cache_dir
from hooks.template_version import RECORD_FILE, template_commit
from variants import DEFAULTS, VARIANTS

EXAMPLES = sorted((TEMPLATE_DIR / "examples").glob("*.yaml"))
PYPROJECT = tomllib.loads((TEMPLATE_DIR / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# Variables that would let the machine's own settings leak into a test.
LEAKY_VARIABLES = ("GIT_AUTHOR_", "GIT_COMMITTER_", "GIT_CONFIG", "GIT_DIR", "GIT_WORK_TREE", "COOKIECUTTER_")
CONFLICT_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>)( |$)", re.MULTILINE)


def user_env(home: Path, identity: bool = True, **extra: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Template Tests\n\temail = tests@example.invalid\n" if identity else ""
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(LEAKY_VARIABLES)}
    env.pop("EMAIL", None)
    return {
        **env,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
        "COUNTER_TEMPLATE_VALIDATE": "off",
        # The home is new for every test; these caches are the machine's.
        "COUNTER_TEMPLATE_CACHE": str(tool_cache_dir()),
        "PRE_COMMIT_HOME": str(tool_cache_dir() / "pre-commit"),
        **extra,
    }


def sh(
    cmd: Sequence[str | os.PathLike[str]], cwd: Path, env: Mapping[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run with exactly ``env`` (a fresh HOME per test), not this process's environment."""
    return run(cmd, cwd=cwd, env=env, check=check, inherit_env=False)


def cookiecutter(*args: str | os.PathLike[str], cwd: Path, env: Mapping[str, str], check: bool = True):
    return sh([VENV_BIN / "cookiecutter", *args], cwd, env, check)


def git(project: Path, *args: str, env: Mapping[str, str]) -> str:
    return sh(["git", *args], project, env).stdout.strip()


def tree(project: Path, skip: tuple[str, ...] = (".git", ".env")) -> dict[str, bytes]:
    return {
        path.relative_to(project).as_posix(): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and path.relative_to(project).parts[0] not in skip
    }


def template_files() -> list[str]:
    """What a commit of the template would hold: tracked and new files, nothing ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.fail(f"the template is not a git checkout: {listed.stderr.strip()}", pytrace=False)
    return [name for name in listed.stdout.split("\0") if name and (TEMPLATE_DIR / name).is_file()]


def copy_template(destination: Path) -> Path:
    for name in template_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_DIR / name, target)
    return destination


# --- first commit ------------------------------------------------------------------


def test_bake_is_one_clean_commit_on_main_with_lf_attributes(tmp_path):
    env = user_env(tmp_path / "home")
    result = cookiecutter("--no-input", "-o", tmp_path / "out", TEMPLATE_DIR, cwd=tmp_path, env=env)
    project = tmp_path / "out" / "flask-counter"
    assert re.search(r"^git: initial commit [0-9a-f]+ on branch main\.$", result.stdout, re.MULTILINE)
    assert git(project, "branch", "--show-current", env=env) == "main"
    log = git(project, "log", "--format=%an|%s", env=env).splitlines()
    assert log == [f"Template Tests|Initial commit from {PYPROJECT['name']} {PYPROJECT['version']}"]
    # Everything generated is committed, and nothing that must stay local is.
    assert git(project, "status", "--porcelain", "--ignored", env=env) == "!! .env"
    tracked = git(project, "ls-files", env=env).splitlines()
    assert {".gitignore", ".gitattributes", ".pre-commit-config.yaml", ".yamllint", RECORD_FILE} <= set(
        tracked
    )
    assert not [name for name in tracked if name == ".env" or name.endswith((".pyc", ".rej"))]
    for path in ("Makefile", "scripts/validate_k8s.py", "charts/flask-counter/values.yaml", "compose.yaml"):
        assert git(project, "check-attr", "eol", "--", path, env=env).endswith("eol: lf"), path


def test_bake_without_git_identity_succeeds_and_says_so(tmp_path):
    env = user_env(tmp_path / "home", identity=False)
    result = cookiecutter("--no-input", "-o", tmp_path, TEMPLATE_DIR, cwd=tmp_path, env=env)
    project = tmp_path / "flask-counter"
    git_lines = [line for line in result.stderr.splitlines() if line.startswith("git:")]
    assert len(git_lines) == 1 and "no git identity" in git_lines[0], result.stderr
    assert (project / ".git").is_dir() and (project / ".env").is_file()
    assert sh(["git", "rev-parse", "--verify", "HEAD"], project, env, check=False).returncode != 0


def test_bake_without_git_succeeds_and_says_so(tmp_path):
    # Only the venv on PATH: the hooks run with its python, and no git is found.
    env = user_env(tmp_path / "home", PATH=str(VENV_BIN))
    assert shutil.which("git", path=env["PATH"]) is None
    result = cookiecutter("--no-input", "-o", tmp_path, TEMPLATE_DIR, cwd=tmp_path, env=env)
    project = tmp_path / "flask-counter"
    assert "git: not found" in result.stderr
    assert not (project / ".git").exists()
    assert json.loads((project / RECORD_FILE).read_text())["commit"] is None


def test_init_git_no_leaves_a_plain_directory(tmp_path):
    env = user_env(tmp_path / "home")
    result = cookiecutter("--no-input", "-o", tmp_path, TEMPLATE_DIR, "init_git=no", cwd=tmp_path, env=env)
    assert not (tmp_path / "flask-counter" / ".git").exists()
    assert "git:" not in result.stdout + result.stderr


def test_rebake_over_a_project_keeps_its_history_and_secrets(tmp_path):
    env = user_env(tmp_path / "home")
    cookiecutter("--no-input", "-o", tmp_path, TEMPLATE_DIR, cwd=tmp_path, env=env)
    project = tmp_path / "flask-counter"
    head, dotenv = git(project, "rev-parse", "HEAD", env=env), (project / ".env").read_bytes()
    result = cookiecutter(
        "--no-input", "--overwrite-if-exists", "-o", tmp_path, TEMPLATE_DIR, cwd=tmp_path, env=env
    )
    assert "already is a git repository" in result.stderr
    assert git(project, "rev-parse", "HEAD", env=env) == head
    assert (project / ".env").read_bytes() == dotenv


# --- template version ----------------------------------------------------------------


def test_project_records_template_version_and_commit(baked):
    record = json.loads((baked("defaults") / RECORD_FILE).read_text())
    assert (record["template"], record["version"]) == (PYPROJECT["name"], PYPROJECT["version"])
    # Files other tests write may make the checkout dirty between the bake and now.
    clean_sha = lambda commit: commit and commit.removesuffix("-dirty")  # noqa: E731
    assert clean_sha(record["commit"]) == clean_sha(template_commit(TEMPLATE_DIR))


def test_changelog_and_pyproject_agree_on_the_version_scheme():
    changelog = (TEMPLATE_DIR / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\]", changelog, re.MULTILINE)
    assert headings and headings[0] in ("Unreleased", PYPROJECT["version"])
    released = [heading for heading in headings if heading != "Unreleased"]
    assert not released or released[0] == PYPROJECT["version"], "pyproject version lags the CHANGELOG"


# --- updates from the template (cruft) -------------------------------------------------


def test_cruft_create_then_update_round_trip(tmp_path):
    require_tool("make")
    cruft = VENV_BIN / "cruft"
    env = user_env(tmp_path / "home")
    template = copy_template(tmp_path / "template")
    git(template, "init", "--quiet", "--initial-branch", "main", env=env)
    git(template, "add", "--all", env=env)
    git(template, "commit", "--quiet", "--message", "A", env=env)
    commit_a = git(template, "rev-parse", "HEAD", env=env)

    created = sh(
        [cruft, "create", template, "--output-dir", tmp_path / "work", "--no-input",
         "--extra-context", json.dumps({"project_name": "Round Trip"})],
        tmp_path, env,
    )  # fmt: skip
    project = tmp_path / "work" / "round-trip"
    assert "git: initial commit" in created.stdout
    # The initial commit already holds .cruft.json exactly as cruft wrote it.
    assert git(project, "status", "--porcelain", env=env) == ""
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == commit_a and state["context"]["cookiecutter"]["project_name"] == "Round Trip"
    assert json.loads((project / RECORD_FILE).read_text())["commit"] == commit_a
    first_commit = git(project, "rev-list", "--max-parents=0", "HEAD", env=env)
    dotenv = (project / ".env").read_bytes()
    make = ["make", "--no-print-directory", "template-check", f"CRUFT={cruft}"]
    assert sh(make, project, env).returncode == 0

    # The user works on the project ...
    with (project / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("\nOur own notes.\n")
    git(project, "commit", "--quiet", "--all", "--message", "Our notes", env=env)
    # ... while the template gets a new chart value and a changed file (commit B).
    generated = template / "{{cookiecutter.project_slug}}"
    values = generated / "charts" / "{{cookiecutter.project_slug}}" / "values.yaml"
    values.write_text(values.read_text() + "\n## @param roundTrip Added by template commit B\nroundTrip: b\n")
    dockerignore = generated / ".dockerignore"
    dockerignore.write_text(dockerignore.read_text() + "**/.mypy_cache\n")
    git(template, "commit", "--quiet", "--all", "--message", "B", env=env)
    commit_b = git(template, "rev-parse", "HEAD", env=env)

    behind = sh(make, project, env, check=False)
    assert behind.returncode != 0 and "out of date" in behind.stdout + behind.stderr

    # An invalid validation mode fails any post-gen hook that would validate:
    # cruft's re-renders must not.
    sh([cruft, "update", "--skip-apply-ask"], project, {**env, "COUNTER_TEMPLATE_VALIDATE": "bogus"})

    chart_values = yaml.safe_load((project / "charts" / "round-trip" / "values.yaml").read_text())
    assert chart_values["roundTrip"] == "b"
    assert (project / ".dockerignore").read_text().endswith("**/.mypy_cache\n")
    changed = set(git(project, "diff", "--name-only", "HEAD", env=env).splitlines())
    assert changed == {".cruft.json", RECORD_FILE, ".dockerignore", "charts/round-trip/values.yaml"}
    assert not list(project.rglob("*.rej")) and not list(project.rglob("*.orig"))
    conflicted = [
        name for name, data in tree(project).items() if CONFLICT_MARKER.search(data.decode("utf-8"))
    ]
    assert conflicted == []
    assert (project / "README.md").read_text(encoding="utf-8").endswith("Our own notes.\n")
    assert (project / ".env").read_bytes() == dotenv
    assert [path.parent for path in project.rglob(".git")] == [project]
    assert git(project, "rev-list", "--max-parents=0", "HEAD", env=env) == first_commit
    assert json.loads((project / ".cruft.json").read_text())["commit"] == commit_b
    assert json.loads((project / RECORD_FILE).read_text())["commit"] == commit_b
    assert sh(make, project, env).returncode == 0


def test_template_check_without_cruft_json_explains(baked, tmp_path):
    require_tool("make")
    result = sh(
        ["make", "--no-print-directory", "template-check"], baked("defaults"), os.environ, check=False
    )
    assert result.returncode != 0
    assert "no .cruft.json" in result.stderr and "cruft link" in result.stderr


# --- non-interactive use ---------------------------------------------------------------


def replay_answers(home: Path) -> dict:
    replay = home / ".cookiecutter_replay" / f"{TEMPLATE_DIR.name}.json"
    return json.loads(replay.read_text())["cookiecutter"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_answer_file_bakes_with_its_answers(tmp_path, example):
    answers = yaml.safe_load(example.read_text())["default_context"]
    assert set(answers) <= set(DEFAULTS), f"{example.name}: unknown answers {set(answers) - set(DEFAULTS)}"
    env = user_env(tmp_path / "home")
    cookiecutter(
        "--no-input", "--config-file", example, "-o", tmp_path / "out", TEMPLATE_DIR, cwd=tmp_path, env=env
    )
    used = replay_answers(tmp_path / "home")
    # cookiecutter renders every answer but booleans to a string.
    assert {key: used[key] for key in answers} == {
        key: value if isinstance(value, bool) else str(value) for key, value in answers.items()
    }
    project = tmp_path / "out" / used["project_slug"]
    values = yaml.safe_load((project / "charts" / used["project_slug"] / "values.yaml").read_text())
    assert values["redis"]["enabled"] is (used["redis_mode"] == "statefulset")
    assert values["istio"]["enabled"] is used["enable_istio"]
    assert values["autoscaling"]["enabled"] is used["enable_hpa"]
    assert git(project, "status", "--porcelain", env=env) == ""


def test_examples_cover_minimal_full_and_external_redis():
    assert [path.stem for path in EXAMPLES] == ["external-redis", "full", "minimal"]
    full = yaml.safe_load((TEMPLATE_DIR / "examples" / "full.yaml").read_text())["default_context"]
    minimal = yaml.safe_load((TEMPLATE_DIR / "examples" / "minimal.yaml").read_text())["default_context"]
    toggles = [
        key for key, value in DEFAULTS.items() if isinstance(value, bool) and key.startswith("enable_")
    ]
    assert all(full[key] is True for key in toggles) and all(minimal[key] is False for key in toggles)


def test_key_value_answers_override_the_config_file(tmp_path):
    env = user_env(tmp_path / "home")
    cookiecutter(
        "--no-input", "--config-file", TEMPLATE_DIR / "examples" / "minimal.yaml", "-o", tmp_path,
        TEMPLATE_DIR, "project_name=Override Counter", "enable_hpa=yes", "init_git=false",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    used = replay_answers(tmp_path / "home")
    assert (used["project_slug"], used["enable_hpa"], used["enable_istio"]) == (
        "override-counter",
        True,
        False,
    )
    assert not (tmp_path / "override-counter" / ".git").exists()


def test_replay_reproduces_the_project(tmp_path):
    env = user_env(tmp_path / "home")
    replay_dir = tmp_path / "replay"
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(yaml.safe_dump({"replay_dir": str(replay_dir), "default_context": {"app_port": 9000}}))
    cookiecutter(
        "--no-input", "--config-file", config, "-o", tmp_path / "first", TEMPLATE_DIR,
        "project_name=Replay Counter", "enable_istio=yes", "redis_mode=external",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    replay_file = replay_dir / f"{TEMPLATE_DIR.name}.json"
    assert replay_file.is_file() and not (tmp_path / "home" / ".cookiecutter_replay").exists()
    first = tree(tmp_path / "first" / "replay-counter")

    cookiecutter(
        "--replay", "--config-file", config, "-o", tmp_path / "second", TEMPLATE_DIR, cwd=tmp_path, env=env
    )
    assert tree(tmp_path / "second" / "replay-counter") == first

    moved = tmp_path / "answers.json"
    shutil.copy(replay_file, moved)
    cookiecutter(
        "--replay-file", moved, "--config-file", config, "-o", tmp_path / "third", TEMPLATE_DIR,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert tree(tmp_path / "third" / "replay-counter") == first
    values = yaml.safe_load(first["charts/replay-counter/values.yaml"])
    assert (values["app"]["port"], values["istio"]["enabled"], values["redis"]["enabled"]) == (
        9000,
        True,
        False,
    )


# --- pre-commit and yamllint -------------------------------------------------------------


def local_hooks(config: Path) -> dict[str, dict]:
    repos = yaml.safe_load(config.read_text())["repos"]
    return {hook["id"]: hook for repo in repos for hook in repo["hooks"]}


@pytest.mark.parametrize(
    "config", [".pre-commit-config.yaml", "{{cookiecutter.project_slug}}/.pre-commit-config.yaml"]
)
def test_pre_commit_config_is_valid(config):
    sh([VENV_BIN / "pre-commit", "validate-config", TEMPLATE_DIR / config], TEMPLATE_DIR, os.environ)


def test_pre_commit_pins_agree_with_each_other_and_pyproject(baked):
    template_hooks = local_hooks(TEMPLATE_DIR / ".pre-commit-config.yaml")
    project = baked("defaults")
    project_hooks = local_hooks(project / ".pre-commit-config.yaml")
    assert {
        "ruff-check",
        "ruff-format",
        "hadolint",
        "yamllint",
        "end-of-file-fixer",
        "trailing-whitespace",
    } <= set(project_hooks)
    for hook_id, hook in template_hooks.items():
        assert hook["additional_dependencies"] == project_hooks[hook_id]["additional_dependencies"], hook_id
    ruff_pin = project_hooks["ruff-check"]["additional_dependencies"][0].removeprefix("ruff==")
    dev = tomllib.loads((project / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    ruff_range = next(spec for spec in dev if spec.startswith("ruff")).removeprefix("ruff")
    low, high = re.fullmatch(r">=([\d.]+),<([\d.]+)", ruff_range).groups()
    as_tuple = lambda text: tuple(int(part) for part in text.split("."))  # noqa: E731
    assert as_tuple(low) <= as_tuple(ruff_pin) < as_tuple(high)


@pytest.mark.parametrize("variant", VARIANTS)
def test_yamllint_passes_with_the_generated_config(baked, variant):
    project = baked(variant)
    result = sh([VENV_BIN / "yamllint", "--strict", "-f", "parsable", "."], project, os.environ, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["all-on", "odd-names", "ci_provider=gitlab"])
def test_pre_commit_hooks_pass_on_the_baked_project(baked, tmp_path, variant):
    # Real pre-commit, hooks installed from PyPI into the machine-level cache.
    project = shutil.copytree(baked(variant), tmp_path / "project", ignore=shutil.ignore_patterns(".git"))
    env = user_env(tmp_path / "home")
    git(project, "init", "--quiet", env=env)
    git(project, "add", "--all", env=env)
    result = sh(
        [VENV_BIN / "pre-commit", "run", "--all-files", "--show-diff-on-failure"], project, env, check=False
    )
    assert result.returncode == 0, result.stdout[-8000:]


@pytest.mark.slow
def test_pre_commit_hooks_pass_on_the_template(tmp_path):
    template = copy_template(tmp_path / "template")
    env = user_env(tmp_path / "home")
    git(template, "init", "--quiet", env=env)
    git(template, "add", "--all", env=env)
    result = sh(
        [VENV_BIN / "pre-commit", "run", "--all-files", "--show-diff-on-failure"], template, env, check=False
    )
    assert result.returncode == 0, result.stdout[-8000:]
