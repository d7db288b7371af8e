"""What the factory builds for one app, reachable from request handlers."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from .config import Settings
from .metrics import AppMetrics
from .store import CounterStore

EXTENSION_KEY = "{{ cookiecutter.package_name }}"


@dataclass(frozen=True)
class AppServices:
    settings: Settings
    store: CounterStore
    metrics: AppMetrics


def services() -> AppServices:
    """The current app's settings, store and metrics (inside a request or app context)."""
    return current_app.extensions[EXTENSION_KEY]
