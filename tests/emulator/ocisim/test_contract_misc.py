"""Resource Scheduler, Autoscaling, instance pools, Vault and Secrets responses, raw, against the SDK models."""

from __future__ import annotations

import base64
from typing import Any

import oci
import requests

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from tests.support.contract import assert_all_match, assert_matches_model, raw_call

RS = oci.resource_scheduler.models
AS = oci.autoscaling.models
CORE = oci.core.models
VAULT = oci.vault.models
SECRETS = oci.secrets.models
FUNCTION = "ocid1.fnfunc.oc1.iad.aaaaaaaafanoutfunction"


def call(ocisim: OcisimServer, config: dict[str, Any], method: str, service: str, path: str, *,
         status: int = 200, body: Any = None, params: dict[str, Any] | None = None) -> requests.Response:
    response = raw_call(ocisim, config, method, service, path, body=body, params=params)
    assert response.status_code == status, response.text
    assert response.headers["opc-request-id"]
    return response


def test_scheduler_shapes(ocisim: OcisimServer, oci_config: dict[str, Any], ocisim_control: OcisimControl) -> None:
    tenancy = ocisim.tenancy_id
    ocisim_control.freeze(at="2026-01-01T00:00:30Z")
    created = call(ocisim, oci_config, "POST", "resource-scheduler", "/20240430/schedules", body={
        "compartmentId": tenancy, "action": "START_RESOURCE", "recurrenceType": "CRON",
        "recurrenceDetails": "*/5 * * * *", "displayName": "fanout", "timeStarts": "2026-01-01T00:00:00Z",
        "resources": [{"id": FUNCTION, "metadata": {"purpose": "fanout"}, "parameters": [
            {"parameterType": "BODY", "value": {"kind": "fanout"}},
            {"parameterType": "HEADER", "value": {"x-run": "1"}}]}]})
    schedule = created.json()
    assert_matches_model(schedule, RS.Schedule)
    assert created.headers["etag"]
    assert (schedule["lifecycleState"], schedule["timeNextRun"]) == ("ACTIVE", "2026-01-01T00:05:00.000Z")
    (resource,) = schedule["resources"]
    assert_matches_model(resource, RS.Resource)
    assert_matches_model(resource["parameters"][0], RS.BodyParameter)
    assert_matches_model(resource["parameters"][1], RS.HeaderParameter)
    assert_matches_model(call(ocisim, oci_config, "GET", "resource-scheduler",
                              f"/20240430/schedules/{schedule['id']}").json(), RS.Schedule)

    filtered = call(ocisim, oci_config, "POST", "resource-scheduler", "/20240430/schedules", body={
        "compartmentId": tenancy, "action": "STOP_RESOURCE", "recurrenceType": "ICAL",
        "recurrenceDetails": "FREQ=DAILY;INTERVAL=1", "resourceFilters": [
            {"attribute": "COMPARTMENT_ID", "value": tenancy, "shouldIncludeChildCompartments": True},
            {"attribute": "RESOURCE_TYPE", "value": ["instance"]},
            {"attribute": "LIFECYCLE_STATE", "value": ["running"]},
            {"attribute": "TIME_CREATED", "condition": "BEFORE", "value": "2026-01-01T00:00:00Z"},
            {"attribute": "DEFINED_TAGS", "value": [{"namespace": "ops", "tagKey": "env", "value": "dev"}]}]}).json()
    models = [RS.CompartmentIdResourceFilter, RS.ResourceTypeResourceFilter, RS.LifecycleStateResourceFilter,
              RS.TimeCreatedResourceFilter, RS.DefinedTagsResourceFilter]
    for item, model in zip(filtered["resourceFilters"], models, strict=True):
        assert_matches_model(item, model)
    assert_matches_model(filtered["resourceFilters"][4]["value"][0], RS.DefinedTagFilterValue)

    listed = call(ocisim, oci_config, "GET", "resource-scheduler", "/20240430/schedules",
                  params={"compartmentId": tenancy}).json()
    assert_matches_model(listed, RS.ScheduleCollection)
    assert_all_match(listed["items"], RS.ScheduleSummary)
    assert len(listed["items"]) == 2

    work_id = created.headers["opc-work-request-id"]
    work = call(ocisim, oci_config, "GET", "resource-scheduler", f"/20240430/workRequests/{work_id}").json()
    assert_matches_model(work, RS.WorkRequest, optional=["time_updated"])  # the shared framework omits it
    assert_all_match(work["resources"], RS.WorkRequestResource)
    works = call(ocisim, oci_config, "GET", "resource-scheduler", "/20240430/workRequests",
                 params={"compartmentId": tenancy}).json()
    assert_matches_model(works, RS.WorkRequestSummaryCollection)
    assert_all_match(works["items"], RS.WorkRequestSummary, optional=["time_updated"])

    activated = call(ocisim, oci_config, "POST", "resource-scheduler",
                     f"/20240430/schedules/{schedule['id']}/actions/deactivateSchedule").json()
    assert_matches_model(activated, RS.Schedule)
    error = call(ocisim, oci_config, "GET", "resource-scheduler", "/20240430/schedules/ocid1.resourceschedule.x",
                 status=404).json()
    assert error == {"code": "NotAuthorizedOrNotFound", "message": "Authorization failed or requested resource "
                                                                   "not found."}


