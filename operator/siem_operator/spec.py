"""The ``SiemPipeline`` custom resource as pydantic models: the one source of its CRD schema.

Python names are snake_case, YAML/JSON names camelCase (``alias_generator``); every field has a
description, and defaults, enums, OCID patterns and bounds where they apply. ``crd.py`` turns these
models into the CRD's structural OpenAPI schema, and the CEL rules attached here with
:func:`cel` (``x-kubernetes-validations``) are what the API server checks at admission: exactly one
destination, immutable fields, fields that need each other. The same rules are enforced by the
model validators below, so a spec that reached the operator without admission (an older CRD, a
test) is still rejected with the same message.

Nothing here does I/O: Kubernetes Secrets are only *referenced* (:class:`SecretKeyRef`); the
operator reads them when it acts, and no secret value ever appears in a spec or a status.
"""

from __future__ import annotations

import datetime
import enum
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP: Final = "siem.ocisiem.io"
VERSION: Final = "v1alpha1"
KIND: Final = "SiemPipeline"
PLURAL: Final = "siempipelines"
SINGULAR: Final = "siempipeline"
SHORT_NAME: Final = "siemp"
CATEGORY: Final = "siem"

# -- patterns ------------------------------------------------------------------------------------------


def ocid_pattern(*types: str) -> str:
    """An OCID of one of ``types``: ``ocid1.<type>.<realm>.[region].<unique>``."""
    return rf"^ocid1\.({'|'.join(types)})\.[a-z0-9-]+\.[a-z0-9-]*\.[a-z0-9]+$"


OCID_MAX: Final = 255
REGION_PATTERN: Final = r"^[a-z][a-z0-9-]*[a-z0-9]$"
#: a 5-field UNIX cron expression (minute hour day-of-month month day-of-week)
CRON_PATTERN: Final = r"^[0-9A-Za-z*/,?-]+( [0-9A-Za-z*/,?-]+){4}$"
EVENT_TYPE_PATTERN: Final = r"^[A-Za-z0-9._*-]+$"
FIELD_PATH_PATTERN: Final = r"^[A-Za-z0-9_*$-]+(\.[A-Za-z0-9_*$-]+)*$"
K8S_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SECRET_KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 -- a pattern, not a password
HTTP_URL_PATTERN: Final = r"^https?://[^\s/?#]+(/[^\s]*)?$"
HOST_PATTERN: Final = r"^[A-Za-z0-9.:\[\]-]+$"
INDEX_PATTERN: Final = r"^[a-z0-9%][a-zA-Z0-9._%-]*$"  # lowercase once strftime directives are applied

TENANCY_OCID: Final = ocid_pattern("tenancy")
COMPARTMENT_OCID: Final = ocid_pattern("compartment", "tenancy")
SUBNET_OCID: Final = ocid_pattern("subnet")
STREAM_POOL_OCID: Final = ocid_pattern("streampool")
VAULT_OCID: Final = ocid_pattern("vault")
KEY_OCID: Final = ocid_pattern("key")
SECRET_OCID: Final = ocid_pattern("vaultsecret")
INSTANCE_POOL_OCID: Final = ocid_pattern("instancepool")


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """``x-kubernetes-validations`` for ``json_schema_extra``: (rule, message) pairs."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


def list_set() -> dict[str, Any]:
    """A list of unique scalars (``x-kubernetes-list-type: set``): the API server rejects duplicates."""
    return {"x-kubernetes-list-type": "set"}


def immutable(what: str, advice: str) -> dict[str, Any]:
    return cel(("self == oldSelf", f"{what} is immutable: {advice}"))


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True, extra="forbid", frozen=True)


def _unique(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} lists {value!r} twice")
        seen.add(value)
    return values


# -- references to Kubernetes objects ------------------------------------------------------------------


class SecretKeyRef(_Model):
    """A key of a Kubernetes Secret in the SiemPipeline's namespace."""

    name: Annotated[str, Field(description="Name of the Secret, in the SiemPipeline's namespace.",
                               min_length=1, max_length=253, pattern=K8S_NAME_PATTERN)]
    key: Annotated[str, Field(description="Key inside the Secret's data.", min_length=1, max_length=253,
                              pattern=SECRET_KEY_PATTERN)]


