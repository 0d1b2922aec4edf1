"""The OCI IAM a pipeline needs: dynamic groups and least-privilege policies, for one ``SiemPipeline``.

    siem-operator iam -f pipeline.yaml [--cluster-id OCID] [--operator-namespace NS] [--service-account SA]
                      [--network-compartment OCID] [--vault-compartment OCID] [--json]
    python -m siem_operator.iam pipeline.yaml …

Three principals act:

- **the operator**, as ``spec.credentials`` says: OKE workload identity (``any-user`` narrowed to the
  operator's cluster, namespace and service account — no dynamic group), the worker nodes' instance
  principal (a dynamic group of the nodes' compartment) or an API-key user (a group). It manages the
  pipeline's resources in ``spec.compartmentId``: streams and the stream pool, Notifications topics and
  subscriptions, the Functions application and functions (``fn-invocation`` included: a function
  subscription needs it), the Resource Scheduler schedule or the Events rule and autoscaling
  configuration, and the Vault secrets it copies from Kubernetes Secrets; it uses the subnets and the
  vault's key, and reads the image repositories.
- **the functions**, as their resource principal: a dynamic group of the functions (``fnfunc``) in
  ``spec.compartmentId``. They read the Audit trail and list regions and compartments across the tenancy,
  push to and pull from the streams, publish to the topics, and read the secret bundles they are named.
- **OCI services**: Resource Scheduler starts the fanout function; Events publishes the autoscaling event to
  the trigger topic; Functions pulls the image.

:func:`plan` is pure: it builds an :class:`IamPlan` from the spec and the names given; :func:`render` prints
it. Every statement is scoped to a compartment by OCID (``compartment id …``), so the policies can live in
the root compartment next to the tenancy-wide ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from siem_operator import spec as s
from siem_operator.naming import display_name

DEFAULT_OPERATOR_NAMESPACE: Final = "siem-operator"
DEFAULT_SERVICE_ACCOUNT: Final = "siem-operator"
DEFAULT_GROUP: Final = "siem-operator"
CLUSTER_PLACEHOLDER: Final = "<OKE cluster OCID>"
NODES_PLACEHOLDER: Final = "<worker nodes' compartment OCID>"


@dataclasses.dataclass(frozen=True)
class DynamicGroup:
    name: str
    description: str
    matching_rule: str


@dataclasses.dataclass(frozen=True)
class Policy:
    name: str
    description: str
    statements: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class IamPlan:
    pipeline: str
    dynamic_groups: tuple[DynamicGroup, ...]
    policies: tuple[Policy, ...]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Principals:
    """Who the operator is in OCI, and where the resources the spec points at live."""

    operator_namespace: str = DEFAULT_OPERATOR_NAMESPACE
    service_account: str = DEFAULT_SERVICE_ACCOUNT
    cluster_id: str | None = None
    #: InstancePrincipal: the compartment of the worker nodes that run the operator
    node_compartment: str | None = None
    #: ApiKey: the IAM group of the API-key user
    group: str = DEFAULT_GROUP
    #: compartment of spec.functions.subnetIds (default: spec.compartmentId)
    network_compartment: str | None = None
    #: compartment of spec.vault (default: spec.compartmentId)
    vault_compartment: str | None = None
    #: compartment of spec.streams.poolId (default: spec.compartmentId)
    stream_pool_compartment: str | None = None
    #: compartment of spec.trigger.autoscaling.instancePoolId (default: spec.compartmentId)
    instance_pool_compartment: str | None = None


def location(compartment_id: str) -> str:
    """``tenancy`` for the root compartment, else ``compartment id <ocid>``."""
    return "tenancy" if compartment_id.startswith("ocid1.tenancy.") else f"compartment id {compartment_id}"


def _where(conditions: Sequence[str]) -> str:
    if not conditions:
        return ""
    if len(conditions) == 1:
        return f" where {conditions[0]}"
    return " where all {" + ", ".join(conditions) + "}"


class _Subject:
    """Writes ``Allow <subject> to <verb> <resource> in <location> [where …]`` for one principal."""

    def __init__(self, subject: str, conditions: Sequence[str] = ()) -> None:
        self.subject = subject
        self.conditions = tuple(conditions)

    def allow(self, verb: str, resource: str, where: str, *conditions: str) -> str:
        return f"Allow {self.subject} to {verb} {resource} in {where}{_where([*self.conditions, *conditions])}"


def _operator_subject(credentials: s.Credentials, who: Principals,
                      pipeline: str) -> tuple[_Subject, list[DynamicGroup]]:
    if credentials.type is s.CredentialsType.WORKLOAD_IDENTITY:
        return _Subject("any-user", (
            "request.principal.type = 'workload'",
            f"request.principal.cluster_id = '{who.cluster_id or CLUSTER_PLACEHOLDER}'",
            f"request.principal.namespace = '{who.operator_namespace}'",
            f"request.principal.service_account = '{who.service_account}'")), []
    if credentials.type is s.CredentialsType.INSTANCE_PRINCIPAL:
        group = DynamicGroup(
            name="siem-operator-nodes",
            description=f"Worker nodes that run the SIEM operator (SiemPipeline {pipeline}, InstancePrincipal)",
            matching_rule=f"ALL {{instance.compartment.id = '{who.node_compartment or NODES_PLACEHOLDER}'}}")
        return _Subject(f"dynamic-group {group.name}"), [group]
    return _Subject(f"group {who.group}"), []


def _secret_sources(spec: s.SiemPipelineSpec) -> Iterable[s.SecretSource]:
    token = spec.destination.token
    if token is not None:
        yield token
    if spec.destination.ca_bundle is not None:
        yield spec.destination.ca_bundle


def plan(spec: s.SiemPipelineSpec, namespace: str, name: str, who: Principals | None = None) -> IamPlan:
    """The dynamic groups and policies of the pipeline ``namespace/name``."""
    who = who or Principals()
    pipeline = f"{namespace}/{name}"
    here = location(spec.compartment_id)
    network = location(who.network_compartment or spec.compartment_id)

    # -- the operator ----------------------------------------------------------------------------------
    op, groups = _operator_subject(spec.credentials, who, pipeline)
    operator = []
    if spec.streams.pool_id is None:
        operator.append(op.allow("manage", "stream-pools", here))
    else:
        operator.append(op.allow("use", "stream-pools", location(who.stream_pool_compartment or spec.compartment_id),
                                 f"target.streampool.id = '{spec.streams.pool_id}'"))
    operator += [
        op.allow("manage", "streams", here),
        op.allow("manage", "ons-topics", here),
        op.allow("manage", "ons-subscriptions", here),
        op.allow("manage", "functions-family", here),  # applications, functions, and fn-invocation (subscriptions)
        op.allow("use", "virtual-network-family", network),
        op.allow("read", "repos", "tenancy"),
    ]
    if spec.trigger.type is s.TriggerType.RESOURCE_SCHEDULER:
        operator.append(op.allow("manage", "resource-schedule-family", here))
    else:
        assert spec.trigger.autoscaling is not None  # the spec's validator says so
        pools = location(who.instance_pool_compartment or spec.compartment_id)
        operator += [
            op.allow("manage", "cloudevents-rules", here),
            op.allow("manage", "auto-scaling-configurations", here),
            op.allow("use", "instance-pools", pools,
                     f"target.instancepool.id = '{spec.trigger.autoscaling.instance_pool_id}'"),
        ]
    if spec.kubernetes_secret_sources():
        assert spec.vault is not None  # the spec's validator says so
        vault = location(who.vault_compartment or spec.compartment_id)
        operator += [
            op.allow("manage", "secrets", here),
            op.allow("use", "vaults", vault, f"target.vault.id = '{spec.vault.vault_id}'"),
            op.allow("use", "keys", vault, f"target.key.id = '{spec.vault.key_id}'"),
        ]

    # -- the functions ---------------------------------------------------------------------------------
    functions_group = DynamicGroup(
        name=display_name(namespace, name, "functions"),
        description=f"The fanout, fetch and export functions of SiemPipeline {pipeline}",
        matching_rule=f"ALL {{resource.type = 'fnfunc', resource.compartment.id = '{spec.compartment_id}'}}")
    groups.append(functions_group)
    fn = _Subject(f"dynamic-group {functions_group.name}")
    functions = [
        fn.allow("read", "audit-events", "tenancy"),
        fn.allow("inspect", "compartments", "tenancy"),
        fn.allow("inspect", "tenancies", "tenancy"),
        fn.allow("use", "stream-push", here),
        fn.allow("use", "stream-pull", here),
        fn.allow("use", "ons-topics", here),
    ]
    managed_secrets = False
    for source in _secret_sources(spec):
        if source.vault_secret_id is not None:
            functions.append(fn.allow("read", "secret-bundles", "tenancy",
                                      f"target.secret.id = '{source.vault_secret_id}'"))
        else:
            managed_secrets = True
    if managed_secrets:
        functions.append(fn.allow("read", "secret-bundles", here))

    # -- OCI services ----------------------------------------------------------------------------------
    services = ["Allow service faas to read repos in tenancy"]
    if spec.trigger.type is s.TriggerType.RESOURCE_SCHEDULER:
        schedule = _Subject("any-user", ("request.principal.type = 'resourceschedule'",
                                         f"request.principal.compartment.id = '{spec.compartment_id}'"))
        services += [schedule.allow("read", "fn-function", here), schedule.allow("use", "fn-invocation", here)]
    else:
        services.append(f"Allow service cloudEvents to use ons-topics in {here}")

    policies = (
        Policy(display_name(namespace, name, "operator-policy"),
               f"The SIEM operator manages the OCI resources of SiemPipeline {pipeline}", tuple(operator)),
        Policy(display_name(namespace, name, "functions-policy"),
               f"The functions of SiemPipeline {pipeline} read the Audit trail and run the pipeline",
               tuple(functions)),
        Policy(display_name(namespace, name, "services-policy"),
               f"OCI services that trigger and run the functions of SiemPipeline {pipeline}", tuple(services)),
    )
    return IamPlan(pipeline, tuple(groups), policies)


def render(iam: IamPlan) -> str:
    """The plan for people: dynamic groups, then policies (create them in the root compartment)."""
    lines = [f"# SiemPipeline {iam.pipeline}", ""]
    for group in iam.dynamic_groups:
        lines += [f"## Dynamic group {group.name}", f"# {group.description}", group.matching_rule, ""]
    for policy in iam.policies:
        lines += [f"## Policy {policy.name} (in the root compartment)", f"# {policy.description}",
                  *policy.statements, ""]
    return "\n".join(lines)


def pipelines(text: str) -> list[tuple[str, str, s.SiemPipelineSpec]]:
    """Every ``SiemPipeline`` of a YAML stream: (namespace, name, validated spec)."""
    out = []
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, dict) or doc.get("kind") != s.KIND:
            continue
        meta = doc.get("metadata") or {}
        out.append((meta.get("namespace") or "default", meta["name"], s.parse_spec(doc.get("spec"))))
    return out


def add_arguments(parser: argparse.ArgumentParser, *, positional: bool = False) -> None:
    if positional:
        parser.add_argument("file", metavar="PIPELINE_YAML", help="a file holding SiemPipeline objects ('-': stdin)")
    else:
        parser.add_argument("-f", "--filename", dest="file", required=True, metavar="PIPELINE_YAML",
                            help="a file holding SiemPipeline objects ('-': stdin)")
    parser.add_argument("--cluster-id", help="WorkloadIdentity: the OCID of the OKE cluster running the operator")
    parser.add_argument("--operator-namespace", default=DEFAULT_OPERATOR_NAMESPACE,
                        help=f"WorkloadIdentity: the operator's namespace (default {DEFAULT_OPERATOR_NAMESPACE})")
    parser.add_argument("--service-account", default=DEFAULT_SERVICE_ACCOUNT,
                        help=f"WorkloadIdentity: the operator's ServiceAccount (default {DEFAULT_SERVICE_ACCOUNT})")
    parser.add_argument("--node-compartment", help="InstancePrincipal: the compartment of the worker nodes")
    parser.add_argument("--group", default=DEFAULT_GROUP,
                        help=f"ApiKey: the IAM group of the API-key user (default {DEFAULT_GROUP})")
    parser.add_argument("--network-compartment", help="compartment of the functions' subnets (default: the pipeline's)")
    parser.add_argument("--vault-compartment", help="compartment of spec.vault (default: the pipeline's)")
    parser.add_argument("--stream-pool-compartment",
                        help="compartment of spec.streams.poolId (default: the pipeline's)")
    parser.add_argument("--instance-pool-compartment",
                        help="compartment of the Autoscaling trigger's instance pool (default: the pipeline's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    who = Principals(operator_namespace=args.operator_namespace, service_account=args.service_account,
                     cluster_id=args.cluster_id, node_compartment=args.node_compartment, group=args.group,
                     network_compartment=args.network_compartment, vault_compartment=args.vault_compartment,
                     stream_pool_compartment=args.stream_pool_compartment,
                     instance_pool_compartment=args.instance_pool_compartment)
    found = pipelines(text)
    if not found:
        sys.stderr.write(f"{args.file}: no {s.KIND} found\n")
        return 1
    plans = [plan(spec, namespace, name, who) for namespace, name, spec in found]
    if args.json:
        sys.stdout.write(json.dumps([p.to_json() for p in plans], indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(render(p) for p in plans))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siem_operator.iam",
                                     description="Print the OCI dynamic groups and policies of SiemPipelines.")
    add_arguments(parser, positional=True)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