def test_autoscaling_and_instance_pool_shapes(ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    tenancy = ocisim.tenancy_id
    pool = call(ocisim, oci_config, "POST", "iaas", "/20160918/instancePools", body={
        "compartmentId": tenancy, "instanceConfigurationId": "ocid1.instanceconfiguration.oc1.iad.c", "size": 1,
        "placementConfigurations": [{"availabilityDomain": "Uocm:US-ASHBURN-AD-1", "faultDomains": ["FD-1"]}]}).json()
    assert_matches_model(pool, CORE.InstancePool)
    assert_all_match(pool["placementConfigurations"], CORE.InstancePoolPlacementConfiguration)
    pools = call(ocisim, oci_config, "GET", "iaas", "/20160918/instancePools", params={"compartmentId": tenancy})
    assert_all_match(pools.json(), CORE.InstancePoolSummary)
    stopped = call(ocisim, oci_config, "POST", "iaas", f"/20160918/instancePools/{pool['id']}/actions/stop").json()
    assert_matches_model(stopped, CORE.InstancePool)

    scheduled = {"policyType": "scheduled", "displayName": "every-hour", "capacity": {"initial": 2},
                 "executionSchedule": {"type": "cron", "timezone": "UTC", "expression": "0 0 * ? * *"}}
    power = {"policyType": "scheduled", "resourceAction": {"actionType": "power", "action": "START"},
             "executionSchedule": {"type": "cron", "timezone": "UTC", "expression": "0 30 * ? * *"}}
    created = call(ocisim, oci_config, "POST", "autoscaling", "/20181001/autoScalingConfigurations", body={
        "compartmentId": tenancy, "resource": {"type": "instancePool", "id": pool["id"]},
        "policies": [scheduled, power]})
    configuration = created.json()
    assert_matches_model(configuration, AS.AutoScalingConfiguration)
    assert created.headers["etag"]
    assert_matches_model(configuration["resource"], AS.InstancePoolResource)
    first, second = configuration["policies"]
    assert_matches_model(first, AS.ScheduledPolicy)
    assert_matches_model(first["capacity"], AS.Capacity)
    assert_matches_model(first["executionSchedule"], AS.CronExecutionSchedule)
    assert_matches_model(second["resourceAction"], AS.ResourcePowerAction)
    base = f"/20181001/autoScalingConfigurations/{configuration['id']}"
    assert_matches_model(call(ocisim, oci_config, "GET", "autoscaling", base).json(), AS.AutoScalingConfiguration)
    listed = call(ocisim, oci_config, "GET", "autoscaling", "/20181001/autoScalingConfigurations",
                  params={"compartmentId": tenancy}).json()
    assert_all_match(listed, AS.AutoScalingConfigurationSummary)
    assert_all_match(call(ocisim, oci_config, "GET", "autoscaling", base + "/policies").json(),
                     AS.AutoScalingPolicySummary)
    assert_matches_model(call(ocisim, oci_config, "GET", "autoscaling", f"{base}/policies/{first['id']}").json(),
                         AS.ScheduledPolicy)

    other = call(ocisim, oci_config, "POST", "iaas", "/20160918/instancePools", body={
        "compartmentId": tenancy, "instanceConfigurationId": "ocid1.instanceconfiguration.oc1.iad.c", "size": 2,
        "placementConfigurations": [{"availabilityDomain": "Uocm:US-ASHBURN-AD-1"}]}).json()
    threshold = call(ocisim, oci_config, "POST", "autoscaling", "/20181001/autoScalingConfigurations", body={
        "compartmentId": tenancy, "resource": {"type": "instancePool", "id": other["id"]}, "policies": [{
            "policyType": "threshold", "capacity": {"min": 1, "max": 3, "initial": 2}, "rules": [{
                "displayName": "out", "action": {"type": "CHANGE_COUNT_BY", "value": 1},
                "metric": {"metricType": "CPU_UTILIZATION", "threshold": {"operator": "GT", "value": 80}}}]}]}).json()
    (policy,) = threshold["policies"]
    assert_matches_model(policy, AS.ThresholdPolicy)
    (rule,) = policy["rules"]
    assert_matches_model(rule, AS.Condition)
    assert_matches_model(rule["action"], AS.Action)
    assert_matches_model(rule["metric"], AS.Metric)
    assert_matches_model(rule["metric"]["threshold"], AS.Threshold)


def test_vault_and_secrets_shapes(ocisim: OcisimServer, oci_config: dict[str, Any],
                                  ocisim_control: OcisimControl) -> None:
    tenancy = ocisim.tenancy_id
    vault = ocisim_control.request("POST", "/vault/vaults", {})
    assert set(vault) == {"vaultId", "keyId", "region", "compartmentId", "displayName", "timeCreated",
                          "secretsEndpoint", "secretRetrievalEndpoint"}
    content = base64.b64encode(b"token").decode()
    secret = call(ocisim, oci_config, "POST", "vaults", "/20180608/secrets", body={
        "compartmentId": tenancy, "secretName": "hec", "vaultId": vault["vaultId"], "keyId": vault["keyId"],
        "secretContent": {"contentType": "BASE64", "content": content, "name": "first"},
        "secretRules": [{"ruleType": "SECRET_REUSE_RULE", "isEnforcedOnDeletedSecretVersions": True}]})
    body = secret.json()
    assert_matches_model(body, VAULT.Secret)
    assert secret.headers["etag"]
    assert_matches_model(body["secretRules"][0], VAULT.SecretReuseRule)
    secret_id = body["id"]
    assert_matches_model(call(ocisim, oci_config, "GET", "vaults", f"/20180608/secrets/{secret_id}").json(),
                         VAULT.Secret)
    updated = call(ocisim, oci_config, "PUT", "vaults", f"/20180608/secrets/{secret_id}", body={
        "secretContent": {"contentType": "BASE64", "content": content}}).json()
    assert_matches_model(updated, VAULT.Secret)
    assert_all_match(call(ocisim, oci_config, "GET", "vaults", "/20180608/secrets",
                          params={"compartmentId": tenancy}).json(), VAULT.SecretSummary)
    versions = call(ocisim, oci_config, "GET", "vaults", f"/20180608/secrets/{secret_id}/versions").json()
    assert_all_match(versions, VAULT.SecretVersionSummary)
    assert [v["stages"] for v in versions] == [["PREVIOUS"], ["CURRENT", "LATEST"]]
    assert_matches_model(call(ocisim, oci_config, "GET", "vaults", f"/20180608/secrets/{secret_id}/version/1").json(),
                         VAULT.SecretVersion)

    bundle = call(ocisim, oci_config, "GET", "secrets", f"/20190301/secretbundles/{secret_id}").json()
    assert_matches_model(bundle, SECRETS.SecretBundle)
    assert_matches_model(bundle["secretBundleContent"], SECRETS.Base64SecretBundleContentDetails)
    assert bundle["secretBundleContent"] == {"contentType": "BASE64", "content": content}
    by_name = call(ocisim, oci_config, "POST", "secrets", "/20190301/secretbundles/actions/getByName",
                   params={"secretName": "hec", "vaultId": vault["vaultId"], "secretVersionName": "first"}).json()
    assert_matches_model(by_name, SECRETS.SecretBundle)
    assert by_name["versionNumber"] == 1
    bundle_versions = call(ocisim, oci_config, "GET", "secrets", f"/20190301/secretbundles/{secret_id}/versions")
    assert_all_match(bundle_versions.json(), SECRETS.SecretBundleVersionSummary)
    scheduled = call(ocisim, oci_config, "POST", "vaults", f"/20180608/secrets/{secret_id}/actions/scheduleDeletion",
                     body={})
    assert scheduled.content == b""
