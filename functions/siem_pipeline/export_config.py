"""The export's configuration, from the function's environment, and what it builds.

Every setting is an environment variable (declared in the export function's ``func.yaml``). The SIEM
secret (HEC token, ``_bulk`` password or API key) is **never** one of them: ``SIEM_SECRET_ID`` names
an OCI Vault secret, read with the function's resource principal (:func:`read_secret`).

Streams (the operator sets them):

``SIEM_EVENTS_STREAM_ID``, ``SIEM_EVENTS_STREAM_ENDPOINT``
    the events stream and its messages endpoint (required)
``SIEM_DLQ_STREAM_ID``, ``SIEM_DLQ_STREAM_ENDPOINT``
    the dead-letter stream and its messages endpoint (required)
``SIEM_STATE_STREAM_ID``, ``SIEM_STATE_STREAM_ENDPOINT``
    the state stream, where ``health/export/<group>`` is written after each invocation, and a
    ``gap/events/<partition>/<offset>`` record as soon as the export meets messages the stream's retention
    dropped before the group committed them (optional; without it such gaps are only logged, as errors)
``SIEM_EXPORT_GROUP``
    consumer group on the events stream (default ``siem-export``); ``SIEM_REPLAY_GROUP`` the one on
    the dead-letter stream for replays (default ``siem-replay``)
``SIEM_EXPORT_INSTANCE``
    instance name in the group (default ``export``, stable across invocations: see
    :mod:`siem_pipeline.consumer`)

Batches and time:

``SIEM_EXPORT_BATCH_EVENTS``
    messages per read, and events per destination request (default 1000; at most 10,000)
``SIEM_EXPORT_BATCH_BYTES``
    bytes per destination request before compression (default HEC 4,000,000; ``_bulk`` 10,000,000)
``SIEM_EXPORT_MAX_BATCHES``, ``SIEM_EXPORT_MAX_SECONDS``
    stop after that many batches / seconds (default unlimited / 240, under the 300 s Fn timeout)
``SIEM_EXPORT_LINGER_SECONDS``
    how long an export signalled by a fetch that is still writing (its early signals, ``"early": true``)
    follows the events stream after it caught up: it reads again every 0.3 s (under Streaming's 5 reads a
    second) until nothing new came for this long, then stops (default 5; 0: it stops when caught up, like
    every other export). Events written while it follows are delivered within a read, not at the next signal.
``SIEM_EXPORT_LEASE``
    ``false`` lets concurrent invocations export at once; by default one export of the group runs at a
    time (a lease in the state stream, :mod:`siem_pipeline.export_lease`): the others wait for it, at
    most half of ``SIEM_EXPORT_MAX_SECONDS``, so the SIEM does not get the same batch from each of them.
    An export of an early signal does not wait: when another export holds the lease it stands down at
    once (that one delivers, and the fetch's final signal starts another when the fetch is done)
``SIEM_GZIP``
    compress HEC and ``_bulk`` requests (default ``true``)

What is exported:

``SIEM_EVENT_TYPES``, ``SIEM_EXCLUDE_EVENT_TYPES``
    comma-separated event types, case-insensitive, ``prefix.*`` allowed (default: all, none excluded)
``SIEM_REDACTION``
    ``false`` turns credential redaction off (logged at every invocation); anything else, or unset, keeps
    it on
``SIEM_REDACT_PATHS``, ``SIEM_REDACT_KEYS``
    extra dotted field paths and key names to redact, comma-separated (the defaults always apply)
``SIEM_DEDUP_CAPACITY``, ``SIEM_DEDUP_FILE``
    how many recent eventIds are remembered (default 100,000) and where (default
    ``/tmp/siem-export-<group>.ids``)

The destination:

``SIEM_DESTINATION``
    ``hec``, ``syslog`` (RFC 5424), ``cef`` (CEF in RFC 5424) or ``bulk`` (required)
``SIEM_DESTINATION_URL``
    ``https://splunk.example.com:8088``; ``tls://syslog.example.com:6514`` (or ``tcp://`` on a trusted
    network only); ``https://opensearch.example.com:9200`` (required)
``SIEM_SECRET_ID``
    OCID of the Vault secret with the HEC token or the ``_bulk`` password/API key
``SIEM_CA_BUNDLE_SECRET_ID``
    OCID of a Vault secret holding the PEM of the CA(s) that sign the destination's certificate (what the
    operator sets), trusted in addition to the public CAs; read with the resource principal and written
    to a private temporary file for TLS
``SIEM_CA_BUNDLE``
    a PEM file of those CAs already in the image (used when no secret is named; default: the public CAs)
``SIEM_TLS_SERVER_NAME``
    the name to verify on a syslog receiver's certificate (default: the URL's host)
``SIEM_HEC_INDEX``, ``SIEM_HEC_SOURCETYPE``, ``SIEM_HEC_SOURCE``, ``SIEM_HEC_HOST``
    envelope metadata (defaults: none, ``oci:audit``, ``oci:audit:{region}``, none)
``SIEM_HEC_FIELDS``
    indexed fields, ``name=dotted.path`` comma-separated (``eventType=eventType``)
``SIEM_HEC_ACK``, ``SIEM_HEC_ACK_TIMEOUT``, ``SIEM_HEC_ACK_POLL_SECONDS``
    indexer acknowledgment (default off; 300 s; 10 s)
``SIEM_SOURCE_REGION``
    the region for ``{region}`` when an event does not name one (default ``OCI_RESOURCE_PRINCIPAL_REGION``)
``SIEM_SYSLOG_MAX_BYTES``
    longest syslog message; longer ones are trimmed, then dead-lettered (default 8192, rsyslog's default)
``SIEM_SYSLOG_HOSTNAME``, ``SIEM_SYSLOG_APP_NAME``, ``SIEM_SYSLOG_SD_ID``, ``SIEM_SYSLOG_FACILITY``
    RFC 5424 header (defaults ``-``, ``oci-audit``, ``oci@32473``, 13)
``SIEM_BULK_INDEX``
    index name, a strftime pattern over eventTime (default ``oci-audit-%Y.%m.%d``)
``SIEM_BULK_USERNAME``
    Basic auth user; without it the secret is sent as ``Authorization: ApiKey <secret>``
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import certifi
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from siem_pipeline.consumer import GroupReader, RetentionGap
from siem_pipeline.dedup import FileIdStore, RecentIds
from siem_pipeline.destinations.base import Destination, DestinationConfigError, bound_by
from siem_pipeline.destinations.bulk import BulkClient
from siem_pipeline.destinations.hec import DEFAULT_BATCH_BYTES as HEC_BATCH_BYTES
from siem_pipeline.destinations.hec import HecClient
from siem_pipeline.destinations.syslog import SyslogClient
from siem_pipeline.export import (
    DeadLetterWriter,
    EventTypeFilter,
    ExportCounts,
    Exporter,
    health_fields,
    replay_dead_letters,
)
from siem_pipeline.export_lease import Lease, LeaseNotAcquired, holding
from siem_pipeline.formats import BulkFormat, CefFormat, HecFormat, SyslogFormat
from siem_pipeline.producer import StreamProducer
from siem_pipeline.redact import Redactor
from siem_pipeline.state import health_record

if TYPE_CHECKING:
    from siem_pipeline.fn import Invocation

log = logging.getLogger(__name__)

_ENV = {
    "events_stream_id": "SIEM_EVENTS_STREAM_ID", "events_endpoint": "SIEM_EVENTS_STREAM_ENDPOINT",
    "dlq_stream_id": "SIEM_DLQ_STREAM_ID", "dlq_endpoint": "SIEM_DLQ_STREAM_ENDPOINT",
    "state_stream_id": "SIEM_STATE_STREAM_ID", "state_endpoint": "SIEM_STATE_STREAM_ENDPOINT",
    "group": "SIEM_EXPORT_GROUP", "replay_group": "SIEM_REPLAY_GROUP", "instance": "SIEM_EXPORT_INSTANCE",
    "batch_events": "SIEM_EXPORT_BATCH_EVENTS", "batch_bytes": "SIEM_EXPORT_BATCH_BYTES",
    "max_batches": "SIEM_EXPORT_MAX_BATCHES", "max_seconds": "SIEM_EXPORT_MAX_SECONDS", "gzip": "SIEM_GZIP",
    "linger_seconds": "SIEM_EXPORT_LINGER_SECONDS",
    "event_types": "SIEM_EVENT_TYPES", "exclude_event_types": "SIEM_EXCLUDE_EVENT_TYPES",
    "redact_paths": "SIEM_REDACT_PATHS", "redact_keys": "SIEM_REDACT_KEYS",
    "dedup_capacity": "SIEM_DEDUP_CAPACITY", "dedup_file": "SIEM_DEDUP_FILE",
    "destination": "SIEM_DESTINATION", "url": "SIEM_DESTINATION_URL", "secret_id": "SIEM_SECRET_ID",
    "ca_bundle": "SIEM_CA_BUNDLE", "ca_bundle_secret_id": "SIEM_CA_BUNDLE_SECRET_ID",
    "redaction": "SIEM_REDACTION", "lease": "SIEM_EXPORT_LEASE", "tls_server_name": "SIEM_TLS_SERVER_NAME",
    "hec_index": "SIEM_HEC_INDEX", "hec_sourcetype": "SIEM_HEC_SOURCETYPE", "hec_source": "SIEM_HEC_SOURCE",
    "hec_host": "SIEM_HEC_HOST", "hec_fields": "SIEM_HEC_FIELDS", "hec_ack": "SIEM_HEC_ACK",
    "hec_ack_timeout": "SIEM_HEC_ACK_TIMEOUT", "hec_ack_poll": "SIEM_HEC_ACK_POLL_SECONDS",
    "source_region": "SIEM_SOURCE_REGION",
    "syslog_max_bytes": "SIEM_SYSLOG_MAX_BYTES", "syslog_hostname": "SIEM_SYSLOG_HOSTNAME",
    "syslog_app_name": "SIEM_SYSLOG_APP_NAME", "syslog_sd_id": "SIEM_SYSLOG_SD_ID",
    "syslog_facility": "SIEM_SYSLOG_FACILITY", "bulk_index": "SIEM_BULK_INDEX", "bulk_username": "SIEM_BULK_USERNAME",
}
_LISTS = {"event_types", "exclude_event_types", "redact_paths", "redact_keys"}


#: the destination gives up this long before the invocation's deadline (at most a tenth of the time left), so
#: that the invocation fails with the SIEM's error, releases its lease and logs, instead of being killed
DESTINATION_MARGIN_SECONDS = 5.0
#: an invocation stops starting batches this long before its deadline (at most)
DEADLINE_MARGIN_SECONDS = 10.0


def _unredacted(event: Any) -> Any:
    return event


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class ExportConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    events_stream_id: str
    events_endpoint: str
    dlq_stream_id: str
    dlq_endpoint: str
    state_stream_id: str | None = None
    state_endpoint: str | None = None
    group: str = "siem-export"
    replay_group: str = "siem-replay"
    instance: str = "export"
    batch_events: int = Field(1000, ge=1, le=10_000)
    batch_bytes: int | None = Field(None, ge=1024)
    max_batches: int | None = Field(None, ge=1)
    max_seconds: float = Field(240.0, gt=0)
    #: how long an export of an early signal follows the stream after it caught up (0: not at all)
    linger_seconds: float = Field(5.0, ge=0, le=60)
    gzip: bool = True
    event_types: list[str] = []
    exclude_event_types: list[str] = []
    redact_paths: list[str] = []
    redact_keys: list[str] = []
    dedup_capacity: int = Field(100_000, ge=1)
    dedup_file: str | None = None
    destination: Literal["hec", "syslog", "cef", "bulk"]
    url: str
    secret_id: str | None = None
    ca_bundle: str | None = None
    ca_bundle_secret_id: str | None = None
    #: credential redaction; off only when ``SIEM_REDACTION`` is explicitly false
    redaction: bool = True
    #: one export of the group at a time (a lease in the state stream)
    lease: bool = True
    tls_server_name: str | None = None
    hec_index: str | None = None
    hec_sourcetype: str = "oci:audit"
    hec_source: str = "oci:audit:{region}"
    hec_host: str | None = None
    hec_fields: dict[str, str] = {}
    hec_ack: bool = False
    hec_ack_timeout: float = Field(300.0, gt=0)
    hec_ack_poll: float = Field(10.0, gt=0)
    source_region: str | None = None
    syslog_max_bytes: int = Field(8192, ge=0)
    syslog_hostname: str = "-"
    syslog_app_name: str = "oci-audit"
    syslog_sd_id: str = "oci@32473"
    syslog_facility: int = Field(13, ge=0, le=23)
    bulk_index: str = "oci-audit-%Y.%m.%d"
    bulk_username: str | None = None

    @field_validator("hec_fields", mode="before")
    @classmethod
    def _fields(cls, value: Any) -> Any:
        if isinstance(value, str):
            pairs = {}
            for item in _csv(value):
                name, sep, path = item.partition("=")
                if not sep or not name.strip() or not path.strip():
                    raise ValueError(f"SIEM_HEC_FIELDS entry {item!r} is not name=dotted.path")
                pairs[name.strip()] = path.strip()
            return pairs
        return value

    @field_validator("redaction", "lease", mode="before")
    @classmethod
    def _redaction(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() not in ("false", "0", "no", "off")
        return value

    def redactor(self) -> Callable[[Any], Any]:
        """The redactor the configuration asks for: the defaults plus the extra paths and keys, or, when
        ``SIEM_REDACTION=false``, one that passes events through untouched."""
        if not self.redaction:
            return _unredacted
        return Redactor(self.redact_paths, extra_keys=self.redact_keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ExportConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, name in _ENV.items():
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            values[field] = _csv(raw) if field in _LISTS else raw.strip()
        values.setdefault("source_region", env.get("OCI_RESOURCE_PRINCIPAL_REGION") or None)
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            problems = "; ".join(f"{_ENV.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in err.errors())
            raise ValueError(f"invalid export configuration: {problems}") from None


def read_secret(factory: Any, secret_id: str) -> SecretStr:
    """The current version of a Vault secret (``SIEM_SECRET_ID``), read with the factory's principal."""
    bundle = factory.secrets().get_secret_bundle(secret_id).data
    content = bundle.secret_bundle_content
    text = base64.b64decode(content.content).decode().strip()
    if not text:
        raise DestinationConfigError(f"the Vault secret {secret_id} is empty")
    return SecretStr(text)


