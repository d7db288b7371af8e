"""Tells the post-gen hook how it was invoked: plain cookiecutter, ``cruft create``, or a cruft re-render.

What cruft 2.x does (cruft/_commands/create.py, update.py, diff.py, utils/generate.py):

* It builds the context itself (``generate_cookiecutter_context``: adds ``_template``
  and ``_commit``) and renders with cookiecutter's ``generate_files()``. Only
  cookiecutter's own entry point (CLI, ``cookiecutter()``, pytest-cookies) adds
  ``_output_dir``/``_repo_dir``. So: ``_commit`` present and ``_output_dir``
  absent means cruft rendered this.
* ``cruft create`` renders into the user's output directory: a real project.
  It writes ``.cruft.json`` only after the hooks ran, which would leave the
  initial commit without it (and ``cruft update`` refuses an unclean tree), so
  :func:`write_cruft_state` writes the same file, in cruft's format, first.
* ``cruft update`` and ``cruft diff`` render the old and the new template commit,
  each into a fresh ``tempfile.TemporaryDirectory()`` (``<tmp>/tmpXXXXXXXX/<slug>``),
  diff the two and throw them away. Those re-renders must stay deterministic and
  cheap: no ``git init`` (a ``.git`` would land in the diff), no ``.env`` (new
  random secrets would show as a change to apply), no validation.

The temporary-directory check keeps a ``cruft create`` whose output directory
happens to be a temporary one from counting as a re-render, except for one
named exactly like ``mkdtemp()``'s directories directly under the temp root.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CRUFT_FILE = ".cruft.json"
MKDTEMP_NAME = re.compile(r"^tmp[a-z0-9_]{8}$")


def rendered_by_cruft(answers: Mapping[str, Any]) -> bool:
    return "_commit" in answers and "_output_dir" not in answers


def is_cruft_rerender(
    project_dir: Path | str, answers: Mapping[str, Any], temp_root: Path | str | None = None
) -> bool:
    """True for the throwaway renders of ``cruft update`` / ``cruft diff``."""
    if not rendered_by_cruft(answers):
        return False
    render_dir = Path(project_dir).resolve().parent
    temp_root = Path(temp_root or tempfile.gettempdir()).resolve()
    return render_dir.parent == temp_root and bool(MKDTEMP_NAME.match(render_dir.name))


def cruft_state_text(answers: Mapping[str, Any]) -> str:
    """``.cruft.json`` as ``cruft create`` writes it when run without --checkout/--directory/--skip."""
    state = {
        "template": answers["_template"],
        "commit": answers["_commit"],
        "checkout": None,
        "context": {"cookiecutter": dict(answers)},
        "directory": None,
    }
    # cruft/_commands/utils/cruft.py json_dumps(): same bytes, so cruft's own
    # write afterwards leaves the committed file unchanged.
    return json.dumps(state, ensure_ascii=False, indent=2, separators=(",", ": ")) + "\n"


def write_cruft_state(project_dir: Path | str, answers: Mapping[str, Any]) -> Path:
    path = Path(project_dir) / CRUFT_FILE
    path.write_text(cruft_state_text(answers), encoding="utf-8")
    return path
