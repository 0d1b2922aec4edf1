"""The ``SiemPipeline`` CRD, generated from the pydantic models of :mod:`siem_operator.spec`.

``python -m siem_operator.crd > crds/siempipelines.siem.ocisiem.io.yaml`` writes it; a test checks that
the committed file is exactly what this module generates, so the models stay the one source.

pydantic emits JSON Schema (2020-12 flavoured); Kubernetes wants a *structural* OpenAPI v3 schema.
:func:`structural` converts: ``$ref`` inlined, ``Optional`` (``anyOf`` with ``null``) reduced to the
type (an absent field, never ``nullable``), ``additionalProperties: false`` dropped (the API server
prunes or, with strict field validation, rejects unknown fields), ``title`` and ``default: null``
dropped, ``const`` turned into a one-value ``enum``. What it cannot express it refuses (a real union,
an exclusive bound) rather than emit a schema Kubernetes would reject.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Final

import yaml

from siem_operator import spec

CRD_NAME: Final = f"{spec.PLURAL}.{spec.GROUP}"
CRD_PATH: Final = f"crds/{CRD_NAME}.yaml"

_DROP: Final = frozenset({"title", "discriminator"})
_ORDER: Final = ("description", "type", "format", "enum", "default", "pattern", "minLength", "maxLength",
                 "minimum", "maximum", "minItems", "maxItems", "required", "properties", "items",
                 "additionalProperties")

PRINTER_COLUMNS: Final = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
     "description": "The pipeline's resources exist and work."},
    {"name": "Synced", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Synced")].status',
     "description": "The last reconcile applied the spec."},
    {"name": "Regions", "type": "integer", "jsonPath": ".status.health.regionCount",
     "description": "Regions being exported."},
    {"name": "Lag", "type": "string", "jsonPath": ".status.health.lag",
     "description": "How far the slowest region trails now."},
    {"name": "Last Export", "type": "date", "jsonPath": ".status.health.lastExportTime",
     "description": "End of the last window delivered to the destination."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


class SchemaError(ValueError):
    """The models use a construct a structural schema cannot express."""


def _description(text: str) -> str:
    """Docstring text for people: paragraphs kept, line breaks inside them joined, rst quotes dropped."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p.replace("``", "'") for p in paragraphs if p)


def _ordered(schema: dict[str, Any]) -> dict[str, Any]:
    rank = {key: i for i, key in enumerate(_ORDER)}
    return dict(sorted(schema.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def structural(node: dict[str, Any], defs: dict[str, Any], path: str = "", *, nullable: bool = False) -> dict[str, Any]:
    """``node`` (pydantic JSON Schema) as a structural OpenAPI v3 schema, with ``defs`` inlined.

    An all-optional sub-object gets ``default: {}`` so that its own fields' defaults apply, unless the
    field itself is optional (``nullable``: ``X | None = None``), whose absence means something."""
    node = dict(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        # the field's own description and default win over the referenced model's
        return structural({**defs[name], **node}, defs, path, nullable=nullable)
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise SchemaError(f"{path or '<root>'}: a union of {len(branches)} types is not structural; "
                              "use optional sub-objects and a CEL rule instead")
        if node.get("default", ...) is None:
            del node["default"]
        return structural({**branches[0], **node}, defs, path, nullable=True)
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise SchemaError(f"{path or '<root>'}: allOf with {len(parts)} parts is not supported")
        return structural({**parts[0], **node}, defs, path, nullable=nullable)
    for bad in ("oneOf", "not", "exclusiveMinimum", "exclusiveMaximum", "$defs", "prefixItems"):
        if bad in node:
            raise SchemaError(f"{path or '<root>'}: '{bad}' is not supported in the CRD schema")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "description":
            out[key] = _description(value)
        elif key == "properties":
            out[key] = {name: structural(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, defs, f"{path}[]")
        else:
            out[key] = value
    if (out.get("type") == "object" and "properties" in out and "default" not in out and not out.get("required")
            and not nullable):
        out["default"] = {}
    return _ordered(out)


def openapi_schema() -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the CRD's only version."""
    spec_json = spec.SiemPipelineSpec.model_json_schema(by_alias=True, mode="validation")
    status_json = spec.SiemPipelineStatus.model_json_schema(by_alias=True, mode="validation")
    spec_schema = structural(spec_json, spec_json.pop("$defs", {}), "spec")
    status_schema = structural(status_json, status_json.pop("$defs", {}), "status")
    spec_schema.pop("default", None)
    status_schema.pop("default", None)
    # kopf keeps its handler progress under status.kopf; without this the API server would prune it
    status_schema["properties"]["kopf"] = {
        "description": "The kopf framework's own bookkeeping (handler progress); not part of the API.",
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "description": "SiemPipeline exports the OCI Audit trail of a tenancy to a SIEM through a serverless "
                       "OCI pipeline (streams, notifications, functions and a schedule) that the operator "
                       "creates, repairs and deletes.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition as plain data."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/name": "siem-operator",
                                                   "app.kubernetes.io/part-of": "oci-siem-operator"}},
        "spec": {
            "group": spec.GROUP,
            "names": {"kind": spec.KIND, "listKind": f"{spec.KIND}List", "plural": spec.PLURAL,
                      "singular": spec.SINGULAR, "shortNames": [spec.SHORT_NAME], "categories": [spec.CATEGORY]},
            "scope": "Namespaced",
            "versions": [{
                "name": spec.VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": openapi_schema()},
            }],
        },
    }


def render() -> str:
    """The CRD as the YAML committed under ``crds/``."""
    header = ("# Generated by `python -m siem_operator.crd` from operator/siem_operator/spec.py: do not edit.\n")
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120, allow_unicode=True)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
