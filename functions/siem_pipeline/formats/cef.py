"""ArcSight CEF text for OCI audit events, carried as the MSG of an RFC 5424 message (notes §3).

``CEF:0|Oracle|OCI Audit|<eventTypeVersion>|<eventType>|<eventName>|<severity>|<extension>``

* Header fields: ``\\`` → ``\\\\`` and ``|`` → ``\\|``; ``=`` is not escaped; CR, LF and every other
  control character (NUL, TAB, …) become spaces.
* Extension values: ``\\`` → ``\\\\``, ``=`` → ``\\=``, LF → ``\\n``, CR → ``\\r``; ``|`` is not escaped;
  other control characters (CEF defines no escape for them; NUL ends a C string) become spaces.
  Keys come in a fixed order (:data:`EXTENSION`); empty values are left out.
* Lengths: ArcSight's dictionary caps most string keys at 1023 characters (``cs*`` at 4000) and the
  Name at 512, the Device Event Class ID at 1023 (*from the CEF guide; not checked against a real
  ArcSight here*); longer values are cut at a character boundary.
* Severity (*chosen*): 7 for 401/403 answers, 5 for other 4xx, 4 for 5xx, else 3.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Final

from siem_pipeline.formats.common import epoch_seconds, get_path, text_of

#: (CEF key, dotted path or a literal label, cap)
EXTENSION: Final = (
    ("rt", None, 0),
    ("externalId", "eventId", 1023),
    ("src", "data.identity.ipAddress", 1023),
    ("suser", "data.identity.principalName", 1023),
    ("suid", "data.identity.principalId", 1023),
    ("requestClientApplication", "data.identity.userAgent", 1023),
    ("requestMethod", "data.request.action", 1023),
    ("request", "data.request.path", 1023),
    ("outcome", "data.response.status", 1023),
    ("cs1Label", "=compartmentName", 1023),
    ("cs1", "data.compartmentName", 4000),
    ("cs2Label", "=compartmentId", 1023),
    ("cs2", "data.compartmentId", 4000),
    ("cs3Label", "=resourceId", 1023),
    ("cs3", "data.resourceId", 4000),
)


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_OTHER_CONTROL: Final = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")


# what either escape changes: most values hold none of it and are returned as they are
_HEADER_SPECIAL: Final = re.compile(r"[\\|\x00-\x1f\x7f]")
_EXTENSION_SPECIAL: Final = re.compile(r"[\\=\x00-\x1f\x7f]")


def header_escape(value: str) -> str:
    if not _HEADER_SPECIAL.search(value):
        return value
    return _CONTROL.sub(" ", value.replace("\\", "\\\\").replace("|", "\\|"))


def extension_escape(value: str) -> str:
    if not _EXTENSION_SPECIAL.search(value):
        return value
    value = _OTHER_CONTROL.sub(" ", value)
    return value.replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")


def severity_of(event: Mapping[str, Any]) -> int:
    status = text_of(get_path(event, "data.response.status"))
    if status in ("401", "403"):
        return 7
    if status.startswith("4"):
        return 5
    if status.startswith("5"):
        return 4
    return 3


@dataclasses.dataclass(frozen=True)
class CefFormat:
    vendor: str = "Oracle"
    product: str = "OCI Audit"

    def text(self, event: Mapping[str, Any]) -> str:
        data_name = text_of(get_path(event, "data.eventName")) or text_of(event.get("eventType"))
        header = "|".join((
            "CEF:0", header_escape(self.vendor), header_escape(self.product),
            header_escape(text_of(event.get("eventTypeVersion")) or "-"),
            header_escape(text_of(event.get("eventType"))[:1023]),
            header_escape(data_name[:512]),
            str(severity_of(event)),
        ))
        pairs: list[str] = []
        for key, path, cap in EXTENSION:
            if path is None:
                value = str(round(epoch_seconds(event["eventTime"]) * 1000))
            elif path.startswith("="):
                value = path[1:]
            else:
                value = text_of(get_path(event, path))[:cap]
            if value:
                pairs.append(f"{key}={extension_escape(value)}")
        # drop a label whose value was empty
        pairs = [p for i, p in enumerate(pairs)
                 if not (p.split("=", 1)[0].endswith("Label")
                         and (i + 1 >= len(pairs) or pairs[i + 1].split("=", 1)[0].endswith("Label")))]
        return header + "|" + " ".join(pairs)
