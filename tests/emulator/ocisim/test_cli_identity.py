"""The real OCI CLI against ocisim: Identity."""

from __future__ import annotations

import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from tests.support.cli import oci_json

pytestmark = pytest.mark.cli


def test_cli_lists_regions_and_compartments(ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    prod = ocisim_control.add_compartment("prod")
    ocisim_control.add_compartment("prod-app", prod["id"])
    subs = oci_json(ocisim, "identity", "iam", "region-subscription", "list", "--tenancy-id", ocisim.tenancy_id)
    assert {s["region-name"] for s in subs["data"]} == {"us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1"}
    comps = oci_json(ocisim, "identity", "iam", "compartment", "list", "--compartment-id", ocisim.tenancy_id,
                     "--compartment-id-in-subtree", "true", "--all")
    assert {c["name"] for c in comps["data"]} == {"prod", "prod-app"}
