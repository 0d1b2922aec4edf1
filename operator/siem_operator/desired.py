"""The spec of one SiemPipeline → every child OCI resource it should have (:class:`Desired`), as pure data.

Children and their keys (``Ref(kind, key)``), in dependency order:

======================  =====================================  =============================================
kind                    keys                                   when
======================  =====================================  =============================================
VaultSecret             ``token``, ``ca-bundle``               the value comes from a Kubernetes Secret
StreamPool              ``pool``                               ``spec.streams.poolId`` is unset
Stream                  ``work``, ``events``, ``state``,       always
                        ``dead-letter``
Topic                   ``fetch``, ``export`` (+ ``trigger``)  always (+ Autoscaling trigger)
Application             ``app``                                always
Function                ``fanout``, ``fetch``, ``export``      always
Subscription            ``fetch``, ``export`` (+ ``trigger``)  topic → function of the same key
                                                               (``trigger`` → fanout)
EventRule               ``trigger``                            Autoscaling trigger
Schedule                ``trigger``                            ResourceScheduler trigger
AutoscalingConfig.      ``trigger``                            Autoscaling trigger
======================  =====================================  =============================================

Property names and shapes are the ones the adapters document (``siem_operator.adapters.*``). The
trigger is created last (it depends on every subscription) so that no run starts before the whole
chain can carry it, and ``spec.suspend`` only disables it.

Function configuration (the functions' environment, :class:`Env`) names streams, topics and secrets by
OCID — written as :class:`Ref` values — and the streams' messages endpoints — :class:`Attr` values, read
from the observed streams — which the reconciler resolves; it never holds a secret value: the SIEM
token and CA bundle are read from Vault by OCID. OCI limits a function's configuration to 4 KB,
so :func:`desired_children` checks the size and refuses a spec that would not fit.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import SecretStr

from siem_operator import spec as s
from siem_operator.children import Attr, ChildKind, Desired, Ref
from siem_operator.naming import PipelineIdentity, child_name

#: OCI's limit on a function's configuration (keys and values, application's included)
CONFIG_LIMIT_BYTES: Final = 4096
#: what a Ref counts for in the size check before it is resolved (OCIDs are about 90 characters)
OCID_ESTIMATE: Final = 100

DEFAULT_MEMORY: Final = {"fanout": 256, "fetch": 512, "export": 512}
DEFAULT_TIMEOUT: Final = 300
EXPORT_GROUP: Final = "siem-export"
#: the event OCI Autoscaling emits for each run of a scheduled policy ("Scaling Action")
SCALING_ACTION_EVENT: Final = "com.oraclecloud.autoscaling.scalingaction"
AUTOSCALING_COOL_DOWN: Final = 300

#: the kind's word in display names (``siem-<ns>-<name>-events-stream-<hash>``)
KIND_LABELS: Final = {
    ChildKind.VAULT_SECRET: "secret", ChildKind.STREAM_POOL: "pool", ChildKind.STREAM: "stream",
    ChildKind.APPLICATION: "app", ChildKind.FUNCTION: "fn", ChildKind.TOPIC: "topic", ChildKind.SUBSCRIPTION: "sub",
    ChildKind.EVENT_RULE: "rule", ChildKind.SCHEDULE: "schedule", ChildKind.AUTOSCALING_CONFIGURATION: "autoscaling",
}


class Env:
    """The environment variables the functions read (their Fn configuration), as
    ``siem_pipeline.collect_config`` (fanout and fetch) and ``siem_pipeline.export_config`` (export) name
    them, plus a few of the operator's own (marked)."""

    FUNCTION: Final = "SIEM_FUNCTION"  # operator's: fanout | fetch | export
    PIPELINE: Final = "SIEM_PIPELINE"  # operator's: <namespace>/<name>
    PIPELINE_UID: Final = "SIEM_PIPELINE_UID"  # operator's
    TENANCY_ID: Final = "SIEM_TENANCY_ID"
    PIPELINE_REGION: Final = "SIEM_PIPELINE_REGION"
    WORK_STREAM_ID: Final = "SIEM_WORK_STREAM_ID"
    WORK_STREAM_ENDPOINT: Final = "SIEM_WORK_STREAM_ENDPOINT"
    EVENTS_STREAM_ID: Final = "SIEM_EVENTS_STREAM_ID"
    EVENTS_STREAM_ENDPOINT: Final = "SIEM_EVENTS_STREAM_ENDPOINT"
    STATE_STREAM_ID: Final = "SIEM_STATE_STREAM_ID"
    STATE_STREAM_ENDPOINT: Final = "SIEM_STATE_STREAM_ENDPOINT"
    DLQ_STREAM_ID: Final = "SIEM_DLQ_STREAM_ID"
    DLQ_STREAM_ENDPOINT: Final = "SIEM_DLQ_STREAM_ENDPOINT"
    FETCH_TOPIC_ID: Final = "SIEM_FETCH_TOPIC_ID"
    EXPORT_TOPIC_ID: Final = "SIEM_EXPORT_TOPIC_ID"
    # fanout and fetch (one configuration: siem_pipeline.collect_config)
    REGIONS: Final = "SIEM_REGIONS"  # comma-separated; empty: every subscribed region
    COMPARTMENTS_INCLUDE: Final = "SIEM_COMPARTMENTS_INCLUDE"  # comma-separated OCIDs (subtrees); empty: all
    COMPARTMENTS_EXCLUDE: Final = "SIEM_COMPARTMENTS_EXCLUDE"  # the tenancy OCID here excludes the root alone
    WINDOW_INTERVAL_MINUTES: Final = "SIEM_WINDOW_INTERVAL_MINUTES"  # the schedule's period, when regular
    WINDOW_DELAY_MINUTES: Final = "SIEM_WINDOW_DELAY_MINUTES"
    BACKFILL_START: Final = "SIEM_BACKFILL_START"  # RFC 3339 UTC, absent when unset
    EVENT_TYPES_INCLUDE: Final = "SIEM_EVENT_TYPES_INCLUDE"  # comma-separated, '*' wildcards
    EVENT_TYPES_EXCLUDE: Final = "SIEM_EVENT_TYPES_EXCLUDE"
    # export (siem_pipeline.export_config)
    EXPORT_GROUP: Final = "SIEM_EXPORT_GROUP"  # consumer group on the events stream
    DESTINATION: Final = "SIEM_DESTINATION"  # hec | syslog | cef | bulk
    DESTINATION_URL: Final = "SIEM_DESTINATION_URL"  # https://…, tls://host:port, tcp://host:port
    SECRET_ID: Final = "SIEM_SECRET_ID"  # noqa: S105 -- a variable name: the Vault secret OCID of the token
    CA_BUNDLE_SECRET_ID: Final = "SIEM_CA_BUNDLE_SECRET_ID"  # noqa: S105 -- operator's: Vault secret OCID of PEM CAs
    GZIP: Final = "SIEM_GZIP"
    HEC_INDEX: Final = "SIEM_HEC_INDEX"
    HEC_SOURCE: Final = "SIEM_HEC_SOURCE"
    HEC_SOURCETYPE: Final = "SIEM_HEC_SOURCETYPE"
    HEC_HOST: Final = "SIEM_HEC_HOST"
    HEC_ACK: Final = "SIEM_HEC_ACK"
    HEC_ACK_TIMEOUT: Final = "SIEM_HEC_ACK_TIMEOUT"
    SYSLOG_APP_NAME: Final = "SIEM_SYSLOG_APP_NAME"
    BULK_INDEX: Final = "SIEM_BULK_INDEX"
    BULK_USERNAME: Final = "SIEM_BULK_USERNAME"
    REDACTION: Final = "SIEM_REDACTION"  # operator's: false turns redaction off
    REDACT_PATHS: Final = "SIEM_REDACT_PATHS"  # comma-separated dotted paths, on top of the defaults


