"""Per-credentials OCI client factories: shared, switched and closed; the ApiKey Secret checked without
echoing a value."""

from __future__ import annotations

import pytest

from siem_operator.clients import CredentialsSecretInvalid, FactoryCache, auth_for
from siem_operator.spec import Credentials
from siem_pipeline.oci_clients import ApiKeyAuth, ClientSettings, InstancePrincipalAuth, WorkloadIdentityAuth

TENANCY = "ocid1.tenancy.oc1..aaaaaaaatenancy"
REGION = "us-ashburn-1"


def test_one_factory_per_credentials_closed_when_unused() -> None:
    cache = FactoryCache(ClientSettings())
    a = cache.acquire("uid-1", WorkloadIdentityAuth(region=REGION))
    b = cache.acquire("uid-2", WorkloadIdentityAuth(region=REGION))
    assert a is b
    assert len(cache) == 1
    c = cache.acquire("uid-2", InstancePrincipalAuth(region=REGION))  # uid-2 switches credentials
    assert c is not a
    assert len(cache) == 2
    cache.release("uid-1")  # nobody uses the workload identity factory any more
    assert len(cache) == 1
    with pytest.raises(RuntimeError, match="closed"):
        a.client("identity")
    cache.release("uid-2")
    assert len(cache) == 0


def test_auth_for_each_credentials_type() -> None:
    for kind, auth_type in (("WorkloadIdentity", WorkloadIdentityAuth), ("InstancePrincipal", InstancePrincipalAuth)):
        built = auth_for(Credentials.model_validate({"type": kind}), tenancy_id=TENANCY, region=REGION)
        assert isinstance(built, auth_type)
    key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ib2R5\n-----END PRIVATE KEY-----\n"
    api_key = Credentials.model_validate({"type": "ApiKey", "secretRef": {"name": "oci"}})
    auth = auth_for(api_key, tenancy_id=TENANCY, region=REGION, secret_data={
        "user": "ocid1.user.oc1..aaaaaaaauser", "fingerprint": ":".join(["ab"] * 16), "privateKey": key})
    assert isinstance(auth, ApiKeyAuth)
    assert auth.tenancy == TENANCY
    assert "c2VjcmV0" not in repr(auth)
    with pytest.raises(CredentialsSecretInvalid, match="lacks the key\\(s\\) fingerprint, privateKey"):
        auth_for(api_key, tenancy_id=TENANCY, region=REGION, secret_data={"user": "ocid1.user.oc1..aaaaaaaauser"})
    with pytest.raises(CredentialsSecretInvalid) as invalid:
        auth_for(api_key, tenancy_id=TENANCY, region=REGION, secret_data={
            "user": "ocid1.user.oc1..aaaaaaaauser", "fingerprint": "nope", "privateKey": "not-a-pem-c2VjcmV0"})
    assert "c2VjcmV0" not in str(invalid.value)
    assert "privateKey" in str(invalid.value)
    assert "fingerprint" in str(invalid.value)