class SecretRef(_Model):
    """A Kubernetes Secret in the SiemPipeline's namespace."""

    name: Annotated[str, Field(description="Name of the Secret, in the SiemPipeline's namespace.",
                               min_length=1, max_length=253, pattern=K8S_NAME_PATTERN)]


class SecretSource(_Model):
    """Where a secret value comes from: exactly one of a Kubernetes Secret key (the operator copies it into
    a Vault secret it manages, in ``spec.vault``) or an existing OCI Vault secret (used as is)."""

    model_config = ConfigDict(json_schema_extra=cel(
        ("has(self.secretRef) != has(self.vaultSecretId)",
         "set exactly one of secretRef (a Kubernetes Secret) or vaultSecretId (an existing OCI Vault secret)")))

    secret_ref: Annotated[SecretKeyRef | None, Field(
        description="A key of a Kubernetes Secret; its value is stored in a Vault secret the operator manages "
                    "(spec.vault must be set) and a new secret version is written when it changes.")] = None
    vault_secret_id: Annotated[str | None, Field(
        description="OCID of an existing OCI Vault secret holding the value; the functions read its CURRENT "
                    "version with their resource principal.", max_length=OCID_MAX, pattern=SECRET_OCID)] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.secret_ref is None) == (self.vault_secret_id is None):
            raise ValueError("set exactly one of secretRef (a Kubernetes Secret) or vaultSecretId "
                             "(an existing OCI Vault secret)")
        return self


# -- credentials -----------------------------------------------------------------------------------------


class CredentialsType(enum.StrEnum):
    WORKLOAD_IDENTITY = "WorkloadIdentity"
    INSTANCE_PRINCIPAL = "InstancePrincipal"
    API_KEY = "ApiKey"


class Credentials(_Model):
    """How the operator signs its OCI calls for this pipeline (the functions always use their resource
    principal)."""

    model_config = ConfigDict(json_schema_extra=cel(
        ("self.type == 'ApiKey' ? has(self.secretRef) : !has(self.secretRef)",
         "secretRef is required with type ApiKey and not allowed with the other types")))

    type: Annotated[CredentialsType, Field(
        description="WorkloadIdentity: OKE workload identity of the operator's service account; "
                    "InstancePrincipal: the node's instance principal; ApiKey: an API signing key read from "
                    "a Kubernetes Secret (so one operator can serve several tenancies).")] = \
        CredentialsType.WORKLOAD_IDENTITY
    secret_ref: Annotated[SecretRef | None, Field(
        description="With type ApiKey: the Secret holding the keys 'user' (user OCID), 'fingerprint', "
                    "'privateKey' (PEM) and optionally 'passphrase'. The tenancy is spec.tenancyId and the "
                    "region spec.homeRegion.")] = None

    @model_validator(mode="after")
    def _secret_for_api_key(self) -> Credentials:
        if (self.type is CredentialsType.API_KEY) != (self.secret_ref is not None):
            raise ValueError("secretRef is required with type ApiKey and not allowed with the other types")
        return self


# -- sources -----------------------------------------------------------------------------------------------


class Compartments(_Model):
    """Which compartments' audit events are exported."""

    include: Annotated[list[Annotated[str, Field(max_length=OCID_MAX, pattern=COMPARTMENT_OCID)]], Field(
        description="Compartments to export, each with all its sub-compartments. Empty: the whole tenancy.",
        max_length=32, json_schema_extra=list_set())] = []
    exclude: Annotated[list[Annotated[str, Field(max_length=OCID_MAX, pattern=COMPARTMENT_OCID)]], Field(
        description="Compartments (and their sub-compartments) never exported, even when included.",
        max_length=32, json_schema_extra=list_set())] = []
    include_root: Annotated[bool, Field(
        description="Export the root compartment's own events (IAM: users, groups, policies), which listing "
                    "compartments never returns; also when include names other compartments.")] = True

    @model_validator(mode="after")
    def _no_duplicates(self) -> Compartments:
        _unique(self.include, "include")
        _unique(self.exclude, "exclude")
        return self


