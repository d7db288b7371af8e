"""Makes the generated project a git repository with one initial commit (answer ``init_git``).

It never fails the bake: without git, without a configured identity, or when git
refuses, :func:`init_repository` says so in one line and leaves the files
uncommitted. A project that already is a repository, or that lies inside
another repository's work tree, is left alone (no nested repository).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BRANCH = "main"
GIT_TIMEOUT_SECONDS = 60
# Set by git itself while running hooks; inherited, they would point every
# command below at the wrong repository.
REPOSITORY_ENV_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_PREFIX",
)
# Only a configured identity (config or GIT_AUTHOR_*/GIT_COMMITTER_* variables)
# counts; git's guess from the host name would put root@host.(none) in history.
NO_GUESSED_IDENTITY = ("-c", "user.useConfigOnly=true")


@dataclass(frozen=True)
class Outcome:
    committed: bool
    message: str


class GitFailed(Exception):
    pass


def git_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if env is None else env
    return {key: value for key, value in source.items() if key not in REPOSITORY_ENV_VARIABLES}


def run_git(
    git: str, args: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [git, *args],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GitFailed(f"`git {args[0]}` did not run: {error}") from error


def reason_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # git prints hints first and the reason last ("fatal: ...").
    reasons = [line for line in lines if line.startswith(("fatal:", "error:"))]
    if reasons:
        return reasons[-1]
    return lines[0] if lines else "no output"


def checked(result: subprocess.CompletedProcess[str], what: str) -> str:
    if result.returncode != 0:
        raise GitFailed(f"`{what}` failed: {reason_line(result.stderr or result.stdout)}")
    return result.stdout.strip()


def enclosing_work_tree(git: str, project_dir: Path, env: Mapping[str, str]) -> Path | None:
    result = run_git(git, ["rev-parse", "--show-toplevel"], project_dir, env)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return Path(result.stdout.strip()).resolve()


def has_identity(git: str, project_dir: Path, env: Mapping[str, str]) -> bool:
    return all(
        run_git(git, [*NO_GUESSED_IDENTITY, "var", variable], project_dir, env).returncode == 0
        for variable in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT")
    )


def init_repository(
    project_dir: Path | str,
    message: str,
    git: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Outcome:
    """``git init -b main``, add everything not ignored, commit ``message``."""
    project_dir = Path(project_dir).resolve()
    git = git or shutil.which("git")
    if git is None:
        return Outcome(False, "git: not found, so the project is not a git repository (files not committed).")
    env = git_environment(env)
    if (project_dir / ".git").exists():
        return Outcome(False, f"git: {project_dir} already is a git repository; left as it is.")
    try:
        top = enclosing_work_tree(git, project_dir, env)
        if top is not None:
            return Outcome(
                False,
                f"git: {project_dir} is inside the git repository {top}; no nested repository"
                " created (answer init_git=no to skip this step).",
            )
        checked(run_git(git, ["init", "--quiet", "--initial-branch", BRANCH], project_dir, env), "git init")
        if not has_identity(git, project_dir, env):
            return Outcome(
                False,
                f"git: repository initialised on branch {BRANCH}, files not committed: no git identity"
                " (set user.name and user.email, then `git add -A && git commit`).",
            )
        checked(run_git(git, ["add", "--all"], project_dir, env), "git add --all")
        # --no-verify: a user's global hooks (core.hooksPath) must not veto the
        # template's own output; the project's pre-commit hooks are not installed yet.
        commit = [*NO_GUESSED_IDENTITY, "commit", "--quiet", "--no-verify", "--message", message]
        checked(run_git(git, commit, project_dir, env), "git commit")
        sha = checked(run_git(git, ["rev-parse", "--short", "HEAD"], project_dir, env), "git rev-parse")
    except GitFailed as error:
        return Outcome(False, f"git: {error}; files not committed.")
    return Outcome(True, f"git: initial commit {sha} on branch {BRANCH}.")
