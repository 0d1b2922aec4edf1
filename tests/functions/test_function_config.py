"""The functions' configuration as the operator writes it (``siem_operator.desired``): which core a process
runs (``SIEM_FUNCTION``), the CA bundle from Vault, ``SIEM_REDACTION``, the event types, the region
fetch stamps on each event for the HEC ``source``, and the export function's replay mode."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import certifi
import oci
import orjson
import pytest
from fdk.context import InvokeContext
from pydantic import SecretStr

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_operator.desired import Env
from siem_pipeline import dispatch
from siem_pipeline.collect_config import CollectConfig
from siem_pipeline.destinations.base import DestinationConfigError
from siem_pipeline.export_config import ExportConfig, core, read_ca_bundle, run_export
from siem_pipeline.fn import Invocation
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.workitems import FetchRequest
from tests.functions.collect_support import Pipeline, dump, published
from tests.functions.test_fetch import T0, generate, now, parts
from tests.support.fixtures import TOKEN
from tests.support.hec_receiver import HecReceiver
from tests.support.tls import Pki

MIN = dt.timedelta(minutes=1)


@pytest.fixture
def factory(factory: OciClientFactory, ocisim_control: OcisimControl) -> OciClientFactory:
    """The shared factory (:mod:`tests.support.fixtures`), on an ocisim frozen at ``T0`` that keeps no audit
    records of the tests' own API calls."""
    ocisim_control.freeze(T0.isoformat().replace("+00:00", "Z"))
    ocisim_control.settings(auditApiCalls=False)
    return factory


def vault_secret(factory: OciClientFactory, control: OcisimControl, ocisim: OcisimServer, name: str,
                 value: str) -> str:
    vault = control.request("POST", "/vault/vaults", {"compartmentId": ocisim.tenancy_id, "displayName": name})
    content = oci.vault.models.Base64SecretContentDetails(content=base64.b64encode(value.encode()).decode())
    details = oci.vault.models.CreateSecretDetails(compartment_id=ocisim.tenancy_id, vault_id=vault["vaultId"],
                                                   key_id=vault["keyId"], secret_name=name, secret_content=content)
    secret_id: str = factory.vaults().create_secret(details).data.id
    return secret_id


# -- which function a process is ---------------------------------------------------------------------------


def test_the_function_is_named_by_the_image_or_by_siem_function() -> None:
    assert dispatch.function_name({"SIEM_FUNCTION": "fetch"}) == "fetch"
    assert dispatch.function_name({"SIEM_FUNCTION": " Export "}) == "export"
    assert dispatch.function_name({}, "fanout") == "fanout"
    assert dispatch.function_name({"SIEM_FUNCTION": "fanout"}, "fanout") == "fanout"
    with pytest.raises(dispatch.WrongFunction, match="runs the fetch function, but SIEM_FUNCTION=export"):
        dispatch.function_name({"SIEM_FUNCTION": "export"}, "fetch")
    with pytest.raises(dispatch.WrongFunction, match="SIEM_FUNCTION is not set"):
        dispatch.function_name({})
    with pytest.raises(dispatch.WrongFunction, match="not one of"):
        dispatch.function_name({"SIEM_FUNCTION": "publish"})
    assert Env.FUNCTION == dispatch.FUNCTION_VAR


def test_a_wrong_function_fails_the_call_with_its_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = InvokeContext("ocid1.fnapp.oc1..app", "siem", "ocid1.fnfunc.oc1..fn", "fetch", "01WRONG",
                        deadline="2026-11-27T10:00:30Z", headers={})
    with pytest.raises(dispatch.WrongFunction):
        dispatch.handle(ctx, io.BytesIO(b"{}"), fixed="fetch", environ={"SIEM_FUNCTION": "export"})
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (line["function"], line["outcome"], line["errorType"]) == ("fetch", "error", "WrongFunction")


