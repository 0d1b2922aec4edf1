"""The real OCI CLI against ocisim: Notifications topics and messages, Events rules."""

from __future__ import annotations

import json

import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.ocid import new_ocid
from tests.emulator.ocisim.ons_support import deliveries
from tests.support.cli import oci_json, run_oci

pytestmark = pytest.mark.cli


def test_cli_topics_and_publish(ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    root = ocisim.tenancy_id
    created = oci_json(ocisim, "notification", "ons", "topic", "create", "--name", "cli-topic",
                       "--compartment-id", root, "--description", "from the CLI")["data"]
    topic_id = created["topic-id"]
    assert (created["name"], created["lifecycle-state"]) == ("cli-topic", "ACTIVE")
    listed = oci_json(ocisim, "notification", "ons", "topic", "list", "--compartment-id", root, "--all")["data"]
    assert [t["topic-id"] for t in listed] == [topic_id]
    got = oci_json(ocisim, "notification", "ons", "topic", "get", "--topic-id", topic_id)["data"]
    assert got["description"] == "from the CLI"

    subscription = oci_json(ocisim, "notification", "ons", "subscription", "create", "--topic-id", topic_id,
                            "--compartment-id", root, "--protocol", "ORACLE_FUNCTIONS",
                            "--subscription-endpoint", new_ocid("fnfunc", "iad"))["data"]
    assert subscription["lifecycle-state"] == "ACTIVE"
    published = oci_json(ocisim, "notification", "ons", "message", "publish", "--topic-id", topic_id,
                         "--body", "hello from the CLI", "--title", "cli")["data"]
    assert len(published["message-id"]) == 36
    [record] = deliveries(ocisim_control, messageId=published["message-id"])
    assert (record["body"], record["title"]) == ("hello from the CLI", "cli")

    run_oci(ocisim, "notification", "ons", "topic", "delete", "--topic-id", topic_id, "--force")
    missing = run_oci(ocisim, "notification", "ons", "topic", "get", "--topic-id", topic_id, check=False)
    assert missing.returncode != 0
    assert "NotAuthorizedOrNotFound" in missing.stderr


def test_cli_rules(ocisim: OcisimServer) -> None:
    root = ocisim.tenancy_id
    actions = {"actions": [{"actionType": "OSS", "isEnabled": True, "streamId": new_ocid("stream", "iad")}]}
    condition = json.dumps({"eventType": ["com.oraclecloud.objectstorage.createbucket"]})
    rule = oci_json(ocisim, "events", "events", "rule", "create", "--display-name", "cli-rule", "--is-enabled",
                    "true", "--condition", condition, "--compartment-id", root,
                    "--actions", json.dumps(actions))["data"]
    assert (rule["display-name"], rule["lifecycle-state"], rule["condition"]) == ("cli-rule", "ACTIVE", condition)
    assert rule["actions"]["actions"][0]["action-type"] == "OSS"
    listed = oci_json(ocisim, "events", "events", "rule", "list", "--compartment-id", root, "--all")["data"]
    assert [r["id"] for r in listed] == [rule["id"]]
    got = oci_json(ocisim, "events", "events", "rule", "get", "--rule-id", rule["id"])["data"]
    assert got["actions"]["actions"][0]["stream-id"] == actions["actions"][0]["streamId"]

    bad = run_oci(ocisim, "events", "events", "rule", "create", "--display-name", "bad", "--is-enabled", "true",
                  "--condition", "{not json", "--compartment-id", root, "--actions", json.dumps(actions), check=False)
    assert bad.returncode != 0
    assert "InvalidParameter" in bad.stderr

    run_oci(ocisim, "events", "events", "rule", "delete", "--rule-id", rule["id"], "--force")
    deleted = oci_json(ocisim, "events", "events", "rule", "get", "--rule-id", rule["id"])["data"]
    assert deleted["lifecycle-state"] == "DELETED"
