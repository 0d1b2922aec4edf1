"""What every format reads from an audit event: its id, type, time and dotted fields.

Events arrive in the Audit API's shape (CloudEvents 0.1: ``eventId``, ``eventType``, ``eventTime``,
``data``). :func:`normalize` also accepts the Logging ``_Audit`` shape (CloudEvents 1.0: ``id``,
``type``, ``time``, ``dataschema``) and the Events service's ``eventID`` spelling, and returns the
Audit shape, so every format and the deduplication see one spelling.

:class:`SourcedEvent` is such an event that still carries its JSON text as it was read from the stream
(when :func:`normalize` renamed nothing): the redactor counts credential words in that text to skip its
full walk, and the formats splice the text into their envelopes instead of serialising the event.

:class:`TextEvent` goes one step further, for the export's hot path: :func:`read_text_event` decodes
only what every event is asked for (id, type, time, region) and ``data.identity.credentials`` (as its
text: the redactor's one path), validating and skipping the rest of the text (msgspec: about 4 µs for a
5 KB generated event, a tenth of orjson parsing it whole); the whole event is parsed from the text only
when something reads another field (:meth:`TextEvent.full`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import msgspec
import orjson

_RFC3339: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})?$")


class EventShapeError(ValueError):
    """The event lacks a field every format needs; the message says which."""


class SourcedEvent(dict[str, Any]):
    """An event (a plain ``dict`` to every reader) with ``source_json``: a JSON text of exactly this
    event, or None. Whoever changes the event must build a new one, a plain dict (the redactor does):
    the formats use the text when it is there (``orjson.dumps`` of the event otherwise). Never mutate
    one in place."""

    __slots__ = ("source_json",)

    def __init__(self, event: Mapping[str, Any], source_json: bytes | None) -> None:
        super().__init__(event)
        self.source_json = source_json


class Identity(msgspec.Struct):
    """``data.identity``: only its ``credentials``, as their JSON text (:class:`msgspec.Raw`: a view of
    the event's text, nothing decoded)."""

    credentials: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class Data(msgspec.Struct):
    identity: Identity | msgspec.UnsetType | None = msgspec.UNSET


class EventHead(msgspec.Struct):
    """What :func:`read_text_event` decodes of an Audit-shaped event; UNSET: absent from the text."""

    eventId: str
    eventType: str
    eventTime: str
    region: Any = msgspec.UNSET
    identity: Any = msgspec.UNSET  # top-level: not where Audit puts it; its presence disables the fast lane
    data: Data | msgspec.UnsetType | None = msgspec.UNSET
    dataschema: Any = msgspec.UNSET  # with no eventTypeVersion: the CloudEvents 1.0 shape, normalised
    eventTypeVersion: Any = msgspec.UNSET
    timestamp: Any = msgspec.field(default=msgspec.UNSET, name="@timestamp")  # the _bulk format asks


_HEAD_DECODER: Final = msgspec.json.Decoder(EventHead)
#: The fields a TextEvent answers without parsing its whole text, and where its head keeps them.
_HEAD_FIELDS: Final = {"eventId": "eventId", "eventType": "eventType", "eventTime": "eventTime", "region": "region",
                       "@timestamp": "timestamp"}


class TextEvent(Mapping[str, Any]):
    """An Audit-shaped event as its JSON text (``source_json``) and the few fields decoded from it
    (``head``). Reading any other field parses the whole text once (:meth:`full`). Immutable: whoever
    changes the event builds a new one (the redactor builds a TextEvent of the redacted text)."""

    __slots__ = ("_full", "head", "source_json")

    def __init__(self, source_json: bytes, head: EventHead) -> None:
        self.source_json = source_json
        self.head = head
        self._full: SourcedEvent | None = None

    def full(self) -> SourcedEvent:
        """The whole event (parsed once; it still carries its text)."""
        if self._full is None:
            self._full = SourcedEvent(orjson.loads(self.source_json), self.source_json)
        return self._full

    def __getitem__(self, key: str) -> Any:
        if key in _HEAD_FIELDS:
            value = getattr(self.head, _HEAD_FIELDS[key])
            if value is msgspec.UNSET:
                raise KeyError(key)
            return value
        return self.full()[key]

    def get(self, key: str, default: Any = None) -> Any:
        if key in _HEAD_FIELDS:
            value = getattr(self.head, _HEAD_FIELDS[key])
            return default if value is msgspec.UNSET else value
        return self.full().get(key, default)

    def __contains__(self, key: object) -> bool:
        if key in _HEAD_FIELDS:
            return getattr(self.head, _HEAD_FIELDS[key]) is not msgspec.UNSET
        return key in self.full()

    def __iter__(self) -> Iterator[str]:
        return iter(self.full())

    def __len__(self) -> int:
        return len(self.full())

    def __bool__(self) -> bool:
        return True  # it has an eventId, at least

    def __repr__(self) -> str:
        return f"TextEvent({self.source_json[:80]!r}…)"


def read_text_event(raw: bytes) -> TextEvent | None:
    """``raw`` as a :class:`TextEvent` when it is UTF-8 JSON of an Audit-shaped event whose id, type and
    time are non-empty strings and whose time parses; None otherwise (the caller parses it fully, to
    normalise another shape or to say precisely what is wrong)."""
    if not raw.isascii():
        try:
            raw.decode()  # msgspec checks only the strings it decodes
        except UnicodeDecodeError:
            return None
    try:
        head = _HEAD_DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if not (head.eventId.strip() and head.eventType.strip() and head.eventTime.strip()):
        return None
    if head.dataschema is not msgspec.UNSET and head.eventTypeVersion is msgspec.UNSET:
        return None
    if not is_time(head.eventTime):
        return None
    return TextEvent(raw, head)


def source_json(event: Mapping[str, Any]) -> bytes | None:
    """The JSON text of ``event`` when it carries one (:class:`SourcedEvent`, :class:`TextEvent`), else
    None."""
    kind = type(event)
    return event.source_json if kind is TextEvent or kind is SourcedEvent else None  # type: ignore[attr-defined]


# Whole seconds of the common "YYYY-MM-DDTHH:MM:SS[.fff]Z" times already parsed, as (UTC datetime, epoch
# seconds): OCI event times of one batch share few seconds, and parsing is a large part of formatting an event.
_SECONDS: dict[str, tuple[dt.datetime, int]] = {}
_SECONDS_MAX: Final = 8192
_DIGITS: Final = frozenset("0123456789")


def _fraction_nanos(text: str) -> int | None:
    """Nanoseconds of a ``YYYY-MM-DDTHH:MM:SS[.f…]Z`` time (its whole second cached), else None."""
    if len(text) == 20:
        return 0 if text[19] == "Z" and text[10] == "T" else None
    if len(text) < 22 or text[-1] != "Z" or text[10] != "T" or text[19] != ".":
        return None
    fraction = text[20:-1]
    if not _DIGITS.issuperset(fraction):
        return None
    return int(fraction[:9].ljust(9, "0"))


def _parse_utc_fast(text: str) -> tuple[dt.datetime, int] | None:
    """:func:`parse_time` of ``YYYY-MM-DDTHH:MM:SS[.f…]Z`` from the cache of whole seconds, or None."""
    cached = _SECONDS.get(text[:19])
    if cached is None:
        return None
    nanos = _fraction_nanos(text)
    if nanos is None:
        return None
    return (cached[0].replace(microsecond=nanos // 1000) if nanos else cached[0]), nanos


def parse_time(text: str) -> tuple[dt.datetime, int]:
    """Parse an RFC 3339 time: ``(UTC datetime at microsecond precision, nanoseconds of the second)``.

    Fractions longer than 6 digits (OCI sometimes writes nanoseconds) are kept in the second value;
    a time without an offset is taken as UTC.
    """
    fast = _parse_utc_fast(text)
    if fast is not None:
        return fast
    match = _RFC3339.match(text.strip())
    if not match:
        raise EventShapeError(f"eventTime {text!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    tz = dt.UTC
    if offset and offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        value = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                            nanos // 1000, tzinfo=tz)
    except ValueError as err:
        raise EventShapeError(f"eventTime {text!r} is not a valid time: {err}") from None
    value = value.astimezone(dt.UTC)
    if tz is dt.UTC and len(text) >= 20 and text[10] == "T" and text[-1] == "Z":
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        whole = value.replace(microsecond=0)
        _SECONDS[text[:19]] = (whole, int(whole.timestamp()))
    return value, nanos


def is_time(text: str) -> bool:
    """Whether :func:`parse_time` accepts ``text`` (without building the datetime when it is cached)."""
    if text[:19] in _SECONDS and _fraction_nanos(text) is not None:
        return True
    try:
        parse_time(text)
    except EventShapeError:
        return False
    return True


def epoch_seconds(text: str) -> float:
    """``eventTime`` as epoch seconds with its fraction (millisecond-exact for OCI's 3-digit times)."""
    cached = _SECONDS.get(text[:19])
    nanos = None if cached is None else _fraction_nanos(text)
    if cached is None or nanos is None:
        value, nanos = parse_time(text)
        whole = int(value.replace(microsecond=0).timestamp())
    else:
        whole = cached[1]
    # Round to microseconds, then let float's shortest repr print ``…59.252``, not ``…59.25199997``.
    return round(whole + nanos / 1e9, 6)


def epoch_json(text: str) -> bytes:
    """``orjson.dumps(epoch_seconds(text))``: the JSON number HEC's ``time`` takes. OCI's times
    (``…:SS.mmmZ``) are written from their text: ``1764200000.384``, ``1764200000.38``, ``1764200000.0``
    (three digits or fewer print as float's shortest repr prints them)."""
    cached = _SECONDS.get(text[:19])
    if cached is not None and len(text) == 24 and text[19] == "." and text[23] == "Z" and text[10] == "T":
        fraction = text[20:23]
        if _DIGITS.issuperset(fraction):
            return b"%d.%s" % (cached[1], (fraction.rstrip("0") or "0").encode())
    return orjson.dumps(epoch_seconds(text))


def rfc3339_micros(text: str) -> str:
    """``eventTime`` as RFC 3339 UTC with at most 6 fractional digits (RFC 5424's limit)."""
    value, nanos = parse_time(text)
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    micros = nanos // 1000
    if micros == 0:
        return base + "Z"
    return f"{base}.{micros:06d}".rstrip("0") + "Z"


_SPLIT_PATHS: dict[str, tuple[str, ...]] = {}


def get_path(event: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``data.identity.ipAddress``), or None."""
    parts = _SPLIT_PATHS.get(path)
    if parts is None:
        parts = _SPLIT_PATHS[path] = tuple(path.split("."))
    value: Any = event.full() if type(event) is TextEvent else event
    for part in parts:
        if not isinstance(value, dict) and not isinstance(value, Mapping):  # dict first: the ABC check is slow
            return None
        value = value.get(part)
    return value


def data_of(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    return data if isinstance(data, Mapping) else {}


def text_of(value: Any) -> str:
    """A field as text: None → ``""``, scalars → ``str``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def normalize(event: Mapping[str, Any], source: bytes | None = None) -> dict[str, Any]:
    """The Audit API shape of an event given in any of the three shapes (a new dict).

    ``source``: the JSON text ``event`` was parsed from; when nothing had to be renamed, the result is a
    :class:`SourcedEvent` that carries it."""
    out = dict(event) if source is None else SourcedEvent(event, source)
    if "eventId" not in out:
        for alias in ("eventID", "id"):
            if alias in out:
                out["eventId"] = out.pop(alias)
                break
    if "eventType" not in out and "type" in out:
        out["eventType"] = out.pop("type")
    if "eventTime" not in out and "time" in out:
        out["eventTime"] = out.pop("time")
    if "eventTypeVersion" not in out and "dataschema" in out:
        out["eventTypeVersion"] = out.pop("dataschema")
    if source is not None and ("eventId" not in event or "eventType" not in event or "eventTime" not in event
                               or ("dataschema" in event and "eventTypeVersion" not in event)):
        out = dict(out)  # renamed: the text no longer spells this event
    return out


REQUIRED: Final = ("eventId", "eventType", "eventTime")


def check_required(event: Mapping[str, Any]) -> None:
    """Raise :class:`EventShapeError` unless the fields every format needs are usable."""
    for name in REQUIRED:
        value = event.get(name)
        if not isinstance(value, str) or not value.strip():
            raise EventShapeError(f"missing or empty required field {name!r}")
    parse_time(event["eventTime"])
