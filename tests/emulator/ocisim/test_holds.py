"""Held answers (:mod:`ocisim.holds`): a call is served — its effect is real — and its answer is held until the
rule goes, so a test can stop a client between an OCI write and the client learning its result."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.testing import sdk_client

M = oci.streaming.models


def _held(control: OcisimControl, hold_id: str) -> int:
    return int(next(r for r in control.holds() if r["id"] == hold_id)["held"])


def test_a_held_create_exists_before_its_answer_and_is_answered_on_release(
        ocisim: OcisimServer, ocisim_control: OcisimControl, oci_config: dict[str, Any]) -> None:
    comp = str(ocisim_control.add_compartment("hold")["id"])
    admin = sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")
    # the second create in streaming (of any kind: a glob) is held; a failed create does not count
    rule = ocisim_control.hold(service="streaming", operations=["Create*"], after=1)
    admin.create_stream(M.CreateStreamDetails(name="first", partitions=1, compartment_id=comp))
    with pytest.raises(oci.exceptions.ServiceError):
        admin.create_stream(M.CreateStreamDetails(name="bad", partitions=0, compartment_id=comp))
    answers: list[str] = []
    caller = threading.Thread(target=lambda: answers.append(admin.create_stream(
        M.CreateStreamDetails(name="second", partitions=1, compartment_id=comp)).data.id))
    caller.start()
    try:
        deadline = time.monotonic() + 10
        while not _held(ocisim_control, rule["id"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _held(ocisim_control, rule["id"]) == 1
        assert {s.name for s in admin.list_streams(compartment_id=comp).data} == {"first", "second"}
        assert answers == []  # served, not answered
    finally:
        ocisim_control.release(rule["id"])
        caller.join(10)
    assert len(answers) == 1
    assert admin.get_stream(answers[0]).data.name == "second"
    assert ocisim_control.holds() == []


def test_a_spent_rule_answers_at_once_and_a_reset_releases(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                           oci_config: dict[str, Any]) -> None:
    comp = str(ocisim_control.add_compartment("hold")["id"])
    admin = sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")
    rule = ocisim_control.hold(service="streaming", operation="CreateStream", timeoutMs=50)
    admin.create_stream(M.CreateStreamDetails(name="a", partitions=1, compartment_id=comp))  # held 50 ms
    admin.create_stream(M.CreateStreamDetails(name="b", partitions=1, compartment_id=comp))  # count=1: spent
    assert [(r["id"], r["seen"], r["held"]) for r in ocisim_control.holds()] == [(rule["id"], 2, 1)]
    ocisim_control.reset()
    assert ocisim_control.holds() == []


@pytest.mark.parametrize("body", [{"operations": []}, {"after": -1}, {"count": "2"}, {"action": "hold"}])
def test_a_bad_hold_rule_is_refused(ocisim: OcisimServer, body: dict[str, Any]) -> None:
    response = httpx.post(f"{ocisim.url}/_ocisim/holds", json=body)
    assert (response.status_code, response.json()["code"]) == (400, "InvalidParameter")
    assert httpx.delete(f"{ocisim.url}/_ocisim/holds/hold-nope").status_code == 404
