"""The planner's children of the example pipeline, created, converged and deleted through the adapters.

This is where :mod:`siem_operator.desired` (what the spec asks for) and the adapters (what OCI is told) must
agree on every property name and shape: each child is resolved, created in order, found READY with no
difference, found again by name and tag with its OCID lost, and deleted in reverse order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from siem_operator import spec as s
from siem_operator.adapters import build_adapters
from siem_operator.children import PIPELINE_UID_TAG, Phase, Ref, resolve
from siem_operator.desired import desired_children
from siem_operator.naming import PipelineIdentity, retry_token
from tests.operator.adapters.conftest import REGION, Env

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "siempipeline.yaml"


def spec_for(env: Env, trigger: dict[str, Any]) -> s.SiemPipelineSpec:
    body = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text())["spec"])
    body.update(tenancyId=env.control.tenancy()["tenancyId"], compartmentId=env.compartment_id, homeRegion=REGION,
                trigger=trigger, vault={"vaultId": env.vault_id, "keyId": env.key_id})
    return s.parse_spec(body)


@pytest.mark.parametrize("trigger", [
    {"type": "ResourceScheduler"},
    {"type": "Autoscaling", "autoscaling": {"poolSize": 1}},
], ids=["ResourceScheduler", "Autoscaling"])
def test_the_example_pipeline_round_trips_through_every_adapter(env: Env, trigger: dict[str, Any]) -> None:
    if trigger["type"] == "Autoscaling":
        trigger["autoscaling"]["instancePoolId"] = env.instance_pool_id
    identity = PipelineIdentity("security", "audit-to-splunk", env.uid)
    children = desired_children(spec_for(env, trigger), identity,
                                secret_values={"token": SecretStr("hec-token"), "ca-bundle": SecretStr("pem")})
    adapters = build_adapters(env.factory, REGION)
    ocids: dict[Ref, str] = {}
    attributes: dict[Ref, Mapping[str, Any]] = {}  # e.g. a stream's messages_endpoint, for the functions
    for child in children:  # the planner lists dependencies first
        assert all(dep in ocids for dep in child.depends_on), child.ref
        resolved = resolve(child, ocids, attributes)
        created = adapters[child.kind].create(resolved, env.uid, retry_token(env.uid, child.ref))
        ocids[child.ref] = created.ocid
        attributes[child.ref] = created.properties

    for child in children:
        resolved = resolve(child, ocids, attributes)
        adapter = adapters[child.kind]
        observed = adapter.observe(resolved, ocids[child.ref], env.uid)
        assert observed is not None, child.ref
        assert observed.phase is Phase.READY, child.ref
        assert adapter.differences(resolved, observed) == [], child.ref
        lost = adapter.observe(resolved, None, env.uid)  # status lost: found by name and tag
        assert lost is not None, child.ref
        assert lost.ocid == ocids[child.ref], child.ref

    inventory = env.control.inventory()["regions"][REGION]
    ours = [item for items in inventory.values() for item in items
            if (item.get("freeformTags") or {}).get(PIPELINE_UID_TAG) == env.uid]
    assert len(ours) == len(children)

    for child in reversed(children):
        adapter = adapters[child.kind]
        resolved = resolve(child, ocids, attributes)
        observed = adapter.observe(resolved, ocids[child.ref], env.uid)
        assert observed is not None, child.ref
        adapter.delete(observed)
        assert adapter.observe(resolved, ocids[child.ref], env.uid) is None, child.ref
    inventory = env.control.inventory()["regions"][REGION]
    left = [item for items in inventory.values() for item in items
            if (item.get("freeformTags") or {}).get(PIPELINE_UID_TAG) == env.uid
            and item.get("lifecycleState") not in ("DELETED", "PENDING_DELETION")]
    assert left == []