class EventTypes(_Model):
    """Audit event types to export, by their ``eventType``; ``*`` is a wildcard."""

    include: Annotated[list[Annotated[str, Field(max_length=256, pattern=EVENT_TYPE_PATTERN)]], Field(
        description="Only these event types (e.g. 'com.oraclecloud.identitycontrolplane.*'). Empty: all.",
        max_length=64, json_schema_extra=list_set())] = []
    exclude: Annotated[list[Annotated[str, Field(max_length=256, pattern=EVENT_TYPE_PATTERN)]], Field(
        description="Never these event types, even when included.", max_length=64,
        json_schema_extra=list_set())] = []

    @model_validator(mode="after")
    def _no_duplicates(self) -> EventTypes:
        _unique(self.include, "include")
        _unique(self.exclude, "exclude")
        return self


class Sources(_Model):
    """What is exported and when: regions x compartments, filtered by event type."""

    regions: Annotated[list[Annotated[str, Field(max_length=32, pattern=REGION_PATTERN)]], Field(
        description="Regions to export (e.g. 'us-ashburn-1'). Empty: every region the tenancy subscribes to, "
                    "as listed at each run.", max_length=64, json_schema_extra=list_set())] = []
    compartments: Annotated[Compartments, Field(
        description="Compartments to export.", default_factory=Compartments)]
    event_types: Annotated[EventTypes, Field(
        description="Event-type filters.", default_factory=EventTypes)]
    schedule: Annotated[str, Field(
        description="How often the pipeline runs: a 5-field UNIX cron expression, in UTC.", max_length=128,
        pattern=CRON_PATTERN)] = "*/5 * * * *"
    delay_minutes: Annotated[int, Field(
        description="How far behind now a window must end before it is fetched: OCI makes audit events "
                    "available within about 15 minutes.", ge=0, le=1440)] = 20
    backfill_start: Annotated[AwareDatetime | None, Field(
        description="Export history from this instant (RFC 3339) for compartments without a watermark yet; "
                    "OCI keeps audit events 90 to 365 days. Unset: start from now.")] = None

    @model_validator(mode="after")
    def _no_duplicates(self) -> Sources:
        _unique(self.regions, "regions")
        return self


# -- trigger -----------------------------------------------------------------------------------------------


class TriggerType(enum.StrEnum):
    RESOURCE_SCHEDULER = "ResourceScheduler"
    AUTOSCALING = "Autoscaling"


class AutoscalingTrigger(_Model):
    """The seed architecture's trigger: a scheduled autoscaling policy on an instance pool, whose scaling
    event an Events rule forwards (through a Notifications topic) to the fanout function."""

    instance_pool_id: Annotated[str, Field(
        description="OCID of an existing instance pool in spec.homeRegion that carries the schedule; it must "
                    "have no other autoscaling configuration.", max_length=OCID_MAX, pattern=INSTANCE_POOL_OCID)]
    pool_size: Annotated[int, Field(
        description="The size each scheduled run sets the pool to (its current size makes the run a no-op "
                    "for the pool).", ge=0, le=1000)] = 1


class Trigger(_Model):
    """What starts each run of the pipeline on spec.sources.schedule."""

    model_config = ConfigDict(json_schema_extra=cel(
        ("self.type == 'Autoscaling' ? has(self.autoscaling) : !has(self.autoscaling)",
         "autoscaling is required with type Autoscaling and not allowed with type ResourceScheduler")))

    type: Annotated[TriggerType, Field(
        description="ResourceScheduler: an OCI Resource Scheduler schedule starts the fanout function. "
                    "Autoscaling: a scheduled autoscaling policy on an instance pool emits an event that an "
                    "Events rule sends to the fanout function.")] = TriggerType.RESOURCE_SCHEDULER
    autoscaling: Annotated[AutoscalingTrigger | None, Field(
        description="Settings of the Autoscaling trigger.")] = None

    @model_validator(mode="after")
    def _settings_for_type(self) -> Trigger:
        if (self.type is TriggerType.AUTOSCALING) != (self.autoscaling is not None):
            raise ValueError("autoscaling is required with type Autoscaling and not allowed with type "
                             "ResourceScheduler")
        return self


