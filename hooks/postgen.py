"""Post-generation steps, run by ``post_gen_project.py`` inside the new project directory.

1. Remove files that belong to features the answers switched off.
2. Record the template version and commit (hooks/template_version.py).
3. Write ``.env`` with fresh secrets (hooks/dotenv.py).
4. Validate the chart and manifests with helm + kubeconform (hooks/k8s_validation.py),
   as the project's own ``make validate`` does; COUNTER_TEMPLATE_VALIDATE picks the policy.
5. ``init_git``: ``git init`` and the initial commit (hooks/git_init.py); under
   ``cruft create`` the commit includes ``.cruft.json`` (hooks/cruft_support.py).

cruft update/diff re-render the template into throwaway directories only to
diff them: there only steps 1 and 2 run (hooks/cruft_support.py says why).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hooks.cruft_support import is_cruft_rerender, rendered_by_cruft, write_cruft_state
from hooks.dotenv import write_dotenv
from hooks.git_init import init_repository
from hooks.k8s_validation import validate_project
from hooks.template_version import write_record

Answers = Mapping[str, Any]

# Generated path -> when it is kept. One table, so every optional file is visible here.
OPTIONAL_PATHS: dict[str, Callable[[Answers], bool]] = {
    # The CI workflow of the chosen provider only.
    ".github": lambda answers: answers["ci_provider"] == "github",
    ".gitlab-ci.yml": lambda answers: answers["ci_provider"] == "gitlab",
}


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
    record = write_record(project_dir)
    if is_cruft_rerender(project_dir, answers):
        return 0
    write_dotenv(project_dir)
    if not validate_project(project_dir):
        return 1
    if rendered_by_cruft(answers):
        write_cruft_state(project_dir, answers)
    if answers.get("init_git", True):
        message = f"Initial commit from {record['template']} {record['version']}"
        outcome = init_repository(project_dir, message)
        print(outcome.message, file=sys.stdout if outcome.committed else sys.stderr)
    return 0
