"""Identity through the real SDK: tenancy, regions, the compartment tree and its listing rules."""

from __future__ import annotations

from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.testing import sdk_client


@pytest.fixture
def identity(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.identity.IdentityClient:
    return sdk_client(ocisim, oci.identity.IdentityClient, oci_config, service="identity")


@pytest.fixture
def tree(ocisim_control: OcisimControl) -> dict[str, str]:
    """root ─ prod ─ prod-app ; root ─ dev (INACTIVE-free) ; root ─ old (DELETED)."""
    prod = ocisim_control.add_compartment("prod")
    app = ocisim_control.add_compartment("prod-app", prod["id"])
    dev = ocisim_control.add_compartment("dev")
    old = ocisim_control.add_compartment("old", lifecycleState="DELETED")
    return {"prod": prod["id"], "prod-app": app["id"], "dev": dev["id"], "old": old["id"]}


def test_region_subscriptions_name_the_home_region(identity: oci.identity.IdentityClient,
                                                   ocisim: OcisimServer) -> None:
    subs = identity.list_region_subscriptions(ocisim.tenancy_id).data
    assert [(s.region_name, s.region_key, s.is_home_region, s.status) for s in subs] == [
        ("us-ashburn-1", "IAD", True, "READY"),
        ("us-phoenix-1", "PHX", False, "READY"),
        ("eu-frankfurt-1", "FRA", False, "READY"),
    ]
    tenancy = identity.get_tenancy(ocisim.tenancy_id).data
    assert tenancy.home_region_key == "IAD"


def test_first_level_listing_never_includes_the_root(identity: oci.identity.IdentityClient,
                                                     ocisim: OcisimServer, tree: dict[str, str]) -> None:
    names = {c.name for c in identity.list_compartments(ocisim.tenancy_id).data}
    assert names == {"prod", "dev", "old"}
    assert ocisim.tenancy_id not in {c.id for c in identity.list_compartments(ocisim.tenancy_id).data}


def test_subtree_listing_and_access_level(identity: oci.identity.IdentityClient, ocisim: OcisimServer,
                                          tree: dict[str, str]) -> None:
    everything = oci.pagination.list_call_get_all_results(
        identity.list_compartments, ocisim.tenancy_id, compartment_id_in_subtree=True, limit=1).data
    assert {c.name for c in everything} == {"prod", "prod-app", "dev", "old"}
    accessible = identity.list_compartments(ocisim.tenancy_id, compartment_id_in_subtree=True,
                                            access_level="ACCESSIBLE").data
    assert {c.name for c in accessible} == {"prod", "prod-app", "dev"}
    active = identity.list_compartments(ocisim.tenancy_id, compartment_id_in_subtree=True,
                                        lifecycle_state="ACTIVE").data
    assert "old" not in {c.name for c in active}


def test_subtree_flag_only_on_the_tenancy(identity: oci.identity.IdentityClient, tree: dict[str, str]) -> None:
    with pytest.raises(oci.exceptions.ServiceError) as err:
        identity.list_compartments(tree["prod"], compartment_id_in_subtree=True)
    assert (err.value.status, err.value.code) == (400, "InvalidParameter")
    children = identity.list_compartments(tree["prod"]).data
    assert [c.name for c in children] == ["prod-app"]


def test_get_compartment_and_missing_one(identity: oci.identity.IdentityClient, tree: dict[str, str],
                                         ocisim: OcisimServer) -> None:
    app = identity.get_compartment(tree["prod-app"]).data
    assert (app.name, app.compartment_id, app.lifecycle_state) == ("prod-app", tree["prod"], "ACTIVE")
    root = identity.get_compartment(ocisim.tenancy_id).data
    assert root.compartment_id is None
    with pytest.raises(oci.exceptions.ServiceError) as err:
        identity.get_compartment("ocid1.compartment.oc1..doesnotexist")
    assert (err.value.status, err.value.code) == (404, "NotAuthorizedOrNotFound")
    assert err.value.request_id


def test_users_and_their_api_keys(identity: oci.identity.IdentityClient, ocisim: OcisimServer) -> None:
    users = identity.list_users(ocisim.tenancy_id).data
    admin = next(u for u in users if u.name == "ocisim-admin")
    keys = identity.list_api_keys(admin.id).data
    assert [k.fingerprint for k in keys] == [ocisim.fingerprint]
    assert keys[0].key_value.startswith("-----BEGIN PUBLIC KEY-----")


def test_paging_walks_every_compartment(identity: oci.identity.IdentityClient, ocisim: OcisimServer,
                                        ocisim_control: OcisimControl) -> None:
    for i in range(7):
        ocisim_control.add_compartment(f"c{i}")
    first = identity.list_compartments(ocisim.tenancy_id, limit=3, sort_by="NAME", sort_order="ASC")
    assert [c.name for c in first.data] == ["c0", "c1", "c2"]
    assert first.has_next_page
    rest = oci.pagination.list_call_get_all_results(identity.list_compartments, ocisim.tenancy_id, limit=3,
                                                    sort_by="NAME", sort_order="ASC").data
    assert [c.name for c in rest] == [f"c{i}" for i in range(7)]
