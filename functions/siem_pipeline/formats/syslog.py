"""RFC 5424 syslog messages and RFC 6587 octet-counting frames (notes §2).

``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG``:

* PRI = facility x 8 + severity; facility 13 ("log audit") and severity 6 by default.
* TIMESTAMP is ``eventTime`` in UTC with at most 6 fractional digits.
* Header fields are printable ASCII 33-126 (others become ``_``), capped at HOSTNAME 255, APP-NAME 48,
  PROCID 128, MSGID 32. MSGID is ``eventName`` (``GetInstance``), not ``eventType``: event types are
  often longer than 32 characters and syslog-ng truncates them; ``eventType`` travels in SD.
* SD is one element ``[<sd_id> eventId="…" eventType="…" …]``, values escaped (``"``, ``\\`` and ``]``
  get a ``\\``; control characters become ``\\n``-style escapes, :func:`sd_escape`). 32473 is the
  documentation PEN: set ``sd_id`` to the project's own in production.
* MSG is the one-line JSON of the redacted event (or the CEF text, see :mod:`.cef`), without a BOM.
* ``max_bytes`` (0: unlimited): rsyslog's default ``maxMessageSize`` is 8 KB and it *splits* longer
  frames silently; audit events regularly exceed it. A longer message is trimmed by dropping, in
  order, :data:`TRIMMABLE` parts of ``data`` (listed in SD ``trimmed="…"``); if it is still too long,
  :class:`MessageTooLarge` is raised and the event is dead-lettered, never cut mid-JSON.

:func:`frame` adds the octet count: ``MSG-LEN SP MSG``, the only framing RFC 5425 allows over TLS.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from siem_pipeline.formats.common import get_path, rfc3339_micros, source_json, text_of

#: Parts of ``data`` dropped, in this order, to bring a message under ``max_bytes``.
TRIMMABLE: Final = ("request.headers", "response.headers", "response.payload", "request.parameters",
                    "stateChange", "additionalDetails")

#: SD parameters: name → dotted path in the event.
SD_PARAMS: Final = (("eventId", "eventId"), ("eventType", "eventType"),
                    ("compartmentId", "data.compartmentId"), ("compartmentName", "data.compartmentName"),
                    ("principalName", "data.identity.principalName"), ("ipAddress", "data.identity.ipAddress"),
                    ("status", "data.response.status"))

_NON_PRINTABLE: Final = re.compile(r"[^\x21-\x7e]")
_SD_NAME: Final = re.compile(r'^[\x21-\x7e]{1,32}$')


class MessageTooLarge(ValueError):
    """The message exceeds the destination's size even after trimming."""


def header_field(value: str, cap: int) -> str:
    """A header field: printable ASCII, at most ``cap`` characters, ``-`` when empty."""
    cleaned = _NON_PRINTABLE.sub("_", value)[:cap]
    return cleaned or "-"


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SD_SPECIAL: Final = re.compile(r'[\\"\]\x00-\x1f\x7f]')


def _control_escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\u{ord(char):04x}"


def sd_escape(value: str) -> str:
    """A PARAM-VALUE: ``"``, ``\\`` and ``]`` get a backslash (RFC 5424 §6.3.3); control characters, which
    receivers mangle or cut at (rsyslog writes LF as ``#012``, C strings end at NUL), become ``\\n``, ``\\r``,
    ``\\t`` or ``\\u0000``: an RFC 5424 decoder keeps such a backslash as it is. The MSG's JSON has the value
    exactly."""
    if not _SD_SPECIAL.search(value):
        return value  # most values: nothing to escape
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return _CONTROL.sub(_control_escape, escaped) if _CONTROL.search(escaped) else escaped


def frame(message: bytes) -> bytes:
    """Octet-counting framing: ``MSG-LEN SP MSG``."""
    return b"%d %b" % (len(message), message)


def _drop(event: Mapping[str, Any], path: str) -> tuple[dict[str, Any], bool]:
    """A copy of ``event`` without ``data.<path>``; and whether something was dropped."""
    parts = ["data", *path.split(".")]
    out = dict(event)
    node: dict[str, Any] = out
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, Mapping):
            return out, False
        node[part] = dict(child)
        node = node[part]
    if node.get(parts[-1]) in (None, {}, [], ""):
        return out, False
    del node[parts[-1]]
    return out, True


@dataclasses.dataclass(frozen=True)
class SyslogFormat:
    facility: int = 13
    severity: int = 6
    hostname: str = "-"
    app_name: str = "oci-audit"
    procid: str = "-"
    sd_id: str = "oci@32473"
    max_bytes: int = 0
    #: MSG from the event; None: the event's one-line JSON
    body: Callable[[Mapping[str, Any]], str] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.facility <= 23 or not 0 <= self.severity <= 7:
            raise ValueError("syslog facility must be 0-23 and severity 0-7")
        if not _SD_NAME.match(self.sd_id) or any(c in self.sd_id for c in '= ]"'):
            raise ValueError(f"invalid SD-ID {self.sd_id!r}")

    def _render(self, event: Mapping[str, Any], trimmed: list[str]) -> bytes:
        pri = self.facility * 8 + self.severity
        msgid = header_field(text_of(get_path(event, "data.eventName")), 32)
        params = [f'{name}="{sd_escape(text)}"' for name, path in SD_PARAMS
                  if (text := text_of(get_path(event, path)))]
        if trimmed:
            params.append(f'trimmed="{sd_escape(",".join(trimmed))}"')
        sd = f"[{self.sd_id} {' '.join(params)}]" if params else "-"
        header = (f"<{pri}>1 {rfc3339_micros(event['eventTime'])} {header_field(self.hostname, 255)} "
                  f"{header_field(self.app_name, 48)} {header_field(self.procid, 128)} {msgid} {sd} ")
        if self.body:
            body = self.body(event).encode()
        else:
            spliced = source_json(event)  # MSG is one line
            body = (spliced if spliced is not None and b"\n" not in spliced and b"\r" not in spliced
                    else orjson.dumps(event))
        return header.encode() + body

    def encode(self, event: Mapping[str, Any]) -> bytes:
        """The RFC 5424 message (unframed)."""
        message = self._render(event, [])
        if not self.max_bytes or len(message) <= self.max_bytes:
            return message
        trimmed: list[str] = []
        current = event
        for path in TRIMMABLE:
            current, dropped = _drop(current, path)
            if dropped:
                trimmed.append(path)
                message = self._render(current, trimmed)
                if len(message) <= self.max_bytes:
                    return message
        raise MessageTooLarge(f"syslog message of {len(message)} bytes exceeds the destination's limit of "
                              f"{self.max_bytes} bytes even without {', '.join(TRIMMABLE)}")
