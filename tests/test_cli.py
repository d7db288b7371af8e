"""Non-interactive bakes through the real cookiecutter command line."""

from __future__ import annotations

import yaml

from helpers import bake_cli


def test_no_input_with_key_value_overrides_including_booleans(tmp_path):
    result = bake_cli(
        tmp_path,
        "project_name=CLI Counter",
        "app_port=9090",
        "enable_istio=yes",
        "enable_hpa=no",
        "enable_metrics=false",
        "redis_mode=external",
    )
    assert result.returncode == 0, result.stderr
    project = tmp_path / "cli-counter"
    values = yaml.safe_load((project / "charts" / "cli-counter" / "values.yaml").read_text())
    assert values["istio"]["enabled"] is True
    assert values["autoscaling"]["enabled"] is False
    assert values["redis"]["enabled"] is False
    assert values["app"]["port"] == 9090