def warn_if_plaintext(config: ExportConfig) -> bool:
    """Log, at every invocation, that the destination is reached without TLS (an ``http://`` or ``tcp://`` URL:
    the spec's explicit opt-out); True if it is. TLS is otherwise always verified (public CAs, or the CA
    bundle)."""
    scheme = urlsplit(config.url).scheme.lower()
    if scheme not in ("http", "tcp"):
        return False
    log.warning("the %s destination is reached WITHOUT TLS (%s:// URL): events%s cross the network unencrypted and "
                "the receiver is not authenticated; use %s:// outside a trusted network", config.destination, scheme,
                " and the token" if config.secret_id else "", "https" if scheme == "http" else "tls")
    return True


def build_destination(config: ExportConfig, secret: SecretStr | None) -> Destination:
    """The destination client the configuration names (close it when done)."""
    warn_if_plaintext(config)
    if config.destination == "hec":
        if secret is None:
            raise DestinationConfigError("the HEC destination needs its token (SIEM_SECRET_ID)")
        fmt = HecFormat(sourcetype=config.hec_sourcetype, source=config.hec_source, host=config.hec_host,
                        index=config.hec_index, fields=config.hec_fields, default_region=config.source_region)
        return HecClient(config.url, secret, hec_format=fmt, ca_bundle=config.ca_bundle, compress=config.gzip,
                         max_batch_bytes=config.batch_bytes or HEC_BATCH_BYTES, max_batch_events=config.batch_events,
                         ack=config.hec_ack, ack_timeout=config.hec_ack_timeout, ack_poll_interval=config.hec_ack_poll)
    if config.destination in ("syslog", "cef"):
        parts = urlsplit(config.url)
        if parts.scheme not in ("tls", "tcp") or not parts.hostname:
            raise ValueError(f"invalid syslog URL {config.url!r}: expected tls://host:6514")
        fmt_syslog = SyslogFormat(facility=config.syslog_facility, hostname=config.syslog_hostname,
                                  app_name=config.syslog_app_name, sd_id=config.syslog_sd_id,
                                  max_bytes=config.syslog_max_bytes,
                                  body=CefFormat().text if config.destination == "cef" else None)
        return SyslogClient(parts.hostname, parts.port or (6514 if parts.scheme == "tls" else 514),
                            syslog_format=fmt_syslog, tls=parts.scheme == "tls", ca_bundle=config.ca_bundle,
                            server_name=config.tls_server_name, name=config.destination)
    bulk_kwargs: dict[str, Any] = {}
    if secret is not None:
        if config.bulk_username:
            bulk_kwargs.update(username=config.bulk_username, password=secret)
        else:
            bulk_kwargs.update(api_key=secret)
    return BulkClient(config.url, bulk_format=BulkFormat(index=config.bulk_index), ca_bundle=config.ca_bundle,
                      compress=config.gzip, max_batch_bytes=config.batch_bytes or 10_000_000,
                      max_batch_events=config.batch_events, **bulk_kwargs)


