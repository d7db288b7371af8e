#!/usr/bin/env python3
"""Validate the Helm chart and the plain manifests in k8s/ (`make validate`).

Checks, each with the tool's own output on failure:

* ``helm lint --strict`` of the chart with its defaults and with every
  ``charts/<name>/ci/*-values.yaml`` (all features on, external Redis, minimal);
* ``helm template`` of the same value sets piped to ``kubeconform -strict``;
* kubeconform over every manifest in k8s/, and over ``kustomize build k8s``
  (or ``kubectl kustomize k8s``) when one of them is installed.

Schemas: ``KUBECONFORM_SCHEMA_LOCATION`` (default ``default``, kubeconform's
online Kubernetes schemas; or a directory made by ``make schemas``) and
``CRD_SCHEMA_LOCATION`` (default: the public CRDs-catalog; or a directory laid
out ``{group}/{kind}_{version}.json``). ``KUBECONFORM_CACHE`` keeps downloaded
schemas. Tools: ``HELM``, ``KUBECONFORM``, ``KUSTOMIZE`` name the binaries;
otherwise PATH, then ``K8S_TOOLS_DIR``.

Exit status: 0 valid, 1 invalid, 2 a required tool (helm, kubeconform) is missing.
Uses only the standard library, so it runs from any Python >= 3.9.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_KUBERNETES_VERSION = "{{ cookiecutter.kubernetes_version }}"
CHART_NAME = "{{ cookiecutter.project_slug }}"
# Go templates that kubeconform fills in, not cookiecutter placeholders.{% raw %}
CRD_LAYOUT = "{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"{% endraw %}
CRDS_CATALOG = "https://raw.githubusercontent.com/datreeio/CRDs-catalog/main/" + CRD_LAYOUT
# The chart may render these CRD-backed kinds; the API is announced to
# `helm template` so capability-gated templates render too.
EXTRA_API_VERSIONS = ("monitoring.coreos.com/v1", "networking.istio.io/v1")
# Value sets shipped with the chart (chart-testing convention), linted and rendered too.
CI_VALUES_GLOB = "ci/*-values.yaml"
NOT_MANIFESTS = {"kustomization.yaml", "kustomization.yml"}

INSTALL_HINTS = {
    "helm": "https://helm.sh/docs/intro/install/ or `go install helm.sh/helm/v3/cmd/helm@v3.19.5`",
    "kubeconform": "https://github.com/yannh/kubeconform#installation or "
    "`go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0`",
}


@dataclass
class Check:
    name: str
    command: str
    ok: bool
    output: str


@dataclass
class Report:
    missing: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]


def default_tool_dir() -> Path:
    """The machine-level tool cache that the template's scripts/install-tools.sh fills."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "counter-template"
    return Path(os.environ.get("COUNTER_TEMPLATE_CACHE", cache)) / "bin"


def find_tool(name: str, env: dict[str, str]) -> str | None:
    explicit = env.get(name.upper())
    if explicit:
        return explicit if shutil.which(explicit) else None
    found = shutil.which(name, path=env.get("PATH"))
    if found:
        return found
    dirs = [Path(env["K8S_TOOLS_DIR"])] if env.get("K8S_TOOLS_DIR") else []
    for directory in [*dirs, default_tool_dir()]:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def schema_locations(env: dict[str, str]) -> list[str]:
    kubernetes = env.get("KUBECONFORM_SCHEMA_LOCATION") or "default"
    crds = env.get("CRD_SCHEMA_LOCATION") or CRDS_CATALOG
    # kubeconform completes a bare directory with the Kubernetes layout only;
    # a CRD directory needs its own layout appended.
    if not crds.endswith(".json"):
        crds = crds.rstrip("/") + "/" + CRD_LAYOUT
    return [kubernetes, crds]


def run(name: str, command: list[str], stdin: str | None = None) -> tuple[Check, str]:
    shown = " ".join(command)
    try:
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check(name, shown, False, str(error)), ""
    ok = result.returncode == 0
    # A failed render's partial manifests would bury helm's own message.
    output = (
        result.stderr if command[1:2] == ["template"] and not ok else result.stdout + result.stderr
    )
    return Check(name, shown, ok, output.strip()), result.stdout


def kubeconform_command(kubeconform: str, version: str, env: dict[str, str]) -> list[str]:
    command = [kubeconform, "-strict", "-summary", "-kubernetes-version", version]
    for location in schema_locations(env):
        command += ["-schema-location", location]
    if env.get("KUBECONFORM_CACHE"):
        Path(env["KUBECONFORM_CACHE"]).mkdir(parents=True, exist_ok=True)
        command += ["-cache", env["KUBECONFORM_CACHE"]]
    return command


