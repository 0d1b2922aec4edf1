"""The Argo CD health check (gitops/argocd/health.lua) run by a real Lua 5.1 interpreter (Argo CD's gopher-lua
speaks Lua 5.1), on statuses the operator's own code computes (siem_operator.conditions) and on hand-written
edge cases."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml

from siem_operator import spec
from siem_operator.children import Action, ActionType, ChildKind, Difference, Ref
from siem_operator.conditions import compute_status
from siem_operator.errors import Classified, ErrorKind, classify
from siem_operator.planner import Plan
from tests.operator.test_errors import service_error

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "gitops" / "argocd"
HEALTH_LUA = ARGOCD / "health.lua"
KEY = "resource.customizations.health.siem.ocisiem.io_SiemPipeline"

NOW = datetime.datetime(2026, 11, 27, 4, 0, 0, tzinfo=datetime.UTC)
STREAM = Ref(ChildKind.STREAM, "events")
FUNCTION = Ref(ChildKind.FUNCTION, "fetch")
CONVERGED = Plan(actions=(), desired_count=14)
CREATING = Plan(actions=(Action(ActionType.CREATE, STREAM, "creating"),), unready=(STREAM, FUNCTION),
                desired_count=14)
IMMUTABLE = Plan(actions=(Action(ActionType.BLOCKED, STREAM, "Stream/events: partitions is 1 in OCI but the spec "
                                 "asks for 4; set it back or create a new SiemPipeline",
                                 (Difference("partitions", 4, 1, False),)),), desired_count=14)
FAILED = Plan(actions=(Action(ActionType.BLOCKED, FUNCTION, "Function/fetch is FAILED in OCI"),),
              unready=(FUNCTION,), desired_count=14)
DELETING = Plan(actions=(Action(ActionType.DELETE, STREAM, "deleting"),), desired_count=14)

#: what Argo CD should show for a reconcile that failed with each error kind (Synced=False, that reason)
EXPECTED_FOR_ERROR: dict[ErrorKind, str] = {
    ErrorKind.INVALID_SPEC: "Degraded",
    ErrorKind.NOT_AUTHORIZED: "Degraded",
    ErrorKind.INVALID_CREDENTIALS: "Degraded",
    ErrorKind.LIMIT_EXCEEDED: "Degraded",
    ErrorKind.NAME_CONFLICT: "Degraded",
    ErrorKind.SECRET_NOT_FOUND: "Degraded",
    ErrorKind.RETRY_TOKEN_REUSED: "Progressing",
    ErrorKind.CONFLICT: "Progressing",
    ErrorKind.NOT_FOUND: "Progressing",
    ErrorKind.THROTTLED: "Progressing",
    ErrorKind.SERVICE_UNAVAILABLE: "Progressing",
    ErrorKind.UNREACHABLE: "Progressing",
    ErrorKind.UNEXPECTED: "Progressing",
}


@pytest.fixture(scope="module")
def script() -> str:
    return HEALTH_LUA.read_text()


def health(script: str, obj: dict[str, Any]) -> tuple[str, str]:
    """Run the check as Argo CD does: ``obj`` a global table, the chunk returns ``hs``."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    hs = runtime.execute(script)
    return str(hs["status"]), str(hs["message"] or "")


def pipeline(status: dict[str, Any] | None, *, generation: int = 3, suspend: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": f"{spec.GROUP}/{spec.VERSION}", "kind": spec.KIND,
        "metadata": {"name": "audit", "namespace": "security", "generation": generation},
        "spec": {"tenancyId": "ocid1.tenancy.oc1..aaaa", "suspend": suspend},
    }
    if status is not None:
        obj["status"] = status
    return obj


def operator_status(plan: Plan | None, *, generation: int = 3, error: Classified | None = None,
                    suspended: bool = False, deleting: bool = False,
                    previous: dict[str, Any] | None = None) -> dict[str, Any]:
    status, _ = compute_status(previous, generation=generation, now=NOW, plan=plan, error=error,
                               suspended=suspended, deleting=deleting)
    return status


def test_available_and_current_is_healthy(script: str) -> None:
    assert health(script, pipeline(operator_status(CONVERGED))) == (
        "Healthy", "Available: all 14 OCI resources are ready")


def test_no_status_yet_is_progressing(script: str) -> None:
    status, message = health(script, pipeline(None))
    assert status == "Progressing"
    assert "Waiting for the operator" in message
    assert health(script, pipeline({}))[0] == "Progressing"
    assert health(script, pipeline({"conditions": []}))[0] == "Progressing"


def test_a_status_about_an_older_generation_is_progressing(script: str) -> None:
    """Ready=True about generation 2 says nothing about generation 3: the operator has not caught up."""
    stale = operator_status(CONVERGED, generation=2)
    status, message = health(script, pipeline(stale, generation=3))
    assert status == "Progressing"
    assert message == "Waiting for the operator to reconcile generation 3 (status is about generation 2)"
    # an old failure is not reported either: the new generation may have fixed it
    old_failure = operator_status(None, generation=2, error=Classified(ErrorKind.INVALID_SPEC, "bad"))
    assert health(script, pipeline(old_failure, generation=3))[0] == "Progressing"


