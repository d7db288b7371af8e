"""Bad answers on the real command line: one clear line, non-zero exit, nothing left behind."""

from __future__ import annotations

import pytest

from helpers import bake_cli

CASES = [
    ("project_slug", "Bad_Slug", "DNS-1123 label"),
    ("package_name", "import", "keyword"),
    ("package_name", "os", "shadow"),
    ("app_port", "80", "1024 to 65535"),
    ("author_email", "nobody", "name@example.com"),
    ("version", "1.0", "semantic version"),
    ("canary_weight", "100", "1 to 99"),
    ("canary_weight", "0", "1 to 99"),
    ("hpa_cpu_target", "0", "1 to 100"),
    ("hpa_cpu_target", "101", "1 to 100"),
    ("ingress_host", "bad_host.example.com", "DNS name"),
    ("kubernetes_version", "latest", "X.Y.Z"),
    ("image_repository", "Example/Counter:latest", "without tag"),
]


@pytest.mark.parametrize(("field", "value", "allowed"), CASES, ids=[f"{f}={v}" for f, v, _ in CASES])
def test_bad_answer_is_refused_cleanly(tmp_path, field, value, allowed):
    result = bake_cli(tmp_path, f"{field}={value}")
    assert result.returncode != 0
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith(f"ERROR: {field}={value!r} is not allowed: ")
    assert allowed in first_line
    assert "Traceback" not in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == [], "a half-written project was left behind"


def test_unsupported_combination_is_refused(tmp_path):
    result = bake_cli(tmp_path, "enable_metrics=no", "enable_service_monitor=yes")
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        "ERROR: enable_service_monitor=True is not allowed: needs enable_metrics=true "
        "(a ServiceMonitor scrapes /metrics)"
    )
    assert list(tmp_path.iterdir()) == []
