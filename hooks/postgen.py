"""Post-generation steps, run by ``post_gen_project.py`` inside the new project directory.

1. Remove files that belong to features the answers switched off.
2. (wired in by later steps: .env with a fresh secret, chart/manifest validation)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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
    return 0