# -- streams and functions ---------------------------------------------------------------------------------


class Streams(_Model):
    """The OCI Streaming streams the pipeline keeps its work, events, watermarks and dead letters in."""

    model_config = ConfigDict(json_schema_extra=cel(
        ("has(self.poolId) == has(oldSelf.poolId) && (!has(self.poolId) || self.poolId == oldSelf.poolId)",
         "poolId is immutable: streams cannot move to another stream pool; create a new SiemPipeline instead")))

    pool_id: Annotated[str | None, Field(
        description="OCID of an existing stream pool to create the streams in (it is never modified or "
                    "deleted). Unset: the operator creates and owns a stream pool.",
        max_length=OCID_MAX, pattern=STREAM_POOL_OCID)] = None
    partitions: Annotated[int, Field(
        description="Partitions of the events stream (1 MB/s of writes each); the work, state and "
                    "dead-letter streams have one. Immutable: OCI cannot repartition a stream.", ge=1, le=50,
        json_schema_extra=immutable("partitions", "OCI cannot repartition a stream; create a new SiemPipeline "
                                                  "to change it"))] = 1
    retention_hours: Annotated[int, Field(
        description="How long each stream keeps messages (24 to 168 hours): how long an outage of the "
                    "destination can last without losing events. Immutable.", ge=24, le=168,
        json_schema_extra=immutable("retentionHours", "OCI cannot change a stream's retention; create a new "
                                                      "SiemPipeline to change it"))] = 168


class FunctionShape(enum.StrEnum):
    GENERIC_X86 = "GENERIC_X86"
    GENERIC_ARM = "GENERIC_ARM"
    GENERIC_X86_ARM = "GENERIC_X86_ARM"


class FunctionSettings(_Model):
    """Settings of one of the pipeline's functions."""

    image: Annotated[str | None, Field(
        description="Container image of this function; unset: spec.functions.image.", min_length=1,
        max_length=512, pattern=r"^\S+$")] = None
    memory_mb: Annotated[int | None, Field(
        description="Memory in MB (128 to 3072); unset: the function's default (fanout 256, fetch 512, "
                    "export 512).", ge=128, le=3072)] = None
    timeout_seconds: Annotated[int | None, Field(
        description="Timeout of one invocation in seconds (5 to 300); unset: 300.", ge=5, le=300)] = None


class Functions(_Model):
    """The OCI Functions application and its three functions: fanout, fetch and export."""

    image: Annotated[str, Field(
        description="Container image of the pipeline's functions (e.g. "
                    "'iad.ocir.io/tenancy/siem-functions:0.1.0'), used by each function without an image of its "
                    "own (fanout.image, fetch.image, export.image).", min_length=1, max_length=512,
        pattern=r"^\S+$")]
    subnet_ids: Annotated[list[Annotated[str, Field(max_length=OCID_MAX, pattern=SUBNET_OCID)]], Field(
        description="Subnets of the functions application (private subnets with a service gateway to OCI "
                    "services and a NAT gateway to the SIEM). Immutable in OCI.", min_length=1, max_length=3,
        json_schema_extra={**list_set(), **immutable(
            "subnetIds", "an OCI Functions application cannot change subnets; create a new SiemPipeline")})]
    shape: Annotated[FunctionShape, Field(
        description="Processor architecture of the application's functions.")] = FunctionShape.GENERIC_X86
    fanout: Annotated[FunctionSettings, Field(
        description="The fanout function: lists regions and compartments and plans the windows.",
        default_factory=FunctionSettings)]
    fetch: Annotated[FunctionSettings, Field(
        description="The fetch function: reads the Audit API into the events stream.",
        default_factory=FunctionSettings)]
    export: Annotated[FunctionSettings, Field(
        description="The export function: formats, redacts and delivers events to the destination.",
        default_factory=FunctionSettings)]

    @model_validator(mode="after")
    def _no_duplicates(self) -> Functions:
        _unique(self.subnet_ids, "subnetIds")
        return self