def _dlq_writer(config: ExportConfig, factory: Any, destination: Destination, source: str) -> DeadLetterWriter:
    producer = StreamProducer(factory.stream(config.dlq_endpoint), config.dlq_stream_id)
    return DeadLetterWriter(producer, source_stream_id=source, destination=destination.name)


def read_ca_bundle(factory: Any, secret_id: str) -> str:
    """The CAs to verify the destination with: the PEM in Vault secret ``secret_id``
    (``SIEM_CA_BUNDLE_SECRET_ID``) **in addition to** the public CAs, as the spec's ``caBundle`` promises
    (a file given as ``SIEM_CA_BUNDLE`` is used alone)."""
    pem = read_secret(factory, secret_id).get_secret_value()
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise DestinationConfigError(f"the Vault secret {secret_id} (SIEM_CA_BUNDLE_SECRET_ID) holds no PEM "
                                     "certificate: store the CA certificate(s) as PEM text")
    return pem.strip() + "\n" + Path(certifi.where()).read_text(encoding="utf-8")


@contextlib.contextmanager
def ca_bundle_file(config: ExportConfig, factory: Any) -> Iterator[str | None]:
    """The CA bundle as a file path for TLS (httpx, ssl): the Vault secret written to a private temporary
    file for as long as the block runs (the TLS context reads it when the destination is built), else
    ``SIEM_CA_BUNDLE``, else None (the public CAs)."""
    if not config.ca_bundle_secret_id:
        yield config.ca_bundle
        return
    pem = read_ca_bundle(factory, config.ca_bundle_secret_id)
    fd, path = tempfile.mkstemp(prefix="siem-ca-", suffix=".pem")  # mode 0600, under /tmp (Fn's writable place)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(pem)
        yield path
    finally:
        Path(path).unlink(missing_ok=True)


