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
schemas. Each location is tried once, first: one that cannot be reached is one
failed check naming its variable (instead of one download error per object),
and the objects it would have checked are left out of kubeconform's run.

Tools: ``HELM``, ``KUBECONFORM``, ``KUSTOMIZE``, ``KUBECTL`` name the binaries;
otherwise PATH, then ``K8S_TOOLS_DIR`` (default: the template's tool cache,
``~/.cache/counter-template/bin``). The Makefile uses the same rule.

Exit status: 0 valid, 1 invalid, 2 a required tool (helm, kubeconform) is missing.
Uses only the standard library, so it runs from any Python >= 3.9.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_KUBERNETES_VERSION = "{{ cookiecutter.kubernetes_version }}"
CHART_NAME = "{{ cookiecutter.project_slug }}"
# Go templates that kubeconform fills in, not cookiecutter placeholders.{% raw %}
CRD_LAYOUT = "{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
GO_TEMPLATE_START = "{{"{% endraw %}
CRDS_CATALOG = "https://raw.githubusercontent.com/datreeio/CRDs-catalog/main/" + CRD_LAYOUT
# The CRD-backed kinds the chart may render, by API. The APIs are announced to
# `helm template` so capability-gated templates render too.
CRD_KINDS = {
    "monitoring.coreos.com/v1": ("ServiceMonitor", "PrometheusRule"),
    "networking.istio.io/v1": ("VirtualService", "DestinationRule"),
}
SCHEMA_PROBE_TIMEOUT = 5  # seconds; an offline machine fails at once (no DNS)
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
            print(f"validate_k8s: {name} is not on PATH; using {candidate}", file=sys.stderr)
            return str(candidate)
    return None


@functools.cache
def unreachable(location: str) -> str | None:
    """Why kubeconform could not read schemas at ``location``; None when it can."""
    if location == "default":
        location = "https://raw.githubusercontent.com/"
    if not location.startswith(("http://", "https://")):
        directory = Path(location.split(GO_TEMPLATE_START)[0])
        return None if directory.is_dir() else f"{directory} is not a directory"
    host = urllib.parse.urlsplit(location)
    try:
        request = urllib.request.Request(f"{host.scheme}://{host.netloc}/", method="HEAD")
        urllib.request.urlopen(request, timeout=SCHEMA_PROBE_TIMEOUT).close()
    except urllib.error.HTTPError:
        return None  # it answered
    except (OSError, ValueError) as error:
        return f"{host.netloc} cannot be reached ({getattr(error, 'reason', error)})"
    return None


@dataclass
class SchemaLocations:
    """kubeconform's -schema-location values, and the CRD kinds it cannot check."""

    locations: list[str]
    skipped_kinds: list[str]
    problems: list[Check]


def schema_locations(env: dict[str, str]) -> SchemaLocations:
    kubernetes = env.get("KUBECONFORM_SCHEMA_LOCATION") or "default"
    crds = env.get("CRD_SCHEMA_LOCATION") or CRDS_CATALOG
    # kubeconform completes a bare directory with the Kubernetes layout only;
    # a CRD directory needs its own layout appended.
    if not crds.endswith(".json"):
        crds = crds.rstrip("/") + "/" + CRD_LAYOUT
    result = SchemaLocations([], [], [])
    problem = unreachable(kubernetes)
    if problem:
        result.problems.append(
            Check(
                "Kubernetes schemas",
                f"KUBECONFORM_SCHEMA_LOCATION={kubernetes}",
                False,
                f"{problem}: nothing was checked with kubeconform. Offline, `make schemas` builds"
                " a local copy; then KUBECONFORM_SCHEMA_LOCATION=<the directory it prints>.",
            )
        )
        return result
    result.locations.append(kubernetes)
    problem = unreachable(crds)
    if problem:
        result.skipped_kinds = [kind for kinds in CRD_KINDS.values() for kind in kinds]
        result.problems.append(
            Check(
                "CRD schemas",
                f"CRD_SCHEMA_LOCATION={env.get('CRD_SCHEMA_LOCATION') or CRDS_CATALOG}",
                False,
                f"{problem}: {', '.join(result.skipped_kinds)} were not checked. Offline, set"
                " CRD_SCHEMA_LOCATION to a directory laid out {group}/{kind}_{version}.json.",
            )
        )
    else:
        result.locations.append(crds)
    return result


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


def kubeconform_command(
    kubeconform: str, version: str, schemas: SchemaLocations, env: dict[str, str]
) -> list[str]:
    command = [kubeconform, "-strict", "-summary", "-kubernetes-version", version]
    for location in schemas.locations:
        command += ["-schema-location", location]
    if schemas.skipped_kinds:
        command += ["-skip", ",".join(schemas.skipped_kinds)]
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


def chart_checks(project: Path, helm: str, conform: list[str] | None, version: str) -> list[Check]:
    """helm lint of each value set; with ``conform`` (a kubeconform command) its render checked."""
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
        if conform is None:
            continue
        api_args = [arg for api in CRD_KINDS for arg in ("--api-versions", api)]
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
            conform_rendered(f"kubeconform chart ({label})", template, manifests, conform)
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


def manifest_checks(project: Path, conform: list[str], env: dict[str, str]) -> list[Check]:
    k8s = project / "k8s"
    # Every file, also the ones the kustomization leaves out (opt-in features,
    # the example Secret): each must stay valid for the day it is switched on.
    files = sorted(str(path) for path in k8s.glob("*.y*ml") if path.name not in NOT_MANIFESTS)
    checks = [run("kubeconform k8s/*.yaml", [*conform, *files])[0]]
    build = kustomize_command(project, env)
    if build:
        built, manifests = run("kustomize build k8s", build)
        checks.append(
            conform_rendered("kubeconform kustomize build k8s", built, manifests, conform)
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
    schemas = schema_locations(env)
    report.checks += schemas.problems
    # Without Kubernetes schemas helm lint is all that can run.
    conform = kubeconform_command(kubeconform, version, schemas, env) if schemas.locations else None
    if helm is not None:
        report.checks += chart_checks(project, helm, conform, version)
    if conform:
        report.checks += manifest_checks(project, conform, env)
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
