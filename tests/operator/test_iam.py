"""``siem-operator iam``: the dynamic groups and least-privilege policies printed for a pipeline."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from siem_operator import iam
from siem_operator import spec as s
from siem_operator.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "siempipeline.yaml"
C = "ocid1.compartment.oc1..aaaaaaaaexamplesiem"
HERE = f"in compartment id {C}"
CLUSTER = "ocid1.cluster.oc1.iad.aaaaaaaacluster"
WORKLOAD = ("where all {request.principal.type = 'workload', "
            f"request.principal.cluster_id = '{CLUSTER}', request.principal.namespace = 'siem-operator', "
            "request.principal.service_account = 'siem-operator'")
STATEMENT = re.compile(
    r"^Allow (any-user|service [A-Za-z]+|group [\w.-]+|dynamic-group [\w.-]+) to (inspect|read|use|manage) "
    r"[a-z-]+ in (tenancy|compartment id ocid1\.[a-z]+\.[a-z0-9-]+\.[a-z0-9-]*\.[a-z0-9]+)"
    r"( where ([a-z._]+ = '[^']+'|all \{[a-z._]+ = '[^']+'(, [a-z._]+ = '[^']+')*\}))?$")


def example() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return doc


def plan_of(doc: dict[str, Any], **who: Any) -> iam.IamPlan:
    meta = doc["metadata"]
    return iam.plan(s.parse_spec(doc["spec"]), meta["namespace"], meta["name"],
                    iam.Principals(**{"cluster_id": CLUSTER, **who}))


def statements(plan: iam.IamPlan, which: str) -> list[str]:
    policy = next(p for p in plan.policies if f"-{which}-policy-" in p.name)
    return list(policy.statements)


def test_the_cli_prints_the_examples_groups_and_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["iam", "-f", str(EXAMPLE), "--cluster-id", CLUSTER]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# SiemPipeline security/audit-to-splunk\n")
    assert "## Dynamic group siem-security-audit-to-splunk-functions-" in out
    assert f"ALL {{resource.type = 'fnfunc', resource.compartment.id = '{C}'}}" in out
    assert f"Allow any-user to manage streams {HERE} {WORKLOAD}}}" in out
    # the module's own entry point prints the same
    assert iam.main([str(EXAMPLE), "--cluster-id", CLUSTER]) == 0
    assert capsys.readouterr().out == out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["iam", "-f", str(EXAMPLE), "--json"]) == 0
    [plan] = json.loads(capsys.readouterr().out)
    assert plan["pipeline"] == "security/audit-to-splunk"
    assert [p["name"].rsplit("-", 3)[-3] for p in plan["policies"]] == ["operator", "functions", "services"]
    operator = plan["policies"][0]["statements"]
    assert all(iam.CLUSTER_PLACEHOLDER in st for st in operator)  # no --cluster-id: a visible placeholder


def test_no_pipeline_in_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "other.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert cli_main(["iam", "-f", str(path)]) == 1
    assert "no SiemPipeline found" in capsys.readouterr().err


def test_operator_policy_of_the_example() -> None:
    ops = statements(plan_of(example()), "operator")
    verbs = [st.split(" in ")[0].removeprefix("Allow any-user to ") for st in ops]
    assert verbs == ["manage stream-pools", "manage streams", "manage ons-topics", "manage ons-subscriptions",
                     "manage functions-family", "use virtual-network-family", "read repos",
                     "manage resource-schedule-family", "manage secrets", "use vaults", "use keys"]
    for st in ops:
        assert WORKLOAD in st
        assert HERE in st or " in tenancy " in st
    assert "target.vault.id = 'ocid1.vault.oc1.iad.aaaaaaaaexamplevault'}" in ops[9]
    assert "target.key.id = 'ocid1.key.oc1.iad.aaaaaaaaexamplekey'}" in ops[10]
    assert not any("cloudevents-rules" in st or "auto-scaling" in st for st in ops)


def test_functions_policy_of_the_example() -> None:
    plan = plan_of(example())
    group = next(g for g in plan.dynamic_groups if "functions" in g.name)
    fns = statements(plan, "functions")
    subject = f"Allow dynamic-group {group.name} to "
    assert [st.removeprefix(subject) for st in fns] == [
        "read audit-events in tenancy",
        "inspect compartments in tenancy",
        "inspect tenancies in tenancy",
        f"use stream-push {HERE}",
        f"use stream-pull {HERE}",
        f"use ons-topics {HERE}",
        f"read secret-bundles {HERE}",  # the token and CA bundle the operator stores in the pipeline's compartment
    ]


def test_services_policy_for_resource_scheduler() -> None:
    services = statements(plan_of(example()), "services")
    assert services[0] == "Allow service faas to read repos in tenancy"
    condition = f"where all {{request.principal.type = 'resourceschedule', request.principal.compartment.id = '{C}'}}"
    assert services[1:] == [f"Allow any-user to read fn-function {HERE} {condition}",
                            f"Allow any-user to use fn-invocation {HERE} {condition}"]


def test_autoscaling_trigger_existing_secret_and_stream_pool() -> None:
    doc = example()
    pool = "ocid1.instancepool.oc1.iad.aaaaaaaapool"
    secret = "ocid1.vaultsecret.oc1.iad.aaaaaaaatoken"
    doc["spec"]["trigger"] = {"type": "Autoscaling", "autoscaling": {"instancePoolId": pool}}
    doc["spec"]["destination"]["hec"]["token"] = {"vaultSecretId": secret}
    del doc["spec"]["destination"]["caBundle"]
    del doc["spec"]["vault"]
    doc["spec"]["streams"]["poolId"] = "ocid1.streampool.oc1.iad.aaaaaaaapool"
    net = "ocid1.compartment.oc1..aaaaaaaanetwork"
    plan = plan_of(doc, network_compartment=net)
    ops = statements(plan, "operator")
    assert ops[0].startswith(f"Allow any-user to use stream-pools {HERE} {WORKLOAD}, "
                             "target.streampool.id = 'ocid1.streampool.oc1.iad.aaaaaaaapool'}")
    assert any(st.startswith(f"Allow any-user to use virtual-network-family in compartment id {net} ") for st in ops)
    assert any(st.startswith(f"Allow any-user to manage cloudevents-rules {HERE} ") for st in ops)
    assert any(st.startswith(f"Allow any-user to manage auto-scaling-configurations {HERE} ") for st in ops)
    assert any(st.startswith(f"Allow any-user to use instance-pools {HERE} ") and f"target.instancepool.id = '{pool}'"
               in st for st in ops)
    assert not any("resource-schedule" in st or "secrets" in st or "vaults" in st or "keys" in st for st in ops)
    fns = statements(plan, "functions")
    assert fns[-1].endswith(f"to read secret-bundles in tenancy where target.secret.id = '{secret}'")
    assert sum("secret-bundles" in st for st in fns) == 1
    services = statements(plan, "services")
    assert services == ["Allow service faas to read repos in tenancy",
                        f"Allow service cloudEvents to use ons-topics {HERE}"]


def test_instance_principal_and_api_key_operators() -> None:
    doc = example()
    doc["spec"]["credentials"] = {"type": "InstancePrincipal"}
    nodes = "ocid1.compartment.oc1..aaaaaaaanodes"
    plan = plan_of(doc, node_compartment=nodes)
    group = plan.dynamic_groups[0]
    assert group.name == "siem-operator-nodes"
    assert group.matching_rule == f"ALL {{instance.compartment.id = '{nodes}'}}"
    assert statements(plan, "operator")[1] == f"Allow dynamic-group siem-operator-nodes to manage streams {HERE}"
    doc["spec"]["credentials"] = {"type": "ApiKey", "secretRef": {"name": "oci-api-key"}}
    plan = plan_of(doc, group="SiemOperators")
    assert [g.name.rsplit("-", 2)[-2] for g in plan.dynamic_groups] == ["functions"]  # no group for the operator
    assert statements(plan, "operator")[1] == f"Allow group SiemOperators to manage streams {HERE}"


def test_a_pipeline_in_the_root_compartment() -> None:
    doc = example()
    doc["spec"]["compartmentId"] = doc["spec"]["tenancyId"]
    plan = plan_of(doc)
    for policy in plan.policies:
        assert not any("compartment id" in st for st in policy.statements)
    assert "Allow any-user to manage streams in tenancy where all {" in "\n".join(statements(plan, "operator"))


@pytest.mark.parametrize("variant", ["example", "autoscaling", "instance", "apikey", "root"])
def test_every_statement_is_well_formed_oci_policy_syntax(variant: str) -> None:
    doc = copy.deepcopy(example())
    if variant == "autoscaling":
        doc["spec"]["trigger"] = {"type": "Autoscaling",
                                  "autoscaling": {"instancePoolId": "ocid1.instancepool.oc1.iad.aaaapool"}}
    elif variant == "instance":
        doc["spec"]["credentials"] = {"type": "InstancePrincipal"}
    elif variant == "apikey":
        doc["spec"]["credentials"] = {"type": "ApiKey", "secretRef": {"name": "k"}}
    elif variant == "root":
        doc["spec"]["compartmentId"] = doc["spec"]["tenancyId"]
    plan = plan_of(doc, node_compartment="ocid1.compartment.oc1..aaaanodes")
    for policy in plan.policies:
        assert re.fullmatch(r"[a-z0-9-]{1,63}", policy.name)
        assert policy.statements
        for statement in policy.statements:
            assert STATEMENT.fullmatch(statement), statement
    for group in plan.dynamic_groups:
        assert re.fullmatch(r"[a-z0-9-]{1,63}", group.name)
        assert re.fullmatch(r"ALL \{[a-z._]+ = '[^']+'(, [a-z._]+ = '[^']+')*\}", group.matching_rule)