@contextlib.contextmanager
def open_destination(config: ExportConfig, factory: Any, *, secret: SecretStr | None = None,
                     destination: Destination | None = None) -> Iterator[Destination]:
    """``destination`` as given (not closed here), or the configured one built with the token and the CA
    bundle read from Vault (closed when the block ends)."""
    if destination is not None:
        yield destination
        return
    if secret is None and config.secret_id:
        secret = read_secret(factory, config.secret_id)
    with ca_bundle_file(config, factory) as ca_bundle:
        built = build_destination(config.model_copy(update={"ca_bundle": ca_bundle}), secret)
    try:
        yield built
    finally:
        built.close()


@contextlib.contextmanager
def _export_lease(config: ExportConfig, factory: Any, deadline: dt.datetime | None = None, *,
                  wait: bool = True) -> Iterator[float]:
    """One export of the group at a time (:mod:`siem_pipeline.export_lease`), when there is a state stream
    to hold the lease and ``SIEM_EXPORT_LEASE`` is not false; yields the seconds spent waiting for it.
    A candidate waits at most half its time budget, then fails (ONS redelivers its signal later); with
    ``wait`` false it raises :class:`~siem_pipeline.export_lease.LeaseNotAcquired` at once when another
    export holds the lease."""
    if not (config.lease and config.state_stream_id and config.state_endpoint):
        yield 0.0
        return
    lifetime = (deadline - dt.datetime.now(dt.UTC) if deadline is not None
                else dt.timedelta(seconds=config.max_seconds + 60))
    lease = Lease(factory.stream(config.state_endpoint), config.state_stream_id, config.group,
                  holder=f"export-{uuid.uuid4().hex[:12]}", lifetime=lifetime)
    with holding(lease, config.max_seconds / 2 if wait else 0.0) as held:
        yield held.waited


