"""Unit tests of the lifecycle hook modules: git_init, cruft_support, template_version, postgen wiring."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest
from cruft._commands.utils.cruft import json_dumps as cruft_json_dumps

from helpers import TEMPLATE_DIR
from hooks import git_init, postgen, template_version
from hooks.cruft_support import (
    cruft_state_text,
    is_cruft_rerender,
    rendered_by_cruft,
    write_cruft_state,
)

IDENTITY = "[user]\n\tname = Hook Tests\n\temail = hooks@example.invalid\n"


def git_env(tmp_path: Path, config: str = IDENTITY, **extra: str) -> dict[str, str]:
    """Environment of a user whose only git config is ``config`` (no system config, no identity variables)."""
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(config)
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_", "GIT_CONFIG")) and key != "EMAIL"
    }
    return {**base, "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1", **extra}


def git(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=project, env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = tmp_path / "work" / "demo"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.py").write_text("print('hi')\n")
    (project / ".gitignore").write_text(".env\n")
    (project / ".env").write_text("SECRET=x\n")
    return project


# --- git_init --------------------------------------------------------------------


def test_init_repository_commits_everything_not_ignored_on_main(tmp_path, project):
    env = git_env(tmp_path)
    outcome = git_init.init_repository(project, "Initial commit", env=env)
    assert outcome.committed, outcome.message
    assert outcome.message.startswith("git: initial commit ") and "\n" not in outcome.message
    assert git(project, "branch", "--show-current", env=env).stdout.strip() == "main"
    assert git(project, "log", "--format=%s|%an", env=env).stdout.strip() == "Initial commit|Hook Tests"
    assert git(project, "ls-files", env=env).stdout.split() == [".gitignore", "src/app.py"]
    assert git(project, "status", "--porcelain", env=env).stdout == ""


def test_without_identity_the_repository_is_initialised_but_nothing_committed(tmp_path, project):
    env = git_env(tmp_path, config="")
    outcome = git_init.init_repository(project, "Initial commit", env=env)
    assert not outcome.committed
    assert "no git identity" in outcome.message and "\n" not in outcome.message
    assert (project / ".git").is_dir()
    assert git(project, "rev-parse", "--verify", "HEAD", env=env).returncode != 0
    assert git(project, "diff", "--cached", "--name-only", env=env).stdout == ""


def test_identity_from_environment_variables_counts(tmp_path, project):
    env = git_env(
        tmp_path,
        config="",
        GIT_AUTHOR_NAME="Env Author",
        GIT_AUTHOR_EMAIL="author@example.invalid",
        GIT_COMMITTER_NAME="Env Committer",
        GIT_COMMITTER_EMAIL="committer@example.invalid",
    )
    assert git_init.init_repository(project, "Initial commit", env=env).committed


def test_without_git_says_so(monkeypatch, tmp_path, project):
    monkeypatch.setattr(git_init.shutil, "which", lambda name: None)
    outcome = git_init.init_repository(project, "Initial commit", env=git_env(tmp_path))
    assert outcome == git_init.Outcome(
        False, "git: not found, so the project is not a git repository (files not committed)."
    )
    assert not (project / ".git").exists()


def test_a_git_that_cannot_run_is_reported_not_raised(tmp_path, project):
    outcome = git_init.init_repository(
        project, "Initial commit", git=str(tmp_path / "no-such-git"), env=git_env(tmp_path)
    )
    assert not outcome.committed and outcome.message.startswith("git: `git rev-parse` did not run")


def test_a_failing_commit_is_reported_and_leaves_the_files(tmp_path, project):
    # A user who signs every commit with a signing program that fails.
    env = git_env(tmp_path, config=IDENTITY + "[commit]\n\tgpgSign = true\n[gpg]\n\tprogram = false\n")
    outcome = git_init.init_repository(project, "Initial commit", env=env)
    assert not outcome.committed
    assert outcome.message.startswith("git: `git commit` failed: ")
    assert outcome.message.endswith("files not committed.") and "\n" not in outcome.message
    assert (project / "src" / "app.py").exists()


def test_an_existing_repository_is_left_alone(tmp_path, project):
    env = git_env(tmp_path)
    assert git_init.init_repository(project, "first", env=env).committed
    head = git(project, "rev-parse", "HEAD", env=env).stdout
    (project / "new.txt").write_text("later\n")
    outcome = git_init.init_repository(project, "second", env=env)
    assert not outcome.committed and "already is a git repository" in outcome.message
    assert git(project, "rev-parse", "HEAD", env=env).stdout == head


def test_no_nested_repository_inside_another_work_tree(tmp_path, project):
    env = git_env(tmp_path)
    outer = project.parent
    assert git(outer, "init", "--quiet", env=env).returncode == 0
    outcome = git_init.init_repository(project, "Initial commit", env=env)
    assert not outcome.committed and f"inside the git repository {outer.resolve()}" in outcome.message
    assert not (project / ".git").exists()


def test_git_variables_of_a_calling_hook_do_not_redirect_it(tmp_path, project):
    elsewhere = tmp_path / "elsewhere.git"
    env = git_env(tmp_path, GIT_DIR=str(elsewhere), GIT_WORK_TREE=str(tmp_path))
    assert git_init.init_repository(project, "Initial commit", env=env).committed
    assert (project / ".git").is_dir() and not elsewhere.exists()


# --- cruft_support ---------------------------------------------------------------

CRUFT_ANSWERS = {"project_slug": "demo", "_template": "/src/template", "_commit": "a" * 40}


def test_cruft_renders_are_told_apart_from_cookiecutter_ones():
    assert rendered_by_cruft(CRUFT_ANSWERS)
    assert not rendered_by_cruft({**CRUFT_ANSWERS, "_output_dir": "/out"})  # cookiecutter's entry point
    assert not rendered_by_cruft({"project_slug": "demo", "_output_dir": "/out"})


@pytest.mark.parametrize(
    ("relative", "answers", "expected"),
    [
        ("tmpab_12xyz/demo", CRUFT_ANSWERS, True),  # cruft update/diff: a fresh mkdtemp() per render
        ("work/demo", CRUFT_ANSWERS, False),  # cruft create into a chosen directory
        ("tmpab_12xyz/deeper/demo", CRUFT_ANSWERS, False),
        ("tmp-project/demo", CRUFT_ANSWERS, False),
        ("tmpab_12xyz/demo", {**CRUFT_ANSWERS, "_output_dir": "/x"}, False),  # plain cookiecutter
        ("tmpab_12xyz/demo", {"project_slug": "demo"}, False),
    ],
)
def test_rerender_needs_cruft_and_a_throwaway_temporary_directory(tmp_path, relative, answers, expected):
    assert is_cruft_rerender(tmp_path / relative, answers, temp_root=tmp_path) is expected


def test_cruft_state_has_cruft_create_s_exact_bytes(tmp_path):
    answers = {**CRUFT_ANSWERS, "project_name": 'Zähler "q"', "enable_hpa": True, "app_port": 8000}
    expected = cruft_json_dumps(
        {
            "template": "/src/template",
            "commit": "a" * 40,
            "checkout": None,
            "context": {"cookiecutter": answers},
            "directory": None,
        }
    )
    assert cruft_state_text(answers) == expected
    assert write_cruft_state(tmp_path, answers).read_text(encoding="utf-8") == expected


# --- template_version ------------------------------------------------------------


def test_metadata_is_the_template_pyproject():
    project = tomllib.loads((TEMPLATE_DIR / "pyproject.toml").read_text())["project"]
    assert template_version.template_metadata() == (project["name"], project["version"])


def test_commit_of_a_clean_a_dirty_and_an_unrelated_checkout(monkeypatch, tmp_path):
    env = git_env(tmp_path)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", env["GIT_CONFIG_GLOBAL"])
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    template = tmp_path / "template"
    template.mkdir()
    assert template_version.template_commit(template) is None  # not a git checkout
    (template / "pyproject.toml").write_text('[project]\nname = "t"\nversion = "1.2.3"\n')
    for args in (["init", "--quiet"], ["add", "-A"], ["commit", "--quiet", "-m", "A"]):
        assert git(template, *args, env=env).returncode == 0
    sha = git(template, "rev-parse", "HEAD", env=env).stdout.strip()
    assert template_version.template_commit(template) == sha
    (template / "new-file").write_text("x\n")
    assert template_version.template_commit(template) == f"{sha}-dirty"
    inner = template / "copied-template"
    inner.mkdir()
    assert template_version.template_commit(inner) is None  # HEAD of another repository

    project = tmp_path / "project"
    project.mkdir()
    record = template_version.write_record(project, template)
    assert record == {"template": "t", "version": "1.2.3", "commit": f"{sha}-dirty"}
    assert json.loads((project / template_version.RECORD_FILE).read_text()) == record


# --- postgen wiring --------------------------------------------------------------


def test_postgen_in_a_cruft_rerender_writes_only_the_record(monkeypatch, tmp_path):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(postgen, "remove_disabled_paths", lambda project_dir, answers: [])

    def forbidden(*args, **kwargs):
        raise AssertionError("must not run in a cruft re-render")

    for name in ("write_dotenv", "validate_project", "init_repository", "write_cruft_state"):
        monkeypatch.setattr(postgen, name, forbidden)
    project = tmp_path / "tmpab_12xyz" / "demo"
    project.mkdir(parents=True)
    assert postgen.main(project, {**CRUFT_ANSWERS, "init_git": True}) == 0
    assert sorted(p.name for p in project.iterdir()) == [template_version.RECORD_FILE]


def test_postgen_under_cruft_create_writes_cruft_state_before_the_commit(monkeypatch, tmp_path):
    monkeypatch.setattr(postgen, "remove_disabled_paths", lambda project_dir, answers: [])
    monkeypatch.setattr(postgen, "validate_project", lambda project_dir: True)
    monkeypatch.setattr(postgen, "write_dotenv", lambda project_dir: True)
    seen = []

    def fake_init(project_dir, message):
        seen.append((sorted(p.name for p in Path(project_dir).iterdir()), message))
        return git_init.Outcome(True, "git: initial commit 1234567 on branch main.")

    monkeypatch.setattr(postgen, "init_repository", fake_init)
    project = tmp_path / "work" / "demo"
    project.mkdir(parents=True)
    assert postgen.main(project, {**CRUFT_ANSWERS, "init_git": True}) == 0
    name, version = template_version.template_metadata()
    assert seen == [([".cruft.json", template_version.RECORD_FILE], f"Initial commit from {name} {version}")]


def test_postgen_skips_git_when_init_git_is_off(monkeypatch, tmp_path):
    monkeypatch.setattr(postgen, "remove_disabled_paths", lambda project_dir, answers: [])
    monkeypatch.setattr(postgen, "validate_project", lambda project_dir: True)
    monkeypatch.setattr(postgen, "write_dotenv", lambda project_dir: True)
    monkeypatch.setattr(postgen, "init_repository", lambda *a: pytest.fail("git must not run"))
    assert postgen.main(tmp_path, {"project_slug": "demo", "_output_dir": "/x", "init_git": False}) == 0
