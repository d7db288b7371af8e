"""Writes the generated project's ``.env`` (compose settings) with fresh secrets.

``.env.example`` documents every variable; ``.env`` is that file with each
secret filled in by a new random value. An existing ``.env`` is never touched:
re-running the template (cruft, ``--overwrite-if-exists``) keeps the passwords
that the Redis volume already uses.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

SECRET_VARIABLES = ("REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD")


def new_secret() -> str:
    # URL-safe alphabet: no quoting needed in .env, compose or a Redis URL.
    return secrets.token_urlsafe(32)


def fill_secrets(example: str) -> str:
    """``example`` with every empty ``NAME=`` line of SECRET_VARIABLES given a new secret."""
    for name in SECRET_VARIABLES:
        pattern = re.compile(rf"^{name}=[ \t]*$", re.MULTILINE)
        if not pattern.search(example):
            raise ValueError(f"template bug: .env.example has no empty '{name}=' line")
        example = pattern.sub(lambda _match, name=name: f"{name}={new_secret()}", example)
    return example


def write_dotenv(project_dir: Path) -> bool:
    """Create ``project_dir/.env`` from ``.env.example``; False when a .env already exists."""
    dotenv = Path(project_dir) / ".env"
    if dotenv.exists():
        return False
    content = fill_secrets((Path(project_dir) / ".env.example").read_text(encoding="utf-8"))
    # Owner-only from the start: the file holds passwords.
    descriptor = os.open(dotenv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content)
    return True
