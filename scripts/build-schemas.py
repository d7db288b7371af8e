#!/usr/bin/env python3
"""Build the offline kubeconform schema cache for the template's tests and CI.

Runs the generated project's scripts/build_k8s_schemas.py (one copy of the
logic, and it contains no cookiecutter placeholders), defaulting the
Kubernetes version to the one in cookiecutter.json.

Usage: scripts/build-schemas.py [--kubernetes-version X.Y.Z] [--output DIR] [--force]
Prints the cache directory (default: $KUBE_SCHEMA_CACHE or
${COUNTER_TEMPLATE_CACHE:-~/.cache/counter-template}/kube-schemas).
"""

import json
import os
import runpy
import sys
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
BUILDER = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "scripts" / "build_k8s_schemas.py"

if __name__ == "__main__":
    answers = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))
    os.environ.setdefault("KUBERNETES_VERSION", answers["kubernetes_version"])
    sys.argv[0] = str(BUILDER)
    runpy.run_path(str(BUILDER), run_name="__main__")