# -- destination -------------------------------------------------------------------------------------------


class HecAck(_Model):
    """Splunk HEC indexer acknowledgment."""

    enabled: Annotated[bool, Field(description="Wait for indexer acknowledgment before committing offsets "
                                               "(the token must have indexer acknowledgment on).")] = False
    timeout_seconds: Annotated[int, Field(description="Resend a batch not acknowledged within this time.",
                                          ge=5, le=3600)] = 120


class HecDestination(_Model):
    """Splunk HTTP Event Collector."""

    url: Annotated[str, Field(
        description="Base URL of the HEC endpoint, e.g. 'https://splunk.example.com:8088'.",
        max_length=2048, pattern=HTTP_URL_PATTERN)]
    token: Annotated[SecretSource, Field(description="The HEC token.")]
    index: Annotated[str | None, Field(description="Splunk index; unset: the token's default index.",
                                       min_length=1, max_length=256)] = None
    source: Annotated[str | None, Field(description="Splunk 'source' of every event; '{region}' is replaced by "
                                                    "the event's region. Unset: 'oci:audit:{region}'.",
                                        min_length=1, max_length=256)] = None
    sourcetype: Annotated[str, Field(description="Splunk 'sourcetype' of every event.", min_length=1,
                                     max_length=256)] = "oci:audit"
    host: Annotated[str | None, Field(description="Splunk 'host' of every event; unset: the event's region.",
                                      min_length=1, max_length=256)] = None
    gzip: Annotated[bool, Field(description="Compress request bodies with gzip.")] = True
    ack: Annotated[HecAck, Field(description="Indexer acknowledgment.", default_factory=HecAck)]


class SyslogFormat(enum.StrEnum):
    RFC5424 = "RFC5424"
    CEF = "CEF"


class SyslogTransport(enum.StrEnum):
    TLS = "TLS"
    TCP = "TCP"


class SyslogDestination(_Model):
    """Syslog over TCP with octet-counting framing (RFC 6587), messages in RFC 5424 or CEF."""

    host: Annotated[str, Field(description="Host name or IP address of the syslog receiver.", min_length=1,
                               max_length=253, pattern=HOST_PATTERN)]
    port: Annotated[int, Field(description="TCP port of the receiver.", ge=1, le=65535)] = 6514
    format: Annotated[SyslogFormat, Field(
        description="RFC5424: the event as JSON in an RFC 5424 message; CEF: ArcSight Common Event Format "
                    "inside RFC 5424.")] = SyslogFormat.RFC5424
    transport: Annotated[SyslogTransport, Field(
        description="TLS (verified, RFC 5425) or plain TCP (only inside a trusted network).")] = SyslogTransport.TLS
    app_name: Annotated[str, Field(description="RFC 5424 APP-NAME.", min_length=1, max_length=48,
                                   pattern=r"^[!-~]+$")] = "oci-audit"


class BulkAuthType(enum.StrEnum):
    NONE = "None"
    BASIC = "Basic"
    API_KEY = "ApiKey"


class BulkDestination(_Model):
    """OpenSearch / Elasticsearch ``_bulk`` API; documents are created with ``_id`` = the event's eventId,
    so re-sent events are not indexed twice."""

    model_config = ConfigDict(json_schema_extra=cel(
        ("self.authType == 'None' ? !has(self.token) : has(self.token)",
         "token is required unless authType is None, and not allowed with authType None"),
        ("self.authType == 'Basic' ? has(self.username) : !has(self.username)",
         "username is required with authType Basic and not allowed otherwise")))

    url: Annotated[str, Field(description="Base URL of the cluster, e.g. 'https://search.example.com:9200'.",
                              max_length=2048, pattern=HTTP_URL_PATTERN)]
    index: Annotated[str | None, Field(
        description="Target index (or data stream), a strftime pattern over the event's time (e.g. "
                    "'oci-audit-%Y.%m.%d'). Unset: 'oci-audit-%Y.%m.%d'.", min_length=1, max_length=255,
        pattern=INDEX_PATTERN)] = None
    auth_type: Annotated[BulkAuthType, Field(
        description="How requests authenticate: None, Basic (username + token as password) or ApiKey "
                    "('Authorization: ApiKey <token>').")] = BulkAuthType.NONE
    username: Annotated[str | None, Field(description="User name for Basic authentication.", min_length=1,
                                          max_length=256)] = None
    token: Annotated[SecretSource | None, Field(
        description="The password or API key.")] = None

    @model_validator(mode="after")
    def _auth(self) -> BulkDestination:
        if (self.auth_type is BulkAuthType.NONE) != (self.token is None):
            raise ValueError("token is required unless authType is None, and not allowed with authType None")
        if (self.auth_type is BulkAuthType.BASIC) != (self.username is not None):
            raise ValueError("username is required with authType Basic and not allowed otherwise")
        return self


