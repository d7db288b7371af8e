"""Finish the generated project (logic: hooks/postgen.py)."""

import sys
from pathlib import Path

sys.path.insert(0, {{ template_dir | pyliteral }})

from hooks.postgen import main  # noqa: E402

sys.exit(main(Path.cwd(), {{ cookiecutter | pyliteral }}))
