"""Unit tests for hooks/validation.py: every field accepts good answers and refuses bad ones."""

from __future__ import annotations

import pytest

from hooks import validation
from hooks.validation import InvalidAnswer, validate
from variants import DEFAULTS

GOOD = {
    key: (value[0] if isinstance(value, list) else value)
    for key, value in DEFAULTS.items()
    if not key.startswith("_")
}
GOOD.update(
    project_slug="flask-counter",
    package_name="flask_counter",
    image_repository="ghcr.io/example/flask-counter",
    ingress_host="flask-counter.127.0.0.1.nip.io",
)


def test_defaults_are_valid():
    validate(GOOD)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project_slug", "flask-counter"),
        ("project_slug", "a"),
        ("project_slug", "x" * 40),
        ("package_name", "my_counter2"),
        ("version", "1.2.3-rc.1+build.5"),
        ("author_email", "first.last+tag@sub.example.org"),
        ("app_port", 1024),
        ("app_port", "65535"),
        ("image_repository", "localhost:5000/team/counter"),
        ("image_repository", "registry.example.com/a/b/c-d_e"),
        ("ingress_host", "counter.10.0.0.1.nip.io"),
        ("kubernetes_version", "1.31.4"),
        ("canary_weight", 1),
        ("canary_weight", 99),
        ("hpa_cpu_target", 100),
        ("project_name", 'Zähler: "quoted" #1'),
        ("external_redis_host", "redis-master.data.svc.cluster.local"),
    ],
)
def test_accepts(field, value):
    validate({**GOOD, field: value})


BAD = [
    ("project_name", "   ", "must not be empty"),
    ("project_name", "two\nlines", "single line"),
    ("project_slug", "Flask_Counter", "DNS-1123 label"),
    ("project_slug", "-counter", "DNS-1123 label"),
    ("project_slug", "counter-", "DNS-1123 label"),
    ("project_slug", "x" * 41, "at most 40"),
    ("package_name", "1counter", "identifier"),
    ("package_name", "my-counter", "identifier"),
    ("package_name", "class", "keyword"),
    ("package_name", "match", "keyword"),
    ("package_name", "json", "shadow"),
    ("package_name", "redis", "shadow"),
    ("package_name", "flask", "shadow"),
    ("author_email", "not-an-email", "name@example.com"),
    ("author_email", "a@b", "name@example.com"),
    ("version", "1.0", "semantic version"),
    ("version", "v1.0.0", "semantic version"),
    ("version", "01.0.0", "semantic version"),
    ("python_version", "3.9", "one of 3.13, 3.12, 3.11"),
    ("app_port", 80, "1024 to 65535"),
    ("app_port", 70000, "1024 to 65535"),
    ("app_port", "http", "1024 to 65535"),
    ("app_port", True, "1024 to 65535"),
    ("image_repository", "GHCR.io/Owner/Name:latest", "without tag"),
    ("image_repository", "ghcr.io/owner/name:1.0", "without tag"),
    ("kubernetes_version", "1.34", "X.Y.Z"),
    ("kubernetes_version", "v1.34.0", "X.Y.Z"),
    ("ingress_host", "Counter.example.com", "DNS name"),
    ("ingress_host", "counter..example.com", "DNS name"),
    ("ingress_host", "*.example.com", "DNS name"),
    ("hpa_cpu_target", 0, "1 to 100"),
    ("hpa_cpu_target", 101, "1 to 100"),
    ("canary_weight", 0, "1 to 99"),
    ("canary_weight", 100, "1 to 99"),
    ("canary_weight", "-5", "1 to 99"),
    ("redis_mode", "cluster", "one of statefulset, external"),
    ("external_redis_host", "redis host", "DNS name"),
    ("ci_provider", "jenkins", "one of github, gitlab, none"),
    ("enable_hpa", "maybe", "true or false"),
]


@pytest.mark.parametrize(("field", "value", "allowed"), BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_refuses_with_one_line_naming_field_value_and_rule(field, value, allowed):
    with pytest.raises(InvalidAnswer) as error:
        validate({**GOOD, field: value})
    message = str(error.value)
    assert error.value.field == field
    assert message.startswith(f"{field}={value!r} is not allowed: ")
    assert allowed in message
    assert "\n" not in message


@pytest.mark.parametrize("dependent", ["enable_service_monitor", "enable_grafana_dashboards"])
def test_refuses_features_that_need_metrics(dependent):
    with pytest.raises(InvalidAnswer, match=rf"^{dependent}=True .*needs enable_metrics=true"):
        validate({**GOOD, "enable_metrics": False, dependent: True})


def test_every_answer_in_cookiecutter_json_is_checked():
    answered = {key for key in DEFAULTS if not key.startswith("_")}
    unchecked = answered - set(validation.FIELD_CHECKS)
    assert unchecked == set(), f"answers without a check: {sorted(unchecked)}"


def test_main_prints_one_line_and_exits_non_zero(capsys):
    assert validation.main({**GOOD, "app_port": 22}) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err == "ERROR: app_port=22 is not allowed: must be an integer from 1024 to 65535 "
        "(the container runs as non-root)\n"
    )
    assert validation.main(GOOD) == 0