DESTINATION_TYPES: Final = ("hec", "syslog", "bulk")


class Destination(_Model):
    """Where events are delivered: exactly one of hec, syslog or bulk."""

    model_config = ConfigDict(json_schema_extra=cel(
        ("(has(self.hec) ? 1 : 0) + (has(self.syslog) ? 1 : 0) + (has(self.bulk) ? 1 : 0) == 1",
         "set exactly one destination: hec, syslog or bulk")))

    hec: Annotated[HecDestination | None, Field(description="Splunk HTTP Event Collector.")] = None
    syslog: Annotated[SyslogDestination | None, Field(description="Syslog (RFC 5424 or CEF).")] = None
    bulk: Annotated[BulkDestination | None, Field(description="OpenSearch / Elasticsearch _bulk.")] = None
    ca_bundle: Annotated[SecretSource | None, Field(
        description="PEM CA certificates the destination's TLS certificate is verified against, in addition "
                    "to the system's. TLS is always verified.")] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Destination:
        if sum(x is not None for x in (self.hec, self.syslog, self.bulk)) != 1:
            raise ValueError("set exactly one destination: hec, syslog or bulk")
        return self

    @property
    def type(self) -> str:
        """``hec``, ``syslog`` or ``bulk``."""
        return next(name for name in DESTINATION_TYPES if getattr(self, name) is not None)

    @property
    def plaintext(self) -> str | None:
        """Which field makes the export reach the destination without TLS (None: TLS, always verified)."""
        for name in ("hec", "bulk"):
            target = getattr(self, name)
            if target is not None and target.url.lower().startswith("http://"):
                return f"spec.destination.{name}.url is a plain http:// URL"
        if self.syslog is not None and self.syslog.transport is SyslogTransport.TCP:
            return "spec.destination.syslog.transport is TCP (plain, no TLS)"
        return None

    @property
    def token(self) -> SecretSource | None:
        if self.hec is not None:
            return self.hec.token
        if self.bulk is not None:
            return self.bulk.token
        return None


class Redaction(_Model):
    """Credential redaction applied to every event before it leaves OCI."""

    enabled: Annotated[bool, Field(
        description="Redact credentials (Authorization, opc-principal, opc-obo-token, identity.credentials, "
                    "ST$/Bearer/Basic tokens wherever they appear). Turn off only for a destination that is "
                    "as protected as OCI itself.")] = True
    extra_field_paths: Annotated[list[Annotated[str, Field(max_length=256, pattern=FIELD_PATH_PATTERN)]], Field(
        description="More dotted field paths to redact, from the event root or from 'data' (e.g. "
                    "'request.headers.X-Api-Key'); '*' matches any key.", max_length=64,
        json_schema_extra=list_set())] = []

    @model_validator(mode="after")
    def _no_duplicates(self) -> Redaction:
        _unique(self.extra_field_paths, "extraFieldPaths")
        return self


class Vault(_Model):
    """The OCI Vault the operator stores secrets in (values taken from Kubernetes Secrets)."""

    vault_id: Annotated[str, Field(description="OCID of the vault, in spec.homeRegion.", max_length=OCID_MAX,
                                   pattern=VAULT_OCID)]
    key_id: Annotated[str, Field(description="OCID of the vault's master encryption key.", max_length=OCID_MAX,
                                 pattern=KEY_OCID)]


class DeletionPolicy(enum.StrEnum):
    DELETE = "Delete"
    RETAIN = "Retain"


