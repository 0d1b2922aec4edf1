"""The vault secret adapter keeps the content out of everything it returns, raises and logs."""

from __future__ import annotations

import base64
import logging

import oci
import pytest
from pydantic import SecretStr

from siem_operator.adapters import ChildConflict
from siem_operator.adapters.vault_secret import REDACTED, VaultSecretAdapter
from siem_operator.children import ChildKind, Desired, Phase
from tests.operator.adapters.conftest import CASES, REGION, Case, Env

CASE: Case = next(c for c in CASES if c.kind is ChildKind.VAULT_SECRET)
VALUE = "hec-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def wanted(env: Env, content: object = VALUE) -> Desired:
    return CASE.desired(env, secret_content=content)


def fresh(env: Env) -> VaultSecretAdapter:
    """An adapter with an empty digest cache, as after an operator restart."""
    return VaultSecretAdapter(env.factory, REGION)


def test_the_content_appears_in_no_observation_difference_error_or_log(env: Env,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = fresh(env)
    desired = wanted(env, SecretStr(VALUE))
    observed = adapter.create(desired, env.uid, "token-a")
    assert VALUE not in repr(observed)
    assert adapter.differences(desired, observed) == []
    changed = wanted(env, SecretStr("hec-another-token"))
    [difference] = adapter.differences(changed, observed)
    assert (difference.field, difference.desired, difference.observed, difference.mutable) == (
        "secret_content", REDACTED, REDACTED, True)
    with pytest.raises(ChildConflict) as conflict:  # someone else's secret of the same name
        adapter.create(desired, "another-pipeline", "token-b")
    updated = adapter.update(changed, observed)
    for text in (repr(updated), str(conflict.value), caplog.text, repr(desired)):
        assert VALUE not in text
        assert "hec-another-token" not in text
    bundle = env.factory.secrets(REGION).get_secret_bundle(observed.ocid).data
    assert base64.b64decode(bundle.secret_bundle_content.content).decode() == "hec-another-token"
    assert bundle.version_number == 2


def test_a_version_written_by_hand_is_detected_after_a_restart_and_replaced(env: Env) -> None:
    observed = fresh(env).create(wanted(env), env.uid, "token-c")
    assert fresh(env).differences(wanted(env), observed) == []  # read back from the bundle: same content
    env.factory.vaults(REGION).update_secret(observed.ocid, oci.vault.models.UpdateSecretDetails(
        secret_content=oci.vault.models.Base64SecretContentDetails(
            content=base64.b64encode(b"typed-in-the-console").decode(), stage="CURRENT")))
    adapter = fresh(env)
    now = adapter.observe(wanted(env), observed.ocid, env.uid)
    assert now is not None
    assert [d.field for d in adapter.differences(wanted(env), now)] == ["secret_content"]
    adapter.update(wanted(env), now)
    again = fresh(env).observe(wanted(env), observed.ocid, env.uid)
    assert again is not None
    assert fresh(env).differences(wanted(env), again) == []


def test_a_secret_deleted_by_us_is_brought_back_by_create_under_its_name(env: Env) -> None:
    adapter = fresh(env)
    observed = adapter.create(wanted(env), env.uid, "token-d")
    adapter.delete(observed)
    assert adapter.observe(wanted(env), observed.ocid, env.uid) is None  # pending deletion: gone for us
    state = env.factory.vaults(REGION).get_secret(observed.ocid).data.lifecycle_state
    assert state == "PENDING_DELETION"
    revived = adapter.create(wanted(env, "hec-rotated"), env.uid, "token-e")
    assert revived.ocid == observed.ocid
    assert revived.phase is Phase.READY
    assert [d.field for d in adapter.differences(wanted(env, "hec-rotated"), revived)] == ["secret_content"]
    adapter.update(wanted(env, "hec-rotated"), revived)
    assert CASE.count(env, wanted(env)) == 1
