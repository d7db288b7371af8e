"""The bake matrix: defaults, one option changed at a time, and the pairs that interact.

Names are stable test ids; each maps to the answers that differ from cookiecutter.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "cookiecutter.json").read_text(encoding="utf-8")
)
TOGGLES = [key for key, value in DEFAULTS.items() if isinstance(value, bool)]

ODD_NAMES = {
    "project_name": 'Zähler: "quoted" #1 \\ - test',
    "project_slug": "odd-counter",
    "package_name": "odd_counter",
    "description": '- starts with a dash: has "quotes", a # hash and a \\ backslash',
    "greeting": "Grüß dich: 'hi' #",
    "author_name": 'O\'Brien, "Dev" #1',
}

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    # Each toggle flipped alone (dependent toggles bring what they need).
    **{f"{toggle}={str(not DEFAULTS[toggle]).lower()}": {toggle: not DEFAULTS[toggle]} for toggle in TOGGLES},
    "redis_mode=external": {"redis_mode": "external"},
    "ci_provider=gitlab": {"ci_provider": "gitlab"},
    "ci_provider=none": {"ci_provider": "none"},
    "python_version=3.11": {"python_version": "3.11"},
    "app_port=8080": {"app_port": 8080},
    "all-on": {toggle: True for toggle in TOGGLES},
    "all-off": {toggle: False for toggle in TOGGLES},
    # Pairs that interact.
    "istio+hpa": {"enable_istio": True, "enable_hpa": True, "canary_weight": 35},
    "istio+service-monitor": {"enable_istio": True, "enable_service_monitor": True},
    "external-redis+affinity": {"redis_mode": "external", "enable_pod_affinity": True},
    "external-redis+all-on": {"redis_mode": "external", **{toggle: True for toggle in TOGGLES}},
    "odd-names": ODD_NAMES,
}
