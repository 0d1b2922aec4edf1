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


def test_operations_explains_every_condition_reason() -> None:
    from siem_operator.conditions import Reason
    from siem_operator.errors import ErrorKind

    text = (ROOT / "docs" / "operations.md").read_text()
    table = text.split("## Troubleshooting by condition reason", 1)[1]
    for reason in [*Reason, *ErrorKind]:
        assert f"| `{reason.value}` |" in table, reason


def test_iam_doc_shows_what_the_command_prints_for_the_example() -> None:
    import yaml

    from siem_operator import iam
    from siem_operator.spec import parse_spec

    doc = yaml.safe_load((ROOT / "examples" / "siempipeline.yaml").read_text())
    spec = parse_spec(doc["spec"])
    assert spec.vault is not None
    plan = iam.plan(spec, doc["metadata"]["namespace"], doc["metadata"]["name"])
    workload = ("request.principal.type = 'workload', request.principal.cluster_id = '<OKE cluster OCID>', "
                "request.principal.namespace = 'siem-operator', request.principal.service_account = 'siem-operator'")
    functions_group = next(g.name for g in plan.dynamic_groups if "functions" in g.name)
    lines = set((ROOT / "docs" / "iam.md").read_text().splitlines())
    for policy in plan.policies:
        for statement in policy.statements:
            shown = (statement.replace(spec.compartment_id, "C").replace(workload, "WI")
                     .replace(functions_group, "<functions group>")
                     .replace(spec.vault.vault_id, "<spec.vault.vaultId>")
                     .replace(spec.vault.key_id, "<spec.vault.keyId>"))
            assert shown in lines, shown
    assert "ALL {resource.type = 'fnfunc', resource.compartment.id = 'C'}" in lines


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    import re

    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_relative_links_of_the_docs_resolve() -> None:
    import re

    pages = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "gitops" / "argocd" / "README.md", ROOT / "README.md"]
    checked = 0
    for page in pages:
        prose = re.sub(r"`[^`\n]*`", "", page.read_text())  # code spans hold regular expressions, not links
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{page.relative_to(ROOT)}: {target}"
            if anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", file.read_text(), flags=re.MULTILINE)
                assert anchor in {_slug(h) for h in headings}, f"{page.relative_to(ROOT)}: {target}"
            checked += 1
    assert checked > 15
