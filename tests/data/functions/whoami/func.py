"""A test function that proves the resource principal works end to end.

It signs with ``oci.auth.signers.get_resource_principals_signer()`` (the v2.2 variables the platform
injects), reaches Identity through ``SIEM_OCI_ENDPOINT_TEMPLATE`` from its configuration, and returns
the tenancy it read and the claims of its own token.
"""

import io
import json
import os
from typing import Any

import oci
from fdk import response


def handler(ctx: Any, data: io.BytesIO | None = None) -> Any:
    signer = oci.auth.signers.get_resource_principals_signer()
    region = os.environ["OCI_RESOURCE_PRINCIPAL_REGION"]
    template = os.environ["SIEM_OCI_ENDPOINT_TEMPLATE"]
    endpoint = template.format(region=region, service="identity")
    identity = oci.identity.IdentityClient({"region": region}, signer=signer, service_endpoint=endpoint,
                                           retry_strategy=oci.retry.NoneRetryStrategy())
    tenancy = identity.get_tenancy(signer.get_claim("res_tenant")).data
    result = {
        "tenancyId": tenancy.id,
        "tenancyName": tenancy.name,
        "resourceId": signer.get_claim("res_id"),
        "compartmentId": signer.get_claim("res_compartment"),
        "region": signer.region,
    }
    return response.Response(ctx, response_data=json.dumps(result), headers={"Content-Type": "application/json"})