def conform_rendered(name: str, render: Check, manifests: str, conform: list[str]) -> Check:
    """kubeconform over what ``render`` printed; a failed render is reported as it is."""
    if not render.ok:
        return render
    check, _ = run(name, conform, manifests)
    check.command = f"{render.command} | {check.command}"
    return check


def chart_checks(
    project: Path, helm: str, kubeconform: str, version: str, env: dict[str, str]
) -> list[Check]:
    chart = project / "charts" / CHART_NAME
    value_sets: list[tuple[str, list[str]]] = [("defaults", [])]
    for values in sorted(chart.glob(CI_VALUES_GLOB)):
        value_sets.append((values.name, ["--values", str(values)]))
    checks = []
    for label, values_args in value_sets:
        lint, _ = run(
            f"helm lint --strict ({label})",
            [helm, "lint", "--strict", "--kube-version", version, str(chart), *values_args],
        )
        checks.append(lint)
        api_args = [arg for api in EXTRA_API_VERSIONS for arg in ("--api-versions", api)]
        template, manifests = run(
            f"helm template ({label})",
            [
                helm,
                "template",
                CHART_NAME,
                str(chart),
                "--kube-version",
                version,
                *api_args,
                *values_args,
            ],
        )
        checks.append(
            conform_rendered(
                f"kubeconform chart ({label})",
                template,
                manifests,
                kubeconform_command(kubeconform, version, env),
            )
        )
    return checks


def kustomize_command(project: Path, env: dict[str, str]) -> list[str] | None:
    kustomize = find_tool("kustomize", env)
    if kustomize:
        return [kustomize, "build", str(project / "k8s")]
    kubectl = find_tool("kubectl", env)
    if kubectl:
        return [kubectl, "kustomize", str(project / "k8s")]
    return None


def manifest_checks(
    project: Path, kubeconform: str, version: str, env: dict[str, str]
) -> list[Check]:
    k8s = project / "k8s"
    # Every file, also the ones the kustomization leaves out (opt-in features,
    # the example Secret): each must stay valid for the day it is switched on.
    files = sorted(str(path) for path in k8s.glob("*.y*ml") if path.name not in NOT_MANIFESTS)
    conform, _ = run(
        "kubeconform k8s/*.yaml", [*kubeconform_command(kubeconform, version, env), *files]
    )
    checks = [conform]
    build = kustomize_command(project, env)
    if build:
        built, manifests = run("kustomize build k8s", build)
        checks.append(
            conform_rendered(
                "kubeconform kustomize build k8s",
                built,
                manifests,
                kubeconform_command(kubeconform, version, env),
            )
        )
    return checks


def run_checks(
    project: Path,
    kubernetes_version: str | None = None,
    env: dict[str, str] | None = None,
) -> Report:
    """Run every check that the installed tools allow; list the missing required tools."""
    env = dict(os.environ if env is None else env)
    version = kubernetes_version or env.get("KUBERNETES_VERSION") or DEFAULT_KUBERNETES_VERSION
    report = Report()
    helm = find_tool("helm", env)
    kubeconform = find_tool("kubeconform", env)
    report.missing = [
        name for name, path in (("helm", helm), ("kubeconform", kubeconform)) if path is None
    ]
    if kubeconform is None:
        return report
    if helm is not None:
        report.checks += chart_checks(project, helm, kubeconform, version, env)
    report.checks += manifest_checks(project, kubeconform, version, env)
    return report


def missing_tools_message(missing: list[str]) -> str:
    hints = "; ".join(f"{name}: {INSTALL_HINTS[name]}" for name in missing)
    where = "PATH, HELM/KUBECONFORM, K8S_TOOLS_DIR"
    return f"{' and '.join(missing)} not found ({where}): install {hints}"


def print_report(report: Report, out=sys.stdout) -> None:
    for check in report.checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}", file=out)
        if not check.ok:
            print(f"     $ {check.command}", file=out)
            print("     " + check.output.replace("\n", "\n     "), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-dir", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument(
        "--kubernetes-version",
        help=f"X.Y.Z (default: $KUBERNETES_VERSION or {DEFAULT_KUBERNETES_VERSION})",
    )
    args = parser.parse_args(argv)
    report = run_checks(args.project_dir, args.kubernetes_version)
    print_report(report)
    if report.missing:
        print("validate_k8s: " + missing_tools_message(report.missing), file=sys.stderr)
        return 2
    if report.failed:
        print(
            f"validate_k8s: {len(report.failed)} of {len(report.checks)} checks failed",
            file=sys.stderr,
        )
        return 1
    print(f"validate_k8s: all {len(report.checks)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
