"""Post-generation validation of the Helm chart and k8s/ manifests of a baked project.

``post_gen_project.py`` calls :func:`validate_project` with the project directory.
The generated project's own ``scripts/validate_k8s.py`` does the work (the same
checks as its ``make validate``); this module only applies the policy chosen
with ``COUNTER_TEMPLATE_VALIDATE``:

* ``warn`` (default): missing helm/kubeconform -> one warning with install hints;
  failed checks -> the tools' messages as a warning. The bake succeeds.
* ``strict``: a missing tool or a failed check fails the bake.
* ``off``: nothing runs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

MODES = ("strict", "warn", "off")
ENV_VAR = "COUNTER_TEMPLATE_VALIDATE"


class InvalidMode(ValueError):
    pass


def mode_from_env(env: dict[str, str] | None = None) -> str:
    value = (os.environ if env is None else env).get(ENV_VAR, "").strip().lower() or "warn"
    if value not in MODES:
        raise InvalidMode(f"{ENV_VAR}={value!r} is not allowed: must be one of {', '.join(MODES)}")
    return value


def load_validator(project_dir: Path) -> ModuleType:
    path = project_dir / "scripts" / "validate_k8s.py"
    spec = importlib.util.spec_from_file_location("generated_validate_k8s", path)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def validate_project(project_dir: Path | str, mode: str | None = None, out=None) -> bool:
    """Validate the baked project; False means the bake must fail (strict mode only)."""
    out = sys.stderr if out is None else out
    try:
        mode = mode or mode_from_env()
    except InvalidMode as error:
        print(f"ERROR: {error}", file=out)
        return False
    if mode == "off":
        return True
    project_dir = Path(project_dir)
    validator = load_validator(project_dir)
    report = validator.run_checks(project_dir)
    strict = mode == "strict"
    level = "ERROR" if strict else "WARNING"
    if report.missing:
        print(
            f"{level}: Kubernetes validation {'failed' if strict else 'incomplete'}: "
            + validator.missing_tools_message(report.missing)
            + f" (the template's scripts/install-tools.sh builds both). Set {ENV_VAR}=off to silence"
            " this, or run `make validate` in the project later.",
            file=out,
        )
    if report.failed:
        print(f"{level}: Kubernetes validation found problems:", file=out)
        validator.print_report(report, out=out)
    elif report.checks and not report.missing:
        print(f"Kubernetes validation: all {len(report.checks)} checks passed.", file=out)
    return not (strict and (report.missing or report.failed))