def _log_redaction(config: ExportConfig) -> None:
    if not config.redaction:
        log.warning("credential redaction is OFF (SIEM_REDACTION=false): events reach %s as Audit wrote them, "
                    "credentials included", config.destination)


def run_export(config: ExportConfig, factory: Any, *, secret: SecretStr | None = None,
               destination: Destination | None = None, deadline: dt.datetime | None = None,
               follow: bool = False) -> ExportCounts:
    """One export invocation: read, deliver, dead-letter, commit; then write its health. Raises on
    failure (after writing nothing it should not have and committing nothing undelivered).

    ``deadline`` (the invocation's ``Fn-Deadline``) bounds the time budget (no new batch within 10 s of
    it, or a fifth of the time left when that is shorter), the export lease (the platform kills the
    function at its deadline, so its lease ends there) and the destination: no request runs and no retry
    waits past 5 s before it (a tenth of the time left when that is shorter), so a SIEM that never answers
    fails the invocation with its error rather than having it killed.

    ``follow`` (a fetch is still writing: its early signal) makes the export follow the stream for
    ``linger_seconds`` after it caught up, within its time budget, and not wait for the lease: when another
    export holds it, :class:`~siem_pipeline.export_lease.LeaseNotAcquired` is raised at once, before
    anything was read or the destination opened."""
    _log_redaction(config)
    if deadline is not None:
        left = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
        left -= min(DEADLINE_MARGIN_SECONDS, left / 5)
        config = config.model_copy(update={"max_seconds": max(min(config.max_seconds, left), 1.0)})
    state = (StreamProducer(factory.stream(config.state_endpoint), config.state_stream_id)
             if config.state_stream_id and config.state_endpoint else None)
    with _export_lease(config, factory, deadline, wait=not follow) as waited, \
            open_destination(config, factory, secret=secret, destination=destination) as dest:
        if deadline is not None:  # a silent or busy SIEM makes the invocation fail before the platform kills it
            left = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
            bound_by(dest, time.monotonic() + left - min(DESTINATION_MARGIN_SECONDS, left / 10))
        gaps: list[RetentionGap] = []

        def on_gap(gap: RetentionGap) -> None:  # recorded before the export can commit past it
            gaps.append(gap)
            if state is not None:
                state.put([(gap.key.encode(), orjson.dumps(gap.record(dt.datetime.now(dt.UTC), config.group)))])

        budget = max(config.max_seconds - waited, 1.0)
        reader = GroupReader(factory.stream(config.events_endpoint), config.events_stream_id, config.group,
                             instance_name=config.instance, limit=config.batch_events, on_gap=on_gap,
                             linger_seconds=config.linger_seconds if follow else 0.0,
                             deadline=time.monotonic() + budget)
        store = FileIdStore(config.dedup_file or f"/tmp/siem-export-{config.group}.ids",  # noqa: S108 (Fn's only writable place)
                            capacity=config.dedup_capacity)
        stored = store.load()
        recent = (RecentIds.from_bytes(stored, config.dedup_capacity) if stored
                  else RecentIds(config.dedup_capacity))
        exporter = Exporter(reader, dest, _dlq_writer(config, factory, dest, config.events_stream_id),
                            redactor=config.redactor(),
                            event_filter=EventTypeFilter(config.event_types, config.exclude_event_types),
                            recent=recent, id_store=store,
                            max_batches=config.max_batches, max_seconds=budget)
        counts = exporter.run()
        counts.lost_to_retention = sum(gap.lost for gap in gaps)
        name = dest.name
    log.info("export done: %s", counts.to_json())
    if state is not None:
        record = health_record("export", dt.datetime.now(dt.UTC), **health_fields(counts, name, config.group))
        state.put([(f"health/export/{config.group}".encode(), orjson.dumps(record))])
    return counts


