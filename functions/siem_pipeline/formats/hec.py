"""Splunk HEC ``/services/collector/event`` envelopes (notes §1).

``{"time": <eventTime as epoch seconds with fraction>, "host", "source", "sourcetype", "index",
"fields": {flat}, "event": {the redacted audit event}}``, one per event, concatenated by the HEC client.

* ``time`` comes from ``eventTime`` (G7: the reference stamped ingest time), in seconds with the
  fraction, never milliseconds.
* ``fields`` (indexed fields) must be flat: each value is a string or a list of strings; nested
  values would get code 15, so they are sent as their JSON text; absent values are left out.
* ``source`` may name ``{region}``; the region comes from the event's top-level ``region`` if the
  producer annotated it, else from the format's ``default_region``, else the placeholder and the
  colon before it are dropped (``oci:audit:{region}`` → ``oci:audit``).
* ``host`` is the configured one, else the event's region found the same way (the CRD's promise for an
  unset ``destination.hec.host``), else absent.

The event's JSON is spliced into the envelope when the event carries it (a
:class:`~siem_pipeline.formats.common.SourcedEvent`): the bytes are those ``orjson.dumps`` of the
envelope would give for the compact JSON the fetch writes, without serialising the event again.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Final

import orjson

from siem_pipeline.formats.common import TextEvent, epoch_json, epoch_seconds, get_path, source_json

DEFAULT_SOURCETYPE: Final = "oci:audit"
DEFAULT_SOURCE: Final = "oci:audit:{region}"


def _flat(value: Any) -> str | list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclasses.dataclass(frozen=True)
class HecFormat:
    sourcetype: str = DEFAULT_SOURCETYPE
    source: str = DEFAULT_SOURCE
    host: str | None = None
    index: str | None = None
    #: indexed field name → dotted path in the event (``{"eventType": "eventType"}``)
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    default_region: str | None = None

    def region_of(self, event: Mapping[str, Any]) -> str | None:
        """The region fetch stamped on the event, else the configured default."""
        region = event.get("region")
        return region if isinstance(region, str) and region else self.default_region

    def source_for(self, event: Mapping[str, Any]) -> str:
        if "{region}" not in self.source:
            return self.source
        region = self.region_of(event)
        if region:
            return self.source.replace("{region}", region)
        return self.source.replace(":{region}", "").replace("{region}", "")

    def envelope(self, event: Mapping[str, Any]) -> dict[str, Any]:
        envelope = self._head(event)
        envelope["event"] = event
        return envelope

    def _head(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The envelope without ``event`` (which comes last)."""
        envelope: dict[str, Any] = {"time": epoch_seconds(event["eventTime"])}
        host = self.host or self.region_of(event)  # the CRD: unset means the event's region
        if host:
            envelope["host"] = host
        envelope["source"] = self.source_for(event)
        envelope["sourcetype"] = self.sourcetype
        if self.index:
            envelope["index"] = self.index
        if self.fields:
            fields = {name: flat for name, path in self.fields.items()
                      if (flat := _flat(get_path(event, path))) is not None}
            if fields:
                envelope["fields"] = fields
        return envelope

    def encode(self, event: Mapping[str, Any]) -> bytes:
        """One envelope as compact JSON (no trailing newline)."""
        if type(event) is TextEvent and not self.fields:  # the export's hot path: the head has all it needs
            decoded = event.head
            region = decoded.region if type(decoded.region) is str and decoded.region else self.default_region
            middle = self._middles.get(region)  # as region_of finds it
            if middle is not None:
                return b"".join((b'{"time":', epoch_json(decoded.eventTime), middle, event.source_json, b"}"))
        text = source_json(event)
        if text is None:
            return orjson.dumps(self.envelope(event))
        if self.fields:
            return b"".join((orjson.dumps(self._head(event))[:-1], b',"event":', text, b"}"))
        # Without indexed fields, what follows "time" depends only on the region: made once per region.
        region = self.region_of(event)
        middle = self._middles.get(region)
        if middle is None:
            head = self._head({"eventTime": "1970-01-01T00:00:00Z", "region": region})
            del head["time"]
            middle = self._middles[region] = b"," + orjson.dumps(head)[1:-1] + b',"event":'
        return b"".join((b'{"time":', epoch_json(event["eventTime"]), middle, text, b"}"))

    @functools.cached_property
    def _middles(self) -> dict[str | None, bytes]:
        return {}