class DesiredError(ValueError):
    """The spec cannot be turned into children; the message says what to change (a permanent error)."""


class MissingSecretValue(DesiredError):
    """A value the spec takes from a Kubernetes Secret was not supplied (the Secret or its key is missing)."""

    def __init__(self, key: str, ref: s.SecretKeyRef) -> None:
        self.key = key
        self.ref = ref
        super().__init__(f"the Kubernetes Secret {ref.name!r} (key {ref.key!r}) for the {key} is missing or has "
                         "no such key: create it in the SiemPipeline's namespace")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _csv(values: list[str]) -> str:
    return ",".join(values)


_DOW_NAMES: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def quartz_cron(unix_cron: str) -> str:
    """A 5-field UNIX cron expression as Autoscaling's 6-field Quartz one (seconds ``0``, ``?`` in one day
    field, day-of-week numbers as names). Raises :class:`DesiredError` when Quartz cannot express it."""
    fields = unix_cron.split()
    if len(fields) != 5:
        raise DesiredError(f"schedule {unix_cron!r} must have 5 fields (minute hour day-of-month month day-of-week)")
    minute, hour, dom, month, dow = fields
    if dow == "*":
        dow = "?"
    elif dom == "*":
        dom = "?"
        dow = re.sub(r"\d+", lambda m: _DOW_NAMES[int(m.group())] if int(m.group()) <= 7 else m.group(), dow)
    else:
        raise DesiredError(f"schedule {unix_cron!r} restricts both day-of-month and day-of-week, which the "
                           "Autoscaling trigger (Quartz cron) cannot express: restrict only one of them")
    return " ".join(("0", minute, hour, dom, month, dow))


