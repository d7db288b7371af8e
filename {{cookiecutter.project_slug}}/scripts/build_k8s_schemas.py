#!/usr/bin/env python3
"""Build an offline kubeconform schema cache for one Kubernetes version.

The Kubernetes API schemas come from the PyPI package ``kubernetes-validate``
(downloaded with pip, never installed). Its files point at shared definitions
through absolute ``$ref``s to ``/api/_definitions.json#/$defs/...``; this
script copies every definition a kind needs into that kind's own ``$defs`` and
rewrites the refs to ``#/$defs/...``, so each file stands alone. Files are laid
out the way kubeconform's ``default`` location names them, so a local directory
can replace the online repository:

    {cache}/v1.34.0-standalone-strict/deployment-apps-v1.json
    {cache}/v1.34.0-standalone/deployment-apps-v1.json

Point kubeconform at it with ``-schema-location {cache}``: for a location that
does not end in ``.json`` kubeconform appends exactly this layout.

Usage: build_k8s_schemas.py --kubernetes-version X.Y.Z [--output DIR] [--force]
Prints the cache directory. Idempotent: a complete version is not rebuilt.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

KUBERNETES_VALIDATE_VERSION = os.environ.get("KUBERNETES_VALIDATE_VERSION", "1.37.0")
DEFINITIONS_REF = re.compile(r"^/api/_definitions\.json#/\$defs/(?P<name>.+)$")
LOCAL_REF = re.compile(r"^#/\$defs/(?P<name>.+)$")
VERSION = re.compile(r"^1\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
WHEEL_ROOT = "kubernetes_validate/kubernetes-json-schema"
COMPLETE_MARKER = ".complete"


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "counter-template"
    return Path(os.environ.get("COUNTER_TEMPLATE_CACHE", default))


def default_output() -> Path:
    return Path(os.environ.get("KUBE_SCHEMA_CACHE", cache_dir() / "kube-schemas"))


def fetch_wheel(version: str) -> Path:
    """The kubernetes-validate wheel, downloaded once into the machine cache."""
    target = cache_dir() / "downloads"
    wheel = target / f"kubernetes_validate-{version}-py3-none-any.whl"
    if not wheel.exists():
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(target),
                f"kubernetes-validate=={version}",
            ],
            check=True,
        )
    return wheel


def available_minors(archive: zipfile.ZipFile) -> list[str]:
    names = {name.split("/")[2] for name in archive.namelist() if name.startswith(WHEEL_ROOT + "/")}
    return sorted(n.removesuffix("-local-strict") for n in names if n.endswith("-local-strict"))


def read_set(archive: zipfile.ZipFile, folder: str) -> dict[str, Any]:
    prefix = f"{WHEEL_ROOT}/{folder}/"
    return {
        name[len(prefix) :]: json.loads(archive.read(name))
        for name in archive.namelist()
        if name.startswith(prefix) and name.endswith(".json")
    }


def referenced(node: Any, found: set[str]) -> None:
    """Collect the definition names that ``node`` refers to (absolute or local refs)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            match = DEFINITIONS_REF.match(ref) or LOCAL_REF.match(ref)
            if match:
                found.add(match["name"])
        for value in node.values():
            referenced(value, found)
    elif isinstance(node, list):
        for value in node:
            referenced(value, found)


def localise(node: Any) -> Any:
    """A copy of ``node`` whose refs into _definitions.json point at the file's own $defs."""
    if isinstance(node, dict):
        copy = {key: localise(value) for key, value in node.items()}
        ref = copy.get("$ref")
        if isinstance(ref, str):
            match = DEFINITIONS_REF.match(ref)
            if match:
                copy["$ref"] = f"#/$defs/{match['name']}"
        return copy
    if isinstance(node, list):
        return [localise(value) for value in node]
    return node


def standalone(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    needed: set[str] = set()
    pending: set[str] = set()
    referenced(schema, pending)
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        if name not in definitions:
            raise KeyError(f"schema refers to unknown definition {name!r}")
        needed.add(name)
        referenced(definitions[name], pending)
    result = localise(schema)
    # The $id made the absolute refs resolve against kubernetes.io; the file now
    # resolves everything locally, so the id would only point elsewhere.
    result.pop("$id", None)
    if needed:
        result["$defs"] = {name: localise(definitions[name]) for name in sorted(needed)}
    return result


def build(kubernetes_version: str, output: Path, force: bool) -> None:
    major_minor = ".".join(kubernetes_version.split(".")[:2])
    source_version = f"v{major_minor}.0"  # the API schema does not change within a minor release
    targets = {
        f"v{kubernetes_version}-standalone-strict": f"{source_version}-local-strict",
        f"v{kubernetes_version}-standalone": f"{source_version}-local",
    }
    if not force and all((output / name / COMPLETE_MARKER).exists() for name in targets):
        return
    with zipfile.ZipFile(fetch_wheel(KUBERNETES_VALIDATE_VERSION)) as archive:
        minors = available_minors(archive)
        if source_version not in minors:
            raise SystemExit(
                f"kubernetes_version={kubernetes_version!r} is not available: kubernetes-validate "
                f"{KUBERNETES_VALIDATE_VERSION} ships {minors[0]}..{minors[-1]} "
                "(set KUBERNETES_VALIDATE_VERSION to a release that has it)"
            )
        output.mkdir(parents=True, exist_ok=True)
        for target_name, source_name in targets.items():
            files = read_set(archive, source_name)
            definitions = files.pop("_definitions.json")["$defs"]
            # Build next to the target and swap it in, so readers never see half a set.
            staging = Path(tempfile.mkdtemp(prefix=f".{target_name}-", dir=output))
            for file_name, schema in files.items():
                if file_name == "all.json":
                    continue  # a oneOf over every kind; kubeconform never asks for it
                text = json.dumps(
                    standalone(schema, definitions), separators=(",", ":"), sort_keys=True
                )
                (staging / file_name).write_text(text, encoding="utf-8")
            (staging / COMPLETE_MARKER).write_text(
                f"kubernetes-validate {KUBERNETES_VALIDATE_VERSION} {source_name}\n",
                encoding="utf-8",
            )
            final = output / target_name
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kubernetes-version",
        default=os.environ.get("KUBERNETES_VERSION"),
        required="KUBERNETES_VERSION" not in os.environ,
        help="X.Y.Z (default: $KUBERNETES_VERSION)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=default_output(),
        help="cache directory (default: $KUBE_SCHEMA_CACHE or <tool cache>/kube-schemas)",
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if the version is complete"
    )
    args = parser.parse_args(argv)
    if not VERSION.match(args.kubernetes_version):
        parser.error(
            f"--kubernetes-version={args.kubernetes_version!r} is not allowed: "
            "must be X.Y.Z, e.g. 1.36.0"
        )
    build(args.kubernetes_version, args.output, args.force)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