def test_event_types_are_read_under_the_operators_names() -> None:
    base = {"SIEM_WORK_STREAM_ID": "w", "SIEM_EVENTS_STREAM_ID": "e", "SIEM_STATE_STREAM_ID": "s",
            "SIEM_STREAM_ENDPOINT": "https://streaming", "SIEM_FETCH_TOPIC_ID": "t"}
    config = CollectConfig.from_env({**base, Env.EVENT_TYPES_INCLUDE: "com.oraclecloud.identitycontrolplane.*",
                                     Env.EVENT_TYPES_EXCLUDE: "com.oraclecloud.identitycontrolplane.listusers"})
    assert config.event_types_include == ("com.oraclecloud.identitycontrolplane.*",)
    assert config.event_types_exclude == ("com.oraclecloud.identitycontrolplane.listusers",)
    event_filter = config.event_filter()
    kept = event_filter.apply([{"eventType": "com.oraclecloud.identityControlPlane.CreateUser"},
                               {"eventType": "com.oraclecloud.identitycontrolplane.listusers"},
                               {"eventType": "com.oraclecloud.ComputeApi.GetInstance"}])
    assert [e["eventType"] for e in kept] == ["com.oraclecloud.identityControlPlane.CreateUser"]


# -- fetch stamps the region; export reads the CA bundle from Vault and honours SIEM_REDACTION -----------------


def collect(ocisim: OcisimServer, control: OcisimControl, factory: OciClientFactory, region: str,
            count: int) -> tuple[Pipeline, list[str]]:
    """Audit activity in ``region`` collected into the events stream by fanout and fetch."""
    pipeline = Pipeline(ocisim, control, factory, SIEM_REGIONS=region)
    _config, fanout, fetcher = parts(pipeline, factory)
    horizon = now(control) - 15 * MIN  # the default delay; the first live window is [horizon - 5, horizon)
    ids = generate(control, region, horizon - 5 * MIN, horizon, count, seed=7)
    fanout.run(now(control))
    for body in pipeline.new_fetch_requests():
        fetcher.run(FetchRequest.from_message(body))
    return pipeline, ids


def export_env(pipeline: Pipeline, hec: HecReceiver, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"SIEM_EVENTS_STREAM_ID": pipeline.events.id,
            "SIEM_EVENTS_STREAM_ENDPOINT": pipeline.events.messages_endpoint,
            "SIEM_DLQ_STREAM_ID": pipeline.dlq.id, "SIEM_DLQ_STREAM_ENDPOINT": pipeline.dlq.messages_endpoint,
            "SIEM_DESTINATION": "hec", "SIEM_DESTINATION_URL": hec.url, "SIEM_DEDUP_FILE": str(tmp_path / "ids"),
            "OCI_RESOURCE_PRINCIPAL_REGION": "us-ashburn-1", **extra}


def test_fetch_stamps_the_region_and_the_hec_source_names_it(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                             factory: OciClientFactory, hec: HecReceiver, pki: Pki,
                                                             tmp_path: Path) -> None:
    pipeline, ids = collect(ocisim, ocisim_control, factory, "us-phoenix-1", 40)
    stored = [orjson.loads(m["value"]) for m in dump(ocisim_control, pipeline.events.id)]
    assert sorted(e["eventId"] for e in stored) == sorted(ids)
    assert {e["region"] for e in stored} == {"us-phoenix-1"}
    ca_secret = vault_secret(factory, ocisim_control, ocisim, "siem-ca", pki.ca.read_text())
    token_secret = vault_secret(factory, ocisim_control, ocisim, "siem-token", TOKEN)
    env = export_env(pipeline, hec, tmp_path, SIEM_CA_BUNDLE_SECRET_ID=ca_secret, SIEM_SECRET_ID=token_secret)
    written_before = set(Path(tempfile.gettempdir()).glob("siem-ca-*.pem"))
    counts = run_export(ExportConfig.from_env(env), factory)  # the token and the CA from Vault
    assert counts.exported == 40
    assert set(Path(tempfile.gettempdir()).glob("siem-ca-*.pem")) <= written_before  # the PEM file is gone
    # the function's own region (the resource principal's, ashburn) is only the fallback
    assert {e["source"] for e in hec.events} == {"oci:audit:us-phoenix-1"}
    # redaction on by default
    assert authorizations(hec.events) == {"[REDACTED]"}


def test_the_ca_secret_is_trusted_in_addition_to_the_public_cas(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                                 factory: OciClientFactory, pki: Pki) -> None:
    secret = vault_secret(factory, ocisim_control, ocisim, "siem-ca", pki.ca.read_text())
    bundle = read_ca_bundle(factory, secret)
    assert bundle.startswith(pki.ca.read_text().strip())
    assert bundle.endswith(Path(certifi.where()).read_text(encoding="utf-8"))


