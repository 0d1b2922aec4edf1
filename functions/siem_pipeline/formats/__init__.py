"""Wire formats of the destinations: Splunk HEC envelopes, RFC 5424 syslog, CEF and ``_bulk`` NDJSON.

Formats are pure: an event (already normalised and redacted) in, bytes out. They import no client.
"""

from __future__ import annotations

from siem_pipeline.formats.bulk import BulkFormat
from siem_pipeline.formats.cef import CefFormat
from siem_pipeline.formats.common import EventShapeError, normalize
from siem_pipeline.formats.hec import HecFormat
from siem_pipeline.formats.syslog import MessageTooLarge, SyslogFormat, frame

__all__ = ["BulkFormat", "CefFormat", "EventShapeError", "HecFormat", "MessageTooLarge", "SyslogFormat", "frame",
           "normalize"]
