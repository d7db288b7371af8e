"""scripts/crds_from_schemas.py: CRD JSON schemas (kubeconform's layout) into CustomResourceDefinitions."""

from __future__ import annotations

import importlib.util
import json

import pytest

from helpers import TEMPLATE_DIR

spec = importlib.util.spec_from_file_location(
    "crds_from_schemas", TEMPLATE_DIR / "scripts" / "crds_from_schemas.py"
)
crds_from_schemas = importlib.util.module_from_spec(spec)
spec.loader.exec_module(crds_from_schemas)


@pytest.mark.parametrize(
    ("kind", "plural"),
    [
        ("VirtualService", "virtualservices"),
        ("Policy", "policies"),
        ("Gateway", "gateways"),
        ("Ingress", "ingresses"),
    ],
)
def test_plural(kind, plural):
    assert crds_from_schemas.plural(kind) == plural


def test_structural_drops_only_strict_additional_properties():
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "list": {"type": "array", "items": [{"additionalProperties": False, "type": "object"}]},
        },
    }
    assert crds_from_schemas.structural(schema) == {
        "type": "object",
        "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "list": {"type": "array", "items": [{"type": "object"}]},
        },
    }


def test_versions_of_one_kind_make_one_crd_storing_the_first(tmp_path, capsys):
    group = tmp_path / "example.com"
    group.mkdir()
    for version in ("v1", "v1beta1"):
        (group / f"widget_{version}.json").write_text(
            json.dumps({"type": "object", "additionalProperties": False})
        )
    assert (
        crds_from_schemas.main(
            ["--schemas", str(tmp_path), "example.com/v1/Widget", "example.com/v1beta1/Widget"]
        )
        == 0
    )
    (crd,) = json.loads(capsys.readouterr().out)["items"]
    assert crd["metadata"]["name"] == "widgets.example.com"
    assert [(v["name"], v["storage"], v["served"]) for v in crd["spec"]["versions"]] == [
        ("v1", True, True),
        ("v1beta1", False, True),
    ]
    assert crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] == {"type": "object"}


@pytest.mark.parametrize(
    "location",
    [
        "https://example.org/crds",
        "https://example.org/crds/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json",
    ],
)
def test_prefix_and_kubeconform_template_address_the_same_file(location):
    address = crds_from_schemas.schema_address(location, "networking.istio.io", "VirtualService", "v1")
    assert address == "https://example.org/crds/networking.istio.io/virtualservice_v1.json"


def test_missing_schema_and_bad_names_are_one_line_errors(tmp_path, capsys):
    assert crds_from_schemas.main(["--schemas", str(tmp_path), "example.com/v1/Widget"]) == 1
    assert "no schema for example.com/v1/Widget" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        crds_from_schemas.main(["--schemas", str(tmp_path), "example.com/Widget"])
    assert "is not GROUP/VERSION/KIND" in capsys.readouterr().err
