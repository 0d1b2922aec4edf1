"""docs/reference.md is generated from the CRD and lists every field of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from siem_operator import crd, docs

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"


def paths(node: dict[str, Any], path: str) -> Iterator[str]:
    if node.get("type") == "array":
        node, path = node.get("items") or {}, path + "[]"
    for name, sub in (node.get("properties") or {}).items():
        yield f"{path}.{name}"
        yield from paths(sub, f"{path}.{name}")


def test_committed_reference_is_the_generated_one() -> None:
    assert REFERENCE.read_text() == docs.render(), (
        "docs/reference.md is stale: run `python -m siem_operator.docs > docs/reference.md`")


def test_every_field_of_the_crd_has_a_row() -> None:
    schema = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = docs.render()
    rows = [line for line in text.splitlines() if line.startswith(("| `spec.", "| `status."))]
    expected = [*paths(schema["properties"]["spec"], "spec"), *paths(schema["properties"]["status"], "status")]
    assert len(expected) > 60
    assert [row.split("`")[1] for row in rows] == expected


def test_rows_carry_defaults_requirements_and_rules() -> None:
    text = docs.render()
    row = next(line for line in text.splitlines() if line.startswith("| `spec.streams.partitions` "))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells[1:4] == ["integer", "", "`1`"]
    assert "≥ 1; ≤ 50" in cells[4]
    assert "partitions is immutable" in cells[4]
    tenancy = next(line for line in text.splitlines() if line.startswith("| `spec.tenancyId` "))
    assert "| string | yes |" in tenancy
    for column in crd.PRINTER_COLUMNS:
        assert f"| {column['name']} | {column['type']} |" in text