_NEEDS_VAULT = ("(has(self.destination.hec) && has(self.destination.hec.token.secretRef)) || "
                "(has(self.destination.bulk) && has(self.destination.bulk.token) && "
                "has(self.destination.bulk.token.secretRef)) || "
                "(has(self.destination.caBundle) && has(self.destination.caBundle.secretRef))")
VAULT_MESSAGE: Final = ("vault (vaultId and keyId) is required when a token or CA bundle comes from a Kubernetes "
                        "Secret: the operator stores the value in that vault")


class SiemPipelineSpec(_Model):
    """A complete serverless OCI pipeline exporting the Audit trail of a tenancy to a SIEM."""

    model_config = ConfigDict(json_schema_extra=cel((f"!({_NEEDS_VAULT}) || has(self.vault)", VAULT_MESSAGE)))

    tenancy_id: Annotated[str, Field(
        description="OCID of the tenancy whose audit events are exported (also the root compartment).",
        max_length=OCID_MAX, pattern=TENANCY_OCID,
        json_schema_extra=immutable("tenancyId", "create a new SiemPipeline for another tenancy"))]
    compartment_id: Annotated[str, Field(
        description="OCID of the compartment the pipeline's OCI resources are created in.",
        max_length=OCID_MAX, pattern=COMPARTMENT_OCID,
        json_schema_extra=immutable("compartmentId", "the pipeline's resources do not move; create a new "
                                                     "SiemPipeline in the other compartment"))]
    home_region: Annotated[str, Field(
        description="Region the pipeline's OCI resources are created in (e.g. 'us-ashburn-1').", max_length=32,
        pattern=REGION_PATTERN,
        json_schema_extra=immutable("homeRegion", "the pipeline's resources do not move; create a new "
                                                  "SiemPipeline in the other region"))]
    credentials: Annotated[Credentials, Field(
        description="How the operator authenticates to OCI for this pipeline.", default_factory=Credentials)]
    sources: Annotated[Sources, Field(description="What is exported and when.", default_factory=Sources)]
    trigger: Annotated[Trigger, Field(description="What starts each run.", default_factory=Trigger)]
    streams: Annotated[Streams, Field(description="The pipeline's streams.", default_factory=Streams)]
    functions: Annotated[Functions, Field(description="The pipeline's functions.")]
    destination: Annotated[Destination, Field(description="Where events are delivered.")]
    redaction: Annotated[Redaction, Field(description="Credential redaction.", default_factory=Redaction)]
    vault: Annotated[Vault | None, Field(
        description="The OCI Vault for secrets taken from Kubernetes Secrets; required when any is.")] = None
    suspend: Annotated[bool, Field(
        description="Stop exporting: the trigger is disabled and no new run starts; every resource is kept "
                    "and watermarks are kept, so resuming continues where it stopped.")] = False
    deletion_policy: Annotated[DeletionPolicy, Field(
        description="What happens to the OCI resources when the SiemPipeline is deleted: Delete removes them, "
                    "Retain leaves them in place.")] = DeletionPolicy.DELETE

    @model_validator(mode="after")
    def _vault_when_needed(self) -> SiemPipelineSpec:
        if self.vault is None and self.kubernetes_secret_sources():
            raise ValueError(VAULT_MESSAGE)
        return self

    def kubernetes_secret_sources(self) -> dict[str, SecretKeyRef]:
        """The values the operator copies from Kubernetes Secrets into Vault, by child key."""
        out: dict[str, SecretKeyRef] = {}
        token = self.destination.token
        if token is not None and token.secret_ref is not None:
            out["token"] = token.secret_ref
        ca = self.destination.ca_bundle
        if ca is not None and ca.secret_ref is not None:
            out["ca-bundle"] = ca.secret_ref
        return out


