"""Identity responses against the SDK's models."""

from __future__ import annotations

from typing import Any

import oci

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from tests.support.contract import assert_all_match, assert_matches_model, raw_call


def test_identity_shapes(ocisim: OcisimServer, ocisim_control: OcisimControl, oci_config: dict[str, Any]) -> None:
    comp = ocisim_control.add_compartment("prod")
    m = oci.identity.models
    tenancy = raw_call(ocisim, oci_config, "GET", "identity", f"/20160918/tenancies/{ocisim.tenancy_id}").json()
    assert_matches_model(tenancy, m.Tenancy)
    subs = raw_call(ocisim, oci_config, "GET", "identity",
                    f"/20160918/tenancies/{ocisim.tenancy_id}/regionSubscriptions").json()
    assert_all_match(subs, m.RegionSubscription)
    got = raw_call(ocisim, oci_config, "GET", "identity", f"/20160918/compartments/{comp['id']}").json()
    assert_matches_model(got, m.Compartment)
    listed = raw_call(ocisim, oci_config, "GET", "identity", "/20160918/compartments",
                      params={"compartmentId": ocisim.tenancy_id}).json()
    assert_all_match(listed, m.Compartment)
    users = raw_call(ocisim, oci_config, "GET", "identity", "/20160918/users",
                     params={"compartmentId": ocisim.tenancy_id}).json()
    assert_all_match(users, m.User, optional=["external_identifier", "identity_provider_id",
                                              "last_successful_login_time", "previous_successful_login_time",
                                              "db_user_name"])
    keys = raw_call(ocisim, oci_config, "GET", "identity", f"/20160918/users/{users[0]['id']}/apiKeys").json()
    assert_all_match(keys, m.ApiKey)
