"""Post-generation steps, run by ``post_gen_project.py`` inside the new project directory.

1. Remove files that belong to features the answers switched off.
2. Write ``.env`` with fresh secrets (hooks/dotenv.py).
3. Validate the chart and manifests with helm + kubeconform (hooks/k8s_validation.py),
   as the project's own ``make validate`` does; COUNTER_TEMPLATE_VALIDATE picks the policy.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hooks.dotenv import write_dotenv
from hooks.k8s_validation import validate_project

Answers = Mapping[str, Any]

# Generated path -> when it is kept. One table, so every optional file is visible here.
OPTIONAL_PATHS: dict[str, Callable[[Answers], bool]] = {}


def remove_disabled_paths(project_dir: Path, answers: Answers) -> list[str]:
    removed = []
    for relative, keep in OPTIONAL_PATHS.items():
        if keep(answers):
            continue
        path = project_dir / relative
        if not path.exists():
            raise FileNotFoundError(f"template bug: optional path {relative} was not generated")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(relative)
    return removed


def main(project_dir: Path, answers: Answers) -> int:
    remove_disabled_paths(project_dir, answers)
    write_dotenv(project_dir)
    return 0 if validate_project(project_dir) else 1
