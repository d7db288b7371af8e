#!/usr/bin/env python3
"""Print CustomResourceDefinitions built from CRD JSON schemas, for a test cluster.

The schemas use the CRDs-catalog layout, {group}/{kind}_{version}.json (the same
files kubeconform reads), so the API server of the local cluster validates
Istio and Prometheus Operator objects with the same schema kubeconform used.
The catalog's schemas are the upstream CRDs' openAPIV3Schema with
"additionalProperties: false" added for strict validation; a structural CRD
schema may not carry it (the API server prunes unknown fields instead), so it
is removed again.

Usage: crds_from_schemas.py --schemas LOCATION GROUP/VERSION/KIND ... | kubectl apply -f -
  --schemas  a directory or a URL prefix in that layout (e.g. the CRDs-catalog's raw
             URL), or a kubeconform location template ending in .json (the form
             CRD_SCHEMA_LOCATION may also take for the generated validate_k8s.py)
Several versions of one kind make one CRD that serves them all; the first one
named is the storage version.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path


def plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x")):
        return lower + "es"
    return lower + "s"


def structural(schema):
    """Copy of SCHEMA without the strict-validation "additionalProperties: false"."""
    if isinstance(schema, dict):
        return {
            key: structural(value)
            for key, value in schema.items()
            if not (key == "additionalProperties" and value is False)
        }
    if isinstance(schema, list):
        return [structural(item) for item in schema]
    return schema


def schema_address(location: str, group: str, kind: str, version: str) -> str:
    if location.endswith(".json"):  # a kubeconform template
        for field, value in (
            ("Group", group),
            ("ResourceKind", kind.lower()),
            ("ResourceAPIVersion", version),
        ):
            location = location.replace("{{." + field + "}}", value)
        return location
    return f"{location.rstrip('/')}/{group}/{kind.lower()}_{version}.json"


def load_schema(location: str, group: str, kind: str, version: str) -> dict:
    address = schema_address(location, group, kind, version)
    if address.startswith(("https://", "http://")):
        try:
            with urllib.request.urlopen(address, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise OSError(
                f"no schema for {group}/{version}/{kind}: {address} answered {error.code}"
            ) from None
        except OSError as error:
            raise OSError(f"cannot fetch {address} ({error})") from None
    path = Path(address)
    if not path.is_file():
        raise FileNotFoundError(f"no schema for {group}/{version}/{kind}: {path} does not exist")
    return json.loads(path.read_text())


def crd(location: str, group: str, kind: str, versions: list[str]) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural(kind)}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural(kind),
                "singular": kind.lower(),
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": version == versions[0],
                    "schema": {"openAPIV3Schema": structural(load_schema(location, group, kind, version))},
                }
                for version in versions
            ],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--schemas", required=True, help="{group}/{kind}_{version}.json layout: directory or URL"
    )
    parser.add_argument(
        "kinds", nargs="+", metavar="GROUP/VERSION/KIND", help="e.g. monitoring.coreos.com/v1/ServiceMonitor"
    )
    args = parser.parse_args(argv)
    versions: dict[tuple[str, str], list[str]] = {}
    for name in args.kinds:
        parts = name.split("/")
        if len(parts) != 3 or not all(parts):
            parser.error(
                f"kind {name!r} is not GROUP/VERSION/KIND (e.g. networking.istio.io/v1/VirtualService)"
            )
        group, version, kind = parts
        versions.setdefault((group, kind), []).append(version)
    try:
        items = [crd(args.schemas, group, kind, listed) for (group, kind), listed in versions.items()]
    except (OSError, ValueError) as error:
        print(f"crds_from_schemas.py: {error}", file=sys.stderr)
        return 1
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