def test_provisioning_is_progressing_with_the_operators_message(script: str) -> None:
    status, message = health(script, pipeline(operator_status(CREATING)))
    assert status == "Progressing"
    assert message.startswith("Creating: 12 of 14 OCI resources are ready; waiting for Stream/events")


def test_not_reconciled_yet_is_progressing(script: str) -> None:
    assert health(script, pipeline(operator_status(None)))[0] == "Progressing"


def test_deleting_is_progressing(script: str) -> None:
    status, message = health(script, pipeline(operator_status(DELETING, deleting=True)))
    assert status == "Progressing"
    assert message.startswith("Deleting: deleting the pipeline's OCI resources")


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_each_error_reason_of_the_operator(script: str, kind: ErrorKind) -> None:
    """Every reason the operator can write (siem_operator.errors.ErrorKind) has a deliberate health."""
    error = Classified(kind, f"the {kind.value} message")
    status, message = health(script, pipeline(operator_status(None, error=error)))
    assert status == EXPECTED_FOR_ERROR[kind]
    assert f"{kind.value}: the {kind.value} message" in message


def test_every_error_kind_has_an_expectation() -> None:
    assert set(EXPECTED_FOR_ERROR) == set(ErrorKind)


def test_a_real_403_from_oci_is_degraded_with_its_message(script: str) -> None:
    error = classify(service_error(403, "NotAuthorizedOrNotFound", "Authorization failed"))
    status, message = health(script, pipeline(operator_status(CREATING, error=error)))
    assert status == "Degraded"
    assert message.startswith("NotAuthorized: create_stream (stream_admin) failed: 403")
    assert "IAM policy" in message


def test_an_immutable_change_is_degraded_even_while_ready(script: str) -> None:
    status, message = health(script, pipeline(operator_status(IMMUTABLE)))
    assert status == "Degraded"
    assert message.startswith("ImmutableFieldChanged: Stream/events: partitions is 1 in OCI")


def test_a_failed_oci_resource_is_degraded(script: str) -> None:
    status, message = health(script, pipeline(operator_status(FAILED)))
    assert status == "Degraded"
    # Synced=False/ChildFailed comes first; Ready=False/Unavailable says the same resource
    assert message == "ChildFailed: Function/fetch is FAILED in OCI"
    ready_only = operator_status(FAILED)
    ready_only["conditions"] = [c for c in ready_only["conditions"] if c["type"] == "Ready"]
    status, message = health(script, pipeline(ready_only))
    assert status == "Degraded"
    assert message.startswith("Unavailable: Function/fetch failed in OCI")


def test_a_throttled_reconcile_of_a_working_pipeline_stays_healthy(script: str) -> None:
    """The act step was throttled but every resource is there: Ready=True, Synced=False/Throttled."""
    error = classify(service_error(429, "TooManyRequests"))
    status, _ = health(script, pipeline(operator_status(CONVERGED, error=error)))
    assert status == "Healthy"


def test_a_transient_error_before_any_plan_is_progressing(script: str) -> None:
    previous = operator_status(CONVERGED)
    error = classify(service_error(503, "ServiceUnavailable"))
    status, message = health(script, pipeline(operator_status(None, error=error, previous=previous)))
    assert status == "Progressing"
    assert message.startswith("Retrying: ServiceUnavailable: create_stream (stream_admin) failed: 503")


def test_suspended(script: str) -> None:
    status, message = health(script, pipeline(operator_status(CONVERGED, suspended=True), suspend=True))
    assert status == "Suspended"
    assert message.startswith("Suspended: spec.suspend is true")


def test_a_suspended_pipeline_with_a_broken_spec_is_degraded(script: str) -> None:
    error = Classified(ErrorKind.SECRET_NOT_FOUND, "the Secret 'splunk-hec' is missing")
    status, message = health(script, pipeline(operator_status(None, error=error, suspended=True), suspend=True))
    assert (status, message) == ("Degraded", "SecretNotFound: the Secret 'splunk-hec' is missing")


def test_an_unknown_false_reason_is_degraded(script: str) -> None:
    """A reason a newer operator may add is shown, not hidden as progress."""
    status = operator_status(CONVERGED)
    for cond in status["conditions"]:
        if cond["type"] == "Synced":
            cond.update(status="False", reason="SomethingNew", message="look at this")
    assert health(script, pipeline(status)) == ("Degraded", "SomethingNew: look at this")


def test_the_argocd_cm_patch_embeds_exactly_health_lua(script: str) -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert list(patch) == ["data"]
    assert patch["data"] == {KEY: script}


def test_the_readme_names_the_key_and_the_patch() -> None:
    readme = (ARGOCD / "README.md").read_text()
    assert KEY in readme
    assert "argocd-cm-patch.yaml" in readme


def test_the_example_application() -> None:
    app = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    assert app["metadata"]["namespace"] == "argocd"
    source = app["spec"]["source"]
    assert source["repoURL"].startswith("https://")
    assert source["path"]
    assert app["spec"]["destination"]["namespace"] == "security"
    assert "CreateNamespace=true" in app["spec"]["syncPolicy"]["syncOptions"]