# -- status ------------------------------------------------------------------------------------------------


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_Model):
    """One condition of the pipeline (Ready, Synced, DestinationSecure)."""

    type: Annotated[str, Field(description="Ready, Synced or DestinationSecure.", min_length=1, max_length=316)]
    status: Annotated[ConditionStatus, Field(description="True, False or Unknown.")]
    reason: Annotated[str, Field(description="CamelCase reason.", min_length=1, max_length=1024,
                                 pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")]
    message: Annotated[str, Field(description="What happened and what to do.", max_length=32768)] = ""
    last_transition_time: Annotated[datetime.datetime, Field(
        description="When status last changed.")]
    observed_generation: Annotated[int, Field(description="The spec generation this condition is about.",
                                              ge=0)] = 0


class ChildStatus(_Model):
    """One OCI resource of the pipeline."""

    kind: Annotated[str, Field(description="OCI kind (Stream, Topic, Function, …).", max_length=64)]
    key: Annotated[str, Field(description="The resource's role in the pipeline (events, fetch, …).",
                              max_length=64)]
    name: Annotated[str | None, Field(description="Its OCI display name.", max_length=255)] = None
    ocid: Annotated[str | None, Field(description="Its OCID, once known.", max_length=OCID_MAX)] = None
    lifecycle_state: Annotated[str | None, Field(description="Its last observed OCI lifecycle state.",
                                                 max_length=64)] = None
    incarnation: Annotated[int, Field(
        description="How many times it was re-created after disappearing (part of its create retry token).",
        ge=0)] = 0


class RegionHealth(_Model):
    """Export progress of one region."""

    region: Annotated[str, Field(description="The region.", max_length=32)]
    lag_seconds: Annotated[int | None, Field(description="How far its oldest watermark trails now.",
                                             ge=0)] = None
    last_export_time: Annotated[datetime.datetime | None, Field(
        description="End of its last window delivered to the destination.")] = None


class Health(_Model):
    """Pipeline health, read from the state stream."""

    region_count: Annotated[int, Field(description="Regions being exported.", ge=0)] = 0
    lag: Annotated[str | None, Field(description="The largest lag, for people (e.g. '4m').",
                                     max_length=32)] = None
    lag_seconds: Annotated[int | None, Field(description="The largest lag in seconds.", ge=0)] = None
    last_export_time: Annotated[datetime.datetime | None, Field(
        description="End of the last window delivered to the destination, over all regions.")] = None
    exported_count: Annotated[int, Field(
        description="Events the latest export invocation delivered, as it reported in the state stream (summed over "
                    "the export's consumer groups). Not a running total: the siem_pipeline_events_exported_total "
                    "metric adds up every invocation.", ge=0)] = 0
    dead_lettered_count: Annotated[int, Field(
        description="Events the latest export invocation sent to the dead-letter stream (reported as exportedCount; "
                    "fetch's are not included). Not a running total: the siem_pipeline_events_dead_lettered_total "
                    "metric adds up every invocation, fetch's too.", ge=0)] = 0
    lost_to_retention_count: Annotated[int, Field(
        description="Events the events stream's retention dropped before the export delivered them (the "
                    "gap/events records of the state stream; each new loss also gets a Warning Event).", ge=0)] = 0
    regions: Annotated[list[RegionHealth], Field(description="Per region.", max_length=64)] = []


class SiemPipelineStatus(_Model):
    """Observed state of the pipeline, written by the operator."""

    observed_generation: Annotated[int, Field(description="The spec generation last reconciled.", ge=0)] = 0
    conditions: Annotated[list[Condition], Field(
        description="Ready: the pipeline's resources exist and work. Synced: the last reconcile applied the spec. "
                    "DestinationSecure: the destination is reached over verified TLS (False: InsecureDestination).",
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})] = []
    children: Annotated[list[ChildStatus], Field(description="The pipeline's OCI resources.",
                                                 max_length=64)] = []
    health: Annotated[Health | None, Field(description="Pipeline health.")] = None


class SiemPipeline(_Model):
    """What the operator reads: a validated spec (status is the operator's own and not validated here)."""

    model_config = ConfigDict(extra="ignore")

    spec: SiemPipelineSpec


def parse_spec(data: Any) -> SiemPipelineSpec:
    """The validated spec of a ``SiemPipeline`` body's ``spec``; raises ``pydantic.ValidationError``."""
    return SiemPipelineSpec.model_validate(data)
