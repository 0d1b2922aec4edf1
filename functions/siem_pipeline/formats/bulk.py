"""OpenSearch / Elasticsearch ``_bulk`` NDJSON (notes §4).

Each event is two lines, each ending in LF (the last one too): the action
``{"create":{"_index":"oci-audit-YYYY.MM.DD","_id":"<eventId>"}}`` and the document. ``create`` with
``_id = eventId`` makes a re-sent event a per-item 409 instead of a second document. The index name is
a ``strftime`` pattern over the event's ``eventTime`` in UTC. The document is the redacted event, with
``@timestamp`` set to ``eventTime`` when ``timestamp_field`` is on (what dashboards sort by). An event
that carries its JSON (:class:`~siem_pipeline.formats.common.SourcedEvent`) is spliced, not serialised.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Final

import orjson

from siem_pipeline.formats.common import parse_time, source_json

DEFAULT_INDEX: Final = "oci-audit-%Y.%m.%d"


@dataclasses.dataclass(frozen=True)
class BulkFormat:
    index: str = DEFAULT_INDEX
    timestamp_field: bool = True

    def index_for(self, event: Mapping[str, Any]) -> str:
        if "%" not in self.index:
            return self.index
        text = event["eventTime"]
        cacheable = "%f" not in self.index and len(text) >= 20 and text[-1] == "Z"  # UTC, per whole second
        if cacheable and (index := self._indices.get(text[:19])) is not None:
            return index
        index = parse_time(text)[0].strftime(self.index).lower()
        if cacheable:
            if len(self._indices) >= 4096:
                self._indices.clear()
            self._indices[text[:19]] = index
        return index

    @functools.cached_property
    def _indices(self) -> dict[str, str]:
        return {}

    def encode(self, event: Mapping[str, Any]) -> bytes:
        """The action line and the document line, both LF-terminated."""
        action = orjson.dumps({"create": {"_index": self.index_for(event), "_id": event["eventId"]}})
        text = source_json(event)
        if text is not None and text[:1] == b"{" and event and b"\n" not in text:
            if self.timestamp_field and "@timestamp" not in event:
                stamp = orjson.dumps(event["eventTime"])
                return b"".join((action, b'\n{"@timestamp":', stamp, b",", text[1:], b"\n"))
            return b"".join((action, b"\n", text, b"\n"))
        document: Mapping[str, Any] = event
        if self.timestamp_field and "@timestamp" not in event:
            document = {"@timestamp": event["eventTime"], **event}
        return action + b"\n" + orjson.dumps(document) + b"\n"
