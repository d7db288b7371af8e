"""Bad answers on the real command line: one clear line, non-zero exit, nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import TEMPLATE_DIR, bake_cli, run

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


# --- answers cookiecutter itself converts: make bake checks them first -------------------------

WRAPPER_CASES = [
    ("enable_istio", "maybe", "must be true or false"),
    ("python_version", "3.10", "must be one of 3.13, 3.12, 3.11"),
    ("enable_isito", "yes", "not an answer of this template"),
    ("project_slug", "Bad_Slug", "DNS-1123 label"),
]


@pytest.mark.parametrize(
    ("field", "value", "allowed"), WRAPPER_CASES, ids=[f"{f}={v}" for f, v, _ in WRAPPER_CASES]
)
def test_make_bake_refuses_every_bad_answer_in_one_line(tmp_path, field, value, allowed):
    result = run(
        ["make", "-s", "-C", TEMPLATE_DIR, "bake", f"OUT={tmp_path}", f"ARGS={field}={value}"],
        env={"COUNTER_TEMPLATE_VALIDATE": "off"},
        check=False,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert errors == [f"ERROR: {field}={value!r} is not allowed: " + errors[0].split(": ", 2)[2]]
    assert allowed in errors[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == []


def throwaway_config(tmp_path: Path) -> tuple[dict[str, str], Path]:
    replay = tmp_path / "replay"
    config = tmp_path / "cookiecutterrc.yaml"
    config.write_text(f"replay_dir: {replay}\ncookiecutters_dir: {tmp_path}/templates\n")
    return {"COOKIECUTTER_CONFIG": str(config)}, replay


def test_a_refused_answer_is_not_what_replay_replays(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env, replay = throwaway_config(tmp_path)
    refused = bake_cli(out, "project_slug=Bad_Slug", env=env)
    assert refused.returncode != 0
    assert not replay.exists() or list(replay.iterdir()) == [], "the refused answers were saved for --replay"
    assert bake_cli(out, "project_slug=good-slug", env=env).returncode == 0
    (saved,) = replay.iterdir()
    assert json.loads(saved.read_text())["cookiecutter"]["project_slug"] == "good-slug"


def test_plain_cookiecutter_converts_yes_no_answers_itself(tmp_path):
    """Documented in the README: cookiecutter refuses enable_istio=maybe before any hook of ours
    runs, with a traceback that ends in one readable line; nothing is written or replayed."""
    out = tmp_path / "out"
    out.mkdir()
    env, replay = throwaway_config(tmp_path)
    result = bake_cli(out, "enable_istio=maybe", env=env)
    assert result.returncode != 0
    assert result.stderr.splitlines()[-1] == (
        "ValueError: maybe provided for variable enable_istio could not be converted to a boolean."
    )
    assert list(out.iterdir()) == []
    assert not replay.exists()
