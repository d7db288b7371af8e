"""Refuse bad answers before cookiecutter writes any file (logic: hooks/validation.py)."""

import sys

sys.path.insert(0, {{ template_dir | pyliteral }})

from hooks.validation import main  # noqa: E402

sys.exit(main({{ cookiecutter | pyliteral }}))
