"""OpenSearch / Elasticsearch ``_bulk`` client with per-item outcomes (notes §4).

Events go as ``create`` actions with ``_id = eventId`` (:class:`~siem_pipeline.formats.BulkFormat`)
in NDJSON requests of at most ``max_batch_bytes`` and ``max_batch_events``, gzipped by default. The
reply is HTTP 200 even when items fail, so each item is read:

=============================================  =============================================================
item status                                    outcome
=============================================  =============================================================
200, 201                                       accepted
409 ``version_conflict_engine_exception``      accepted: ``create`` found the event already stored (a replay)
429, 5xx                                       that item alone is sent again, with backoff; then raise
other 4xx (``mapper_parsing_exception``, …)    dead-lettered with ``<status> <type>: <reason>``
=============================================  =============================================================

An event whose eventId is longer than 512 bytes (what ``_id`` may be) is refused by :meth:`BulkClient.encode`
and dead-lettered: OpenSearch would fail the whole request for it.

Whole-request answers: 401/403 and TLS verification failures raise
:class:`~siem_pipeline.destinations.base.DestinationConfigError`; 413 splits the request (one event
alone is dead-lettered); 429, 5xx and transport errors are retried with backoff, then raise
:class:`~siem_pipeline.destinations.base.DestinationError`; any other answer raises too, and so does a
200 whose body is not a ``_bulk`` reply (not JSON, no ``items`` or the wrong number, an item without a
numeric status) or exceeds 256 KB + 2 KB per action (read no further). Every request has an overall
deadline (``request_deadline``, 120 s) on top of the per-read ``timeout``.

Auth: Basic (user and password) or ``Authorization: ApiKey <base64(id:key)>``; secrets are
:class:`pydantic.SecretStr` and never logged. AWS SigV4 is not supported.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import SecretStr

from siem_pipeline.destinations.base import (
    MAX_REPLY_BYTES,
    Backoff,
    BatchResult,
    DestinationConfigError,
    DestinationError,
    HttpDestination,
    Rejected,
    Reply,
    chunks,
    gzip_body,
    parse_retry_after,
    printable,
    tls_context,
)
from siem_pipeline.formats.bulk import BulkFormat

log = logging.getLogger(__name__)

#: OpenSearch and Elasticsearch refuse a longer ``_id`` (the eventId) by failing the whole request.
MAX_ID_BYTES: Final = 512
#: What the reply to one action may add to :data:`MAX_REPLY_BYTES` (an item with a long error reason).
REPLY_BYTES_PER_ACTION: Final = 2048


def _secret(value: SecretStr | str | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


class BulkClient(HttpDestination):
    """An OpenSearch/Elasticsearch destination; build one per invocation and :meth:`close` it."""

    name = "opensearch-bulk"

    def __init__(self, url: str, *, bulk_format: BulkFormat | None = None, username: str | None = None,
                 password: SecretStr | str | None = None, api_key: SecretStr | str | None = None,
                 ca_bundle: str | Path | None = None, compress: bool = True, compress_level: int = 1,
                 max_batch_bytes: int = 10_000_000, max_batch_events: int = 5000, timeout: float = 60.0,
                 backoff: Backoff | None = None, request_deadline: float = 120.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"invalid _bulk URL {url!r}: expected https://host:9200")
        self.bulk_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/_bulk"
        self.format = bulk_format or BulkFormat()
        self.compress = compress
        self.compress_level = compress_level
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_events = max_batch_events
        self.backoff = backoff or Backoff()
        #: called before every wait (backoff, ack polling): the export keeps its stream reservations alive
        self.on_wait: Callable[[], None] | None = None
        self._auth: httpx.Auth | None = None
        self._api_key = _secret(api_key)
        secret = _secret(password)
        if username is not None and secret is not None:
            self._auth = httpx.BasicAuth(username, secret.get_secret_value())
        self.request_deadline = request_deadline
        verify: ssl.SSLContext | bool = tls_context(ca_bundle) if parts.scheme == "https" else False
        self._http = self._client(verify, timeout, auth=self._auth)

    def __repr__(self) -> str:
        return f"BulkClient({self.bulk_url!r})"

    def encode(self, event: dict[str, Any]) -> bytes:
        """The action and document lines; ``ValueError`` (dead-lettered) for an eventId too long for ``_id``:
        OpenSearch would refuse the whole request for it (HTTP 400 ``Validation Failed``), every time."""
        size = len(str(event.get("eventId", "")).encode())
        if size > MAX_ID_BYTES:
            raise ValueError(f"its eventId of {size} bytes is longer than the {MAX_ID_BYTES} bytes _bulk allows "
                             "for a document _id")
        return super().encode(event)

    def _post(self, body: bytes, actions: int, result: BatchResult) -> Reply:
        headers = {"Content-Type": "application/x-ndjson"}
        if self._api_key is not None:
            headers["Authorization"] = f"ApiKey {self._api_key.get_secret_value()}"
        if self.compress:
            body = gzip_body(body, self.compress_level)
            headers["Content-Encoding"] = "gzip"
        result.requests += 1
        result.wire_bytes += len(body)
        return self._request(self.bulk_url, body, headers, what=self.bulk_url,
                             limit=MAX_REPLY_BYTES + REPLY_BYTES_PER_ACTION * actions)

    def _items(self, reply: Reply, actions: int) -> list[dict[str, Any]]:
        """The per-action outcomes of a 200, or :class:`DestinationError` when the reply is not a ``_bulk`` one."""
        if reply.truncated:
            raise DestinationError(f"_bulk answered HTTP 200 with {reply.too_large()}")
        try:
            parsed = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise DestinationError(f"_bulk answered HTTP 200 with a body that is not JSON: "
                                   f"{reply.snippet() or '(empty)'}") from None
        items = parsed.get("items") if isinstance(parsed, dict) else None
        if not isinstance(items, list) or len(items) != actions:
            raise DestinationError(f"_bulk answered {len(items) if isinstance(items, list) else 'no'} items "
                                   f"for {actions} actions: {reply.snippet()}")
        outcomes: list[dict[str, Any]] = []
        for item in items:
            outcome = next(iter(item.values()), None) if isinstance(item, dict) else None
            if (not isinstance(outcome, dict) or not isinstance(outcome.get("status"), int)
                    or isinstance(outcome["status"], bool)):
                raise DestinationError(f"_bulk answered an item without a numeric status: {str(item)[:200]!r}")
            outcomes.append(outcome)
        return outcomes

    def send(self, payloads: Sequence[bytes]) -> BatchResult:
        result = BatchResult()
        queue = list(chunks(payloads, self.max_batch_bytes, self.max_batch_events, overhead=0))
        try:
            while queue:
                self._send_group(payloads, queue.pop(0), result, queue)
        except DestinationError as err:
            err.accepted = list(result.accepted)  # stored before the failure
            raise
        result.check_complete(len(payloads))
        return result

    def _send_group(self, payloads: Sequence[bytes], group: list[int], result: BatchResult,
                    queue: list[list[int]]) -> None:
        todo = group
        attempt = 0
        while todo:
            try:
                body = b"".join(payloads if len(todo) == len(payloads) else [payloads[i] for i in todo])
                reply = self._post(body, len(todo), result)
            except DestinationConfigError:
                raise
            except DestinationError:
                attempt += 1
                if attempt >= self.backoff.attempts:
                    raise
                self._wait(attempt)
                continue
            status = reply.status
            if status in (401, 403):
                raise DestinationConfigError(f"_bulk refused the credentials: HTTP {status}")
            if status == 413:
                if len(todo) == 1:
                    result.rejected.append(Rejected(todo[0], f"_bulk refused the event ({len(payloads[todo[0]])} "
                                                             "bytes) as too large: HTTP 413"))
                else:
                    half = len(todo) // 2
                    queue[:0] = [todo[:half], todo[half:]]
                return
            if status == 429 or status >= 500:
                attempt += 1
                if attempt >= self.backoff.attempts:
                    raise DestinationError(f"_bulk stayed busy after {attempt} attempts: HTTP {status}")
                self._wait(attempt, parse_retry_after(reply.headers.get("Retry-After")))
                continue
            if status != 200:
                raise DestinationError(f"unexpected _bulk answer: HTTP {status}: {reply.snippet(300)}")
            retry: list[int] = []
            for index, outcome in zip(todo, self._items(reply, len(todo)), strict=True):
                item_status = outcome["status"]
                if item_status in (200, 201, 409):
                    result.accepted.append(index)
                elif item_status == 429 or item_status >= 500:
                    retry.append(index)
                else:
                    error = outcome.get("error") or {}
                    kind = error.get("type", "error") if isinstance(error, dict) else "error"
                    reason = error.get("reason", "") if isinstance(error, dict) else str(error)
                    result.rejected.append(Rejected(index, printable(f"_bulk refused the event: {item_status} "
                                                                     f"{kind}: {reason}"[:1000])))
            if retry:
                attempt += 1
                if attempt >= self.backoff.attempts:
                    raise DestinationError(f"_bulk kept rejecting {len(retry)} items as busy after {attempt} "
                                           "attempts")
                log.info("_bulk: %d items busy, sending them again", len(retry))
                self._wait(attempt)
            todo = retry