def schedule_interval_minutes(unix_cron: str) -> int | None:
    """The period of a regular schedule (``*/5 * * * *`` → 5, ``0 * * * *`` → 60); None when irregular."""
    minute, hour, dom, month, dow = unix_cron.split()
    if (dom, month, dow) != ("*", "*", "*"):
        return None
    if hour == "*":
        if minute == "*":
            return 1
        if (m := re.fullmatch(r"(?:\*|0)/(\d+)", minute)) and 60 % int(m.group(1)) == 0:
            return int(m.group(1))
        return 60 if minute.isdigit() else None
    if minute.isdigit() and (m := re.fullmatch(r"(?:\*|0)/(\d+)", hour)) and 24 % int(m.group(1)) == 0:
        return 60 * int(m.group(1))
    return None


def config_size(config: Mapping[str, Any]) -> int:
    """Bytes of a function configuration as OCI counts them, a :class:`Ref` or :class:`Attr` as
    :data:`OCID_ESTIMATE`."""
    return sum(len(k.encode()) + (OCID_ESTIMATE if isinstance(v, Ref | Attr) else len(str(v).encode()))
               for k, v in config.items())


class _Builder:
    def __init__(self, spec: s.SiemPipelineSpec, identity: PipelineIdentity,
                 secret_values: Mapping[str, SecretStr], extra_config: Mapping[str, str]) -> None:
        self.spec = spec
        self.identity = identity
        self.secret_values = secret_values
        self.extra_config = dict(extra_config)
        self.children: list[Desired] = []

    def add(self, kind: ChildKind, key: str, properties: dict[str, Any], depends_on: tuple[Ref, ...] = (),
            adopt_ocid: str | None = None) -> Ref:
        desired = Desired(kind=kind, key=key, name=self.name(kind, key),
                          region=self.spec.home_region, compartment_id=self.spec.compartment_id,
                          properties=properties, depends_on=tuple(sorted(set(depends_on))), adopt_ocid=adopt_ocid)
        self.children.append(desired)
        return desired.ref

    def name(self, kind: ChildKind, key: str) -> str:
        label = KIND_LABELS[kind]
        return child_name(self.identity, key if key == label else f"{key}-{label}")

    # -- the parts --------------------------------------------------------------------------------------

    def secret(self, key: str, source: s.SecretSource | None, description: str) -> Ref | str | None:
        """The Vault secret holding ``source``'s value: a managed child, or the OCID the spec names."""
        if source is None:
            return None
        if source.vault_secret_id is not None:
            return source.vault_secret_id
        # the spec's validators guarantee both
        assert source.secret_ref is not None
        assert self.spec.vault is not None
        value = self.secret_values.get(key)
        if value is None:
            raise MissingSecretValue(key, source.secret_ref)
        return self.add(ChildKind.VAULT_SECRET, key, {
            "vault_id": self.spec.vault.vault_id, "key_id": self.spec.vault.key_id,
            "secret_content": value, "description": description})

    def streams(self) -> dict[str, Ref]:
        pool: Ref | str
        deps: tuple[Ref, ...] = ()
        if self.spec.streams.pool_id is not None:
            pool = self.spec.streams.pool_id
        else:
            pool = self.add(ChildKind.STREAM_POOL, "pool", {})
            deps = (pool,)
        partitions = {"work": 1, "events": self.spec.streams.partitions, "state": 1, "dead-letter": 1}
        return {key: self.add(ChildKind.STREAM, key, {
            "partitions": count, "retention_in_hours": self.spec.streams.retention_hours, "stream_pool_id": pool},
            deps) for key, count in partitions.items()}

    def topic(self, key: str, description: str) -> Ref:
        return self.add(ChildKind.TOPIC, key, {"description": description})

    def common_config(self, role: str) -> dict[str, Any]:
        return {**self.extra_config, Env.FUNCTION: role,
                Env.PIPELINE: f"{self.identity.namespace}/{self.identity.name}",
                Env.PIPELINE_UID: self.identity.uid, Env.TENANCY_ID: self.spec.tenancy_id,
                Env.PIPELINE_REGION: self.spec.home_region}

    def collect_config(self, role: str, streams: Mapping[str, Ref], fetch_topic: Ref,
                       export_topic: Ref) -> dict[str, Any]:
        """What fanout and fetch read (one configuration class on their side)."""
        src = self.spec.sources
        exclude = list(src.compartments.exclude)
        if not src.compartments.include_root and self.spec.tenancy_id not in exclude:
            exclude.append(self.spec.tenancy_id)  # excludes the root alone, not its subtree
        config = {**self.common_config(role), **self.stream_config(streams, ("work", "events", "state", "dead-letter")),
                  Env.FETCH_TOPIC_ID: fetch_topic, Env.EXPORT_TOPIC_ID: export_topic,
                  Env.REGIONS: _csv(src.regions), Env.COMPARTMENTS_INCLUDE: _csv(src.compartments.include),
                  Env.COMPARTMENTS_EXCLUDE: _csv(exclude), Env.WINDOW_DELAY_MINUTES: str(src.delay_minutes),
                  Env.EVENT_TYPES_INCLUDE: _csv(src.event_types.include),
                  Env.EVENT_TYPES_EXCLUDE: _csv(src.event_types.exclude)}
        interval = schedule_interval_minutes(src.schedule)
        if interval is not None:
            config[Env.WINDOW_INTERVAL_MINUTES] = str(interval)
        if src.backfill_start is not None:
            start = src.backfill_start.astimezone(datetime.UTC)
            config[Env.BACKFILL_START] = start.isoformat().replace("+00:00", "Z")
        return config

    @staticmethod
    def stream_config(streams: Mapping[str, Ref], keys: tuple[str, ...]) -> dict[str, Any]:
        names = {"work": ("WORK", Env.WORK_STREAM_ID), "events": ("EVENTS", Env.EVENTS_STREAM_ID),
                 "state": ("STATE", Env.STATE_STREAM_ID), "dead-letter": ("DLQ", Env.DLQ_STREAM_ID)}
        out: dict[str, Any] = {}
        for key in keys:
            prefix, id_var = names[key]
            out[id_var] = streams[key]
            out[f"SIEM_{prefix}_STREAM_ENDPOINT"] = Attr(streams[key], "messages_endpoint")
        return out

    def export_config(self, streams: Mapping[str, Ref], token: Ref | str | None,
                      ca_bundle: Ref | str | None) -> dict[str, Any]:
        dest = self.spec.destination
        config: dict[str, Any] = {
            **self.common_config("export"), **self.stream_config(streams, ("events", "state", "dead-letter")),
            Env.EXPORT_GROUP: EXPORT_GROUP, Env.REDACTION: _flag(self.spec.redaction.enabled),
            Env.REDACT_PATHS: _csv(self.spec.redaction.extra_field_paths)}
        if token is not None:
            config[Env.SECRET_ID] = token
        if ca_bundle is not None:
            config[Env.CA_BUNDLE_SECRET_ID] = ca_bundle
        if dest.hec is not None:
            hec = dest.hec
            config.update({Env.DESTINATION: "hec", Env.DESTINATION_URL: hec.url, Env.HEC_SOURCETYPE: hec.sourcetype,
                           Env.GZIP: _flag(hec.gzip), Env.HEC_ACK: _flag(hec.ack.enabled),
                           Env.HEC_ACK_TIMEOUT: str(hec.ack.timeout_seconds)})
            optional = {Env.HEC_INDEX: hec.index, Env.HEC_HOST: hec.host, Env.HEC_SOURCE: hec.source}
            config.update({k: v for k, v in optional.items() if v is not None})
        elif dest.syslog is not None:
            syslog = dest.syslog
            host = f"[{syslog.host}]" if ":" in syslog.host and not syslog.host.startswith("[") else syslog.host
            config.update({Env.DESTINATION: "cef" if syslog.format is s.SyslogFormat.CEF else "syslog",
                           Env.DESTINATION_URL: f"{syslog.transport.value.lower()}://{host}:{syslog.port}",
                           Env.SYSLOG_APP_NAME: syslog.app_name})
        elif dest.bulk is not None:
            bulk = dest.bulk
            config.update({Env.DESTINATION: "bulk", Env.DESTINATION_URL: bulk.url})
            optional = {Env.BULK_INDEX: bulk.index, Env.BULK_USERNAME: bulk.username}
            config.update({k: v for k, v in optional.items() if v is not None})
        return config

    def function(self, role: str, app: Ref, config: dict[str, Any]) -> Ref:
        settings: s.FunctionSettings = getattr(self.spec.functions, role)
        size = config_size(config)
        if size > CONFIG_LIMIT_BYTES:
            raise DesiredError(
                f"the {role} function's configuration would be about {size} bytes, over OCI's limit of "
                f"{CONFIG_LIMIT_BYTES}: list fewer compartments, event types or redaction paths (or use an empty "
                "include list with excludes)")
        refs = tuple(v.ref if isinstance(v, Attr) else v for v in config.values() if isinstance(v, Ref | Attr))
        return self.add(ChildKind.FUNCTION, role, {
            "application_id": app, "image": settings.image or self.spec.functions.image,
            "memory_in_mbs": settings.memory_mb or DEFAULT_MEMORY[role],
            "timeout_in_seconds": settings.timeout_seconds or DEFAULT_TIMEOUT,
            "config": config}, (app, *refs))

    def subscription(self, key: str, topic: Ref, function: Ref) -> Ref:
        return self.add(ChildKind.SUBSCRIPTION, key, {
            "topic_id": topic, "protocol": "ORACLE_FUNCTIONS", "endpoint": function}, (topic, function))

    def trigger(self, fanout: Ref, chain: tuple[Ref, ...]) -> None:
        enabled = not self.spec.suspend
        trigger = self.spec.trigger
        if trigger.type is s.TriggerType.RESOURCE_SCHEDULER:
            self.add(ChildKind.SCHEDULE, "trigger", {
                "function_id": fanout, "action": "START_RESOURCE", "recurrence_type": "CRON",
                "recurrence_details": self.spec.sources.schedule, "time_zone": "UTC",
                "body": {"source": "siem-operator", "pipelineUid": self.identity.uid},
                "description": f"Starts SiemPipeline {self.identity.namespace}/{self.identity.name}",
                "is_enabled": enabled}, (fanout, *chain))
            return
        assert trigger.autoscaling is not None  # the spec's validator says so
        topic = self.topic("trigger", "Scaling events that start the pipeline's fanout function")
        subscription = self.subscription("trigger", topic, fanout)
        configuration_name = self.name(ChildKind.AUTOSCALING_CONFIGURATION, "trigger")
        condition = {"eventType": [SCALING_ACTION_EVENT],
                     "data": {"compartmentId": [self.spec.compartment_id], "resourceName": [configuration_name]}}
        rule = self.add(ChildKind.EVENT_RULE, "trigger", {
            "condition": json.dumps(condition, sort_keys=True, separators=(",", ":")),
            "actions": [{"action_type": "ONS", "topic_id": topic, "is_enabled": True,
                         "description": "start the fanout function"}],
            "is_enabled": enabled,
            "description": f"Starts SiemPipeline {self.identity.namespace}/{self.identity.name}"}, (topic,))
        size = trigger.autoscaling.pool_size
        self.add(ChildKind.AUTOSCALING_CONFIGURATION, "trigger", {
            "instance_pool_id": trigger.autoscaling.instance_pool_id,
            "execution_schedule": quartz_cron(self.spec.sources.schedule),
            "capacity": {"initial": size, "min": size, "max": size},
            "is_enabled": enabled, "cool_down_in_seconds": AUTOSCALING_COOL_DOWN},
            (rule, subscription, *chain))

    def build(self) -> list[Desired]:
        dest = self.spec.destination
        token = self.secret("token", dest.token, "SIEM destination token")
        ca_bundle = self.secret("ca-bundle", dest.ca_bundle, "CA certificates of the SIEM destination")
        streams = self.streams()
        fetch_topic = self.topic("fetch", "Work ranges ready for the fetch function")
        export_topic = self.topic("export", "Events ready for the export function")
        app = self.add(ChildKind.APPLICATION, "app", {
            "subnet_ids": list(self.spec.functions.subnet_ids), "shape": self.spec.functions.shape.value,
            "config": {}})
        fanout = self.function("fanout", app, self.collect_config("fanout", streams, fetch_topic, export_topic))
        fetch = self.function("fetch", app, self.collect_config("fetch", streams, fetch_topic, export_topic))
        export = self.function("export", app, self.export_config(streams, token, ca_bundle))
        chain = (self.subscription("fetch", fetch_topic, fetch), self.subscription("export", export_topic, export))
        self.trigger(fanout, chain)
        return self.children


def desired_children(spec: s.SiemPipelineSpec, identity: PipelineIdentity, *,
                     secret_values: Mapping[str, SecretStr] | None = None,
                     extra_config: Mapping[str, str] | None = None) -> list[Desired]:
    """Every child the spec asks for.

    ``secret_values`` holds, by child key (``token``, ``ca-bundle``: see
    :meth:`~siem_operator.spec.SiemPipelineSpec.kubernetes_secret_sources`), the values the operator read
    from Kubernetes Secrets; they go only into the Vault secrets' ``secret_content``. ``extra_config`` is
    added to every function's configuration (e.g. ``SIEM_OCI_ENDPOINT_TEMPLATE`` in the sandbox).
    Raises :class:`MissingSecretValue` when a needed value is absent and :class:`DesiredError` when the spec
    cannot be expressed in OCI.
    """
    return _Builder(spec, identity, secret_values or {}, extra_config or {}).build()