def test_a_ca_secret_that_is_not_pem_is_refused(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                factory: OciClientFactory, hec: HecReceiver, tmp_path: Path) -> None:
    pipeline = Pipeline(ocisim, ocisim_control, factory)
    bad = vault_secret(factory, ocisim_control, ocisim, "siem-ca", "not a certificate")
    env = export_env(pipeline, hec, tmp_path, SIEM_CA_BUNDLE_SECRET_ID=bad)
    with pytest.raises(DestinationConfigError, match="holds no PEM certificate"):
        run_export(ExportConfig.from_env(env), factory, secret=None)


def test_redaction_is_off_only_when_explicitly_false(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                     factory: OciClientFactory, hec: HecReceiver, pki: Pki,
                                                     tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for value, expected in (("", True), ("true", True), ("TRUE", True), ("false", False), ("False", False)):
        config = ExportConfig.from_env({"SIEM_EVENTS_STREAM_ID": "e", "SIEM_EVENTS_STREAM_ENDPOINT": "https://s",
                                        "SIEM_DLQ_STREAM_ID": "d", "SIEM_DLQ_STREAM_ENDPOINT": "https://s",
                                        "SIEM_DESTINATION": "hec", "SIEM_DESTINATION_URL": "https://x",
                                        "SIEM_REDACTION": value})
        assert config.redaction is expected, value
    pipeline, _ids = collect(ocisim, ocisim_control, factory, "us-ashburn-1", 30)
    raw = [{"event": orjson.loads(m["value"])} for m in dump(ocisim_control, pipeline.events.id)]
    secrets = authorizations(raw)
    assert secrets - {"[REDACTED]"}  # the generator's events carry credentials
    env = export_env(pipeline, hec, tmp_path, SIEM_CA_BUNDLE=str(pki.ca), SIEM_REDACTION="false")
    with caplog.at_level(logging.WARNING, logger="siem_pipeline.export_config"):
        counts = run_export(ExportConfig.from_env(env), factory, secret=SecretStr(TOKEN))
    assert counts.exported == 30
    assert "redaction is OFF" in caplog.text
    assert authorizations(hec.events) == secrets  # passed through untouched


def authorizations(envelopes: list[dict[str, Any]]) -> set[str]:
    """Every ``Authorization`` request header value in the events of ``envelopes``."""
    return {value for e in envelopes for value in
            ((e["event"].get("data") or {}).get("request", {}).get("headers") or {}).get("Authorization", [])}


def test_the_export_core_replays_the_dead_letters_when_asked(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                             factory: OciClientFactory, hec: HecReceiver, pki: Pki,
                                                             tmp_path: Path) -> None:
    pipeline = Pipeline(ocisim, ocisim_control, factory)
    token_secret = vault_secret(factory, ocisim_control, ocisim, "siem-token", TOKEN)
    env = export_env(pipeline, hec, tmp_path, SIEM_CA_BUNDLE=str(pki.ca), SIEM_SECRET_ID=token_secret)
    letter = {"reason": "HEC 503 for too long", "destination": "splunk-hec", "failedAt": "2026-03-02T10:00:00Z",
              "eventId": "ev-1", "replays": 0,
              "source": {"streamId": pipeline.events.id, "partition": "0", "offset": 0},
              "event": {"eventId": "ev-1", "eventType": "com.oraclecloud.ComputeApi.GetInstance",
                        "eventTime": "2026-03-02T09:41:00.250Z", "region": "us-phoenix-1", "data": {}}}
    producer_client = factory.stream(pipeline.dlq.messages_endpoint)
    producer_client.put_messages(pipeline.dlq.id, oci.streaming.models.PutMessagesDetails(messages=[
        oci.streaming.models.PutMessagesDetailsEntry(key=base64.b64encode(b"ev-1").decode(),
                                                     value=base64.b64encode(orjson.dumps(letter)).decode())]))

    def call(body: bytes) -> dict[str, Any]:
        inv = Invocation(function="export", call_id="c", body=body, config=env)
        return dict(core(inv, factory))

    assert call(b'{"type": "export", "events": 0}')["mode"] == "export"
    assert hec.event_ids() == []  # the events stream is empty
    result = call(b'{"type": "replay", "maxBatches": 2}')
    assert (result["mode"], result["exported"], result["redaction"]) == ("replay", 1, True)
    assert hec.event_ids() == ["ev-1"]
    assert hec.events[0]["time"] == 1772444460.25
    with pytest.raises(ValueError, match="maxBatches"):
        call(b'{"type": "replay", "maxBatches": 0}')
    assert published(ocisim_control, pipeline.export_topic.topic_id) == []
