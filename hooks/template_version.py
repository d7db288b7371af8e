"""Records which template version and commit produced a generated project.

The post-gen hook writes :data:`RECORD_FILE` into the project. It is computed
from the template checkout the hook runs from (not from a ``_``-answer, which
cruft would carry over from the old render), so ``cruft update`` renders the
old and the new record and the update moves the project's record forward.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

RECORD_FILE = ".template-version.json"
TEMPLATE_DIR = Path(__file__).resolve().parent.parent


def template_metadata(template_dir: Path = TEMPLATE_DIR) -> tuple[str, str]:
    project = tomllib.loads((template_dir / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["name"], project["version"]


def git_output(template_dir: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        result = subprocess.run(
            [git, "-C", str(template_dir), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def template_commit(template_dir: Path = TEMPLATE_DIR) -> str | None:
    """HEAD of the template checkout, ``-dirty`` appended for local changes; None when unknown.

    Unknown: no git, a zip download, or a copy inside some other repository
    (whose HEAD says nothing about the template).
    """
    template_dir = Path(template_dir).resolve()
    top = git_output(template_dir, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != template_dir:
        return None
    sha = git_output(template_dir, "rev-parse", "--verify", "HEAD")
    if not sha:
        return None
    changes = git_output(template_dir, "status", "--porcelain")
    return f"{sha}-dirty" if changes else sha


def template_record(template_dir: Path = TEMPLATE_DIR) -> dict[str, Any]:
    name, version = template_metadata(template_dir)
    return {"template": name, "version": version, "commit": template_commit(template_dir)}


def write_record(project_dir: Path | str, template_dir: Path = TEMPLATE_DIR) -> dict[str, Any]:
    record = template_record(template_dir)
    text = json.dumps(record, indent=2) + "\n"
    (Path(project_dir) / RECORD_FILE).write_text(text, encoding="utf-8")
    return record