def run_replay(config: ExportConfig, factory: Any, *, secret: SecretStr | None = None,
               destination: Destination | None = None) -> ExportCounts:
    """Send the dead-letter stream's events again (``SIEM_REPLAY_GROUP`` on the dead-letter stream)."""
    _log_redaction(config)
    with open_destination(config, factory, secret=secret, destination=destination) as dest:
        reader = GroupReader(factory.stream(config.dlq_endpoint), config.dlq_stream_id, config.replay_group,
                             instance_name=config.instance, limit=config.batch_events)
        return replay_dead_letters(reader, dest, _dlq_writer(config, factory, dest, config.dlq_stream_id),
                                   redactor=config.redactor(), max_batches=config.max_batches,
                                   max_seconds=config.max_seconds)


def core(invocation: Invocation, factory: Any) -> Mapping[str, Any]:
    """The export function's core for :func:`siem_pipeline.fn.handle`.

    The body is fetch's signal on the export topic (``{"type": "export", …}``), a schedule's payload, or
    nothing: each runs :func:`run_export`. A fetch's early signal (``"early": true``: the fetch is still
    writing) runs it following the stream (``SIEM_EXPORT_LINGER_SECONDS``); when another export holds the
    lease, it stands down at once (``"standDown": true``, nothing read), since that export delivers and the
    fetch's final signal starts one more when the fetch is done.

    ``{"type": "replay"}`` (an operator's manual invocation, e.g.
    ``oci fn function invoke --body '{"type": "replay", "maxBatches": 10}'``) runs :func:`run_replay`
    instead, with ``maxBatches`` bounding it (default ``SIEM_EXPORT_MAX_BATCHES``)."""
    config = ExportConfig.from_env(invocation.config)
    try:
        body = invocation.json()
    except ValueError:
        body = None  # a nudge is a nudge: whatever it says, export what is in the stream
    if isinstance(body, dict) and body.get("type") == "replay":
        limit = body.get("maxBatches")
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"replay: maxBatches must be a positive integer, not {limit!r}")
            config = config.model_copy(update={"max_batches": limit})
        return {"mode": "replay", "redaction": config.redaction, **run_replay(config, factory).to_json()}
    follow = isinstance(body, dict) and body.get("early") is True
    try:
        counts = run_export(config, factory, deadline=invocation.deadline, follow=follow)
    except LeaseNotAcquired as exc:
        if not follow:
            raise
        log.info("export: an early signal stands down: %s", exc)
        return {"mode": "export", "redaction": config.redaction, "standDown": True, **ExportCounts().to_json()}
    return {"mode": "export", "redaction": config.redaction, "followed": follow, **counts.to_json()}
