"""Validation of cookiecutter answers, run by ``pre_gen_project.py`` before anything is written.

Each check returns ``None`` when the answer is fine, or the sentence that says
what is allowed. :func:`validate` turns the first failure into one line that
names the field and the bad value; :func:`main` prints it and exits non-zero
(cookiecutter then removes the half-made output directory).
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

SLUG_MAX_LENGTH = 40
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# https://semver.org/#is-there-a-suggested-regular-expression-regex-to-check-a-semver-string
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
KUBERNETES_VERSION = re.compile(r"^1\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
# OCI distribution spec: [registry[:port]/]path, lowercase, no tag or digest.
IMAGE_REPOSITORY = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
PACKAGE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

# Import names the generated service (or its tests and tools) depends on; a
# package with one of these names would shadow it.
DEPENDENCY_MODULES = frozenset(
    {
        "app",
        "blinker",
        "click",
        "fakeredis",
        "flask",
        "gunicorn",
        "hiredis",
        "itsdangerous",
        "jinja2",
        "markupsafe",
        "orjson",
        "pip",
        "pkg_resources",
        "prometheus_client",
        "prometheus_flask_exporter",
        "pytest",
        "redis",
        "ruff",
        "setuptools",
        "src",
        "tests",
        "werkzeug",
        "wheel",
        "yaml",
    }
)

# cookiecutter.json is the one home of the answers and their defaults: a list
# is a choice, a JSON boolean a yes/no answer; keys starting with "_" are not answers.
COOKIECUTTER_JSON = Path(__file__).resolve().parent.parent / "cookiecutter.json"
ANSWERS: dict[str, Any] = {
    name: value
    for name, value in json.loads(COOKIECUTTER_JSON.read_text(encoding="utf-8")).items()
    if not name.startswith("_")
}
CHOICES = {name: tuple(value) for name, value in ANSWERS.items() if isinstance(value, list)}
BOOLEANS = tuple(name for name, value in ANSWERS.items() if isinstance(value, bool))


class InvalidAnswer(ValueError):
    """An answer that cannot produce a working project; ``str()`` is the one-line message."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is not allowed: {allowed}")


# --- single-field checks -------------------------------------------------------


def single_line_text(value: Any) -> str | None:
    text = str(value)
    if not text.strip():
        return "must not be empty"
    if any(ch in text for ch in "\r\n") or not all(ch.isprintable() for ch in text):
        return "must be a single line of printable text"
    return None


def dns_label(value: Any) -> str | None:
    text = str(value)
    if len(text) > SLUG_MAX_LENGTH or not DNS_LABEL.match(text):
        return (
            f"must be a DNS-1123 label of at most {SLUG_MAX_LENGTH} characters: lowercase "
            "letters, digits and '-', starting and ending with a letter or digit"
        )
    return None


def dns_name(value: Any) -> str | None:
    text = str(value)
    labels = text.split(".")
    if len(text) > 253 or not all(len(label) <= 63 and DNS_LABEL.match(label) for label in labels):
        return (
            "must be a DNS name: dot-separated labels of lowercase letters, digits and '-' "
            "(each at most 63 characters, at most 253 in all)"
        )
    return None


def package_name(value: Any) -> str | None:
    text = str(value)
    if not PACKAGE_NAME.match(text):
        return "must be a lowercase Python identifier (letters, digits, '_'; not starting with a digit)"
    if keyword.iskeyword(text) or keyword.issoftkeyword(text):
        return "must not be a Python keyword"
    if text in sys.stdlib_module_names or text in DEPENDENCY_MODULES:
        return "must not shadow a standard-library or dependency module"
    return None


def email(value: Any) -> str | None:
    return None if EMAIL.match(str(value)) else "must look like name@example.com"


def semver(value: Any) -> str | None:
    return None if SEMVER.match(str(value)) else "must be a semantic version such as 0.1.0"


def kubernetes_version(value: Any) -> str | None:
    if KUBERNETES_VERSION.match(str(value)):
        return None
    return "must be a Kubernetes release as X.Y.Z, e.g. 1.36.0"


def image_repository(value: Any) -> str | None:
    text = str(value)
    if IMAGE_REPOSITORY.match(text) and len(text) <= 255:
        return None
    return "must be an image repository without tag, e.g. ghcr.io/owner/name (lowercase path)"


def integer_between(low: int, high: int, why: str = "") -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not re.fullmatch(r"[0-9]+", str(value).strip()):
            return f"must be an integer from {low} to {high}{why}"
        return None if low <= int(str(value)) <= high else f"must be an integer from {low} to {high}{why}"

    return check


def one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else "must be one of " + ", ".join(choices)

    return check


def boolean(value: Any) -> str | None:
    # cookiecutter >= 2.7 turns yes/no/true/false/1/0 from the command line into
    # real booleans, so anything else here is a typo.
    return None if isinstance(value, bool) else "must be true or false"


FIELD_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "project_name": single_line_text,
    "project_slug": dns_label,
    "package_name": package_name,
    "description": single_line_text,
    "author_name": single_line_text,
    "author_email": email,
    "version": semver,
    "greeting": single_line_text,
    "app_port": integer_between(1024, 65535, " (the container runs as non-root)"),
    "image_repository": image_repository,
    "kubernetes_version": kubernetes_version,
    "ingress_host": dns_name,
    "hpa_cpu_target": integer_between(1, 100),
    "canary_weight": integer_between(1, 99),
    "external_redis_host": dns_name,
    **{name: one_of(choices) for name, choices in CHOICES.items()},
    **{name: boolean for name in BOOLEANS},
}

# (field, value it must have, reason) for each answer that only works with another.
REQUIRES: dict[str, tuple[str, Any, str]] = {
    "enable_service_monitor": ("enable_metrics", True, "a ServiceMonitor scrapes /metrics"),
    "enable_grafana_dashboards": ("enable_metrics", True, "the dashboards read the app's metrics"),
}


def validate(answers: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidAnswer` for the first answer that is not allowed."""
    for field, check in FIELD_CHECKS.items():
        if field not in answers:
            continue
        problem = check(answers[field])
        if problem:
            raise InvalidAnswer(field, answers[field], problem)
    for field, (needed, needed_value, reason) in REQUIRES.items():
        if answers.get(field) is True and answers.get(needed) != needed_value:
            raise InvalidAnswer(
                field, answers[field], f"needs {needed}={str(needed_value).lower()} ({reason})"
            )


def main(answers: Mapping[str, Any]) -> int:
    try:
        validate(answers)
    except InvalidAnswer as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    return 0
